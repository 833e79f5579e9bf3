"""What a resume reads from a checkpoint: a bad meta.json (or metrics window) is refused before anything
is written, and the metrics averaged since the last logged step carry over, so the resumed metrics.jsonl
equals the uninterrupted one whatever the checkpoint and log cadences are."""

import dataclasses
import json

import pytest
import torch

from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo
from fmlm.train.log_window import LogWindow
from fmlm.train.loop import train
from tests.train.signal_worker import make_run

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def _train(run_dir, steps, loss_wrap=lambda loss: loss, **changes):
    model, loss, rows, cfg = make_run(steps)
    cfg = dataclasses.replace(cfg, log_every=2, checkpoint_every=3, **changes)
    train(model, loss_wrap(loss), rows, cfg, run_dir, CPU, stage="teacher", stage_config={}, data_info={},
          progress=False)


def _metrics(run_dir):
    """metrics.jsonl without its wall-time fields, as parsed lines."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in ("tokens_per_s", "elapsed_s")} for x in lines]


def _killed_at_step(step):
    """A loss that raises in the first micro-batch of ``step`` (1-based), as a killed process stops."""
    def wrap(loss):
        calls = {"n": 0}

        def wrapped(*args):
            calls["n"] += 1
            if calls["n"] == 2 * (step - 1) + 1:  # two micro-batches a step
                raise RuntimeError("killed")
            return loss(*args)
        wrapped.decoder_prob = loss.decoder_prob
        return wrapped
    return wrap


def test_metrics_after_a_resume_equal_an_uninterrupted_runs_when_checkpoints_fall_between_logs(tmp_path):
    _train(tmp_path / "full", 8)
    part = tmp_path / "part"
    with pytest.raises(RuntimeError, match="killed"):
        _train(part, 8, _killed_at_step(6))  # checkpoint at step 3, metrics logged at steps 2 and 4
    assert ckpt.read_meta(part / "checkpoint").step == 3
    assert [r["step"] for r in _metrics(part)] == [2, 4]
    _train(part, 8)  # resumes from step 3: step 4 averages steps 3 and 4 again
    assert [r["step"] for r in _metrics(part)] == [2, 4, 6, 8]
    assert _metrics(part) == _metrics(tmp_path / "full")


def test_a_window_saved_under_two_processes_restores_the_same_means_under_one():
    window = LogWindow.restore({"keys": ["loss", "ce"], "steps": 1, "elapsed_s": 2.0,
                                "sums": [[1.0, 0.5], [3.0, 0.25]], "counts": [[2, 1], [2, 1]]}, 0, 1, "w.json")
    assert (window.sums, window.counts, window.steps) == ({"loss": 4.0, "ce": 0.75}, {"loss": 4, "ce": 2}, 1)
    window.add({"loss": 6.0})
    assert window.means(torch.device("cpu")) == {"loss": 2.0, "ce": 0.375}
    other = LogWindow.restore({"keys": ["loss"], "steps": 1, "elapsed_s": 0.0, "sums": [[1.0]], "counts": [[2]]},
                              1, 2, "w.json")
    assert (other.sums, other.counts) == ({"loss": 0.0}, {"loss": 0})  # process 0 holds them all


def _set_meta(folder, **changes):
    path = folder / "meta.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("spoil, message", [
    (lambda f: _set_meta(f, step=-5), r"meta\.json: step -5 is outside 0\.\.6 \(its total_steps\)$"),
    (lambda f: _set_meta(f, step=7), r"meta\.json: step 7 is outside 0\.\.6"),
    (lambda f: _set_meta(f, step="three"), r"meta\.json: step: expected an integer, got 'three'$"),
    (lambda f: (f / "meta.json").write_text('{"stage": "teacher", "st'), r"meta\.json: invalid JSON"),
    (lambda f: (f / "log_window.json").write_text("[1, 2]"), r"log_window\.json: expected a JSON object"),
    (lambda f: (f / "log_window.json").write_text('{"keys": ["loss"]}'),
     r"log_window\.json: not a metrics window saved by this loop"),
], ids=["negative-step", "step-past-total", "step-not-integer", "corrupt-json", "window-not-object",
        "window-incomplete"])
def test_a_refused_checkpoint_leaves_the_run_folder_as_it_was(tmp_path, spoil, message):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        _train(run, 8, _killed_at_step(8))  # checkpoint at step 6 of 8
    folder = run / "checkpoint"
    _set_meta(folder, total_steps=6)
    spoil(folder)
    before = {p.name: p.read_bytes() for p in [*run.iterdir(), *folder.iterdir()] if p.is_file()}
    assert before["metrics.jsonl"].count(b"\n") == 3
    with pytest.raises(ValueError, match=message) as err:
        _train(run, 8)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)
    after = {p.name: p.read_bytes() for p in [*run.iterdir(), *folder.iterdir()] if p.is_file()}
    assert after == before
