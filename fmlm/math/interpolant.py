"""The linear interpolant and the x-prediction <-> velocity identities (docs/method.md section 2).

Time convention: ``t = 0`` pure noise, ``t = 1`` clean data.

- ``z_t = t * x0 + (1 - t) * lam * eps``
- ``v = (xhat - z) / max(1 - t, t_eps)``           (x-prediction to velocity)
- ``xhat = z + max(1 - t, t_eps) * v``             (its exact inverse)
- ``z' = z + (t' - t) * v``                        (Euler step, t <= t')
"""

from __future__ import annotations

from torch import Tensor

from fmlm.math.guards import TimeLike, check_finite, check_ordered, check_same_shape, check_times, expand_like

LAM = 2.0
"""Noise scale: the whitened latents have unit variance and the paper noises them at twice that scale."""

T_EPS = 0.05
"""Floor on ``1 - t`` in the velocity: caps the 1/(1-t) blow-up near clean data at 20x (paper value)."""


def interpolate(x0: Tensor, eps: Tensor, t: TimeLike, lam: float = LAM) -> Tensor:
    """``z_t = t * x0 + (1 - t) * lam * eps`` with per-row ``t`` broadcast over trailing dims."""
    check_same_shape("x0", x0, "eps", eps)
    check_times("t", t)
    tt = expand_like(t, x0)
    return tt * x0 + (1.0 - tt) * lam * eps


def _gap(t: TimeLike, x: Tensor, t_eps: float) -> Tensor:
    if not t_eps > 0:
        raise ValueError(f"t_eps must be > 0, got {t_eps}")
    check_times("t", t)
    return (1.0 - expand_like(t, x)).clamp(min=t_eps)


def x_to_velocity(xhat: Tensor, z: Tensor, t: TimeLike, t_eps: float = T_EPS) -> Tensor:
    """``v = (xhat - z) / max(1 - t, t_eps)``: the velocity implied by a clean-data prediction."""
    check_same_shape("xhat", xhat, "z", z)
    return (xhat - z) / _gap(t, z, t_eps)


def velocity_to_x(v: Tensor, z: Tensor, t: TimeLike, t_eps: float = T_EPS) -> Tensor:
    """``xhat = z + max(1 - t, t_eps) * v``: inverse of :func:`x_to_velocity`."""
    check_same_shape("v", v, "z", z)
    return z + _gap(t, z, t_eps) * v


def euler_step(z: Tensor, v: Tensor, t: TimeLike, t_next: TimeLike) -> Tensor:
    """``z' = z + (t_next - t) * v`` for ``t <= t_next``; a zero-length step returns ``z`` unchanged."""
    check_same_shape("z", z, "v", v)
    check_times("t", t)
    check_times("t_next", t_next)
    check_ordered("t", t, "t_next", t_next)
    check_finite("v", v)
    return z + (expand_like(t_next, z) - expand_like(t, z)) * v
