"""`python experiments/owt_fmlm_star.py --quick`: the whole embedded pipeline on a tiny budget,
from data preparation to the generated report (needs the embedded packages; a few minutes)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_pipeline_end_to_end(tmp_path):
    start = time.perf_counter()
    cmd = [sys.executable, "experiments/owt_fmlm_star.py", "--quick", "--no-progress", "--run", str(tmp_path / "run"),
           f"cache_dir={tmp_path / 'cache'}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in records} == {"reference", "untrained", "teacher", "teacher-nosc", "fixed-point",
                                             "flow-map", "flow-map-nosc"}
    assert all(r["n_samples"] == 8 for r in records)
    assert all("mauve" in r and "distinct_2" in r and "rep4" in r for r in records)
    for name in ("report.md", "main_table.md", "cost_table.md", "comparisons.md", "self_conditioning_table.md",
                 "diversity_table.md", "samples.md", "ppl_vs_steps.png", "ppl_vs_entropy.png", "training_curves.png"):
        assert (run / "report" / name).stat().st_size > 0, name
    assert "report:" in done.stdout and "FMLM*" in done.stdout
    print(f"quick pipeline: {time.perf_counter() - start:.0f} s")
