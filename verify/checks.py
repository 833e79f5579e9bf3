"""Checkers for the verified properties: each returns the size of the violation (0 when it holds).

A property test asserts the violation is small for the real formula and, where it matters,
that the same checker reports a large violation for a deliberately wrong formula.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor

from fmlm.math import flow_map, row_norms

FlowMap = Callable[[Tensor, float, float], Tensor]
TwoTime = Callable[[Tensor, float, float], Tensor]


def max_abs(x: Tensor) -> float:
    return float(x.abs().max())


def identity_violation(flow: FlowMap, z: Tensor, s: float) -> float:
    """``max |X_{s,s}(z) - z|``."""
    return max_abs(flow(z, s, s) - z)


def semigroup_violation(flow: FlowMap, z: Tensor, s: float, u: float, t: float) -> float:
    """``max |X_{u,t}(X_{s,u}(z)) - X_{s,t}(z)|`` for ``s <= u <= t``."""
    return max_abs(flow(flow(z, s, u), u, t) - flow(z, s, t))


def gamma_violation(
    gamma: Callable[[float, float, float], float], two_time: TwoTime, z: Tensor, s: float, u: float, t: float
) -> float:
    """How far the map built from the gamma target misses ``X_{s,t}``.

    ``A = D(z, s, u)``, ``B = D(X_{s,u}(z), u, t)``, ``D_target = gamma A + (1 - gamma) B``; returns
    ``max |flow_map(z, D_target, s, t) - flow_map(z, D(z, s, t), s, t)|`` (compared as maps, which
    is well conditioned even when ``t - s`` is small).
    """
    a = two_time(z, s, u)
    b = two_time(flow_map(z, a, s, u), u, t)
    g = gamma(s, u, t)
    target = g * a + (1.0 - g) * b
    return max_abs(flow_map(z, target, s, t) - flow_map(z, two_time(z, s, t), s, t))


def tangent_violation(two_time: TwoTime, z: Tensor, s: float, h: float = 1e-4) -> float:
    """``max |d/dt X_{s,t}(z)|_{t=s} - (D(z, s, s) - z)/(1 - s)|`` with a second-order one-sided difference."""
    x = lambda t: flow_map(z, two_time(z, s, t), s, t)  # noqa: E731
    derivative = (-3.0 * x(s) + 4.0 * x(s + h) - x(s + 2.0 * h)) / (2.0 * h)
    return max_abs(derivative - (two_time(z, s, s) - z) / (1.0 - s))


def banach_violation(iterates: list[Tensor], s_star: Tensor, lipschitz: float, kind: str, floor: float = 1e-6) -> float:
    """Largest ``error_k / bound_k - 1`` over iterations and rows (``<= 0`` when the bound holds).

    ``kind = "a_priori"``:     ``bound_k = L^k ||s_0 - s*||``
    ``kind = "a_posteriori"``: ``bound_k = L^k / (1 - L) ||s_1 - s_0||``
    ``kind = "step"``:         ``bound_k = L / (1 - L) ||s_k - s_{k-1}||`` (``k >= 1``; fails as soon
    as the iteration contracts more slowly than ``L``, whatever the earlier steps did)
    Iterations whose bound has fallen below ``floor`` (relative to the first bound) are skipped:
    there the error is rounding noise.
    """
    errors = [row_norms(s_k - s_star) for s_k in iterates]
    if kind == "a_priori":
        bounds = [lipschitz**k * errors[0] for k in range(len(iterates))]
    elif kind == "a_posteriori":
        first = row_norms(iterates[1] - iterates[0]) / (1 - lipschitz)
        bounds = [lipschitz**k * first for k in range(len(iterates))]
    elif kind == "step":
        errors = errors[1:]
        bounds = [lipschitz / (1 - lipschitz) * row_norms(b - a) for a, b in zip(iterates[:-1], iterates[1:])]
    else:
        raise ValueError(f"kind must be 'a_priori', 'a_posteriori' or 'step', got {kind!r}")
    worst = -1.0
    for error, bound in zip(errors, bounds):
        keep = bound > floor * bounds[0].clamp(min=1e-300)
        if bool(keep.any()):
            worst = max(worst, float((error[keep] / bound[keep]).max()) - 1.0)
    return worst


def lipschitz_estimate(F: Callable[[Tensor], Tensor], points: Tensor, directions: Tensor, step: float) -> float:
    """``max ||F(s + step v) - F(s)|| / ||step v||`` over rows: a lower bound on the Lipschitz constant."""
    moved = points + step * directions
    return float((row_norms(F(moved) - F(points)) / row_norms(moved - points)).max())


def evaluations_to_tol(residual_norms: Tensor, tol: float) -> int:
    """Evaluations of F until every row's residual ``||F(s_k) - s_k||`` is <= tol (a large number if never)."""
    below = (residual_norms <= tol).all(dim=1)
    hits = torch.nonzero(below)
    return int(hits[0]) + 1 if hits.numel() else 10**9


def converged(residual_norms: Tensor, tol: float, window: int = 5) -> bool:
    """True when the last ``window`` residuals of every row are <= tol (the iteration settled)."""
    return bool((residual_norms[-window:] <= tol).all())


@contextmanager
def torch_defaults(dtype):
    """Default dtype ``dtype`` and one thread, restored on exit (module fixtures run before conftest's
    per-test float64 fixture, so they set their own)."""
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(dtype)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(old_dtype)
        torch.set_num_threads(old_threads)
