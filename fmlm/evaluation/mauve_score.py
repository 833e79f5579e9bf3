"""MAUVE between generated samples and held-out text, on features of the run's own evaluator.

MAUVE (Pillutla et al., 2021; the ``mauve-text`` package, ``import mauve``) embeds both text sets,
quantises the embeddings into ``num_buckets`` k-means clusters (after PCA keeping 90% of the
variance), and measures the area under the divergence frontier of the two cluster histograms P
(samples) and Q (reference): 1 when they match, towards 0 when P puts its mass where Q has none (a
sampler emitting one repeated token lands all its samples in one cluster).

Features are computed here and handed to ``mauve.compute_mauve(p_features=, q_features=)``, so the
package downloads nothing (its default featuriser is gpt2-large from the hub). For each text,
``x = [start] + ids[:max_tokens - 1]`` (ids: ``Evaluator.encode``, cut like the gen PPL scoring),
batched longest first, right-padded with an attention mask:

    feature(text) = mean_{i = 1..len(ids)} h_i     (h = the evaluator's last hidden state,
                                                    ``output_hidden_states=True``; padding masked out)

An empty text is the start token's state ``h_0`` alone. The feature source is recorded as
``"<evaluator name> mean-pooled last hidden state"``: MAUVE depends on it, and on the sample counts.

``num_buckets``: the package's default ``"auto"`` is ``max(2, round(min(n_p, n_q) / 10))`` (about ten
points per cluster); here the default is ``max(2, min(n_p, n_q) // 10)``, the same rule with the
number passed explicitly, so a record states the bucket count it was computed with and does not
depend on the package's heuristic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fmlm.evaluation.diversity import diversity_metrics
from fmlm.evaluation.evaluator import Evaluator
from fmlm.evaluation.metrics import check_texts, score_and_features

MAUVE_SEED = 25
"""k-means / PCA seed handed to ``mauve.compute_mauve`` (the package's own default)."""


def feature_source(evaluator: Evaluator) -> str:
    """The recorded name of the features: ``"<evaluator name> mean-pooled last hidden state"``."""
    return f"{evaluator.name} mean-pooled last hidden state"


def default_num_buckets(n_p: int, n_q: int) -> int:
    """``max(2, min(n_p, n_q) // 10)``: about ten samples per k-means cluster on the smaller side."""
    if min(n_p, n_q) < 1:
        raise ValueError(f"n_p, n_q: MAUVE needs at least one text on each side, got {n_p} and {n_q}")
    return max(2, min(n_p, n_q) // 10)


def kept_ids(evaluator: Evaluator, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """The evaluator's ids of each text, cut to the first ``max_tokens - 1`` (what the gen PPL scoring keeps)."""
    return [ids[: max_tokens - 1] for ids in evaluator.encode(list(texts))]


def text_features(evaluator: Evaluator, texts: Sequence[str], *, batch_size: int, max_tokens: int) -> np.ndarray:
    """(n, d) float32: each text's last hidden states mean-pooled over its tokens (module docstring)."""
    check_texts(list(texts), batch_size)
    context = evaluator.context_length
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 2 <= max_tokens <= context:
        raise ValueError(f"max_tokens: expected an integer in [2, {context}], got {max_tokens!r}")
    kept = kept_ids(evaluator, texts, max_tokens)
    seqs = [[evaluator.start_id] + ids for ids in kept]
    return score_and_features(evaluator, seqs, [len(ids) for ids in kept], batch_size=batch_size, progress=False)[2]


def mauve_from_features(p_features: np.ndarray, q_features: np.ndarray, *, num_buckets: int | None = None,
                        seed: int = MAUVE_SEED) -> tuple[float, int]:
    """``(MAUVE(P, Q), num_buckets)`` from precomputed (n_p, d) and (n_q, d) features (default buckets:
    ``default_num_buckets``)."""
    import mauve

    p, q = np.asarray(p_features), np.asarray(q_features)
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"features: expected (n_p, d) and (n_q, d) arrays, got {p.shape} and {q.shape}")
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("features: non-finite values; MAUVE needs finite embeddings")
    buckets = default_num_buckets(len(p), len(q)) if num_buckets is None else num_buckets
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 2 <= buckets <= len(p) + len(q):
        raise ValueError(f"num_buckets: expected an integer in [2, n_p + n_q = {len(p) + len(q)}], got {buckets!r}")
    out = mauve.compute_mauve(p_features=p, q_features=q, num_buckets=buckets, seed=seed, verbose=False)
    return float(out.mauve), buckets


class ReferenceSet:
    """Held-out texts (optionally tagged with their row indices) whose features are computed once, on
    first use, and reused for every sample set."""

    def __init__(self, texts: Sequence[str], rows: Sequence[int] | None = None):
        check_texts(list(texts), 1)
        if rows is not None and len(rows) != len(texts):
            raise ValueError(f"rows: {len(rows)} row indices for {len(texts)} texts")
        self.texts = tuple(texts)
        self.rows = None if rows is None else tuple(int(r) for r in rows)
        self._features: dict[tuple[str, int], np.ndarray] = {}
        self._parent: tuple[ReferenceSet, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def excluding(self, rows: Sequence[int]) -> "ReferenceSet | None":
        """The set without the texts of ``rows`` (sharing the cached features); None when nothing is left.
        A set without row indices is returned unchanged."""
        if self.rows is None:
            return self
        drop = {int(r) for r in rows}
        keep = [i for i, r in enumerate(self.rows) if r not in drop]
        if len(keep) == len(self.texts):
            return self
        if not keep:
            return None
        subset = ReferenceSet([self.texts[i] for i in keep], [self.rows[i] for i in keep])
        subset._parent = (self, keep)
        return subset

    def features(self, evaluator: Evaluator, *, batch_size: int, max_tokens: int) -> np.ndarray:
        """``text_features`` of the texts under ``evaluator`` (cached per evaluator name and ``max_tokens``)."""
        if self._parent is not None:
            parent, keep = self._parent
            return parent.features(evaluator, batch_size=batch_size, max_tokens=max_tokens)[keep]
        key = (evaluator.name, max_tokens)
        if key not in self._features:
            self._features[key] = text_features(evaluator, self.texts, batch_size=batch_size, max_tokens=max_tokens)
        return self._features[key]


def distribution_metrics(evaluator: Evaluator, texts: Sequence[str],
                         reference_texts: Sequence[str] | ReferenceSet | None, *, batch_size: int, max_tokens: int,
                         num_buckets: int | None = None, seed: int = MAUVE_SEED,
                         features: np.ndarray | None = None) -> dict[str, Any]:
    """MAUVE of ``texts`` against ``reference_texts`` plus ``diversity_metrics`` on the evaluator's ids.

    Keys: mauve, mauve_n (samples), mauve_n_reference, mauve_num_buckets, mauve_features, distinct_1,
    distinct_2, distinct_3, rep4, empty_share, single_token_share. ``features``: the texts' own, when the
    gen PPL scoring already computed them (``evaluate_texts(features=True)``). ``reference_texts=None``: MAUVE
    is not measured (mauve and its counts None). NaN diversity numbers (no n-gram at all) stay NaN.
    """
    check_texts(list(texts), batch_size)
    out: dict[str, Any] = diversity_metrics(list(texts), kept_ids(evaluator, texts, max_tokens))
    out.update(mauve=None, mauve_n=None, mauve_n_reference=None, mauve_num_buckets=None, mauve_features=None)
    if reference_texts is None:
        return out
    reference = reference_texts if isinstance(reference_texts, ReferenceSet) else ReferenceSet(reference_texts)
    p = text_features(evaluator, texts, batch_size=batch_size, max_tokens=max_tokens) if features is None else features
    q = reference.features(evaluator, batch_size=batch_size, max_tokens=max_tokens)
    score, buckets = mauve_from_features(p, q, num_buckets=num_buckets, seed=seed)
    out.update(mauve=score, mauve_n=len(p), mauve_n_reference=len(q),
               mauve_num_buckets=buckets, mauve_features=feature_source(evaluator))
    return out
