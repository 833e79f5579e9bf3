import math

import pytest
import torch

from fmlm.synthetic import CodebookData


def book():
    codebook = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    return CodebookData(codebook, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


def test_posterior_matches_bayes_rule_by_hand():
    data = book()
    z, t, lam = torch.tensor([[[0.3, -0.2]]], dtype=torch.float64), 0.4, 2.0
    sd = (1 - t) * lam
    lik = torch.stack([torch.exp(-((z[0, 0] - t * e) ** 2).sum() / (2 * sd**2)) for e in data.codebook])
    expected = data.prior * lik / (data.prior * lik).sum()
    assert torch.allclose(data.posterior(z, t)[0, 0], expected)
    assert torch.allclose(data(z, t)[0, 0], expected @ data.codebook)


def test_endpoints():
    data = book()
    z = torch.randn(2, 5, 2, dtype=torch.float64)
    assert torch.allclose(data(z, 0.0), (data.prior @ data.codebook).expand_as(z))
    x0, ids = data.sample(2, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(data(x0, 1.0), x0)
    noisy = x0 + 0.1
    assert torch.equal(data(noisy, torch.tensor([1.0, 1.0])), x0)  # nearest codeword at t = 1
    q = data.posterior(z, torch.tensor([0.2, 0.999999]))
    assert torch.allclose(q.sum(-1), torch.ones(2, 5, dtype=torch.float64)) and torch.isfinite(q).all()


def test_sample_frequencies():
    data = book()
    _, ids = data.sample(2000, 10, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(ids.reshape(-1), minlength=3).double() / ids.numel()
    assert torch.allclose(freq, data.prior, atol=0.02)


def test_codebook_errors():
    with pytest.raises(ValueError, match="prior"):
        CodebookData(torch.zeros(3, 2), torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="codebook"):
        CodebookData(torch.zeros(3))
    with pytest.raises(ValueError, match="d = 2"):
        book()(torch.zeros(1, 3), 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        book()(torch.zeros(1, 2, dtype=torch.float64), math.inf)
