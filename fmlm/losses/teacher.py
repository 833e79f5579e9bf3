"""Stage 1: the self-conditioned teacher ("ELF"), and the same teacher without
self-conditioning (the falsification baseline). docs/method.md sections 2, 3, 5.

Per row: ``t = sigmoid(N(P_mean, P_std))``, ``z_t = t x0 + (1 - t) lam eps``,
``v_target = (x0 - z_t) / max(1 - t, t_eps)``; the network predicts x0 and
``v = (xhat - z_t) / max(1 - t, t_eps)``; loss = per-token velocity MSE.

Self-conditioning (probability ``sc_prob`` per row): ``s1 = D(z_t, t, 0, w)``
(no grad) fills the slot and the loss trains ``D(z_t, t, s1, w)``. The target of
those rows is shifted so one forward gives the guided prediction:
``v_target' = v_target + (1 - 1/w)(v_cond - v_uncond)``, ``v_uncond`` from the
zero slot and ``v_cond`` from the slot filled with ``s1`` (both without grad).
Rows without self-conditioning keep the zero slot and the plain target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from fmlm.config import require
from fmlm.losses.common import Batch, DecoderConfig, LossOutput, decoder_loss, masked_mse, noisy_latents, sample_guidance
from fmlm.math.flow import FlowConfig
from fmlm.math.interpolant import x_to_velocity


@dataclass(frozen=True)
class TeacherConfig:
    """Stage-1 loss settings; ``self_conditioning=False`` is the no-SC baseline."""

    self_conditioning: bool = True
    sc_prob: float = 0.5
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig(prob=0.2))

    def __post_init__(self) -> None:
        require(0.0 <= self.sc_prob <= 1.0, "teacher.sc_prob", f"must lie in [0, 1], got {self.sc_prob}")


class TeacherLoss:
    """Velocity MSE with self-conditioning and its guidance target, plus the decoder branch."""

    def __init__(self, cfg: TeacherConfig, flow: FlowConfig):
        self.cfg, self.flow = cfg, flow
        self.decoder_prob = cfg.decoder.prob

    def __call__(self, model: nn.Module, batch: Batch, generator: torch.Generator, decoder_step: bool) -> LossOutput:
        if decoder_step:
            return decoder_loss(model, batch, self.cfg.decoder, generator)
        cfg, flow = self.cfg, self.flow
        x0, (b, dev, dt) = batch.x0, batch.shape_facts
        t, z = noisy_latents(x0, flow.lam, flow.p_mean, flow.p_std, generator)
        v_target = x_to_velocity(x0, z, t, flow.t_eps)

        def velocity(xhat):
            return x_to_velocity(xhat.to(dt), z, t, flow.t_eps)

        if not cfg.self_conditioning:
            loss = masked_mse(velocity(model(z, t)), v_target)
            return LossOutput(loss, {"velocity_mse": float(loss.detach())})

        w = sample_guidance(b, flow, generator, dev, dt)
        sc_rows = torch.rand(b, generator=generator, device=dev) < cfg.sc_prob
        slot = torch.zeros_like(x0)
        shift = torch.zeros_like(x0)
        if bool(sc_rows.any()):
            with torch.no_grad():
                x_uncond = model(z[sc_rows], t[sc_rows], sc=None, w=w[sc_rows]).to(dt)
                x_cond = model(z[sc_rows], t[sc_rows], sc=x_uncond, w=w[sc_rows]).to(dt)
                zr, tr = z[sc_rows], t[sc_rows]
                v_uncond = x_to_velocity(x_uncond, zr, tr, flow.t_eps)
                v_cond = x_to_velocity(x_cond, zr, tr, flow.t_eps)
                gain = (1 - 1 / w[sc_rows]).view(-1, *[1] * (x0.dim() - 1))
                slot[sc_rows] = x_uncond
                shift[sc_rows] = gain * (v_cond - v_uncond)
        loss = masked_mse(velocity(model(z, t, sc=slot, w=w)), v_target + shift)
        return LossOutput(loss, {"velocity_mse": float(loss.detach()), "sc_fraction": float(sc_rows.float().mean())})
