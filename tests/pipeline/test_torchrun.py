"""The README's multi-process commands, as written, under torchrun with 2 gloo processes on the CPU:
``torchrun --nproc_per_node 2 -m fmlm train teacher --run-dir DIR`` and the same for ``run`` (the run
folder option is not captured by torchrun's own parser), and the result equals a one-process run."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from fmlm.config import to_dict
from tests.pipeline.conftest import tiny_paper_config

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(cfg) -> list[str]:
    """The tiny configuration as command-line overrides (what a user would type)."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(to_dict(cfg), "")
    wanted = ("cache_dir", "data.", "network.preset", "fixed_point.iterations", "fixed_point.snap_tail",
              "train_teacher.", "evaluation.")
    out = []
    for key, value in flat.items():
        if key.startswith(wanted) and key != "preset":
            text = ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
            out.append(f"{key}={text}")
    return out


def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "fmlm", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_train_with_a_run_dir_matches_one_process(tmp_path, text_folder, tiny_gpt2):
    cfg = tiny_paper_config(tmp_path, text_folder, tiny_gpt2)
    overrides = [*(o for o in _overrides(cfg) if not o.startswith("train_teacher.micro_batch=")),
                 "train_teacher.micro_batch=2"]  # 2 rows per forward in both runs (a setting is given once)
    two = tmp_path / "two"
    done = _torchrun(["train", "teacher", "--preset", "paper", "--run-dir", str(two), "--device", "cpu",
                      "--no-progress", *overrides], tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "ambiguous option" not in done.stderr
    from fmlm.cli import main

    one = tmp_path / "one"
    assert main(["train", "teacher", "--preset", "paper", "--run-dir", str(one), "--device", "cpu", "--no-progress",
                 *overrides]) == 0
    lines = [(run / "stages" / "teacher" / "metrics.jsonl").read_text().splitlines() for run in (one, two)]
    losses = [[json.loads(line)["loss"] for line in run] for run in lines]
    assert len(losses[0]) == 2 and losses[0] == losses[1]  # the same micro-batches averaged: the same losses
