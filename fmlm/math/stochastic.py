"""Stochastic sampling steps (docs/method.md section 9). Time: ``t = 0`` noise, ``t = 1`` data.

CTM gamma-sampling (gamma in [0, 1]), from ``z`` at ``t`` to ``t_next``:
- the denoiser is queried at the target time ``t~ = 1 - (1 - t_next) sqrt(1 - gamma^2)``:
  ``xhat = D(z, t, t~)``
- ``eps_old = (z - t xhat) / ((1 - t) lam)`` (the noise ``z`` implies given ``xhat``)
- ``eps_mix = sqrt(1 - gamma^2) eps_old + gamma eps_new``  (unit variance if both are)
- ``z_next = t_next xhat + (1 - t_next) lam eps_mix``
``gamma = 0`` is the deterministic flow-map step ``X_{t, t_next}``. On the last step
(``t_next = 1``) the formula gives ``z_next = xhat``; samplers return ``xhat`` itself there.

SDE churn before an Euler step from ``t_b`` to ``t_next``:
``alpha = clamp(1 - gam (t_next - t), 0, 1)``, ``t_b = alpha t``, ``z_b = alpha z + (1 - alpha) lam eps``.
(The churned latent carries noise of std ``lam sqrt(alpha^2 (1-t)^2 + (1-alpha)^2)``, at most the
``lam (1 - t_b)`` of the marginal at ``t_b``: the method's formula, kept as the paper states it.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmlm.math.guards import TimeLike, as_time_tensors, check_ordered, check_same_shape, check_times, expand_like
from fmlm.math.interpolant import LAM


def _check_gamma(gamma: TimeLike) -> Tensor:
    (g,) = as_time_tensors(gamma)
    if not bool(((g >= 0) & (g <= 1)).all()):
        raise ValueError("gamma must lie in [0, 1]")
    return g


def ctm_target_time(t_next: TimeLike, gamma: TimeLike) -> Tensor:
    """``t~ = 1 - (1 - t_next) sqrt(1 - gamma^2)``: the time the two-time denoiser is queried at (``t~ >= t_next``)."""
    check_times("t_next", t_next)
    tn, g = as_time_tensors(t_next, _check_gamma(gamma))
    return 1.0 - (1.0 - tn) * torch.sqrt(1.0 - g * g)


def ctm_step(
    z: Tensor, xhat: Tensor, t: TimeLike, t_next: TimeLike, gamma: TimeLike, eps_new: Tensor, lam: float = LAM
) -> Tensor:
    """``z_next = t_next xhat + (1 - t_next) lam (sqrt(1 - gamma^2) eps_old + gamma eps_new)``.

    ``eps_old = (z - t xhat) / ((1 - t) lam)`` requires ``t < 1``; ``t <= t_next``.
    """
    check_same_shape("z", z, "xhat", xhat)
    check_same_shape("z", z, "eps_new", eps_new)
    check_times("t", t)
    check_times("t_next", t_next)
    check_ordered("t", t, "t_next", t_next)
    if bool((as_time_tensors(t)[0] >= 1).any()):
        raise ValueError("t must be < 1 in ctm_step (the noise implied at t = 1 is undefined)")
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    tt, tn = expand_like(t, z), expand_like(t_next, z)
    g = expand_like(_check_gamma(gamma), z)
    eps_old = (z - tt * xhat) / ((1.0 - tt) * lam)
    eps_mix = torch.sqrt(1.0 - g * g) * eps_old + g * eps_new
    return tn * xhat + (1.0 - tn) * lam * eps_mix


def sde_churn(
    z: Tensor, t: TimeLike, t_next: TimeLike, gam: float, eps: Tensor, lam: float = LAM
) -> tuple[Tensor, Tensor]:
    """Move back in time before a step: ``alpha = clamp(1 - gam (t_next - t), 0, 1)``.

    Returns ``(z_b, t_b)`` with ``z_b = alpha z + (1 - alpha) lam eps`` and ``t_b = alpha t``
    (``t_b`` a tensor of ``t``'s broadcast shape). ``gam = 0`` returns ``(z, t)``.
    """
    check_same_shape("z", z, "eps", eps)
    check_times("t", t)
    check_times("t_next", t_next)
    check_ordered("t", t, "t_next", t_next)
    if not gam >= 0:
        raise ValueError(f"gam must be >= 0, got {gam}")
    t_t, tn_t = as_time_tensors(t, t_next)
    alpha = (1.0 - gam * (tn_t - t_t)).clamp(0.0, 1.0)
    a = expand_like(alpha, z)
    return a * z + (1.0 - a) * lam * eps, alpha * t_t
