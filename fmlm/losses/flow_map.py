"""Stage 3: flow-map distillation ("FMLM*"; from a no-SC teacher: "FMLM").
docs/method.md section 8.

Two-time denoiser ``D(z, s, t, w)`` with the self-conditioning slot always
zero; flow map ``X_{s,t}(z) = (1 - t)/(1 - s) z + (t - s)/(1 - s) D(z, s, t)``.
Times are drawn in tau space (``fmlm.math.times.sample_two_time``).

- Diagonal rows (s = t): ``MSE(D(z_s, s, s, w), teacher(z_s, s, w))``, the
  teacher being ELF* (one forward at tau_0) or the no-SC teacher.
- Off-diagonal rows: target built by the live student without grad:
  ``A = D(z_s, s, u)``, ``X = X_{s,u}(z_s)``, ``B = D(X, u, t)``,
  ``target = gamma A + (1 - gamma) B``,
  ``gamma = (1 - t)(u - s) / ((1 - u)(t - s))``; loss ``MSE(D(z_s, s, t), target)``.

Loss = diagonal + off-diagonal (each a mean over its own rows); decoder branch
with probability 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from fmlm.config import require
from fmlm.losses.common import Batch, DecoderConfig, LossOutput, decoder_loss, masked_mse, sample_guidance
from fmlm.math.flow import FlowConfig
from fmlm.math.flow_map import flow_map, semigroup_target
from fmlm.math.interpolant import interpolate
from fmlm.math.times import sample_two_time


@dataclass(frozen=True)
class FlowMapConfig:
    """Stage-3 loss settings."""

    diagonal_prob: float = 0.5
    boundary_prob: float = 1 / 32
    diagonal_weight: float = 1.0
    off_diagonal_weight: float = 1.0
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig(prob=0.1))

    def __post_init__(self) -> None:
        require(0 <= self.diagonal_prob <= 1, "flow_map.diagonal_prob", "must lie in [0, 1]")
        require(0 <= self.boundary_prob <= 1, "flow_map.boundary_prob", "must lie in [0, 1]")
        require(self.diagonal_weight >= 0, "flow_map.diagonal_weight", "must be >= 0")
        require(self.off_diagonal_weight >= 0, "flow_map.off_diagonal_weight", "must be >= 0")


class FlowMapLoss:
    """Diagonal distillation from a frozen teacher plus the semigroup self-distillation target."""

    def __init__(self, cfg: FlowMapConfig, teacher: nn.Module, flow: FlowConfig):
        self.cfg, self.flow = cfg, flow
        self.teacher = teacher.eval().requires_grad_(False)
        self.decoder_prob = cfg.decoder.prob
        # A teacher with a guidance bank (ELF*) is distilled at random w; one without (no-SC) unguided.
        self.guided = teacher.config.guidance_tokens > 0

    def __call__(self, model: nn.Module, batch: Batch, generator: torch.Generator, decoder_step: bool) -> LossOutput:
        if decoder_step:
            return decoder_loss(model, batch, self.cfg.decoder, generator)
        cfg, flow = self.cfg, self.flow
        x0, (b, dev, dt) = batch.x0, batch.shape_facts
        times = sample_two_time(
            b, generator=generator, diagonal_prob=cfg.diagonal_prob, boundary_prob=cfg.boundary_prob,
            p_mean=flow.p_mean, p_std=flow.p_std, device=dev, dtype=dt,
        )
        s, u, t, diag = times.s, times.u, times.t, times.diagonal
        z = interpolate(x0, torch.randn(x0.shape, generator=generator, device=dev, dtype=dt), s, flow.lam)
        w = sample_guidance(b, flow, generator, dev, dt) if self.guided else None

        def pick(x, rows):
            return None if x is None else x[rows]

        target = torch.empty_like(x0)
        off = ~diag
        with torch.no_grad():
            if bool(diag.any()):
                target[diag] = self.teacher(z[diag], s[diag], w=pick(w, diag)).to(dt)
            if bool(off.any()):
                zo, so, uo, to, wo = z[off], s[off], u[off], t[off], pick(w, off)
                a = model(zo, uo, s=so, w=wo).to(dt)
                x_mid = flow_map(zo, a, so, uo)
                b_pred = model(x_mid, to, s=uo, w=wo).to(dt)
                target[off] = semigroup_target(a, b_pred, so, uo, to)
        pred = model(z, t, s=s, w=w).to(dt)
        loss_diag = masked_mse(pred, target, diag)
        loss_off = masked_mse(pred, target, off)
        loss = cfg.diagonal_weight * loss_diag + cfg.off_diagonal_weight * loss_off
        return LossOutput(
            loss,
            {"diagonal": float(loss_diag.detach()), "off_diagonal": float(loss_off.detach()), "diagonal_fraction": float(diag.float().mean())},
        )
