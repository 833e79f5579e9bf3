"""Run by test_ddp.py under ``torchrun --nproc_per_node 2`` (gloo on CPU).

Writes the DDP-averaged gradient of step 0 and a 3-step training run to the
folder given as the first argument.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from fmlm.math.flow import FlowConfig
from fmlm.losses.teacher import TeacherConfig, TeacherLoss
from fmlm.nn import Denoiser, denoiser_config
from fmlm.train.distributed import init_distributed, shutdown
from fmlm.train.loop import fetch_batch, train
from fmlm.train.schedule import TrainConfig, micro_generator, step_rows
from fmlm.train.optim import OptimConfig
from tests.train.rows import MemoryRows

GLOBAL_BATCH = 8


def make_model():
    """float64: the two processes and the one process sum each gradient over rows in different orders
    (tests/tolerance.py); in float64 that costs ~1e-16 of the terms, not ~1e-7."""
    torch.manual_seed(0)
    return Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=8)).double()


def make_rows() -> MemoryRows:
    return MemoryRows(n=32, length=8, dim=8, vocab=20, dtype=np.float64)


def train_config(micro_batch: int) -> TrainConfig:
    return TrainConfig(
        global_batch=GLOBAL_BATCH, micro_batch=micro_batch, max_steps=3, log_every=1, checkpoint_every=3,
        optim=OptimConfig(lr=1e-3, warmup_epochs=0.0),
    )


def main(out: Path) -> None:
    info = init_distributed("cpu")
    rows = make_rows()
    loss = TeacherLoss(TeacherConfig(), FlowConfig())
    # 1. One DDP backward on this rank's half of step 0.
    model = make_model()
    ddp = DistributedDataParallel(model, find_unused_parameters=True)
    half = GLOBAL_BATCH // info.world_size
    idx = step_rows(0, len(rows), GLOBAL_BATCH, seed=0)[info.rank * half : (info.rank + 1) * half]
    batch = fetch_batch(rows, idx, info.device)
    loss(ddp, batch, micro_generator(0, 0, info.rank, info.device), False).loss.backward()
    if info.is_main:
        torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, out / "grads.pt")
    # 2. Three optimiser steps through the training loop.
    train(make_model(), loss, rows, train_config(0), out / "run", info, stage="teacher", stage_config={}, data_info={})
    shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
