"""Bad input to the main job (``python -m fmlm run``, which ``experiments/owt_fmlm_star.py`` calls) and to the device option: a one-line error naming the
problem, exit code 2 (as ``python -m fmlm`` uses for bad settings), nothing written."""

import pytest
import torch

from fmlm.config import ConfigError
from fmlm.train.distributed import resolve_device

from fmlm.cli import main, parse_args


@pytest.mark.parametrize("argv,message", [
    (["--quick", "--preset", "paper"], "--quick means --preset quick and conflicts with --preset paper"),
    (["--quick", "--preset", "embedded"], "conflicts with --preset embedded"),
    (["--quick", "--stages", ","], "--stages ',' holds an empty stage name"),
    (["--quick", "--stages", "teacher,,teacher-nosc"], "holds an empty stage name"),
    (["--quick", "--stages", "fixed-point"], "stage 'fixed-point' needs stage 'teacher'"),
    (["--quick", "--device", "bogus"], "device: 'bogus' is not a device this project runs on; use auto, cpu, cuda"),
    (["--quick", "train_teacher.max_steps=-5"], "train_teacher.max_steps: must be >= 0"),
    # The evaluation plan is checked before the first stage trains, naming the key as typed.
    (["--quick", "evaluation.teacher_steps=0"], "evaluation.teacher_steps: must be >= 1"),
    (["--quick", "evaluation.flow_map_steps=0,2,4"], "evaluation.flow_map_steps: must all be >= 1, got 0"),
    (["--quick", "evaluation.teacher_few_steps=-1,4"], "evaluation.teacher_few_steps: must all be >= 1"),
    (["--quick", "evaluation.teacher_few_steps=-1"], "evaluation.teacher_few_steps: must all be >= 1, got -1"),
    (["--quick", "evaluation.flow_map_w=-1"], "evaluation.flow_map_w: must be > 0"),
    (["--quick", "evaluation.churn=-1"], "evaluation.churn: must be >= 0"),
    (["--quick", "evaluation.max_tokens=0"], "evaluation.max_tokens: must be >= 2"),
    (["--quick", "evaluation.evaluator=/nonexistent"], "evaluation.evaluator: '/nonexistent' is not an existing model folder"),
    # Network sizes and the text source are checked before the data is prepared or experiment.json written.
    (["--quick", "network.width=255"], "network.heads: width 255 is not divisible by heads"),
    (["--quick", "network.phase_tokens=3"], "network.phase_tokens: must equal time_tokens"),
    (["--quick", "data.source=/nonexistent"], "data.source: '/nonexistent' is neither an embedded part"),
    (["--quick", "train_teacher.epochs=Infinity", "train_teacher.max_steps=0"],
     "train_teacher.epochs: expected a finite number, got inf"),
    (["--quick", "--run", "{afile}"], "run folder {afile} is a file; pass a folder to --run-dir"),
    (["--quick", "--run", "{afile}/run"], "run folder {afile}/run lies below the file {afile}"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)  # the default run folder, runs/quick, would land here
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    argv = [a.format(afile=afile) for a in argv]
    if "--run" not in argv:
        argv += ["--run", str(tmp_path / "run")]
    assert main(["run", *argv, "--no-progress", f"cache_dir={tmp_path / 'cache'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {err[7:]}" and message.format(afile=afile) in err and len(err.splitlines()) == 1
    assert afile.read_text() == "keep me\n" and [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_an_evaluator_that_does_not_resolve_offline_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import time

    import fmlm.data.hub

    monkeypatch.setattr(fmlm.data.hub, "hub_reachable", lambda: False)
    start = time.perf_counter()
    assert main(["run", "--quick", "--run", str(tmp_path / "run"), "--no-progress", f"cache_dir={tmp_path / 'cache'}",
                 "evaluation.evaluator=nonexistent-model"]) == 2
    assert time.perf_counter() - start < 20  # no hub retries (they took ~60 s); the import of the pipeline is the rest
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: evaluation.evaluator: 'nonexistent-model' is not a model folder") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_train_checks_the_network_before_preparing_data(tmp_path, capsys):
    assert main(["train", "teacher", "--preset", "quick", "--run", str(tmp_path / "run"), "--no-progress",
                 f"cache_dir={tmp_path / 'cache'}", "network.width=255"]) == 2
    assert "network.heads: width 255" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["bogus", "", "CPU", "cuda:x", "cuda:-1", "meta", "cpu,cuda"])
def test_a_bad_device_names_the_key_and_the_accepted_forms(name):
    with pytest.raises(ConfigError, match=r"^device: .*; use auto, cpu, cuda or cuda:N$"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_names_the_key():
    with pytest.raises(ConfigError, match=r"^device: 'cuda:0' was asked for but CUDA is not available$"):
        resolve_device("cuda:0")


def test_good_devices_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")


def test_overrides_may_come_after_the_options():
    args = parse_args(["run", "--quick", "a=1", "--run", "r", "b=2", "--stages", "teacher"])
    assert (args.overrides, str(args.run_dir), args.stages, args.preset) == (["a=1", "b=2"], "r", "teacher", None)
