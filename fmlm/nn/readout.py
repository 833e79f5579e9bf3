"""The latent readout's initialisation: a Gaussian classifier of the training latents, with every token's
mean drawn toward the one the frozen encoder's token embeddings predict.

With ``decoder_input = "latent"`` the decoder head is ``logits = z W_u + b_u`` on the latent itself (the
latents are whitened last-layer states of the encoder, ``x0 = (E(ids) - mu) / sigma``). Over training tokens
(x_i, y_i), n of them, with counts n_v and sums s_v = sum_{y_i = v} x_i per token v:

    P     = (E_Y^T E_Y / n + r_E I)^{-1} E_Y^T X / n       least squares e_{y_i} P ~ x_i  (E_Y^T E_Y = E^T diag(n_v) E,
                                                         E_Y^T X = E^T S; e_v the encoder's input embeddings)
    m_v   = (s_v + k e_v P) / (n_v + k)                    mean of token v, k pseudo-tokens at the predicted one
    Sigma = (X^T X - sum_v s_v s_v^T / n_v) / n + r I      pooled within-token covariance
    W_u[v] = Sigma^{-1} m_v,  b_u[v] = -m_v^T Sigma^{-1} m_v / 2 + log((n_v + 1/2) / (n + V/2))

(linear discriminant analysis with a shared covariance: the argmax is the most probable token of a
Gaussian per token). A token absent from the training rows gets its embedding-predicted mean (3.4% of the
embedded preset's held-out tokens). ``r = RIDGE x trace / d`` of the matrix it regularises.
"""

from __future__ import annotations

import torch
from torch import Tensor

RIDGE = 1e-3  # ridge, relative to the mean eigenvalue of the matrix solved: a well-posed solve, negligible bias
PRIOR_TOKENS = 4.0  # k: pseudo-tokens at the embedding-predicted mean (4 beat 0 and 1 on held-out rows)


def accumulate_moments(x: Tensor, ids: Tensor, vocab_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(X^T X (d, d), S (V, d) sums per token, counts (V,))`` of one chunk of tokens, in float64."""
    flat = x.reshape(-1, x.shape[-1]).double()
    ids = ids.reshape(-1)
    sums = torch.zeros(vocab_size, flat.shape[1], dtype=torch.float64, device=flat.device).index_add_(0, ids, flat)
    counts = torch.bincount(ids, minlength=vocab_size).double()
    return flat.T @ flat, sums, counts


def _ridge(matrix: Tensor) -> Tensor:
    """``matrix + RIDGE x trace(matrix) / d x I``."""
    d = matrix.shape[0]
    return matrix + RIDGE * torch.trace(matrix) / d * torch.eye(d, dtype=matrix.dtype, device=matrix.device)


def readout_init(gram: Tensor, sums: Tensor, counts: Tensor, embeddings: Tensor,
                 prior_tokens: float = PRIOR_TOKENS) -> tuple[Tensor, Tensor]:
    """``(W_u (V, d), b_u (V,))`` in float32 from the moments of ``accumulate_moments`` (module docstring)."""
    n = float(counts.sum())
    if n < 1:
        raise ValueError("readout: no training tokens to fit the readout on")
    if not prior_tokens > 0:
        raise ValueError(f"readout: prior_tokens must be > 0 (unseen tokens need it), got {prior_tokens}")
    emb = embeddings.double()
    predict = torch.linalg.solve(_ridge(emb.T @ (counts.unsqueeze(1) * emb) / n), emb.T @ sums / n)  # P
    means = (sums + prior_tokens * (emb @ predict)) / (counts + prior_tokens).unsqueeze(1)
    seen = counts > 0
    within = (gram - sums[seen].T @ (sums[seen] / counts[seen].unsqueeze(1))) / n
    weight = torch.linalg.solve(_ridge(within), means.T).T
    vocab = counts.shape[0]
    bias = -0.5 * (weight * means).sum(1) + torch.log((counts + 0.5) / (n + 0.5 * vocab))
    return weight.float(), bias.float()
