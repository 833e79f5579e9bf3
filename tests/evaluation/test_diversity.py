"""distinct-n, rep-4 and the empty / one-token shares on hand-made id lists and texts."""

from __future__ import annotations

import math

import pytest

from fmlm.evaluation.diversity import (diversity_metrics, distinct_n, empty_share, mean_repeated_ngrams, ngrams,
                                       repeated_ngram_fraction, single_token_share)


def test_ngrams_are_the_windows_of_one_sample():
    assert ngrams([1, 2, 3, 4], 2) == [(1, 2), (2, 3), (3, 4)]
    assert ngrams([1, 2], 3) == []


def test_distinct_n_counts_over_the_whole_set():
    samples = [[1, 2, 3], [1, 2, 4]]
    assert distinct_n(samples, 1) == pytest.approx(4 / 6)  # {1, 2, 3, 4} of 6 tokens
    assert distinct_n(samples, 2) == pytest.approx(3 / 4)  # (1,2) twice, (2,3), (2,4)
    assert distinct_n(samples, 3) == 1.0


def test_distinct_n_never_joins_two_samples():
    assert distinct_n([[1, 2], [3, 4]], 2) == 1.0  # (2, 3) is no bigram
    assert math.isnan(distinct_n([[1, 2], [2, 1]], 3))  # no sample has 3 ids, and none is joined to reach 3


def test_one_repeated_token_has_one_distinct_ngram():
    samples = [[7] * 10, [7] * 6]
    assert distinct_n(samples, 1) == pytest.approx(1 / 16)
    assert distinct_n(samples, 2) == pytest.approx(1 / 14)


def test_repeated_fraction_of_one_sample():
    assert repeated_ngram_fraction([1] * 6) == pytest.approx(1 - 1 / 3)  # three 4-grams, all (1, 1, 1, 1)
    assert repeated_ngram_fraction([1, 2, 3, 4, 1, 2, 3, 4]) == pytest.approx(1 - 4 / 5)
    assert repeated_ngram_fraction(list(range(9))) == 0.0
    assert repeated_ngram_fraction([1, 2, 3]) is None


def test_rep4_averages_only_samples_with_a_4gram():
    samples = [[1] * 6, [1, 2, 3, 4, 1, 2, 3, 4], [5, 6]]  # the last has no 4-gram: left out, not counted as 0
    assert mean_repeated_ngrams(samples) == pytest.approx(((1 - 1 / 3) + (1 - 4 / 5)) / 2)
    assert math.isnan(mean_repeated_ngrams([[1, 2], [3]]))


def test_empty_and_single_token_shares():
    texts = ["", "  \n", "a a a", "a", "a b", "b  b"]
    assert empty_share(texts) == pytest.approx(2 / 6)
    assert single_token_share(texts) == pytest.approx(2 / 6)  # "a a a" and "b  b"; "a" alone is not repeated


def test_diversity_metrics_keys_and_values():
    out = diversity_metrics(["x x x x x", "a b c d e"], [[3] * 5, [1, 2, 3, 4, 5]])
    assert set(out) == {"distinct_1", "distinct_2", "distinct_3", "rep4", "empty_share", "single_token_share"}
    assert out["distinct_1"] == pytest.approx(5 / 10)  # {3, 1, 2, 4, 5} of 10 tokens
    assert out["rep4"] == pytest.approx((1 - 1 / 2 + 0.0) / 2)
    assert out["single_token_share"] == 0.5 and out["empty_share"] == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda: distinct_n([], 2), "samples: empty list"),
    (lambda: distinct_n([[1]], 0), "n: expected an integer >= 1"),
    (lambda: distinct_n("abc", 1), "samples: expected a list"),
    (lambda: empty_share([]), "texts: expected a non-empty list"),
    (lambda: single_token_share(["a", 3]), "texts: item 1 is int"),
    (lambda: diversity_metrics(["a"], [[1], [2]]), "ids: 2 id lists for 1 texts"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()
