"""``python -m fmlm run --preset exact`` on a tiny budget: two training seeds, every stage, the exact scoring,
the probes and the seeds' report (a few minutes on a CPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_exact_preset_end_to_end(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "fmlm", "run", "--preset", "exact", "--no-progress", "--run-dir", str(run),
           f"cache_dir={tmp_path / 'cache'}", "training_seeds=[0,1]", "data.max_train_rows=256",
           "train_teacher.max_steps=6", "train_fixed_point.max_steps=2", "train_flow_map.max_steps=2",
           "evaluation.n_samples=8", "evaluation.sweep_samples=8", "evaluation.fixed_point_rows=4"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    for seed in (0, 1):
        folder = run / "seeds" / f"seed{seed}"
        records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
        assert {r["model"] for r in records} == {"reference", "untrained", "teacher", "teacher-nosc", "fixed-point",
                                                 "flow-map", "flow-map-nosc"}
        assert all("excess_nll" in r and "floor_bigram_kl" in r and "mauve" not in r for r in records)
        probes = json.loads((folder / "exact_probes.json").read_text())
        assert [d["t"] for d in probes["by_t"]] == [0.1, 0.3, 0.5, 0.7, 0.9]
    text = (run / "report" / "exact.md").read_text()
    assert "2 training seeds" in text and "(e) 1 step(s)" in text and "t over 2 seeds" in text
