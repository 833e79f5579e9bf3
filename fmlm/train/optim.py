"""Optimisers and the learning-rate schedule (docs/method.md section 10).

Muon (``torch.optim.Muon``) updates the 2-D weight matrices of the transformer
blocks; AdamW (betas 0.9, 0.95) updates everything else (input and output
projections, prefix banks, norms, biases, the decoder head).
``lr = base_lr * global_batch / 256`` (paper: 0.001 x 512 / 256 = 0.002),
linear warm-up then constant. ``decay_fraction > 0`` adds a linear decay to zero
over that final fraction of the steps (warm-up / stable / decay); the paper's
schedule is ``decay_fraction = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fmlm.config import require

# Name prefix of the hidden transformer blocks whose 2-D weights go to Muon.
HIDDEN_PREFIX = "blocks."


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings; ``lr`` overrides the batch-scaled ``base_lr`` when > 0."""

    optimizer: Literal["muon", "adamw"] = "muon"
    base_lr: float = 0.001
    lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_epochs: float = 0.5
    decay_fraction: float = 0.0  # final fraction of the steps over which lr decays linearly towards 0
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    ema_warmup: bool = False

    def __post_init__(self) -> None:
        require(self.base_lr > 0, "optim.base_lr", f"must be > 0, got {self.base_lr}")
        require(self.lr >= 0, "optim.lr", f"must be >= 0, got {self.lr}")
        require(all(0 <= b < 1 for b in self.betas), "optim.betas", f"must lie in [0, 1), got {self.betas}")
        require(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        require(self.warmup_epochs >= 0, "optim.warmup_epochs", "must be >= 0")
        require(0 <= self.decay_fraction <= 1, "optim.decay_fraction", f"must lie in [0, 1], got {self.decay_fraction}")
        require(self.grad_clip > 0, "optim.grad_clip", "must be > 0")
        require(0 <= self.ema_decay < 1, "optim.ema_decay", f"must lie in [0, 1), got {self.ema_decay}")

    def peak_lr(self, global_batch: int) -> float:
        """``lr`` if set, else ``base_lr * global_batch / 256``."""
        return self.lr if self.lr > 0 else self.base_lr * global_batch / 256


def lr_at(step: int, peak_lr: float, warmup_steps: int, total_steps: int = 0, decay_steps: int = 0) -> float:
    """Linear warm-up from 0 to ``peak_lr`` over ``warmup_steps``, constant, then (``decay_steps > 0``)
    a linear decay over the last ``decay_steps`` of ``total_steps``: ``peak_lr * (total_steps - step) /
    decay_steps``, so the last step runs at ``peak_lr / decay_steps`` and no step at 0."""
    scale = 1.0
    if warmup_steps > 0 and step < warmup_steps:
        scale = (step + 1) / warmup_steps
    if decay_steps > 0 and step >= total_steps - decay_steps:
        scale = min(scale, (total_steps - step) / decay_steps)
    return peak_lr * scale


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden 2-D block weights for Muon, everything else for AdamW); frozen parameters skipped."""
    hidden, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(HIDDEN_PREFIX) and p.ndim == 2:
            hidden.append(p)
        else:
            rest.append(p)
    return hidden, rest


def build_optimizers(model: nn.Module, cfg: OptimConfig) -> list[torch.optim.Optimizer]:
    """Muon + AdamW (``optimizer="muon"``) or a single AdamW; learning rates are set per step by the loop."""
    if cfg.optimizer == "adamw":
        params = [p for p in model.parameters() if p.requires_grad]
        return [torch.optim.AdamW(params, lr=0.0, betas=cfg.betas, weight_decay=cfg.weight_decay)]
    hidden, rest = split_parameters(model)
    if not hidden:
        raise ValueError(f"optimizer='muon' found no 2-D parameters under '{HIDDEN_PREFIX}'; use optimizer='adamw'")
    muon = torch.optim.Muon(hidden, lr=0.0, weight_decay=cfg.weight_decay, adjust_lr_fn="original")
    adamw = torch.optim.AdamW(rest, lr=0.0, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return [muon, adamw]


def set_lr(optimizers: list[torch.optim.Optimizer], lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr
