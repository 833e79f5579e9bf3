"""Euler and SDE-churn samplers of the flow (teacher, no-SC teacher and ELF*).
docs/method.md sections 6 and 9.

At each step k, from ``(z, t_k)`` to ``t_{k+1}``:

1. ``sde`` only, not on the last step: churn
   ``alpha = clamp(1 - gam (t_{k+1} - t_k), 0, 1)``, ``t_b = alpha t_k``,
   ``z_b = alpha z + (1 - alpha) lam eps``; otherwise ``(z_b, t_b) = (z, t_k)``.
2. Clean estimate ``xhat`` at ``(z_b, t_b)``, by self-conditioning mode:
   ``none``: ``D(z_b, t_b, 0)`` (1 evaluation); ``warm``: ``D(z_b, t_b, s_prev)``
   with the previous step's estimate in the slot (1 evaluation); ``cold``: N
   fixed-point iterations ``s <- D(z_b, t_b, s)`` from ``s = 0`` (Picard or
   Anderson; N evaluations).
3. Euler: ``z <- z_b + (t_{k+1} - t_b) (xhat - z_b) / max(1 - t_b, t_eps)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmlm.math.fixed_point import anderson, picard
from fmlm.math.interpolant import euler_step, x_to_velocity
from fmlm.math.stochastic import sde_churn
from fmlm.samplers.common import NoiseStreams, SamplerConfig, guidance_of


def check_flow_config(model: nn.Module, cfg: SamplerConfig) -> None:
    """Refuse combinations that cannot run: self-conditioning modes on a model without a slot."""
    if cfg.kind not in ("euler", "sde"):
        raise ValueError(f"sampler.kind={cfg.kind!r} is not a flow sampler (euler or sde)")
    if cfg.sc_mode != "none" and not model.config.self_conditioning:
        raise ValueError(f"sampler.sc_mode={cfg.sc_mode!r} needs a self-conditioned model; this one has no slot (use 'none')")


def flow_sampler(cfg: SamplerConfig):
    """A batch sampler (``fmlm.samplers.common.BatchSampler``) for the Euler/SDE flow."""

    def run(model: nn.Module, noise: NoiseStreams, grid: Tensor) -> tuple[Tensor, int]:
        check_flow_config(model, cfg)
        z = cfg.flow.lam * noise.draw()
        b, dev, dt = z.shape[0], z.device, z.dtype
        w = guidance_of(model, cfg.w, b, dev)
        slot = torch.zeros_like(z)
        nfe = 0
        n = len(grid) - 1
        for k in range(n):
            t_k, t_next = float(grid[k]), float(grid[k + 1])
            z_b, t_b = z, torch.full((b,), t_k, device=dev, dtype=dt)
            if cfg.kind == "sde" and k < n - 1:
                z_b, t_b = sde_churn(z, t_b, torch.full_like(t_b, t_next), cfg.churn, noise.draw(), cfg.flow.lam)
            if cfg.sc_mode == "cold":

                def F(s, z_b=z_b, t_b=t_b):
                    return model(z_b, t_b, sc=s, w=w).to(dt)

                solver = anderson if cfg.fp_solver == "anderson" else picard
                result = solver(F, torch.zeros_like(z), cfg.fp_iterations)
                xhat, nfe = result.iterates[-1], nfe + result.evaluations
            else:
                sc = slot if cfg.sc_mode == "warm" else None
                if not model.config.self_conditioning:
                    sc = None
                xhat = model(z_b, t_b, sc=sc, w=w).to(dt)
                nfe += 1
                slot = xhat
            v = x_to_velocity(xhat, z_b, t_b, cfg.flow.t_eps)
            z = euler_step(z_b, v, t_b, torch.full_like(t_b, t_next))
        return z, nfe

    return run
