"""Unigram entropy (nats) of known token sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmlm.evaluation.metrics import mean_unigram_entropy, unigram_entropy


@pytest.mark.parametrize(
    ("ids", "expected"),
    [([1, 1, 2, 2], math.log(2)), ([], 0.0), ([7], 0.0), ([3, 3, 3], 0.0), ([0, 1, 2, 3], math.log(4)),
     ([1, 1, 1, 2], -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))],
)
def test_known_sequences(ids, expected):
    assert unigram_entropy(ids) == pytest.approx(expected, abs=1e-12)


def test_tensor_and_array_inputs():
    assert unigram_entropy(torch.tensor([5, 6, 5, 6])) == pytest.approx(math.log(2))
    assert unigram_entropy(np.array([9, 8, 7])) == pytest.approx(math.log(3))


def test_order_does_not_matter():
    assert unigram_entropy([1, 2, 2, 3, 3, 3]) == pytest.approx(unigram_entropy([3, 2, 3, 1, 3, 2]))


def test_mean_over_samples():
    assert mean_unigram_entropy([[1, 1, 2, 2], [], [4]]) == pytest.approx(math.log(2) / 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="^token_ids:"):
        unigram_entropy([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="^samples:"):
        mean_unigram_entropy([])
