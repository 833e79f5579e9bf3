"""The exact evaluator: sample sets scored under the true law of a synthetic language (no evaluator model).

For token rows ``x^(1..n)`` of length ``L`` drawn by a sampler, and the language's exact law ``p``
(``fmlm.synthetic.hmm_language.HMMLanguage``):

    nll          = mean_s -log p(x^(s)) / L                    (nats per token under the true law)
    excess_nll   = nll - H_L,  H_L = H(X_1..X_L) / L          (precision; 0 for true samples in expectation)
    gen_ppl      = exp(nll)                                    (the true law's perplexity of the samples)
    bigram_kl    = KL(P2 || Q2),  P2 the true position-averaged bigram law, Q2 the samples' bigram
                   frequencies with add-``alpha`` smoothing: Q2(a, b) = (c(a, b) + alpha) / (N + alpha V^2)
    topic_kl     = KL(Ph || Qh),  Ph the true position-averaged topic law, Qh = mean over samples and
                   positions of the posterior p(h_i | x^(s)) (soft; floored at ``TOPIC_FLOOR``)
    entropy      = mean over samples of the unigram entropy of the sample (as the text evaluator)
    distinct_1/2/3, rep4                                       (``fmlm.evaluation.diversity``, on the ids)

A collapsed sampler (one likely row repeated) gets a low, even negative, excess NLL but a large bigram
and topic KL: the two numbers are precision and coverage. Every set is reported beside the same metrics
of ``n`` exact samples of the law (``floor_*``): what each metric reaches by chance at that sample size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from fmlm.evaluation.diversity import REP_N, distinct_n, mean_repeated_ngrams
from fmlm.evaluation.metrics import mean_unigram_entropy

BIGRAM_ALPHA = 0.5
"""Add-alpha smoothing of the samples' bigram counts (Krichevsky-Trofimov): every cell the true law
reaches gets mass, so the KL stays finite for any sample set."""

TOPIC_FLOOR = 1e-12
"""Floor on the samples' soft topic occupancy: keeps the KL finite when no sample visits a topic."""

FLOOR_DRAWS = 4
"""True sample sets averaged for each floor (the floor's own spread is reported beside it)."""

METRICS = ("excess_nll", "bigram_kl", "topic_kl", "entropy", "distinct_1", "distinct_2", "distinct_3", "rep4")
"""The metrics that get a true-sample floor."""


def kl_divergence(p: Tensor, q: Tensor) -> float:
    """``KL(p || q) = sum_k p_k log(p_k / q_k)`` over the cells with ``p_k > 0``."""
    p, q = p.reshape(-1).double(), q.reshape(-1).double()
    keep = p > 0
    return float((p[keep] * (p[keep].log() - q[keep].log())).sum())


def bigram_frequencies(ids: Tensor, vocab: int, alpha: float = BIGRAM_ALPHA) -> Tensor:
    """``(c(a, b) + alpha) / (N + alpha V^2)``: smoothed frequencies of adjacent pairs within rows, ``(V, V)``."""
    ids = torch.as_tensor(ids).long()
    pairs = (ids[:, :-1] * vocab + ids[:, 1:]).reshape(-1)
    counts = torch.bincount(pairs, minlength=vocab * vocab).double().reshape(vocab, vocab)
    return (counts + alpha) / (counts.sum() + alpha * vocab * vocab)


class Law(Protocol):
    """What the scorer reads of a language (``fmlm.synthetic.hmm_language.HMMLanguage`` has it all)."""

    vocab: int

    def log_prob(self, ids: Tensor) -> Tensor: ...
    def topic_posterior(self, ids: Tensor) -> Tensor: ...
    def bigram_law(self, length: int) -> Tensor: ...
    def topic_law(self, length: int) -> Tensor: ...
    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]: ...


@dataclass
class ExactScorer:
    """Scores sample sets under ``law`` for rows of ``length`` tokens; true-sample floors cached per set size."""

    law: Law
    length: int
    entropy: float  # H_L, nats per token (Monte Carlo)
    entropy_se: float
    floor_seed: int = 12345
    _floors: dict[int, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bigram_law = self.law.bigram_law(self.length)
        self.topic_law = self.law.topic_law(self.length)

    def per_sample_nll(self, ids: Tensor) -> Tensor:
        """``-log p(x) / L`` per row, nats per token."""
        return -self.law.log_prob(ids) / ids.shape[1]

    def metrics(self, ids: Tensor) -> dict[str, float]:
        """Every metric of the module docstring for the rows ``ids`` ``(n, L)``."""
        ids = torch.as_tensor(ids).long().cpu()
        if ids.dim() != 2 or ids.shape[1] != self.length or len(ids) == 0:
            raise ValueError(f"ids must be (n >= 1, {self.length}), got shape {tuple(ids.shape)}")
        nll = float(self.per_sample_nll(ids).mean())
        occupancy = self.law.topic_posterior(ids).mean((0, 1)).clamp_min(TOPIC_FLOOR)
        rows = ids.tolist()
        return {
            "nll": nll, "excess_nll": nll - self.entropy, "gen_ppl": math.exp(nll),
            "bigram_kl": kl_divergence(self.bigram_law, bigram_frequencies(ids, self.law.vocab)),
            "topic_kl": kl_divergence(self.topic_law, occupancy / occupancy.sum()),
            "entropy": mean_unigram_entropy(rows),
            "distinct_1": distinct_n(rows, 1), "distinct_2": distinct_n(rows, 2), "distinct_3": distinct_n(rows, 3),
            "rep4": mean_repeated_ngrams(rows, REP_N),
        }

    def floor(self, n: int) -> dict[str, float]:
        """Mean (``floor_<m>``) and spread (``floor_<m>_sd``) of every metric over ``FLOOR_DRAWS`` sets of ``n``
        exact samples."""
        if n not in self._floors:
            gen = torch.Generator().manual_seed(self.floor_seed + n)
            draws = [self.metrics(self.law.sample(n, self.length, generator=gen)[0]) for _ in range(FLOOR_DRAWS)]
            out: dict[str, float] = {}
            for m in METRICS:
                values = torch.tensor([d[m] for d in draws], dtype=torch.float64)
                out[f"floor_{m}"], out[f"floor_{m}_sd"] = float(values.mean()), float(values.std())
            self._floors[n] = out
        return self._floors[n]

    def score(self, ids: Tensor) -> dict[str, Any]:
        """``metrics(ids)`` with the floors at this set size and the entropy the excess is measured from."""
        out: dict[str, Any] = self.metrics(ids)
        out.update(self.floor(len(ids)))
        out.update(entropy_rate=self.entropy, entropy_rate_se=self.entropy_se, bigram_alpha=BIGRAM_ALPHA)
        return out
