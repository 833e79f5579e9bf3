"""Bad input on the command line: a one-line error naming the problem, exit code 2, nothing written."""

import pytest

from fmlm.cli import main, parse_args


@pytest.mark.parametrize("argv,message", [
    (["prepare", "data.sourse=x"], "unknown config key data.sourse"),
    (["prepare", "data.row_len=long"], "data.row_len: expected an integer"),
    (["train", "teacher", "train_teacher.optim.optimizer=sgd"], "train_teacher.optim.optimizer: 'sgd' is not one of"),
    (["train", "teacher", "train_teacher.global_batch=0"], "train_teacher.global_batch: must be > 0"),
    (["train", "fixed-point", "train_fixed_point.max_steps=-5"], "train_fixed_point.max_steps: must be >= 0"),
    (["train", "teacher", "train_teacher.optim.base_lr=Infinity"], "train_teacher.optim.base_lr: expected a finite"),
    (["train", "teacher", "--device", "bogus"], "device: 'bogus' is not a device this project runs on; use auto, cpu"),
    (["prepare", "--device", "meta"], "device: 'meta' is not a device"),
    (["prepare", "device=cpu"], "device=cpu: the device is an option of the command, not a setting; pass --device"),
    (["sample", "steps=0"], "sampler.steps: must be >= 1"),
    (["sample", "--show", "-1"], "--show: must be >= 0 (samples to print), got -1"),
    (["prepare", "data.row_len=32", "data.row_len=64"], "data.row_len: given twice"),
    (["sample", "steps=2", " steps=3"], "steps: given twice"),
    (["train", "teacher", "evaluation.flow_map_steps="], "evaluation.flow_map_steps: must name at least one step"),
    (["evaluate", "--framing", "paper", "--max-length", "1"], "--max-length: must be >= 2"),  # before any loading
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, argv, message):
    argv = [argv[0], "--run", str(tmp_path / "run"), *argv[1:]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_corpus_is_a_one_line_error_and_leaves_no_cache(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["prepare", "--run", str(tmp_path / "run"), f"cache_dir={cache}",
                 f"data.source={tmp_path / 'no_such_corpus'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_corpus" in err and len(err.splitlines()) == 1
    assert not cache.exists() or not any(p.name.startswith(("gensim", "no_such")) for p in cache.iterdir())


def test_missing_samples_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path), str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_overrides_are_accepted_after_the_options():
    args = parse_args(["train", "fixed-point", "--run", "r", "--teacher", "t", "train_fixed_point.max_steps=3", "seed=1"])
    assert (args.stage, str(args.run_dir), str(args.teacher)) == ("fixed-point", "r", "t")
    assert args.overrides == ["train_fixed_point.max_steps=3", "seed=1"]


@pytest.mark.parametrize("argv", [["train", "teacher", "--run", "r", "stray"], ["train", "--bogus"], ["evaluate", "x.jsonl", "y.jsonl"]])
def test_stray_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "teacher"], ["prepare"], ["sample"], ["evaluate", "x.jsonl"]])
@pytest.mark.parametrize("below", [False, True])
def test_a_run_folder_that_is_a_file_is_a_one_line_error(tmp_path, capsys, argv, below):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    run = afile / "sub" if below else afile
    extra = [f"cache_dir={tmp_path / 'cache'}"] if argv[0] in ("train", "prepare") else []  # experiment overrides
    assert main([argv[0], "--run", str(run), *argv[1:], *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: run folder {run} ") and "afile" in err and len(err.splitlines()) == 1
    assert afile.read_text() == "keep me\n" and [p.name for p in tmp_path.iterdir()] == ["afile"]
