"""Probes of trained denoisers at noisy held-out latents (one forward each, no sampling).

- ``fixed_point_distances``: how far ELF*'s one forward and the teacher's first
  iterate F(0) land from the teacher's fixed point s* (docs/method.md sections 6-7).
- ``guidance_response``: how much the teacher's output moves when the guidance
  scale goes from 1 to w, against the move the guided target asks for
  (docs/method.md section 5), per flow time.

Distances are root-mean-square over tokens and channels, averaged over rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fmlm.data import LatentRows
from fmlm.losses.common import noisy_latents
from fmlm.losses.fixed_point import FixedPointConfig, teacher_trajectory
from fmlm.math.flow import FlowConfig
from fmlm.math.interpolant import interpolate

GUIDANCE_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Flow times at which the guidance response is probed."""


def row_rms(a: torch.Tensor) -> torch.Tensor:
    """Root-mean-square over all but the first dimension: one value per row."""
    return a.pow(2).flatten(1).mean(1).sqrt()


def rms(a: torch.Tensor) -> float:
    """Root-mean-square over all but the first dimension, averaged over the first (rows)."""
    return float(row_rms(a).mean())


@torch.no_grad()
def fixed_point_distances(
    teacher: nn.Module,
    student: nn.Module,
    rows: LatentRows,
    n_rows: int,
    fp: FixedPointConfig,
    flow: FlowConfig,
    w: float,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """How far one forward lands from the teacher's fixed point s*, for ELF* and for the teacher's F(0).

    Rows are held-out latents noised at logit-normal times; s* is the teacher's
    Anderson iterate after ``fp.iterations`` steps from a zero slot. Distances
    are root-mean-square over tokens and channels, averaged over rows; ``student_dists`` and
    ``teacher_first_iterate_dists`` keep them per row (the report's paired bootstrap over rows).
    """
    gen = torch.Generator().manual_seed(seed)
    n = min(n_rows, len(rows))
    _, x0 = rows.batch(torch.arange(n).numpy())
    t, z = (v.to(device) for v in noisy_latents(x0.cpu(), flow.lam, flow.p_mean, flow.p_std, gen))  # CPU draws
    wv = torch.full((n,), float(w), device=device)
    s_star = teacher_trajectory(teacher, z, t, wv, fp)[-1]
    first = teacher(z, t, sc=None, w=wv)
    residual = teacher(z, t, sc=s_star, w=wv) - s_star
    one = student(z, t, w=wv)

    teacher_rows, student_rows = row_rms(first - s_star), row_rms(one - s_star)
    return {
        "teacher_first_iterate_dist": float(teacher_rows.mean()),
        "student_dist": float(student_rows.mean()),
        "teacher_first_iterate_dists": [float(v) for v in teacher_rows.cpu()],
        "student_dists": [float(v) for v in student_rows.cpu()],
        "fixed_point_residual": rms(residual),
        "fixed_point_norm": rms(s_star),
        "iterations": fp.iterations,
        "w": w,
        "n_rows": n,
    }


@torch.no_grad()
def guidance_response(
    teacher: nn.Module,
    rows: LatentRows,
    n_rows: int,
    flow: FlowConfig,
    w: float,
    times: tuple[float, ...] = GUIDANCE_TIMES,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Has the teacher learned its guidance scale? Per flow time t, on held-out rows noised to t:

    ``response = rms(D(z, t, s1, w) - D(z, t, s1, 1))``, the move the w tokens make, and
    ``target = rms((1 - 1/w) (D(z, t, s1, 1) - D(z, t, 0, 1)))``, the move the guided training
    target asks for (in x-space; ``s1 = D(z, t, 0, 1)``). ``ratio = response / target`` is 1 for a
    teacher that learned the guided target and 0 for one that ignores w.
    """
    if w <= 0:
        raise ValueError(f"w: must be > 0, got {w}")
    gen = torch.Generator().manual_seed(seed)
    n = min(n_rows, len(rows))
    _, x0 = rows.batch(torch.arange(n).numpy())
    one, guided = torch.ones(n, device=device), torch.full((n,), float(w), device=device)
    by_t = []
    for t_value in times:
        eps = torch.randn(x0.shape, generator=gen)  # CPU draws: the same rows on every device
        t = torch.full((n,), float(t_value))
        z, t = interpolate(x0, eps, t, flow.lam).to(device), t.to(device)
        s1 = teacher(z, t, sc=None, w=one)
        cond = teacher(z, t, sc=s1, w=one)
        response = rms(teacher(z, t, sc=s1, w=guided) - cond)
        target = rms((1 - 1 / w) * (cond - s1))
        by_t.append({"t": t_value, "response": response, "target": target,
                     "ratio": response / target if target > 0 else float("nan")})
    return {"w": w, "n_rows": n, "by_t": by_t}
