"""Diversity and degeneracy of a sample set: distinct-n, repeated 4-grams, empty and one-token samples.

Generative perplexity rewards repetition (a sampler that emits one token over and over scores a low
gen PPL) and unigram entropy rewards noise; these numbers say which of the two a sample set leans to.
They are computed on the evaluator's retokenised ids (``Evaluator.encode``, no special tokens), cut
like the gen PPL scoring cuts them (the first ``max_tokens - 1`` ids), so every number of a record
sees the same tokens. With ``G_n(s)`` the list of n-grams of sample s (windows of n consecutive ids,
never across samples):

    distinct-n       = |union_s set(G_n(s))| / sum_s |G_n(s)|         (whole sample set; NaN if no n-gram)
    rep-n(s)         = 1 - |set(G_n(s))| / |G_n(s)|                   (one sample with >= 1 n-gram)
    rep-4            = mean of rep-4(s) over the samples with >= 1 4-gram (NaN if none has one)
    empty share      = share of texts with no non-whitespace character
    single-token share = share of texts of >= 2 whitespace-separated words that are all one word

The single-token share reads the text's words, not the evaluator's ids: a sampler's one repeated
token ``x`` decodes to ``"x x x"``, which a BPE evaluator splits into ``x`` and `` x`` (two ids).
This module imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

REP_N = 4
"""The n of the repeated n-gram fraction (rep-4)."""


def _check_samples(samples, name: str = "samples") -> None:
    if not isinstance(samples, (list, tuple)):
        raise ValueError(f"{name}: expected a list of id sequences, got {type(samples).__name__}")
    if len(samples) == 0:
        raise ValueError(f"{name}: empty list, nothing to measure")


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")


def ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """The ``len(ids) - n + 1`` windows ``ids[i:i+n]`` as tuples (none when ``len(ids) < n``)."""
    _check_n(n)
    ids = list(ids)
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def distinct_n(samples: Sequence[Sequence[int]], n: int) -> float:
    """``|unique n-grams over all samples| / |n-grams over all samples|``; NaN when no sample has n ids."""
    _check_samples(samples)
    _check_n(n)
    seen: set[tuple[int, ...]] = set()
    total = 0
    for ids in samples:
        grams = ngrams(ids, n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else math.nan


def repeated_ngram_fraction(ids: Sequence[int], n: int = REP_N) -> float | None:
    """``1 - |unique n-grams| / |n-grams|`` of one sample; None when it has fewer than n ids."""
    grams = ngrams(ids, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else None


def mean_repeated_ngrams(samples: Sequence[Sequence[int]], n: int = REP_N) -> float:
    """Mean of ``repeated_ngram_fraction`` over the samples that have at least one n-gram; NaN if none has."""
    _check_samples(samples)
    values = [v for v in (repeated_ngram_fraction(ids, n) for ids in samples) if v is not None]
    return float(np.mean(values)) if values else math.nan


def _check_texts(texts) -> None:
    if not isinstance(texts, (list, tuple)) or len(texts) == 0:
        raise ValueError(f"texts: expected a non-empty list of strings, got {texts!r:.60}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts: item {i} is {type(t).__name__}, not str")


def is_empty(text: str) -> bool:
    """True when ``text`` has no non-whitespace character."""
    return not text.split()


def is_single_repeated_token(text: str) -> bool:
    """True when ``text`` has at least two whitespace-separated words and all are the same word."""
    words = text.split()
    return len(words) >= 2 and len(set(words)) == 1


def empty_share(texts: Sequence[str]) -> float:
    """Share of ``texts`` that are empty (``is_empty``)."""
    _check_texts(texts)
    return sum(is_empty(t) for t in texts) / len(texts)


def single_token_share(texts: Sequence[str]) -> float:
    """Share of ``texts`` that are one word repeated (``is_single_repeated_token``)."""
    _check_texts(texts)
    return sum(is_single_repeated_token(t) for t in texts) / len(texts)


def diversity_metrics(texts: Sequence[str], ids: Sequence[Sequence[int]]) -> dict[str, float]:
    """distinct_1/2/3 and rep4 of the id lists ``ids``, empty_share and single_token_share of ``texts``
    (``ids[i]`` are the retokenised ids of ``texts[i]``)."""
    _check_texts(texts)
    _check_samples(ids, "ids")
    if len(ids) != len(texts):
        raise ValueError(f"ids: {len(ids)} id lists for {len(texts)} texts")
    return {"distinct_1": distinct_n(ids, 1), "distinct_2": distinct_n(ids, 2), "distinct_3": distinct_n(ids, 3),
            "rep4": mean_repeated_ngrams(ids, REP_N), "empty_share": empty_share(texts),
            "single_token_share": single_token_share(texts)}
