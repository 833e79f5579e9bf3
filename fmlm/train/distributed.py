"""Process-group helpers for ``torchrun``: NCCL on GPUs, gloo on CPUs.

Launched with ``torchrun --nproc_per_node N ...`` the environment carries
RANK, LOCAL_RANK and WORLD_SIZE; launched plainly, everything runs as a single
process with rank 0 and no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from fmlm.config import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, world size, local rank and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


DEVICE_FORMS = "auto, cpu, cuda or cuda:N"

PROCESS_GROUP_TIMEOUT = timedelta(hours=6)
"""How long a collective may wait. Rank 0 alone prepares the data (the paper preset tokenises
OpenWebText and measures latent statistics) while the others wait at a barrier; NCCL's default
of 10 minutes would abort that wait."""


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available else cpu; otherwise ``torch.device(name)``, which must be a CPU
    or an available CUDA device (anything else is a ``ConfigError`` naming the key ``device``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device: {name!r} is not a device this project runs on; use {DEVICE_FORMS}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} was asked for but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} was asked for but only {torch.cuda.device_count()} CUDA devices exist")
    return device


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group if launched by torchrun (idempotent); pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def barrier() -> None:
    """Synchronise all processes (no-op without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over all processes (identity without a process group)."""
    if not dist.is_initialized():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def shutdown() -> None:
    """Leave the process group if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()
