"""Discrete tokens embedded in R^d: a finite codebook with an exact posterior-mean denoiser.

Data: each position independently draws a token ``v ~ p`` and sets ``x0 = e_v`` (codebook
``E`` of shape ``(V, d)``). Latents are ``(B, L, d)`` (or ``(B, d)``), ``z_t = t x0 + (1 - t) lam eps``.

Posterior over tokens at one position (``t < 1``):
``q(v) = softmax_v(log p_v - ||z - t e_v||^2 / (2 (1 - t)^2 lam^2))``, and ``E[x0 | z] = sum_v q(v) e_v``.
At ``t = 1`` there is no noise: ``q`` is the one-hot of the nearest codeword (the limit ``t -> 1``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fmlm.math.guards import TimeLike, check_finite, check_times, expand_like
from fmlm.math.interpolant import LAM


def token_log_likelihood(z: Tensor, t: TimeLike, codebook: Tensor, lam: float) -> Tensor:
    """``-||z - t e_v||^2 / (2 (1 - t)^2 lam^2)`` per token, shape ``(*z.shape[:-1], V)``; rows with ``t = 1``
    get 0 for the nearest codeword and ``-inf`` elsewhere (the noiseless limit)."""
    if z.shape[-1] != codebook.shape[1]:
        raise ValueError(f"z must end in d = {codebook.shape[1]}, got shape {tuple(z.shape)}")
    check_times("t", t)
    e = codebook.to(z)
    sq = ((z.unsqueeze(-2) - expand_like(t, z.unsqueeze(-2)) * e) ** 2).sum(-1)  # (..., V)
    tt = expand_like(t, sq)
    noisy = tt < 1
    var = torch.where(noisy, 2.0 * (1.0 - tt) ** 2 * lam**2, torch.ones_like(tt))
    soft = -sq / var
    nearest = ((z[..., None, :] - e) ** 2).sum(-1)
    hard = torch.where(nearest == nearest.min(-1, keepdim=True).values, 0.0, -math.inf).to(z)
    return torch.where(noisy, soft, hard)


class CodebookData:
    """i.i.d. tokens from ``prior`` over a codebook ``(V, d)``; exact posterior and posterior mean."""

    def __init__(self, codebook: Tensor, prior: Tensor | None = None, lam: float = LAM) -> None:
        codebook = torch.as_tensor(codebook)
        if codebook.dim() != 2:
            raise ValueError(f"codebook must be (V, d), got shape {tuple(codebook.shape)}")
        vocab = codebook.shape[0]
        prior = torch.full((vocab,), 1.0 / vocab, dtype=codebook.dtype) if prior is None else torch.as_tensor(prior)
        check_finite("codebook", codebook)
        if prior.shape != codebook.shape[:1] or not bool((prior > 0).all()):
            raise ValueError(f"prior must be ({codebook.shape[0]},) and > 0")
        if not math.isclose(float(prior.sum()), 1.0, rel_tol=1e-9):
            raise ValueError("prior must sum to 1")
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.codebook, self.prior, self.lam = codebook, prior, float(lam)

    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(x0, ids)``: embeddings ``(n, length, d)`` and token ids ``(n, length)``."""
        ids = torch.multinomial(self.prior, n * length, replacement=True, generator=generator).reshape(n, length)
        return self.codebook[ids], ids

    def posterior(self, z: Tensor, t: TimeLike) -> Tensor:
        """Token posterior ``q(v)`` per position, shape ``(*z.shape[:-1], V)``."""
        log_lik = token_log_likelihood(z, t, self.codebook, self.lam)
        return torch.softmax(torch.log(self.prior.to(z)) + log_lik, dim=-1)

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """``E[x0 | z_t = z] = sum_v q(v) e_v``."""
        return self.posterior(z, t) @ self.codebook.to(z)
