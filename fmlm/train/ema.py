"""Exponential moving average of the weights: ``ema <- d * ema + (1 - d) * w``.

Sampling and the frozen teachers of later stages use the EMA weights. With
``warmup=True`` the decay is ``min(d, (1 + n) / (10 + n))`` after n updates, so
short CPU runs are not dominated by the random initialisation (the paper's
0.9999 assumes tens of thousands of steps).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, updates: int, warmup: bool) -> float:
    """Effective decay after ``updates`` updates."""
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


class EMA:
    """A frozen copy of a module whose floating-point weights track the live ones."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = ema_decay_at(self.decay, self.updates, self.warmup)
        live = dict(model.named_parameters())
        for name, p in self.module.named_parameters():
            p.lerp_(live[name].detach().to(p.dtype), 1.0 - d)
        live_buffers = dict(model.named_buffers())
        for name, b in self.module.named_buffers():
            b.copy_(live_buffers[name])
        self.updates += 1
