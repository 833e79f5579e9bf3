"""The benchmark scripts run end to end on a tiny setting and write the JSON they promise.

Only that they run and report finite ratios is checked; their numbers are the machine's."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from fmlm.nn.cpu.screen_int8 import int_mm_is_exact

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "quick", "--batch", "2", "--length", "4", "--repeats", "1", "--threads", "1"]


def run(script: str, tmp_path: Path, *extra: str) -> tuple[dict, str]:
    out, md = tmp_path / f"{script}.json", tmp_path / f"{script}.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *TINY, *extra, "--out", str(out), "--markdown", str(md)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), md.read_text()


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_sampling_benchmark_reports_every_sampler(tmp_path):
    data, md = run("sampling", tmp_path, "--profile", "1")
    assert set(data) >= {"machine", "command", "settings", "samplers", "speed_work", "profiles", "target", "network_costs_s"}
    assert {"cpu", "logical_cores", "torch", "threads"} <= set(data["machine"]) and data["machine"]["threads"] == 1
    names = [r["sampler"] for r in data["samplers"]]
    assert names[0].startswith("teacher SDE") and any(n.startswith("FMLM* 1 step") for n in names)
    assert sum(n.startswith("teacher cold start") for n in names) == 2  # the quick preset's N = 1, 2
    for r in data["samplers"]:
        assert all(finite(r[k]) for k in ("speed_ratio", "evaluations_ratio", "predicted_ratio", "tokens_per_s",
                                          "samples_per_s", "peak_memory_mib"))
        assert r["network_evaluations_per_sample"] >= 2
    assert data["samplers"][0]["speed_ratio"] == 1.0
    assert finite(data["target"]["wanted_ratio"]) and isinstance(data["target"]["met"], bool)
    identical = [r for r in data["speed_work"] if "bit_identical" in r]
    assert len(identical) == 2 and all(r["bit_identical"] for r in identical)
    exact = [r for r in data["speed_work"] if r["subject"] == "decoder pass" and "not exact" not in r["variant"]]
    assert len(exact) == (5 if int_mm_is_exact() else 4)  # the int8 screen's row where torch._int_mm is exact
    assert all(r["same_ids_as_whole_logits"] for r in exact)
    assert len(data["profiles"]) == 4 and all(len(top) == 1 for top in data["profiles"].values())
    assert "| sampler" in md and "speed ratio" in md and "benchmarks/sampling.py" in md


def test_training_benchmark_reports_every_stage(tmp_path):
    runs, md = run("training", tmp_path, "--memory-batches", "1,2", "--derive-length", "16")
    assert len(runs["runs"]) == 1
    data = runs["runs"][0]
    assert set(data) >= {"machine", "command", "settings", "stages", "stage2", "reference", "memory_derivation"}
    stages = [r["stage"] for r in data["stages"]]
    assert stages == ["teacher", "teacher-nosc", "ELF* (stage 2)", "FMLM* (stage 3)", "teacher decoder step"]
    for r in data["stages"]:
        assert all(finite(r[k]) for k in ("seconds_per_step", "tokens_per_s", "forward_pass_equivalents",
                                          "passes_fpe", "model_flops_per_step", "peak_memory_mib"))
        assert r["mfu"] is None  # CPU: no peak claimed
        lo, hi = r["fpe_range"]
        assert lo <= r["forward_pass_equivalents"] <= hi  # one round here: all three equal
    assert data["stage2"]["budget_fpe"] == data["settings"]["K"] + 8 and finite(data["stage2"]["step_fpe"])
    assert data["reference"]["network step"]["ratio_reference_over_ours"] is None  # no --reference given
    assert "not measured" in md
    assert len(data["memory_derivation"]["stages"]) == 4


def test_the_flop_formula_matches_torch_flop_counter():
    import pytest
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fmlm.nn import Denoiser, denoiser_config

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from train_flops import forward_flops
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for overrides in ({}, {"phase_tokens": 4}, {"self_conditioning": False, "guidance_tokens": 0}):
        model = Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=40, max_len=12, **overrides)).eval()
        cfg, rows, length = model.config, 3, 7
        for decode in (False, True):
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(torch.randn(rows, length, 8), torch.rand(rows), decode=decode)
            counted = {str(op) for op in counter.get_flop_counts()["Global"]}
            n = length + cfg.prefix_len
            # The counter skips the CPU flash-attention kernel; add the formula's score term where it did.
            scores = 0 if any("scaled_dot_product" in op for op in counted) else rows * cfg.depth * n * 4 * n * cfg.width
            expected = rows * forward_flops(cfg, length, length if decode else None)
            assert counter.get_total_flops() + scores == pytest.approx(expected, rel=1e-12)


def test_sampling_benchmark_refuses_a_run_folder_without_trained_stages(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sampling.py"), *TINY, "--weights", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (f"--weights: {tmp_path}/stages/teacher/checkpoint does not exist "
                                                    "(train the run's stages first)")


def test_round_ratios_pair_the_cases_of_each_round():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_common import round_ratios
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rounds = {"step": [4.0, 9.0, 6.0], "forward": [1.0, 3.0, 2.0]}  # a slow middle round slows both
    assert round_ratios(rounds, "step", "forward") == {"median": 3.0, "min": 3.0, "max": 4.0}


def test_kernels_benchmark_times_both_forms_of_each_choice(tmp_path):
    out, md = tmp_path / "kernels.json", tmp_path / "kernels.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "kernels.py"), "--threads", "1", "--repeats", "1", "--batch", "2",
           "--lengths", "8,20", "--tokens", "40", "--heads", "2", "--out", str(out), "--markdown", str(md)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    assert [(r["op"], r["mode"]) for r in data["norms"]] == [
        ("RMSNorm", "train"), ("RMSNorm", "forward"), ("q/k norm + rotary", "train"), ("q/k norm + rotary", "forward")]
    assert [(r["length"], r["batch"], r["dtype"]) for r in data["attention"][::2]] == [
        (8, 5, "bfloat16"), (8, 5, "float32"), (20, 2, "bfloat16"), (20, 2, "float32")]
    assert len(data["network_step"]) == 6 and all(r["before_over_this"] > 0 for r in data["network_step"])
    assert all(finite(v) for v in data["times_s"].values())
    text = md.read_text()
    assert "## Network step" in text and "fused norms, attend (now)" in text


def test_kernels_benchmark_refuses_a_bad_length_list():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "kernels.py"), "--lengths", "44,x"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--lengths: expected comma-separated integers, got '44,x'" in done.stderr
