"""What every stage loss shares: the batch, the loss output, the decoder branch,
the guidance-scale draw and the masked mean-squared error.

Decoder branch (docs/method.md section 3): with probability ``decoder_prob`` a
training step is a decoder step: per token ``a = sigmoid(N(0.8, 0.8))``,
``z_dec = a * x0 + (1 - a) * 5.0 * eps``, the network runs at t = 1 in decoder
mode and its token logits are trained with cross-entropy against the ids.

Guidance scale (section 5): ``w = (1 + w_min) * ((1 + w_max)/(1 + w_min))^U - 1``,
``U ~ U(0, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmlm.config import require
from fmlm.math.flow import FlowConfig
from fmlm.math.interpolant import interpolate
from fmlm.math.times import sample_logit_normal


@dataclass
class Batch:
    """Packed token rows and their whitened encoder latents (one micro-batch)."""

    ids: Tensor  # (B, L) int64
    x0: Tensor  # (B, L, d) float

    @property
    def size(self) -> int:
        return self.x0.shape[0]

    @property
    def shape_facts(self) -> tuple[int, torch.device, torch.dtype]:
        """(rows, device, dtype) of the latents, what every loss reads first."""
        return self.x0.shape[0], self.x0.device, self.x0.dtype


@dataclass
class LossOutput:
    """The scalar to back-propagate and detached numbers to log."""

    loss: Tensor
    metrics: dict[str, float]


class StageLoss(Protocol):
    """One training stage: same call for the teacher, fixed-point and flow-map losses."""

    decoder_prob: float

    def __call__(self, model: nn.Module, batch: Batch, generator: torch.Generator, decoder_step: bool) -> LossOutput: ...


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder-branch settings (docs/method.md section 3)."""

    prob: float = 0.2
    noise_scale: float = 5.0
    p_mean: float = 0.8
    p_std: float = 0.8
    # Fraction of token positions (a random subset per step) whose cross-entropy is computed; 1.0 = all,
    # as in the paper. Below 1 it is an unbiased, cheaper estimate of the same loss: the unembedding
    # over a 30k vocabulary dominates a decoder step of a small CPU network.
    token_fraction: float = 1.0

    def __post_init__(self) -> None:
        require(0.0 <= self.prob <= 1.0, "decoder.prob", f"must lie in [0, 1], got {self.prob}")
        require(0.0 < self.token_fraction <= 1.0, "decoder.token_fraction",
                f"must lie in (0, 1], got {self.token_fraction}")
        require(self.noise_scale > 0, "decoder.noise_scale", "must be > 0")
        require(self.p_std > 0, "decoder.p_std", "must be > 0")


def sample_guidance(batch: int, flow: FlowConfig, generator: torch.Generator, device, dtype) -> Tensor:
    """Per-row ``w = (1 + w_min) * ((1 + w_max)/(1 + w_min))^U - 1`` over the flow's guidance range."""
    u = torch.rand(batch, generator=generator, device=device, dtype=dtype)
    return (1 + flow.w_min) * ((1 + flow.w_max) / (1 + flow.w_min)) ** u - 1


def noisy_latents(x0: Tensor, lam: float, p_mean: float, p_std: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per-row ``t = sigmoid(N(p_mean, p_std))`` and ``z_t = t x0 + (1 - t) lam eps`` (the shared batch preparation)."""
    t = sample_logit_normal((x0.shape[0],), generator=generator, p_mean=p_mean, p_std=p_std, device=x0.device,
                            dtype=x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return t, interpolate(x0, eps, t, lam)


def masked_mse(pred: Tensor, target: Tensor, rows: Tensor | None = None) -> Tensor:
    """Mean over tokens of the per-token mean squared error, over the selected ``rows`` (bool (B,))."""
    dtype = torch.promote_types(pred.dtype, torch.float32)  # at least fp32 (bf16 predictions); float64 stays
    per_token = (pred.to(dtype) - target.to(dtype)).pow(2).mean(dim=-1)
    if rows is None:
        return per_token.mean()
    if not bool(rows.any()):
        return per_token.sum() * 0.0
    return per_token[rows].mean()


def decoder_loss(
    model: nn.Module,
    batch: Batch,
    cfg: DecoderConfig,
    generator: torch.Generator,
    *,
    w: Tensor | None = None,
) -> LossOutput:
    """Token cross-entropy of the decoder head on ``z_dec = a x0 + (1 - a) noise_scale eps`` at t = 1
    (paper: noise_scale 5; on a random ``token_fraction`` of the positions when below 1)."""
    x0 = batch.x0
    b, length, _ = x0.shape
    a = torch.sigmoid(torch.randn(b, length, 1, generator=generator, device=x0.device, dtype=x0.dtype) * cfg.p_std + cfg.p_mean)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    z_dec = a * x0 + (1 - a) * cfg.noise_scale * eps
    ones = torch.ones(b, device=x0.device, dtype=x0.dtype)
    if cfg.token_fraction < 1.0:
        keep = torch.rand(b, length, generator=generator, device=x0.device) < cfg.token_fraction
        keep[0, 0] = True  # never an empty selection
        logits, targets = model(z_dec, ones, w=w, decode=True, positions=keep), batch.ids[keep]
    else:
        logits, targets = model(z_dec, ones, w=w, decode=True), batch.ids
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
    with torch.no_grad():
        acc = (logits.argmax(-1) == targets).float().mean()
    return LossOutput(ce, {"ce": float(ce.detach()), "token_acc": float(acc)})
