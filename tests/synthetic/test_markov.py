import itertools

import pytest
import torch

from fmlm.math import interpolate
from fmlm.synthetic import (
    MarkovChainData,
    MeanFieldSelfConditioned,
    cyclic_preference,
    simplex_codebook,
    token_log_likelihood,
)


def chain(coupling=1.0, vocab=3, dim=2):
    return MarkovChainData(simplex_codebook(vocab, dim, generator=torch.Generator().manual_seed(0)), coupling)


def test_transition_and_stationary_law():
    data = chain(1.3)
    p = data.transition
    assert torch.allclose(p.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(data.stationary @ p, data.stationary)
    assert torch.equal(cyclic_preference(3), torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float64))
    skewed = MarkovChainData(data.codebook, 2.0, preference=torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0]]))
    assert torch.allclose(skewed.stationary @ skewed.transition, skewed.stationary)


def test_forward_backward_matches_brute_force_enumeration():
    data = chain(1.5)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    t = 0.4
    ll = token_log_likelihood(z, t, data.codebook, data.lam)  # (B, L, V)
    log_pi, log_p = torch.log(data.stationary), data.log_transition
    marg = torch.zeros(2, 3, 3, dtype=torch.float64)
    for seq in itertools.product(range(3), repeat=3):
        logw = log_pi[seq[0]] + log_p[seq[0], seq[1]] + log_p[seq[1], seq[2]]
        logw = logw + sum(ll[:, i, v] for i, v in enumerate(seq))
        for i, v in enumerate(seq):
            marg[:, i, v] += logw.exp()
    marg /= marg.sum(-1, keepdim=True)
    assert torch.allclose(data.posterior(z, t), marg, atol=1e-12)


def test_slot_round_trip_and_zero_slot_is_uniform():
    data = chain(vocab=4, dim=3)
    q = torch.softmax(torch.randn(2, 5, 4, dtype=torch.float64), -1)
    assert torch.allclose(data.marginals_from_slot(q @ data.codebook), q, atol=1e-12)
    uniform = torch.full((1, 1, 4), 0.25, dtype=torch.float64)
    assert torch.allclose(data.marginals_from_slot(torch.zeros(1, 1, 3, dtype=torch.float64)), uniform)


def test_mean_field_update_outputs_expected_embeddings():
    data = chain(0.8, vocab=4, dim=3)
    x0, ids = data.sample(3, 5, generator=torch.Generator().manual_seed(2))
    assert x0.shape == (3, 5, 3) and ids.shape == (3, 5)
    z = interpolate(x0, torch.randn(x0.shape, dtype=torch.float64), 0.5)
    out = MeanFieldSelfConditioned(data)(z, 0.5, torch.zeros_like(z))
    q = data.marginals_from_slot(out)
    assert bool((q > -1e-12).all()) and torch.allclose(q.sum(-1), torch.ones(3, 5, dtype=torch.float64))
    assert torch.equal(MeanFieldSelfConditioned(data)(x0, 1.0, torch.zeros_like(x0)), x0)


def test_sample_transitions_follow_the_chain():
    data = chain(2.0)
    _, ids = data.sample(3000, 8, generator=torch.Generator().manual_seed(3))
    counts = torch.zeros(3, 3, dtype=torch.float64)
    pairs = (ids[:, :-1].reshape(-1), ids[:, 1:].reshape(-1))
    counts.index_put_(pairs, torch.ones(3000 * 7, dtype=torch.float64), accumulate=True)
    assert torch.allclose(counts / counts.sum(1, keepdim=True), data.transition, atol=0.02)


def test_markov_errors():
    with pytest.raises(ValueError, match="affinely independent"):
        MarkovChainData(torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]), 1.0)
    with pytest.raises(ValueError, match="vocab"):
        simplex_codebook(5, 3)
    with pytest.raises(ValueError, match=r"\(B, L, d\)"):
        chain().log_likelihood(torch.zeros(2, 2, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="preference"):
        MarkovChainData(chain().codebook, 1.0, preference=torch.zeros(2, 2))
