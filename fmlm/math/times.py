"""Training-time distributions and sampling grids (docs/method.md sections 2, 8 and 9).

Time convention: ``t = 0`` pure noise, ``t = 1`` clean data.

- logit-normal training time: ``t = sigmoid(N(P_mean, P_std))``
- its quantile function, also the ``tau -> t`` map of flow-map training:
  ``t = sigmoid(P_std * probit(tau) + P_mean)``, ``tau = 0 -> 0`` and ``tau = 1 -> 1`` exactly
- grids ``0 = t_0 < ... < t_N = 1``: quantiles at ``k / N`` or sorted logit-normal draws
- the two-time sampler of flow-map distillation (diagonal rows ``s = u = t``;
  off-diagonal ``d ~ U(0,1)``, ``tau_s = U (1 - d)``, ``tau_t = tau_s + d``,
  ``tau_u = (tau_s + tau_t) / 2``; boundary rows ``(0, 1/2, 1)`` in tau)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fmlm.math.guards import TimeLike, check_times

P_MEAN = -1.5
"""Mean of the logit-normal training time (paper value: mass towards the noisy end)."""

P_STD = 0.8
"""Standard deviation of the logit-normal training time (paper value)."""

BOUNDARY_TAU = (0.0, 0.5, 1.0)
"""Phase triple ``(tau_s, tau_u, tau_t)`` injected into off-diagonal rows: the full noise-to-data jump."""


def _check_law(p_std: float) -> None:
    if not p_std > 0:
        raise ValueError(f"p_std must be > 0, got {p_std}")


def sample_logit_normal(
    shape: int | tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    p_mean: float = P_MEAN,
    p_std: float = P_STD,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``t = sigmoid(p_mean + p_std * N(0, 1))`` of the given shape."""
    _check_law(p_std)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    normal = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return torch.sigmoid(normal * p_std + p_mean)


def logit_normal_quantile(q: TimeLike, p_mean: float = P_MEAN, p_std: float = P_STD) -> Tensor:
    """``t = sigmoid(p_std * probit(q) + p_mean)``; ``q = 0 -> 0`` and ``q = 1 -> 1`` exactly.

    Monotone increasing in ``q``. A python number comes back as a 0-d float64 tensor;
    a tensor keeps its dtype and device.
    """
    _check_law(p_std)
    check_times("q", q)
    q_t = q if isinstance(q, Tensor) else torch.as_tensor(q, dtype=torch.float64)
    # probit(0) = -inf and probit(1) = +inf, and sigmoid maps those to exactly 0 and 1.
    return torch.sigmoid(p_std * torch.special.ndtri(q_t) + p_mean)


def _check_steps(n_steps: int) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")


def quantile_grid(
    n_steps: int, *, p_mean: float = P_MEAN, p_std: float = P_STD, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Grid ``(n_steps + 1,)``: ``t_k = logit_normal_quantile(k / n_steps)``, so ``t_0 = 0`` and ``t_N = 1``."""
    _check_steps(n_steps)
    q = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
    return logit_normal_quantile(q, p_mean, p_std).to(dtype)


def sorted_draw_grid(
    n_steps: int,
    *,
    generator: torch.Generator | None = None,
    p_mean: float = P_MEAN,
    p_std: float = P_STD,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Grid ``(n_steps + 1,)``: ``0``, then ``n_steps - 1`` sorted logit-normal draws, then ``1``."""
    _check_steps(n_steps)
    draws = sample_logit_normal(
        n_steps - 1, generator=generator, p_mean=p_mean, p_std=p_std, device=device, dtype=torch.float64
    )
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64, device=draws.device)
    return torch.cat([ends[:1], draws.sort().values, ends[1:]]).to(dtype)


@dataclass
class TwoTimeSample:
    """Times of one flow-map training batch: ``s <= u <= t`` per row, in flow time and in tau."""

    s: Tensor
    u: Tensor
    t: Tensor
    tau_s: Tensor
    tau_u: Tensor
    tau_t: Tensor
    diagonal: Tensor  # bool (B,): rows with s = u = t


def sample_two_time(
    batch: int,
    *,
    generator: torch.Generator | None = None,
    diagonal_prob: float = 0.5,
    boundary_prob: float = 1.0 / 32.0,
    p_mean: float = P_MEAN,
    p_std: float = P_STD,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> TwoTimeSample:
    """Sample ``(s, u, t)`` per row as in docs/method.md section 8.

    Diagonal rows (probability ``diagonal_prob``): ``tau ~ U(0, 1)``, ``s = u = t = quantile(tau)``
    (so ``t`` is logit-normal). Off-diagonal rows: ``d ~ U(0, 1)``, ``tau_s = U (1 - d)``,
    ``tau_t = tau_s + d``, ``tau_u = (tau_s + tau_t) / 2``; among them, with probability
    ``boundary_prob``, ``(tau_s, tau_u, tau_t) = (0, 0.5, 1)``. Times are
    ``logit_normal_quantile(tau)``. Draws are made in float64 and cast to ``dtype``.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    for name, p in (("diagonal_prob", diagonal_prob), ("boundary_prob", boundary_prob)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {p}")
    _check_law(p_std)

    def uniform() -> Tensor:
        return torch.rand(batch, generator=generator, device=device, dtype=torch.float64)

    diagonal = uniform() < diagonal_prob
    boundary = (uniform() < boundary_prob) & ~diagonal
    tau_diag, d, u01 = uniform(), uniform(), uniform()

    tau_s = u01 * (1.0 - d)
    # tau_s + d <= 1 in exact arithmetic; the min only removes a last-bit rounding excess.
    tau_t = torch.minimum(tau_s + d, torch.ones_like(tau_s))
    tau_u = 0.5 * (tau_s + tau_t)
    for tau, value in zip((tau_s, tau_u, tau_t), BOUNDARY_TAU):
        tau.masked_fill_(boundary, value)
    tau_s, tau_u, tau_t = (torch.where(diagonal, tau_diag, tau) for tau in (tau_s, tau_u, tau_t))

    s, u, t = (logit_normal_quantile(tau, p_mean, p_std).to(dtype) for tau in (tau_s, tau_u, tau_t))
    return TwoTimeSample(
        s=s, u=u, t=t, tau_s=tau_s.to(dtype), tau_u=tau_u.to(dtype), tau_t=tau_t.to(dtype), diagonal=diagonal
    )
