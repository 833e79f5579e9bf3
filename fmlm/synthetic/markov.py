"""Correlated tokens: a stationary Markov chain over a small vocabulary, embedded by a codebook.

Data: ``x_1 ~ pi``, ``x_{i+1} | x_i ~ P(x_i, .)`` with ``P = row_softmax(coupling * J)``
(``J`` a fixed ``(V, V)`` preference matrix, by default the cyclic shift ``J[u, u+1 mod V] = 1``;
``coupling = 0`` gives independent uniform tokens) and ``pi`` its stationary law. Latents
``(B, L, d)``: ``z_i = t e_{x_i} + (1 - t) lam eps_i``. Per-position token log-likelihood
``ll_i(v) = -||z_i - t e_v||^2 / (2 (1 - t)^2 lam^2)`` (noiseless limit at ``t = 1``).

- exact posterior marginals by forward-backward: ``MarkovChainData.posterior`` / ``__call__``
- mean-field self-conditioned denoiser ``MeanFieldSelfConditioned(z, t, sc)``: one synchronous
  (all positions at once) naive mean-field update
  ``q_i(v) ∝ exp(ll_i(v) + [i = 1] log pi(v) + sum_u q_{i-1}(u) log P(u, v) + sum_u q_{i+1}(u) log P(v, u))``,
  returning the expected embedding ``sum_v q_i(v) e_v``.

The self-conditioning slot lives in latent space: ``sc_i = sum_v q_i(v) e_v``. The marginals are
recovered as the affine (barycentric) coordinates of ``sc_i`` w.r.t. the codebook,
``q = pinv([E^T; 1^T]) [sc; 1]``, exact because the codebook must be affinely independent
(``V <= d + 1``). With a centred codebook the zero slot means uniform marginals. Its fixed point is
the mean-field posterior mean; weak coupling makes the update a contraction, strong coupling
makes the synchronous update oscillate (period two) instead of converging.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fmlm.math.guards import TimeLike, check_finite, check_same_shape
from fmlm.math.interpolant import LAM
from fmlm.synthetic.codebook import token_log_likelihood


def cyclic_preference(vocab: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """``J[u, (u + 1) mod V] = 1``, else 0: each token prefers to be followed by the next one."""
    return torch.roll(torch.eye(vocab, dtype=dtype), shifts=1, dims=1)


def simplex_codebook(vocab: int, dim: int, *, scale: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """``V`` affinely independent, centred codewords in ``R^dim`` (needs ``V <= dim + 1``), randomly rotated."""
    if vocab > dim + 1:
        raise ValueError(f"vocab must be <= dim + 1 for an affinely independent codebook, got {vocab} > {dim + 1}")
    vertices = torch.eye(vocab, dtype=torch.float64) - 1.0 / vocab  # regular centred simplex in R^V
    plane = torch.linalg.qr(vertices.T)[0][:, : vocab - 1]  # (V, V-1) orthonormal basis of its plane
    rotation = torch.linalg.qr(torch.randn(dim, vocab - 1, generator=generator, dtype=torch.float64))[0].T
    emb = vertices @ plane @ rotation  # (V, dim), an isometric copy of the simplex
    return scale * emb / emb.norm(dim=1, keepdim=True)


def stationary_distribution(transition: Tensor) -> Tensor:
    """The left eigenvector ``pi P = pi`` with eigenvalue 1, normalised to sum 1."""
    vals, vecs = torch.linalg.eig(transition.T.to(torch.float64))
    pi = vecs[:, torch.argmin((vals - 1).abs())].real
    return (pi / pi.sum()).to(transition.dtype)


class MarkovChainData:
    """Stationary Markov chain over ``V`` tokens with ``P = row_softmax(coupling * J)``, embedded by ``codebook``."""

    def __init__(self, codebook: Tensor, coupling: float, preference: Tensor | None = None, lam: float = LAM) -> None:
        codebook = torch.as_tensor(codebook)
        check_finite("codebook", codebook)
        if codebook.dim() != 2:
            raise ValueError(f"codebook must be (V, d), got shape {tuple(codebook.shape)}")
        vocab, dim = codebook.shape
        preference = cyclic_preference(vocab, codebook.dtype) if preference is None else torch.as_tensor(preference)
        if preference.shape != (vocab, vocab):
            raise ValueError(f"preference must be ({vocab}, {vocab}), got {tuple(preference.shape)}")
        if not math.isfinite(coupling):
            raise ValueError(f"coupling must be finite, got {coupling}")
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        affine = torch.cat([codebook.T, torch.ones(1, vocab, dtype=codebook.dtype)])  # (d + 1, V)
        if int(torch.linalg.matrix_rank(affine)) < vocab:
            raise ValueError("codebook must be affinely independent (V <= d + 1) so marginals are recoverable")
        self.codebook, self.coupling, self.lam = codebook, float(coupling), float(lam)
        self.log_transition = torch.log_softmax(coupling * preference.to(codebook.dtype), dim=1)
        self.stationary = stationary_distribution(self.log_transition.exp())
        self._barycentric = torch.linalg.pinv(affine)  # (V, d + 1)

    @property
    def transition(self) -> Tensor:
        return self.log_transition.exp()

    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(x0, ids)``: embeddings ``(n, length, d)`` and token ids ``(n, length)`` of stationary chains."""
        ids = torch.empty(n, length, dtype=torch.long)
        ids[:, 0] = torch.multinomial(self.stationary, n, replacement=True, generator=generator)
        for i in range(1, length):
            ids[:, i] = torch.multinomial(self.transition[ids[:, i - 1]], 1, generator=generator)[:, 0]
        return self.codebook[ids], ids

    def log_likelihood(self, z: Tensor, t: TimeLike) -> Tensor:
        """``ll_i(v)``, shape ``(B, L, V)``."""
        if z.dim() != 3:
            raise ValueError(f"z must be (B, L, d), got shape {tuple(z.shape)}")
        return token_log_likelihood(z, t, self.codebook, self.lam)

    def posterior(self, z: Tensor, t: TimeLike) -> Tensor:
        """Exact posterior marginals ``p(x_i = v | z)`` by forward-backward in log space, ``(B, L, V)``."""
        ll = self.log_likelihood(z, t)
        log_p = self.log_transition.to(z)
        length = ll.shape[1]
        fwd = [torch.log(self.stationary.to(z)) + ll[:, 0]]
        for i in range(1, length):
            fwd.append(ll[:, i] + torch.logsumexp(fwd[-1][:, :, None] + log_p, dim=1))
        bwd = [torch.zeros_like(ll[:, 0])]
        for i in range(length - 1, 0, -1):
            bwd.append(torch.logsumexp(log_p + (ll[:, i] + bwd[-1])[:, None, :], dim=2))
        log_marg = torch.stack(fwd, 1) + torch.stack(bwd[::-1], 1)
        return torch.softmax(log_marg, dim=-1)

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """Exact posterior mean ``E[x0 | z_t = z]``, ``(B, L, d)``."""
        return self.posterior(z, t) @ self.codebook.to(z)

    def marginals_from_slot(self, sc: Tensor) -> Tensor:
        """Barycentric coordinates ``q`` (``(B, L, V)``, summing to 1) with ``sum_v q(v) e_v = sc``."""
        ones = torch.ones(sc.shape[:-1] + (1,), dtype=sc.dtype, device=sc.device)
        return torch.cat([sc, ones], dim=-1) @ self._barycentric.to(sc).T


class MeanFieldSelfConditioned:
    """One synchronous naive mean-field update of every position, read and written as expected embeddings."""

    def __init__(self, data: MarkovChainData) -> None:
        self.data = data

    def field(self, z: Tensor, t: TimeLike, q: Tensor) -> Tensor:
        """Mean-field log-potentials ``(B, L, V)`` given the neighbours' marginals ``q``."""
        ll = self.data.log_likelihood(z, t)
        log_p = self.data.log_transition.to(z)
        out = ll.clone()
        out[:, 0] += torch.log(self.data.stationary.to(z))
        out[:, 1:] += q[:, :-1] @ log_p  # left neighbour u -> v: sum_u q_{i-1}(u) log P(u, v)
        out[:, :-1] += q[:, 1:] @ log_p.T  # right neighbour v -> u: sum_u q_{i+1}(u) log P(v, u)
        return out

    def __call__(self, z: Tensor, t: TimeLike, sc: Tensor) -> Tensor:
        check_same_shape("z", z, "sc", sc)
        q = torch.softmax(self.field(z, t, self.data.marginals_from_slot(sc)), dim=-1)
        return q @ self.data.codebook.to(z)
