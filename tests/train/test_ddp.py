"""Two gloo processes under torchrun give the gradient of one process on the combined batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fmlm.math.flow import FlowConfig
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo
from fmlm.train.loop import fetch_batch, train
from fmlm.train.schedule import micro_generator, step_rows
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from tests.train.ddp_worker import GLOBAL_BATCH, make_model, make_rows, train_config
from tests.tolerance import FLOAT64_IDENTITY, assert_close_to_scale

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_matches_single_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "tests.train.ddp_worker", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # Same step on one process: both halves, accumulated with weight 1/2 each.
    rows = make_rows()
    loss = TeacherLoss(TeacherConfig(), FlowConfig())
    model = make_model()
    cpu = torch.device("cpu")
    rows_0 = step_rows(0, len(rows), GLOBAL_BATCH, seed=0)
    half = GLOBAL_BATCH // 2
    for j in range(2):
        batch = fetch_batch(rows, rows_0[j * half : (j + 1) * half], cpu)
        (loss(model, batch, micro_generator(0, 0, j, cpu), False).loss / 2).backward()
    ddp_grads = torch.load(tmp_path / "grads.pt")
    for name, p in model.named_parameters():
        if p.grad is None:
            assert name not in ddp_grads
            continue
        assert ddp_grads[name].dtype == torch.float64
        assert_close_to_scale(ddp_grads[name], p.grad, FLOAT64_IDENTITY, name)  # float64: make_model

    # And the whole loop: 3 steps on 2 processes == 3 steps with accumulation 2 on one.
    single = tmp_path / "single"
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=cpu)
    train(make_model(), loss, rows, train_config(half), single, info, stage="teacher", stage_config={}, data_info={})
    a = ckpt.load_denoiser(tmp_path / "run" / "checkpoint", "model")
    b = ckpt.load_denoiser(single / "checkpoint", "model")
    # float64 training, loaded into fp32: the runs differ by ~1e-16 of the terms before the fp32 rounding (and
    # Muon's bf16 Newton-Schulz sees the same inputs but for that), so entries agree to an fp32 ulp or two;
    # 1e-5 of the tensor's scale is ~100 of them, while a wrong average (a rank counted twice) is O(1) of it
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert_close_to_scale(p, q, 1e-5, name)
    la = [json.loads(l)["loss"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(l)["loss"] for l in (single / "metrics.jsonl").read_text().splitlines()]
    assert la == pytest.approx(lb, rel=1e-9)  # float64 losses: sums of positive terms, ~1e-16 relative apart
