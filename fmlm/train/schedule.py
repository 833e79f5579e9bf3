"""One stage's training settings and the deterministic schedule derived from them.

Step n reads the rows ``perm_e[p G : (p + 1) G]`` of the epoch-e permutation (G the global batch);
micro-batch j of that step (j runs over processes x accumulation steps) draws its noise from a
generator seeded by (seed, n, j); whether step n is a decoder step is a function of (seed, n). So a
resumed run repeats the uninterrupted one exactly, and N processes give the same averaged gradient as
one process accumulating the same N micro-batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from fmlm.config import require
from fmlm.train.optim import OptimConfig


@dataclass(frozen=True)
class TrainConfig:
    """Batch sizes, length of training, precision and checkpointing of one stage."""

    global_batch: int = 512
    micro_batch: int = 0  # rows per forward per process; 0 = global_batch / world_size
    epochs: float = 5.0
    max_steps: int = 0  # > 0: stop after this many optimiser steps
    log_every: int = 20
    checkpoint_every: int = 500
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU (train.precision)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        require(self.global_batch > 0, "train.global_batch", f"must be > 0, got {self.global_batch}")
        require(self.micro_batch >= 0, "train.micro_batch", "must be >= 0")
        require(self.epochs > 0 or self.max_steps > 0, "train.epochs", "epochs or max_steps must be > 0")
        require(self.max_steps >= 0, "train.max_steps", "must be >= 0")
        require(self.log_every > 0, "train.log_every", "must be > 0")
        require(self.checkpoint_every > 0, "train.checkpoint_every", "must be > 0")
        require(self.seed >= 0, "train.seed", f"must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class Schedule:
    """Derived step counts of a run."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    decay_steps: int
    micro_batch: int
    accumulation: int


def make_schedule(cfg: TrainConfig, n_rows: int, world_size: int) -> Schedule:
    """Steps per epoch, total and warm-up steps, micro-batch and accumulation for ``n_rows`` rows."""
    if cfg.global_batch % world_size:
        raise ValueError(f"train.global_batch={cfg.global_batch} is not divisible by {world_size} processes")
    per_rank = cfg.global_batch // world_size
    micro = cfg.micro_batch or per_rank
    if per_rank % micro:
        raise ValueError(f"train.micro_batch={micro} does not divide the per-process batch {per_rank}")
    spe = n_rows // cfg.global_batch
    if spe == 0:
        raise ValueError(f"the training split has {n_rows} rows, fewer than train.global_batch={cfg.global_batch}")
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * spe)
    warmup = round(cfg.optim.warmup_epochs * spe)
    decay = round(cfg.optim.decay_fraction * total)
    return Schedule(spe, total, warmup, decay, micro, per_rank // micro)


def step_rows(step: int, n_rows: int, global_batch: int, seed: int) -> torch.Tensor:
    """Row indices of optimiser step ``step``: a slice of the epoch's seeded permutation."""
    spe = n_rows // global_batch
    epoch, pos = divmod(step, spe)
    perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[pos * global_batch : (pos + 1) * global_batch]


def micro_generator(seed: int, step: int, micro_index: int, device: torch.device) -> torch.Generator:
    """The noise generator of micro-batch ``micro_index`` of step ``step``."""
    state = int(np.random.SeedSequence([seed, step, micro_index]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def is_decoder_step(seed: int, step: int, prob: float) -> bool:
    """Whether step ``step`` trains the decoder branch (same answer on every process)."""
    return bool(np.random.default_rng([seed, step, 7]).random() < prob)
