"""experiments/reproduce_released.py and fmlm.models.released: three fake released checkpoints imported
as model folders, a tiny GPT-2 evaluator saved to a folder, the whole script end to end (records,
report, resume), refusals before any file is written, and a sample set independent of the number of
processes (shards merged; torchrun with two gloo processes in the slow test)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fmlm.models import import_checkpoint, load_model
from fmlm.reproduce import released as rel
from fmlm.reproduce import shards
from tests.models.reference_layout import lightning_checkpoint, reference_state

pytest.importorskip("fmlm.data.gpt2")
from fmlm.data.gpt2 import gpt2_ranks_path, gpt2_tokenizer  # noqa: E402

try:
    gpt2_ranks_path()
except ValueError as err:  # openai-whisper not installed: no offline GPT-2 tokenizer
    pytest.skip(f"GPT-2 ranks file absent ({err})", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "reproduce_released.py"
CHECKPOINTS = {"teacher": ("elf.ckpt", False), "fixed-point": ("elf_star.ckpt", True),
               "flow-map": ("fmlm_star.ckpt", True)}
N, LENGTH = 3, 8


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce_released", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_script()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Model folders of the three released stages and a tiny GPT-2 evaluator folder."""
    root = tmp_path_factory.mktemp("released")
    cache = root / "cache"
    folders = {}
    for i, (stage, (name, phase)) in enumerate(CHECKPOINTS.items()):
        path = root / name
        state = reference_state(phase=phase, seed=i)
        for key, scale in (("unembed_kernel", 100.0), ("text_proj.proj1.weight", 5.0), ("text_proj.proj2.weight", 5.0)):
            state[key] = state[key] * scale  # the sample's noise, not the biases, decides its tokens
        torch.save(lightning_checkpoint(state), path)
        out = root / "models" / stage
        import_checkpoint(path, out, cache_dir=cache)  # what `python -m fmlm import` runs
        folders[stage] = out
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50257, n_positions=64, initializer_range=0.5)
    evaluator = root / "tiny-gpt2"
    GPT2LMHeadModel(cfg).save_pretrained(evaluator)
    gpt2_tokenizer(cache).save_pretrained(evaluator)
    return {"folders": folders, "evaluator": evaluator, "cache": cache}


def argv(assets, run_dir, **changes) -> list[str]:
    folders = assets["folders"]
    options = {"--flow-map": folders["flow-map"], "--teacher": folders["teacher"],
               "--fixed-point": folders["fixed-point"], "--run-dir": run_dir, "--n-samples": N, "--length": LENGTH,
               "--evaluator": assets["evaluator"], "--sample-batch": 2, "--score-batch": 2, "--device": "cpu",
               "--cache-dir": assets["cache"]}
    options.update({(k if k.startswith("--") else f"--{k.replace('_', '-')}"): v for k, v in changes.items()})
    out = [str(x) for k, v in options.items() if v is not None for x in (k, v)]
    return out + ["--no-progress"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(("n", "world"), [(1, 1), (3, 2), (1, 2), (7, 3), (8, 4), (1024, 8)])
def test_shards_are_contiguous_and_cover_every_index_once(n, world):
    parts = [shards.shard_range(n, r, world) for r in range(world)]
    assert [i for p in parts for i in p] == list(range(n))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True) and sizes[0] >= 1
    with pytest.raises(ValueError, match="^rank:"):
        shards.shard_range(n, world, world)
    with pytest.raises(ValueError, match="^n:"):
        shards.shard_range(0, 0, world)


def test_settings_are_the_stored_paper_settings(assets):
    models = {s: load_model(f) for s, f in assets["folders"].items()}
    settings = rel.released_settings(models, seed=3, batch_size=5)
    got = [(s.stage, s.name, s.sampler.kind, s.sampler.steps, s.sampler.w, s.sampler.seed, s.sampler.batch_size)
           for s in settings]
    assert got == [("flow-map", "1", "ctm", 1, 5.0, 3, 5), ("flow-map", "2", "ctm", 2, 5.0, 3, 5),
                   ("flow-map", "4", "ctm", 4, 5.0, 3, 5), ("teacher", "32", "sde", 32, 3.0, 3, 5),
                   ("fixed-point", "32", "euler", 32, 3.0, 3, 5)]
    assert [s.sampler.gamma for s in settings[:3]] == [1.0, 0.75, 1.0]
    assert settings[3].sampler.sc_mode == "warm" and settings[4].sampler.sc_mode == "none"
    assert len({s.id for s in settings}) == 5 and all(s.id.endswith("_s3") for s in settings)
    only_flow_map = rel.released_settings({"flow-map": models["flow-map"]})
    assert [s.name for s in only_flow_map] == ["1", "2", "4"]


@pytest.mark.parametrize(("stage", "name"), [("teacher", "32"), ("flow-map", "2")])
def test_one_or_two_shards_give_the_same_sample_set(assets, tmp_path, stage, name):
    pretrained = load_model(assets["folders"][stage])
    sampler = pretrained.sampler(int(name), ["batch_size=2"])
    n = 5
    merged = {}
    for world in (1, 2):
        run = tmp_path / f"world{world}"
        for rank in range(world):
            shard = shards.sample_shard(pretrained, sampler, n, rank, world, length=6, progress=False)
            assert shard.indices == list(shards.shard_range(n, rank, world))
            shards.write_shard(run, "x", rank, shard)
        merged[world] = shards.merge_shards(run, "x", world, n)
        assert not list((run / "eval").glob("*.rank*"))
        assert read_jsonl(run / "eval" / "x.jsonl") == merged[world]
    assert [r["index"] for r in merged[2]] == list(range(n))
    assert merged[1] == merged[2]
    assert len({r["text"] for r in merged[1]}) > 1  # the samples differ from one another


def test_merge_refuses_a_missing_or_incomplete_shard(tmp_path):
    shards.write_shard(tmp_path, "x", 0, shards.Shard([0, 1], ["a", "b"], 2, 0.1))
    with pytest.raises(ValueError, match="x.rank1.jsonl: missing"):
        shards.merge_shards(tmp_path, "x", 2, 3)
    shards.write_shard(tmp_path, "x", 1, shards.Shard([], [], 0, 0.0))
    with pytest.raises(ValueError, match="not exactly 0..2"):
        shards.merge_shards(tmp_path, "x", 2, 3)
    assert (tmp_path / "eval" / "x.rank0.jsonl").is_file()  # nothing removed on failure
    # a shard left by an earlier, killed run on more processes is removed with the merged ones
    shards.write_shard(tmp_path, "x", 1, shards.Shard([2], ["c"], 2, 0.1))
    shards.write_shard(tmp_path, "x", 3, shards.Shard([9], ["stale"], 2, 0.1))
    assert [r["text"] for r in shards.merge_shards(tmp_path, "x", 2, 3)] == ["a", "b", "c"]
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["x.jsonl"]


def test_score_framings_equals_compare_framings(assets):
    from fmlm.evaluation.evaluator import load_evaluator
    from fmlm.evaluation.paper_scoring import compare_framings

    ev = load_evaluator(str(assets["evaluator"]), cache_dir=assets["cache"])
    texts = ["Hello world", "", "The cat sat on the mat.", "  ", "Numbers 1 2 3."]
    framings, paper = rel.score_framings(ev, texts, batch_size=2, progress=False)
    assert framings == compare_framings(ev, texts, batch_size=2, max_length=rel.SCORE_MAX_LENGTH, progress=False)
    rows = rel.scored_rows([{"index": i, "text": t, "nfe": 2} for i, t in enumerate(texts)], paper)
    assert [r["paper_ppl"] is None for r in rows] == [False, True, False, True, False]
    assert rows[2]["paper_entropy"] == paper.entropies[1] and rows[4]["paper_n_tokens"] == paper.n_tokens[2]


def test_a_resumed_run_must_match_the_recorded_experiment():
    old = {"preset": "released", "models": {"flow-map": {"folder": "a", "sha256": "1", "file": "f"}},
           "evaluator": "gpt2-large", "n": 4, "length": 8, "seed": 0, "score_max_length": 1024}
    teacher = {"folder": "t", "sha256": "2", "file": "elf.ckpt"}
    added = rel.merge_experiment(old, {**old, "models": {**old["models"], "teacher": teacher}})
    assert set(added["models"]) == {"flow-map", "teacher"}
    assert rel.merge_experiment(old, {**old, "models": {"teacher": teacher}})["models"]["flow-map"]["sha256"] == "1"
    with pytest.raises(ValueError, match="made with n=4, this run asks n=5"):
        rel.merge_experiment(old, {**old, "n": 5})
    with pytest.raises(ValueError, match="flow-map model came from sha256 1, --flow-map from 9"):
        rel.merge_experiment(old, {**old, "models": {"flow-map": {"folder": "a", "sha256": "9", "file": "f"}}})
    assert rel.timing_with(rel.timing_with(None, "a", 1.0), "a", 2.5) == {"stages": {"a": 2.5}, "total_s": 2.5}


def test_end_to_end_records_report_and_resume(assets, tmp_path, script, capsys):
    run = tmp_path / "run"
    assert script.main(argv(assets, run)) == 0
    records = read_jsonl(run / "results.jsonl")
    assert [(r["model"], r["steps"]) for r in records] == [("flow-map", 1), ("flow-map", 2), ("flow-map", 4),
                                                          ("teacher", 32), ("fixed-point", 32)]
    numbers = ("gen_ppl", "entropy", "gen_ppl_keep_empty", "entropy_keep_empty", "gen_ppl_project",
               "entropy_project", "wall_s", "wall_s_per_sample")
    for r in records:
        assert r["scoring"] == "paper" and r["n_samples"] == N and 1 <= r["n_scored"] <= N and r["seed"] == 0
        assert all(isinstance(r[k], float) and math.isfinite(r[k]) for k in numbers), r
        assert r["nfe"] == r["steps"] + 1  # one network evaluation per step, then the decoder pass
        rows = read_jsonl(run / r["samples_file"])
        assert [x["index"] for x in rows] == list(range(N)) and all(x["nfe"] == r["nfe"] for x in rows)
        assert {"text", "paper_ppl", "paper_entropy", "paper_n_tokens"} <= set(rows[0])
    assert [r["gamma"] for r in records[:3]] == [1.0, 0.75, 1.0] and records[3]["sc_mode"] == "warm"
    assert records[0]["gen_ppl"] != records[0]["gen_ppl_project"]
    assert not list((run / "eval").glob("*.rank*")) and not list(run.rglob("*.tmp"))
    experiment = json.loads((run / "experiment.json").read_text())
    assert experiment["preset"] == "released" and (experiment["n"], experiment["length"]) == (N, LENGTH)
    assert experiment["models"]["teacher"]["file"] == "elf.ckpt" and len(experiment["models"]["flow-map"]["sha256"]) == 64
    timing = json.loads((run / "timing.json").read_text())
    assert {f"sample {r['id']}" for r in records} | {f"score {r['id']}" for r in records} == set(timing["stages"])
    assert timing["total_s"] == pytest.approx(sum(timing["stages"].values()))

    table = (run / "report" / "released_table.md").read_text()
    assert "paper (quoted)" in table
    rows = {(r["model"], r["steps"]): r for r in _markdown_rows(table)}
    one = rows[("FMLM* (flow-map)", "1")]
    assert one["paper (quoted)"] == "112.52 / 5.37"
    assert one["ours: paper scoring"] == f"{records[0]['gen_ppl']:.2f} / {records[0]['entropy']:.2f}"
    assert one["ours: project framing"] == f"{records[0]['gen_ppl_project']:.2f} / {records[0]['entropy_project']:.2f}"
    assert one["scored"] == f"{records[0]['n_scored']} of {N}"
    assert rows[("ELF (teacher)", "32")]["paper (quoted)"] == "-" and rows[("ELF* (fixed-point)", "32")]["paper (quoted)"] == "-"
    assert "released_table.md" in (run / "report" / "report.md").read_text()

    # a second call skips every record; a killed job (last record missing) redoes only that one, identically
    capsys.readouterr()
    before = (run / "results.jsonl").read_text()
    assert script.main(argv(assets, run)) == 0
    assert (run / "results.jsonl").read_text() == before
    assert capsys.readouterr().out.count("already recorded, skipped") == 5
    last = records[-1]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:-1]))
    texts = [x["text"] for x in read_jsonl(run / last["samples_file"])]
    assert script.main(argv(assets, run)) == 0
    again = read_jsonl(run / "results.jsonl")
    assert len(again) == 5 and again[-1]["id"] == last["id"]
    assert again[-1]["gen_ppl"] == pytest.approx(last["gen_ppl"], rel=1e-6)
    assert [x["text"] for x in read_jsonl(run / last["samples_file"])] == texts
    assert capsys.readouterr().out.count("already recorded, skipped") == 4


def _markdown_rows(text: str) -> list[dict[str, str]]:
    from tests.reports.fake_run import markdown_rows

    return markdown_rows(text[text.index("|"):])


@pytest.mark.parametrize(("changes", "message"), [
    ({"flow_map": "TEACHER"}, "holds a 'teacher' model, not a 'flow-map' one"),
    ({"teacher": "FIXED-POINT"}, "holds a 'fixed-point' model, not a 'teacher' one"),
    ({"n_samples": 0}, "--n-samples: expected an integer >= 1, got 0"),
    ({"n_samples": None, "--n": -1}, "--n-samples: expected an integer >= 1, got -1"),
    ({"length": 1025}, "--length 1025: exceeds the flow-map model's max_len of 1024"),
    ({"evaluator": "EMPTY"}, "could not load evaluator"),
    ({"evaluator": "./no-such-evaluator"}, "is not an existing model folder"),
    ({"fixed_point": "./nowhere"}, "--fixed-point ./nowhere: not a model folder"),
])
def test_bad_input_is_refused_in_one_line_before_any_file(assets, tmp_path, script, capsys, monkeypatch, changes,
                                                          message):
    (tmp_path / "empty").mkdir()
    places = {"TEACHER": assets["folders"]["teacher"], "FIXED-POINT": assets["folders"]["fixed-point"],
              "EMPTY": tmp_path / "empty"}
    changes = {k: places.get(v, v) for k, v in changes.items()}
    monkeypatch.chdir(tmp_path)  # relative paths resolve here
    run = tmp_path / "run"
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert script.main(argv(assets, run, **changes)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not run.exists() and sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_n_is_short_for_n_samples_without_torchrun(script):
    base = ["--flow-map", "m", "--run-dir", "r"]
    assert script.parse_args(base + ["--n", "5"]).n == script.parse_args(base + ["--n-samples", "5"]).n == 5
    assert script.parse_args(base).n == 1024 and script.parse_args(base).length == 1024


def test_run_dir_that_is_a_file_is_refused(assets, tmp_path, script, capsys):
    (tmp_path / "file").write_text("x")
    assert script.main(argv(assets, tmp_path / "file")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and "--run-dir" in err
    assert script.main(argv(assets, tmp_path / "file" / "run")) == 2
    assert "lies below the file" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_with_two_processes_gives_the_one_process_samples(assets, tmp_path, script):
    single, double = tmp_path / "single", tmp_path / "double"
    assert script.main(argv(assets, single)) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(SCRIPT), *argv(assets, double)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "5 settings to sample, 3 samples each, on 2 processes" in done.stdout
    one, two = read_jsonl(single / "results.jsonl"), read_jsonl(double / "results.jsonl")
    assert [r["id"] for r in one] == [r["id"] for r in two]
    for a, b in zip(one, two):
        texts_a = [x["text"] for x in read_jsonl(single / a["samples_file"])]
        texts_b = [x["text"] for x in read_jsonl(double / b["samples_file"])]
        assert texts_a == texts_b, a["id"]
        assert b["gen_ppl"] == pytest.approx(a["gen_ppl"], rel=1e-5)
    assert not list((double / "eval").glob("*.rank*"))
    assert (double / "report" / "released_table.md").is_file()
