"""Gaussian and Gaussian-mixture data with exact denoisers (and, for one Gaussian, the exact flow map).

Latent convention of ``fmlm.synthetic``: a batch of sequences ``(B, L, d)`` (``L`` positions,
``d`` latent dims); plain vectors ``(B, d)`` work too. Time: ``t = 0`` noise, ``t = 1`` data;
``z_t = t x0 + (1 - t) lam eps``. Everything is float64-friendly and batched; times are
python numbers, 0-d tensors or per-row ``(B,)`` tensors.

Gaussian ``x0 ~ N(mu, diag(var))`` (``mu``, ``var`` broadcast against one latent ``z[0]``):
- marginal per dim: ``z_t ~ N(t mu, sigma_t^2)``, ``sigma_t^2 = t^2 var + (1 - t)^2 lam^2``
- denoiser: ``E[x0 | z_t = z] = mu + t var / sigma_t^2 (z - t mu)``
- exact probability-flow map: ``X_{s,t}(z) = t mu + (sigma_t / sigma_s)(z - s mu)``
- exact two-time denoiser: the ``D`` with ``flow_map(z, D, s, t) = X_{s,t}(z)``; ``D(z, s, s) = E[x0 | z_s = z]``

Gaussian mixture ``x0 ~ sum_k w_k N(mu_k, diag(var_k))`` over the last dim, i.i.d. over positions:
``E[x0 | z] = sum_k r_k(z) (mu_k + t var_k / sigma_{t,k}^2 (z - t mu_k))`` with responsibilities
``r_k ∝ w_k N(z; t mu_k, diag(sigma_{t,k}^2))``. Its flow map has no closed form (see ``ode.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fmlm.math.flow_map import flow_map_denoiser
from fmlm.math.guards import TimeLike, check_finite, check_ordered, check_times, expand_like
from fmlm.math.interpolant import LAM


class GaussianData:
    """``x0 ~ N(mu, diag(var))`` with its exact denoiser, flow map and two-time denoiser."""

    def __init__(self, mu: Tensor, var: Tensor, lam: float = LAM) -> None:
        mu, var = torch.broadcast_tensors(torch.as_tensor(mu), torch.as_tensor(var))
        check_finite("mu", mu)
        check_finite("var", var)
        if not bool((var > 0).all()):
            raise ValueError("var must be > 0 in every dim")
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.mu, self.var, self.lam = mu, var, float(lam)

    def _params(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.mu.to(z), self.var.to(z)

    def sigma(self, t: TimeLike, z: Tensor) -> Tensor:
        """Marginal std ``sigma_t = sqrt(t^2 var + (1 - t)^2 lam^2)`` broadcast against ``z``."""
        check_times("t", t)
        tt = expand_like(t, z)
        _, var = self._params(z)
        return torch.sqrt(tt**2 * var + (1.0 - tt) ** 2 * self.lam**2)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of ``x0``, shape ``(n, *mu.shape)``."""
        noise = torch.randn((n,) + tuple(self.mu.shape), generator=generator, dtype=self.mu.dtype)
        return self.mu + self.var.sqrt() * noise

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """``E[x0 | z_t = z] = mu + t var / sigma_t^2 (z - t mu)``."""
        tt = expand_like(t, z)
        mu, var = self._params(z)
        return mu + tt * var / self.sigma(t, z) ** 2 * (z - tt * mu)

    def flow_map(self, z: Tensor, s: TimeLike, t: TimeLike) -> Tensor:
        """Exact probability-flow map ``X_{s,t}(z) = t mu + (sigma_t / sigma_s)(z - s mu)``, ``s <= t``."""
        check_ordered("s", s, "t", t)
        mu, _ = self._params(z)
        ss, tt = expand_like(s, z), expand_like(t, z)
        # = t mu + r (z - s mu), arranged so that s = t returns z exactly
        return z + (tt - ss) * mu + (self.sigma(t, z) / self.sigma(s, z) - 1.0) * (z - ss * mu)

    def two_time(self, z: Tensor, s: TimeLike, t: TimeLike) -> Tensor:
        """Exact two-time denoiser: ``flow_map(z, D, s, t) = X_{s,t}(z)``, and ``D(z, s, s) = self(z, s)``."""
        return flow_map_denoiser(z, self.flow_map(z, s, t), s, t, on_diagonal=self(z, s))


class GaussianMixtureData:
    """``x0 ~ sum_k w_k N(mu_k, diag(var_k))`` over the last dim (i.i.d. positions), exact posterior mean."""

    def __init__(self, weights: Tensor, mu: Tensor, var: Tensor, lam: float = LAM) -> None:
        weights, mu, var = (torch.as_tensor(x) for x in (weights, mu, var))
        if mu.dim() != 2 or var.shape != mu.shape or weights.shape != mu.shape[:1]:
            raise ValueError(
                f"mu and var must be (K, d) and weights (K,), got {tuple(mu.shape)}, {tuple(var.shape)}, "
                f"{tuple(weights.shape)}"
            )
        for name, x in (("weights", weights), ("mu", mu), ("var", var)):
            check_finite(name, x)
        if not bool((weights > 0).all()) or not math.isclose(float(weights.sum()), 1.0, rel_tol=1e-9):
            raise ValueError("weights must be > 0 and sum to 1")
        if not bool((var > 0).all()):
            raise ValueError("var must be > 0")
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.weights, self.mu, self.var, self.lam = weights, mu, var, float(lam)

    def sample(self, n: int, length: int | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        """Draws of ``x0``: ``(n, d)``, or ``(n, length, d)`` with i.i.d. positions."""
        shape = (n,) if length is None else (n, length)
        k = torch.multinomial(self.weights, math.prod(shape), replacement=True, generator=generator).reshape(shape)
        noise = torch.randn(shape + (self.mu.shape[1],), generator=generator, dtype=self.mu.dtype)
        return self.mu[k] + self.var[k].sqrt() * noise

    def _components(self, z: Tensor, t: TimeLike) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per component: shifted latents ``z - t mu_k``, ``t``, ``var_k``, ``sigma_{t,k}^2`` (trailing ``(K, d)``)."""
        if z.shape[-1] != self.mu.shape[1]:
            raise ValueError(f"z must end in d = {self.mu.shape[1]}, got shape {tuple(z.shape)}")
        check_times("t", t)
        tt = expand_like(t, z.unsqueeze(-2))  # broadcasts over the trailing (K, d)
        mu, var = self.mu.to(z), self.var.to(z)
        sig2 = tt**2 * var + (1.0 - tt) ** 2 * self.lam**2
        return z[..., None, :] - tt * mu, tt, var, sig2

    def responsibilities(self, z: Tensor, t: TimeLike) -> Tensor:
        """Posterior component probabilities ``r_k(z)``, shape ``(*z.shape[:-1], K)``."""
        diff, _, _, sig2 = self._components(z, t)
        log_lik = -0.5 * (diff**2 / sig2 + torch.log(2 * math.pi * sig2)).sum(-1)
        return torch.softmax(torch.log(self.weights.to(z)) + log_lik, dim=-1)

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """``E[x0 | z_t = z] = sum_k r_k (mu_k + t var_k / sigma_{t,k}^2 (z - t mu_k))``."""
        diff, tt, var, sig2 = self._components(z, t)
        means = self.mu.to(z) + tt * var / sig2 * diff
        return (self.responsibilities(z, t)[..., None] * means).sum(-2)

    def marginal_cdf(self, x: Tensor, t: float) -> Tensor:
        """CDF of ``z_t`` for one-dimensional data (``d = 1``), evaluated at ``x``."""
        if self.mu.shape[1] != 1:
            raise ValueError("marginal_cdf needs one-dimensional data (d = 1)")
        check_times("t", t)
        sig = torch.sqrt(t**2 * self.var[:, 0] + (1.0 - t) ** 2 * self.lam**2)
        normal = torch.distributions.Normal(t * self.mu[:, 0], sig)
        return (self.weights * normal.cdf(x.reshape(-1, 1))).sum(-1)
