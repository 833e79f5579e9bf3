"""Fixed-point solvers for self-conditioning ``s* = F(s*)`` (docs/method.md sections 6 and 7).

Every batch row solves its own problem; ``F`` maps a batch ``(B, ...)`` to a batch of the
same shape and is called exactly once per iteration on the whole batch.

- Picard:   ``s_{k+1} = F(s_k)``
- Anderson (history ``m``, mixing ``beta``, Tikhonov ``lam_reg``): with residuals
  ``g_i = F(s_i) - s_i`` of the last ``m_k = min(m, k + 1)`` iterates stacked as rows of ``G``,
  ``alpha = argmin ||alpha^T G||^2 + lam ||alpha||^2`` subject to ``sum(alpha) = 1``, i.e.
  ``alpha ∝ (G G^T + lam I)^{-1} 1``, and ``s_{k+1} = sum_i alpha_i (beta F(s_i) + (1 - beta) s_i)``.
  ``lam = lam_reg * trace(G G^T) / m_k`` scales with the residuals (``m_k`` is the history
  size, ``m`` once full): an absolute ``lam_reg`` dominates ``G G^T`` once residuals are small,
  the weights turn uniform and Anderson degrades to averaging the last iterates.

``iterates`` are ``[s_0, ..., s_K]``; ``residual_norms[k] = ||F(s_k) - s_k||`` per row for
``k < K`` (K evaluations of F; ``s_K`` itself is not evaluated). ``tol`` stops early once every
row's residual is ``<= tol`` (one host sync per iteration; without it there is none).
Note: the public reference code records ``[s_0, F(s_0), F(s_1), ..., F(s_{K-1})]`` (F at the
Anderson points) instead of the points ``s_1..s_K``; for Picard the two coincide.
``keep_values=True`` also returns the F values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fmlm.math.guards import check_finite, row_norms

RIDGE_FLOOR = 1e-12
"""Added to the trace-normalised Gram diagonal so the solve stays defined for lam_reg = 0 and collinear residuals."""


@dataclass
class FixedPointResult:
    """Trajectory of a solve: ``iterates`` ``[s_0..s_K]``, ``residual_norms`` (K, B), ``evaluations`` of F."""

    iterates: list[Tensor]
    residual_norms: Tensor
    evaluations: int
    values: list[Tensor] = field(default_factory=list)  # [F(s_0), ..., F(s_{K-1})] when keep_values=True


def _check_common(s0: Tensor, n_iter: int, tol: float | None) -> None:
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be an integer >= 0, got {n_iter!r}")
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if s0.dim() < 1 or s0.shape[0] < 1:
        raise ValueError(f"s0 must have a batch dimension (B, ...), got shape {tuple(s0.shape)}")
    check_finite("s0", s0)


def _evaluate(F: Callable[[Tensor], Tensor], s: Tensor) -> Tensor:
    out = F(s)
    if not isinstance(out, Tensor) or out.shape != s.shape:
        got = getattr(out, "shape", out)
        raise ValueError(f"F must return a tensor of the input shape {tuple(s.shape)}, got {got}")
    return out


def _settled(residual_norms: Tensor, tol: float | None) -> bool:
    return tol is not None and bool((residual_norms <= tol).all())


def _result(iterates: list[Tensor], norms: list[Tensor], values: list[Tensor], s0: Tensor) -> FixedPointResult:
    residuals = torch.stack(norms) if norms else s0.new_zeros((0, s0.shape[0]))
    return FixedPointResult(iterates=iterates, residual_norms=residuals, evaluations=len(norms), values=values)


def picard(
    F: Callable[[Tensor], Tensor], s0: Tensor, n_iter: int, *, tol: float | None = None, keep_values: bool = False
) -> FixedPointResult:
    """Plain fixed-point iteration ``s_{k+1} = F(s_k)`` for ``n_iter`` evaluations of ``F``.

    With ``tol``, stops early once every row's residual is ``<= tol`` (one host sync per iteration).
    """
    _check_common(s0, n_iter, tol)
    iterates, norms, values = [s0], [], []
    s = s0
    for _ in range(n_iter):
        f = _evaluate(F, s)
        norms.append(row_norms(f - s))
        if keep_values:
            values.append(f)
        s = f
        iterates.append(s)
        if _settled(norms[-1], tol):
            break
    return _result(iterates, norms, values, s0)


def anderson_weights(residuals: list[Tensor], lam_reg: float, *, relative_reg: bool = True) -> Tensor:
    """Per-row mixing weights ``alpha`` (B, m_k), summing to 1, from residual history ``[g_1..g_mk]`` (each (B, ...)).

    ``alpha ∝ (G G^T + lam I)^{-1} 1`` with ``lam = lam_reg * trace(G G^T) / m_k`` (``relative_reg``)
    or ``lam = lam_reg`` (absolute). Solved in float64 on the trace-normalised Gram matrix, so
    the weights do not depend on the overall scale of the residuals; a row with all residuals
    zero gets uniform weights.
    """
    batch, m_k = residuals[0].shape[0], len(residuals)
    work = torch.promote_types(residuals[0].dtype, torch.float32)
    G = torch.stack([g.reshape(batch, -1).to(work) for g in residuals], dim=1)  # (B, m_k, n)
    # Outside autocast: under bf16 training the Gram's rounding (~4e-3 relative) would swamp lam_reg.
    with torch.autocast(G.device.type, enabled=False):
        gram = torch.bmm(G, G.transpose(1, 2)).to(torch.float64)  # (B, m_k, m_k)
    scale = torch.diagonal(gram, dim1=1, dim2=2).sum(dim=1) / m_k  # mean squared residual norm, (B,)
    nonzero = scale > 0
    safe_scale = torch.where(nonzero, scale, torch.ones_like(scale))
    lam = torch.full_like(scale, lam_reg) if relative_reg else lam_reg / safe_scale
    lam = torch.where(nonzero, lam, torch.ones_like(lam))  # zero residuals: any weights do; take uniform
    eye = torch.eye(m_k, dtype=torch.float64, device=gram.device)
    system = gram / safe_scale[:, None, None] + (lam + RIDGE_FLOOR)[:, None, None] * eye
    # solve_ex: no host sync, and a row poisoned by a diverging F stays NaN instead of raising.
    x = torch.linalg.solve_ex(system, torch.ones(batch, m_k, 1, dtype=torch.float64, device=gram.device))[0][..., 0]
    return x / x.sum(dim=1, keepdim=True)


def anderson(
    F: Callable[[Tensor], Tensor],
    s0: Tensor,
    n_iter: int,
    *,
    m: int = 3,
    beta: float = 1.0,
    lam_reg: float = 1e-4,
    relative_reg: bool = True,
    tol: float | None = None,
    keep_values: bool = False,
) -> FixedPointResult:
    """Anderson acceleration of ``s = F(s)``, one small least-squares problem per batch row.

    ``n_iter`` evaluations of ``F``; history ``m``, mixing ``beta`` in (0, 1], Tikhonov weight
    ``lam_reg`` scaled by the residuals (``relative_reg=False`` uses it as an absolute weight,
    kept to show why that fails). ``m = 1, beta = 1`` is Picard, and so is any ``m`` with
    ``n_iter = 1, beta = 1``. With ``tol``, stops early once every row's residual is ``<= tol``.
    """
    _check_common(s0, n_iter, tol)
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m (Anderson history size) must be an integer >= 1, got {m!r}")
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must lie in (0, 1], got {beta}")
    if not (lam_reg >= 0.0 and lam_reg < float("inf")):
        raise ValueError(f"lam_reg must be finite and >= 0, got {lam_reg}")
    iterates, norms, values = [s0], [], []
    hist_s: list[Tensor] = []
    hist_f: list[Tensor] = []
    hist_g: list[Tensor] = []
    s = s0
    for _ in range(n_iter):
        f = _evaluate(F, s)
        g = f - s
        norms.append(row_norms(g))
        if keep_values:
            values.append(f)
        for hist, item in ((hist_s, s), (hist_f, f), (hist_g, g)):
            hist.append(item)
            if len(hist) > m:
                hist.pop(0)
        if len(hist_g) == 1:
            s = beta * f + (1.0 - beta) * s
        else:
            alpha = anderson_weights(hist_g, lam_reg, relative_reg=relative_reg).to(s.dtype)
            shape = (s.shape[0],) + (1,) * (s.dim() - 1)
            s = sum(
                alpha[:, i].reshape(shape) * (beta * f_i + (1.0 - beta) * s_i)
                for i, (s_i, f_i) in enumerate(zip(hist_s, hist_f))
            )
        iterates.append(s)
        if _settled(norms[-1], tol):
            break
    return _result(iterates, norms, values, s0)
