"""``benchmarks/gpu_check.py`` (``make gpu-check``) keeps working without a GPU: ``--tiny`` runs its parts at
tiny sizes on the CPU and writes a report with every part's section and the JSON it promises; without
CUDA and without ``--tiny`` it refuses in one line; its batch prediction is the README's.

The default test leaves out two parts (``--skip distributed,compile``), each tens of seconds on a busy 2-core
machine: the distributed part starts torchrun twice, and each launch imports torch twice (the agent and
the worker); the compile part traces the teacher's step with dynamo about four times (grad and no-grad
passes, then again when the self-conditioned rows change in number). The slow test runs every part."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
HEADINGS = ["## 1. Numerics: bf16 autocast against fp32", "## 2. Training steps", "## 3. Sampling speed",
            "## 4. Released-checkpoint path", "## 5. Distributed: torchrun, SIGTERM and resume",
            "## 6. torch.compile on the teacher step"]
PARTS = ["numerics", "training", "sampling", "released", "distributed", "compile"]


def run_tiny(tmp_path: Path, *extra: str) -> tuple[dict, str, str]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    md, js = tmp_path / "gpu_check_cpu-tiny.md", tmp_path / "gpu_check_cpu-tiny.json"
    assert done.stdout.strip().splitlines()[-2:] == [f"report: {md}", f"json:   {js}"]
    return json.loads(js.read_text()), md.read_text(), done.stdout


def check_report(data: dict, md: str, ran: list[str]) -> None:
    assert [line for line in md.splitlines() if line.startswith("## ")] == HEADINGS
    assert set(data) >= {"command", "machine", "tiny", "sizes", "sdpa", "parts", "elapsed_s"} and data["tiny"]
    assert {"torch", "cuda", "cudnn", "cpu", "device"} <= set(data["machine"])
    assert list(data["parts"]) == PARTS
    for name in PARTS:
        part = data["parts"][name]
        assert part["status"] == ("ok" if name in ran else "skipped (--skip)"), (name, part)
    assert data["sdpa"]["no-grad forward"]["backend"] and data["sdpa"]["forward + backward"]["backend"]
    numerics = data["parts"]["numerics"]["calls"]
    assert [r["call"] for r in numerics] == ["teacher", "ELF* (stage 2)", "FMLM* (stage 3)"]
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ~ 2e-3 per value); through two blocks of random
    # weights the error stays within a few percent, far from the ~100% of a wrong or unscaled result.
    assert all(0 < r["x_rel_error"] < 0.1 and 0 <= r["decoder_argmax_agreement"] <= 1 for r in numerics)
    training = data["parts"]["training"]
    assert [r["stage"] for r in training["cases"]] == ["teacher"] * 2 + ["ELF* (stage 2)"] * 2 + ["FMLM* (stage 3)"] * 2
    assert all(r["seconds_per_step"] > 0 and r["model_flops_per_step"] > 0 for r in training["cases"])
    assert len(training["loss_fall"]["losses"]) == 20 and training["loss_fall"]["falls"]
    samplers = data["parts"]["sampling"]["samplers"]
    assert samplers[0]["sampler"].startswith("teacher SDE") and samplers[0]["speed_ratio"] == 1.0
    assert [r["network_evaluations_per_sample"] for r in samplers[1:]] == [2, 3, 5]  # FMLM* 1, 2, 4 steps + decoder
    released = data["parts"]["released"]
    assert released["import"]["exit"] == 0 and released["samples"] == {"count": 2, "nfe": [2], "length": 16}
    if "compile" in ran:
        assert data["parts"]["compile"]["speedup"] > 0 and data["parts"]["compile"]["settings"]["backend"] == "eager"


def test_tiny_run_reports_every_part(tmp_path):
    data, md, out = run_tiny(tmp_path, "--skip", "distributed,compile")
    check_report(data, md, [p for p in PARTS if p not in ("distributed", "compile")])
    assert "Status: skipped (--skip)." in md


@pytest.mark.slow
def test_tiny_run_with_torchrun_signals_and_resumes(tmp_path):
    data, md, _ = run_tiny(tmp_path)
    check_report(data, md, PARTS)
    dist = data["parts"]["distributed"]
    assert dist["backend"] == "gloo" and dist["signalled"]["stop_line"].startswith("stopped by SIGTERM at step")
    assert 0 < dist["signalled"]["checkpoint_step"] < 8 and not dist["signalled"]["checkpoint_complete"]
    assert dist["resumed"]["metrics_steps"] == list(range(1, 9)) and dist["resumed"]["checkpoint_complete"]
    assert dist["resumed"]["worker_line"] == "backend gloo, world size 1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_without_cuda_and_without_tiny_it_refuses_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("gpu-check: CUDA is not available here") and done.stderr.count("\n") == 1
    assert "--tiny" in done.stderr and not any(tmp_path.iterdir())


@pytest.fixture
def gpucheck():
    """The ``benchmarks/gpucheck`` package, importable as the script imports it."""
    sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]
    try:
        import gpucheck.common
        import gpucheck.train_steps

        yield gpucheck
    finally:
        del sys.path[:2]


def test_a_failing_or_overrunning_part_is_one_line_and_the_next_part_runs(gpucheck, tmp_path, monkeypatch):
    common = gpucheck.common
    writes = []
    check = common.Check(torch.device("cpu"), common.TINY, True, tmp_path, {"parts": {}}, time.monotonic() + 100,
                         lambda: writes.append(1))

    def fails(check, rec):
        rec["partial"] = 1
        raise ValueError("a bad thing\nits second line")

    def sleeps(check, rec):
        rec["started"] = True
        time.sleep(30)

    monkeypatch.setitem(common.BUDGET_S, "sampling", 2)
    first = common.run_part(check, "numerics", fails)
    second = common.run_part(check, "sampling", sleeps)
    third = common.run_part(check, "released", lambda check, rec: rec.update(done=True))
    assert (first["status"], first["error"], first["partial"]) == ("failed", "ValueError: a bad thing", 1)
    assert (second["status"], second["error"], second["started"]) == ("cut", "ran past its time limit of 2 s", True)
    assert second["seconds"] < 10 and third == {**third, "status": "ok", "done": True}
    assert list(check.payload["parts"]) == ["numerics", "sampling", "released"] and len(writes) == 6
    check.deadline = time.monotonic()  # past: the next part is not started
    assert common.run_part(check, "compile", fails)["status"] == "not run (the run's deadline had passed)"


def test_the_predicted_batches_are_the_readme_s(gpucheck):
    predictions = gpucheck.train_steps.predictions
    predicted = predictions(80e9)  # the README's 80 GB (1e9 bytes each)
    assert {k: v["batch"] for k, v in predicted.items()} == {
        "teacher": 81, "teacher-nosc": 86, "ELF* (stage 2)": 38, "FMLM* (stage 3)": 81}
    assert predicted["teacher"]["length"] == 1024
