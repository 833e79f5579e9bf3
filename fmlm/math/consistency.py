"""Stage-2 fixed-point distillation formulas (docs/method.md section 7).

- consistency (phase) time: ``tau_k = e + (1 - exp(-rho k)) (T - e)``
- skip weight:              ``c_skip(tau) = clamp((tau - e)/(T - e), 0, 1)^g``
- learned two-point Anderson step, per row with inner products over all non-batch dims:
  ``r = f - s``, ``dr = r_a - r_b``, ``alpha1 = -<r_b, dr>/(||dr||^2 + DENOM_EPS)``, ``alpha0 = 1 - alpha1``,
  ``P = beta (alpha0 f_b + alpha1 f_a) + (1 - beta)(alpha0 s_b + alpha1 s_a)``
- student map: ``g = c_skip(tau_a) s_a + (1 - c_skip(tau_a)) P``

At inference ``tau = tau_0 = e`` gives ``c_skip = 0``, and the degenerate pair
``s_a = s_b = 0, f_a = f_b = f`` gives ``P = f`` (beta = 1): ``g`` is the plain network output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmlm.math.guards import check_finite, check_same_shape, expand_like, row_dot

TAU_E = 0.002
"""Phase of the cold start ``k = 0`` (paper value); ``c_skip(TAU_E) = 0``."""

TAU_T = 5.0
"""Phase reached as ``k -> inf`` (paper value); ``c_skip(TAU_T) = 1``."""

RHO = 0.3
"""Rate at which the phase moves from ``e`` to ``T`` along the iteration (paper value)."""

DENOM_EPS = 1e-9
"""Added to ``||dr||^2``: a degenerate pair (``dr = 0``) gives ``alpha1 = 0``, i.e. ``P = f_b`` (reference value)."""


def _check_phase_law(e: float, T: float) -> None:
    if not T > e:
        raise ValueError(f"T must exceed e, got e={e}, T={T}")


def consistency_time(k: int | Tensor, e: float = TAU_E, T: float = TAU_T, rho: float = RHO) -> Tensor:
    """``tau_k = e + (1 - exp(-rho k)) (T - e)`` for iteration index ``k >= 0``.

    ``tau_0 = e`` and ``tau_k -> T``. An int gives a 0-d float64 tensor; an integer tensor
    gives float64 of its shape, a floating tensor keeps its dtype.
    """
    _check_phase_law(e, T)
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    k_t = k if isinstance(k, Tensor) else torch.as_tensor(k)
    if k_t.is_floating_point():
        check_finite("k", k_t)
    else:
        k_t = k_t.to(torch.float64)
    if bool((k_t < 0).any()):
        raise ValueError("k must be >= 0")
    return e + (1.0 - torch.exp(-rho * k_t)) * (T - e)


def c_skip(tau: float | Tensor, e: float = TAU_E, T: float = TAU_T, g: float = 1.0) -> Tensor:
    """``clamp((tau - e)/(T - e), 0, 1) ** g``: 0 at the cold start ``tau = e``, 1 at ``tau >= T``."""
    _check_phase_law(e, T)
    if not g > 0:
        raise ValueError(f"g must be > 0, got {g}")
    tau_t = tau if isinstance(tau, Tensor) else torch.as_tensor(tau, dtype=torch.float64)
    check_finite("tau", tau_t)
    return ((tau_t - e) / (T - e)).clamp(0.0, 1.0) ** g


def two_point_combination(s_a: Tensor, f_a: Tensor, s_b: Tensor, f_b: Tensor, beta: float = 1.0) -> Tensor:
    """One Anderson step over the pair ``(s_a, f_a = h(s_a))``, ``(s_b, f_b = h(s_b))``, per row.

    ``r = f - s``, ``dr = r_a - r_b``, ``alpha1 = -<r_b, dr>/(||dr||^2 + DENOM_EPS)``,
    ``alpha0 = 1 - alpha1``, ``P = beta (alpha0 f_b + alpha1 f_a) + (1 - beta)(alpha0 s_b + alpha1 s_a)``.
    """
    for name, x in (("f_a", f_a), ("s_b", s_b), ("f_b", f_b)):
        check_same_shape("s_a", s_a, name, x)
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must lie in (0, 1], got {beta}")
    r_a, r_b = f_a - s_a, f_b - s_b
    dr = r_a - r_b
    alpha1 = -row_dot(r_b, dr) / (row_dot(dr, dr) + DENOM_EPS)
    alpha1 = expand_like(alpha1, s_a)
    alpha0 = 1.0 - alpha1
    return beta * (alpha0 * f_b + alpha1 * f_a) + (1.0 - beta) * (alpha0 * s_b + alpha1 * s_a)


def student_map(
    s_a: Tensor,
    f_a: Tensor,
    s_b: Tensor,
    f_b: Tensor,
    tau_a: float | Tensor,
    *,
    beta: float = 1.0,
    e: float = TAU_E,
    T: float = TAU_T,
    g: float = 1.0,
) -> Tensor:
    """``c_skip(tau_a) s_a + (1 - c_skip(tau_a)) P`` with ``P = two_point_combination(...)``.

    ``tau_a`` is a scalar or per-row ``(B,)``.
    """
    combined = two_point_combination(s_a, f_a, s_b, f_b, beta)
    skip = expand_like(c_skip(tau_a, e, T, g), s_a)
    return skip * s_a + (1.0 - skip) * combined
