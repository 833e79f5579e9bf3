import pytest
import torch

from fmlm.math import interpolate
from fmlm.synthetic import GaussianData, GaussianMixtureData


def data():
    return GaussianData(torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.3, 2.0], dtype=torch.float64))


def test_denoiser_endpoints_and_regression_check():
    d = data()
    z = torch.randn(4, 3, 2, dtype=torch.float64)
    assert torch.allclose(d(z, 0.0), d.mu.expand_as(z))
    assert torch.allclose(d(z, 1.0), z)
    # E[x0 | z] is the least-squares regression of x0 on z: fit it on samples and compare
    g = torch.Generator().manual_seed(0)
    x0 = d.sample(200000, generator=g)
    z = interpolate(x0, torch.randn(x0.shape, generator=g, dtype=torch.float64), 0.4)
    slope = ((z - z.mean(0)) * (x0 - x0.mean(0))).mean(0) / z.var(0)
    exact = d(torch.ones(1, 2, dtype=torch.float64), 0.4) - d(torch.zeros(1, 2, dtype=torch.float64), 0.4)
    assert torch.allclose(slope, exact[0], atol=1e-2)


def test_flow_map_and_two_time_denoiser():
    d = data()
    z = torch.randn(3, 2, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.5, 0.7]), torch.tensor([0.6, 0.5, 1.0])
    x = d.flow_map(z, s, t)
    assert torch.equal(x[1], z[1])
    two = d.two_time(z, s, t)
    assert torch.allclose(two[1], d(z[1:2], 0.5)[0])
    assert x.shape == two.shape == z.shape
    # noise at s = 0 is carried to a sample at t = 1: standardised quantiles are preserved
    assert torch.allclose(d.flow_map(z, 0.0, 1.0), d.mu + d.var.sqrt() * z / 2.0)


def test_mixture_single_component_is_the_gaussian():
    d = data()
    mix = GaussianMixtureData(torch.tensor([1.0]), d.mu[None], d.var[None])
    z = torch.randn(5, 4, 2, dtype=torch.float64)
    for t in (0.0, 0.3, 1.0):
        assert torch.allclose(mix(z, t), d(z, t))
    r = mix.responsibilities(z, 0.3)
    assert r.shape == (5, 4, 1) and torch.allclose(r, torch.ones_like(r))


def test_mixture_posterior_mean_matches_monte_carlo():
    mix = GaussianMixtureData(
        torch.tensor([0.4, 0.6], dtype=torch.float64),
        torch.tensor([[-1.0], [1.5]], dtype=torch.float64),
        torch.tensor([[0.1], [0.2]], dtype=torch.float64),
    )
    g = torch.Generator().manual_seed(0)
    x0 = mix.sample(400000, generator=g)
    z = interpolate(x0, torch.randn(x0.shape, generator=g, dtype=torch.float64), 0.5)
    bins = (z[:, 0] > 0.1) & (z[:, 0] < 0.2)
    mc = x0[bins, 0].mean()
    exact = mix(z[bins], 0.5)[:, 0].mean()
    assert abs(float(mc - exact)) < 0.03
    assert mix.sample(3, 5).shape == (3, 5, 1)


def test_gaussian_errors():
    with pytest.raises(ValueError, match="var"):
        GaussianData(torch.zeros(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureData(torch.tensor([0.5, 0.4]), torch.zeros(2, 1), torch.ones(2, 1))
    with pytest.raises(ValueError, match="s must not exceed t"):
        data().flow_map(torch.zeros(1, 2, dtype=torch.float64), 0.5, 0.4)
    with pytest.raises(ValueError, match="d = 1"):
        GaussianMixtureData(torch.tensor([1.0]), torch.zeros(1, 2), torch.ones(1, 2)).marginal_cdf(torch.zeros(2), 0.5)
