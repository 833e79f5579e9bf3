"""A language whose law is known: sticky hidden topics over token-to-token structure, embedded by a codebook.

Row law (rows of ``L`` tokens over ``V`` ids, ``H`` hidden topics; product state ``s_i = (h_i, x_i)``):

- ``p(h_1, x_1) = init(h_1) b_{h_1}(x_1)``
- ``p(h_i, x_i | h_{i-1}, x_{i-1}) = A[h_{i-1}, h_i] B_{h_i}[x_{i-1}, x_i]``, so the product chain has
  transition ``T[(h', x'), (h, x)] = A[h', h] B_h[x', x]``
- ``A = stay I + (1 - stay) / (H - 1) (1 - I)``: a topic persists for ``1 / (1 - stay)`` tokens
- ``B_h[x', .] = softmax(focus 1[x in V_h] + succ S[x', .])``: topic ``h`` prefers its window
  ``V_h`` of the vocabulary (windows overlap, so ``h`` is genuinely hidden), and every token prefers
  a few seeded successors ``S`` (token-to-token structure shared by all topics); ``b_h = softmax(focus 1[x in V_h])``.

Exact quantities:

- ``log_prob(ids)``: forward algorithm over ``h`` with ``x`` observed, ``O(L H^2)``
- ``posterior(z, t)``: marginals ``p(x_i = v | z_t)`` by scaled forward-backward over the ``H V`` product
  state, with the Gaussian emission ``p(z_i | x_i = v) ∝ exp(-||z_i - t e_v||^2 / (2 (1 - t)^2 lam^2))``
  (``fmlm.synthetic.codebook.token_log_likelihood``); ``__call__`` is ``E[x0 | z_t] = sum_v q_i(v) e_v``
- ``topic_posterior(ids)``: ``p(h_i | x)`` for decoded samples
- ``bigram_law()`` / ``topic_law()``: the position-averaged bigram and topic marginals, exactly
- ``entropy_per_token(n)``: ``H(X_1..X_L) / L`` by Monte Carlo of exact log-probs of exact samples, with
  its standard error (the token process has no closed-form entropy rate)

Time: ``t = 0`` noise, ``t = 1`` data, ``z_t = t x0 + (1 - t) lam eps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlm.config import require
from fmlm.math.guards import TimeLike
from fmlm.math.interpolant import LAM
from fmlm.synthetic.codebook import token_log_likelihood


@dataclass(frozen=True)
class LanguageSpec:
    """The settings of one language (all seeded): sizes, stickiness and the two preference strengths."""

    vocab: int = 64
    topics: int = 4
    dim: int = 16  # codebook dimension (the latent dim the networks see)
    stay: float = 0.95  # probability that a topic persists to the next token
    window: int = 24  # tokens each topic prefers (windows overlap when topics * window > vocab)
    focus: float = 3.0  # log-odds of a token in the topic's window over one outside it
    successors: int = 3  # seeded successors each token prefers
    succ: float = 2.5  # log-odds bonus of a preferred successor
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.vocab >= 2, "language.vocab", f"must be >= 2, got {self.vocab}")
        require(self.topics >= 2, "language.topics", f"must be >= 2, got {self.topics}")
        require(self.dim >= 1, "language.dim", f"must be >= 1, got {self.dim}")
        require(0.0 < self.stay < 1.0, "language.stay", f"must lie in (0, 1), got {self.stay}")
        require(1 <= self.window <= self.vocab, "language.window", f"must lie in [1, vocab], got {self.window}")
        require(0 <= self.successors <= self.vocab, "language.successors",
                f"must lie in [0, vocab], got {self.successors}")


def gaussian_codebook(vocab: int, dim: int, seed: int) -> Tensor:
    """A seeded ``(V, d)`` float64 codebook of i.i.d. standard normals: unit variance per dimension,
    like the whitened encoder latents of the real cache."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(vocab, dim, generator=gen, dtype=torch.float64)


class HMMLanguage:
    """The exact law of one ``LanguageSpec`` (see the module docstring), in float64."""

    def __init__(self, spec: LanguageSpec, lam: float = LAM) -> None:
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.spec, self.lam = spec, float(lam)
        V, H = spec.vocab, spec.topics
        gen = torch.Generator().manual_seed(spec.seed)
        starts = torch.round(torch.arange(H, dtype=torch.float64) * V / H).long()
        member = torch.zeros(H, V, dtype=torch.float64)
        for h in range(H):
            member[h, (starts[h] + torch.arange(spec.window)) % V] = 1.0
        succ = torch.zeros(V, V, dtype=torch.float64)
        for v in range(V):
            succ[v, torch.randperm(V, generator=gen)[: spec.successors]] = 1.0
        self.log_init_topic = torch.full((H,), -math.log(H), dtype=torch.float64)
        self.log_first = torch.log_softmax(spec.focus * member, dim=1)  # (H, V): b_h
        self.log_B = torch.log_softmax(spec.focus * member[:, None, :] + spec.succ * succ[None], dim=2)  # (H, V, V)
        off = (1.0 - spec.stay) / (H - 1)
        self.log_A = torch.log(torch.full((H, H), off, dtype=torch.float64).fill_diagonal_(spec.stay))
        self.codebook = gaussian_codebook(V, spec.dim, spec.seed + 1)
        # product-state transition T[(h', x'), (h, x)] = A[h', h] B_h[x', x], row-major index h V + x
        self.T = (self.log_A[:, None, :, None] + self.log_B.permute(1, 0, 2)[None]).exp().reshape(H * V, H * V)
        self.start = (self.log_init_topic[:, None] + self.log_first).exp().reshape(H * V)

    @property
    def vocab(self) -> int:
        return self.spec.vocab

    @property
    def topics(self) -> int:
        return self.spec.topics

    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(ids, topics)``: ``n`` exact draws of rows of ``length`` tokens and their hidden topics, ``(n, length)``."""
        if n < 1 or length < 1:
            raise ValueError(f"n and length must be >= 1, got {n}, {length}")
        V, last = self.vocab, self.T.shape[0] - 1
        u = torch.rand(n, length, generator=generator, dtype=torch.float64)  # inverse-CDF draws
        state = torch.searchsorted(self.start.cumsum(0), u[:, :1].contiguous())[:, 0].clamp_max(last)
        states = [state]
        cum = self.T.cumsum(1)
        for i in range(1, length):
            state = torch.searchsorted(cum[state], u[:, i : i + 1].contiguous())[:, 0].clamp_max(last)
            states.append(state)
        s = torch.stack(states, 1)
        return s % V, s // V

    def log_prob(self, ids: Tensor) -> Tensor:
        """``log p(x_1..x_L)`` per row of ``ids`` ``(B, L)``, by the forward algorithm over topics."""
        ids = self._check_ids(ids)
        alpha = self.log_init_topic[None] + self.log_first[:, ids[:, 0]].T  # (B, H)
        for i in range(1, ids.shape[1]):
            emit = self.log_B[:, ids[:, i - 1], ids[:, i]].T  # (B, H): log B_h[x_{i-1}, x_i]
            alpha = torch.logsumexp(alpha[:, :, None] + self.log_A[None], dim=1) + emit
        return torch.logsumexp(alpha, dim=1)

    def topic_posterior(self, ids: Tensor) -> Tensor:
        """``p(h_i = h | x_1..x_L)`` per row and position, ``(B, L, H)``, by forward-backward over topics."""
        ids = self._check_ids(ids)
        length = ids.shape[1]
        emits = [self.log_first[:, ids[:, 0]].T] + [self.log_B[:, ids[:, i - 1], ids[:, i]].T for i in range(1, length)]
        fwd = [self.log_init_topic[None] + emits[0]]
        for i in range(1, length):
            fwd.append(torch.logsumexp(fwd[-1][:, :, None] + self.log_A[None], dim=1) + emits[i])
        bwd = [torch.zeros_like(fwd[0])]
        for i in range(length - 1, 0, -1):
            bwd.append(torch.logsumexp(self.log_A[None] + (emits[i] + bwd[-1])[:, None, :], dim=2))
        return torch.softmax(torch.stack(fwd, 1) + torch.stack(bwd[::-1], 1), dim=-1)

    def posterior(self, z: Tensor, t: TimeLike) -> Tensor:
        """Exact ``p(x_i = v | z_t = z)``, ``(B, L, V)``: scaled forward-backward over the product state."""
        if z.dim() != 3 or z.shape[-1] != self.spec.dim:
            raise ValueError(f"z must be (B, L, {self.spec.dim}), got shape {tuple(z.shape)}")
        ll = token_log_likelihood(z.to(torch.float64), t, self.codebook, self.lam)  # (B, L, V)
        lik = (ll - ll.amax(-1, keepdim=True)).exp().repeat(1, 1, self.topics)  # (B, L, H V), scaled per position
        n, length, _ = lik.shape
        fwd = [self.start[None] * lik[:, 0]]
        fwd[0] = fwd[0] / fwd[0].sum(-1, keepdim=True)
        for i in range(1, length):
            a = (fwd[-1] @ self.T) * lik[:, i]
            fwd.append(a / a.sum(-1, keepdim=True))
        bwd = [torch.ones(n, self.T.shape[0], dtype=torch.float64)]
        for i in range(length - 1, 0, -1):
            b = (lik[:, i] * bwd[-1]) @ self.T.T
            bwd.append(b / b.sum(-1, keepdim=True))
        joint = torch.stack(fwd, 1) * torch.stack(bwd[::-1], 1)  # (B, L, H V)
        q = joint.reshape(n, length, self.topics, self.vocab).sum(2)
        return (q / q.sum(-1, keepdim=True)).to(z.dtype)

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """The exact denoiser ``E[x0 | z_t = z] = sum_v q_i(v) e_v``, ``(B, L, d)``."""
        return self.posterior(z, t) @ self.codebook.to(z)

    def state_marginals(self, length: int) -> Tensor:
        """``p(h_i, x_i)`` for ``i = 1..length``, ``(length, H V)`` (the product chain from its start)."""
        m = [self.start]
        for _ in range(1, length):
            m.append(m[-1] @ self.T)
        return torch.stack(m)

    def bigram_law(self, length: int) -> Tensor:
        """Position-averaged ``p(x_i = a, x_{i+1} = b)`` over the ``length - 1`` adjacent pairs, ``(V, V)``."""
        if length < 2:
            raise ValueError(f"length must be >= 2 for bigrams, got {length}")
        m = self.state_marginals(length - 1)  # (L-1, H V)
        pair = (m.mean(0)[:, None] * self.T).reshape(self.topics, self.vocab, self.topics, self.vocab)
        return pair.sum((0, 2))

    def topic_law(self, length: int) -> Tensor:
        """Position-averaged ``p(h_i = h)``, ``(H,)``."""
        return self.state_marginals(length).mean(0).reshape(self.topics, self.vocab).sum(1)

    def entropy_per_token(self, n: int, length: int, seed: int = 0, batch: int = 4096) -> tuple[float, float]:
        """``(H(X_1..X_L) / L, standard error)``: the mean of ``-log p(x) / L`` over ``n`` exact samples."""
        gen = torch.Generator().manual_seed(seed)
        values = []
        for start in range(0, n, batch):
            ids, _ = self.sample(min(batch, n - start), length, generator=gen)
            values.append(-self.log_prob(ids) / length)
        v = torch.cat(values)
        return float(v.mean()), float(v.std() / math.sqrt(len(v)))

    def _check_ids(self, ids: Tensor) -> Tensor:
        ids = torch.as_tensor(ids)
        if ids.dim() != 2 or ids.shape[1] < 1:
            raise ValueError(f"ids must be (B, L) with L >= 1, got shape {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab):
            raise ValueError(f"ids must lie in [0, {self.vocab}), got range [{int(ids.min())}, {int(ids.max())}]")
        return ids.long()
