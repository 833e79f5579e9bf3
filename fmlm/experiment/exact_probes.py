"""Exact probes of the trained networks on the exact testbed (no sampling noise in the reference).

On held-out rows noised to ``z_t = t x0 + (1 - t) lam eps`` at each probe time t, with
``D*(z, t) = E[x0 | z_t]`` the language's exact denoiser (``HMMLanguage.__call__``), all at w = 1
(the unguided denoiser, the one whose target is the posterior mean):

- ``first``:     the teacher's first pass ``F(0) = D_theta(z, t, sc = 0)``
- ``picard``:    its self-conditioning fixed point ``s*`` by ``PICARD_ITERS`` Picard steps from 0
- ``anderson``:  the same fixed point by ``ANDERSON_ITERS`` Anderson steps from 0
- ``elf_star``:  ELF*'s one pass ``D_phi(z, t)``
- ``nosc``:      the no-SC teacher's pass
each reported as ``rms(x - D*)`` (root mean square over tokens and channels, averaged over rows), with
``rms(D* - x0)`` (the exact denoiser's own error, for scale) and ``rms(elf_star - s*)``.
``contraction``: the geometric mean of the last ``RATIO_TAIL`` ratios of successive Picard residuals
``||F(s_{k+1}) - s_{k+1}|| / ||F(s_k) - s_k||`` (a cheap empirical estimate of the map's contraction
factor near s*; verify/test_learned_denoisers.py bounds it with Jacobian norms instead).

The two compressions, from the same initial noise (the samplers' per-sample streams, one seed):
FMLM* at 1, 2, 4 deterministic flow-map steps against ELF*'s ``ODE_STEPS``-step Euler ODE, and FMLM
against the no-SC teacher's ODE: ``rms`` of the final latents' difference and the share of equal
decoded tokens.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fmlm.math.fixed_point import anderson, picard
from fmlm.math.flow import FlowConfig
from fmlm.math.interpolant import interpolate
from fmlm.samplers import batch_sampler, generate, sampler_for
from fmlm.synthetic.hmm_language import HMMLanguage

PROBE_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)
PICARD_ITERS = 30
ANDERSON_ITERS = 10
RATIO_TAIL = 5
ODE_STEPS = 32
FLOW_MAP_STEPS = (1, 2, 4)


def rms(a: torch.Tensor) -> float:
    """Root-mean-square over all but the first dimension, averaged over the first (rows)."""
    return float(a.double().pow(2).flatten(1).mean(1).sqrt().mean())


@torch.no_grad()
def denoiser_probes(law: HMMLanguage, models: dict[str, nn.Module], x0: torch.Tensor, lam: float,
                    times: tuple[float, ...] = PROBE_TIMES, seed: int = 0) -> list[dict[str, Any]]:
    """Per probe time, every distance of the module docstring (``models``: teacher, teacher-nosc, fixed-point)."""
    gen = torch.Generator().manual_seed(seed)
    teacher, nosc, student = models["teacher"], models["teacher-nosc"], models["fixed-point"]
    n = x0.shape[0]
    one = torch.ones(n)
    out = []
    for t_value in times:
        t = torch.full((n,), float(t_value))
        z = interpolate(x0, torch.randn(x0.shape, generator=gen), t, lam)
        exact = law(z.double(), t_value).float()

        def F(s, z=z, t=t):
            return teacher(z, t, sc=s, w=one)

        first = F(torch.zeros_like(z))
        run = picard(F, torch.zeros_like(z), PICARD_ITERS)
        s_star = run.iterates[-1]
        s_anderson = anderson(F, torch.zeros_like(z), ANDERSON_ITERS).iterates[-1]
        res = run.residual_norms.double().mean(1)  # (K,) mean residual norm per iteration
        tail = res[-RATIO_TAIL - 1:]
        ratios = (tail[1:] / tail[:-1].clamp_min(1e-30)).clamp_min(1e-30)
        elf = student(z, t, w=one)
        ns = nosc(z, t)
        out.append({
            "t": t_value, "exact_error": rms(exact - x0),
            "first": rms(first - exact), "picard": rms(s_star - exact), "anderson": rms(s_anderson - exact),
            "elf_star": rms(elf - exact), "nosc": rms(ns - exact),
            "elf_star_to_s_star": rms(elf - s_star), "first_to_s_star": rms(first - s_star),
            "picard_residual": float(res[-1]), "contraction": float(ratios.log().mean().exp()),
        })
    return out


def _final(model: nn.Module, flow: FlowConfig, setting: dict, n: int, length: int):
    cfg = sampler_for(flow, {**setting, "batch_size": n})
    return generate(model, batch_sampler(cfg), cfg, n, length, progress=False)


def compression_probes(models: dict[str, nn.Module], flow: FlowConfig, n: int, length: int, w: float,
                       seed: int = 0) -> list[dict[str, Any]]:
    """FMLM* vs ELF*'s ODE and FMLM vs the no-SC teacher's ODE from the same noise (module docstring)."""
    pairs = (("flow-map", "fixed-point", w), ("flow-map-nosc", "teacher-nosc", 1.0))
    out = []
    for student, reference, w_value in pairs:
        ode = _final(models[reference], flow, {"kind": "euler", "steps": ODE_STEPS, "w": w_value, "churn": 0.0,
                                               "sc_mode": "none", "seed": seed}, n, length)
        for steps in FLOW_MAP_STEPS:
            jump = _final(models[student], flow, {"kind": "flow_map", "steps": steps, "w": w_value, "seed": seed},
                          n, length)
            out.append({"model": student, "reference": reference, "steps": steps, "w": w_value,
                        "latent_error": rms(jump.latents - ode.latents),
                        "token_agreement": float((jump.ids == ode.ids).float().mean())})
    return out


def exact_probes(law: HMMLanguage, models: dict[str, nn.Module], x0: torch.Tensor, flow: FlowConfig,
                 w: float, n_compression: int, seed: int = 0) -> dict[str, Any]:
    """Both probe families, as the ``exact_probes.json`` of one training seed's run folder."""
    for m in models.values():
        m.eval()
    denoisers = denoiser_probes(law, models, x0.float(), flow.lam, seed=seed)
    compression = compression_probes(models, flow, n_compression, x0.shape[1], w, seed=seed)
    return {"n_rows": int(x0.shape[0]), "w_denoisers": 1.0, "picard_iters": PICARD_ITERS,
            "anderson_iters": ANDERSON_ITERS, "ode_steps": ODE_STEPS, "by_t": denoisers, "compression": compression,
            "finite": all(math.isfinite(v) for d in denoisers for v in d.values())}


__all__ = ["PROBE_TIMES", "compression_probes", "denoiser_probes", "exact_probes"]
