"""Exact flow maps against high-accuracy ODE solves (scipy ``solve_ivp``): the Gaussian closed form, and for
one-dimensional Gaussian mixtures the monotone (quantile) transport and the transported marginals."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from fmlm.math import interpolate
from fmlm.synthetic import GaussianData, GaussianMixtureData, ode_flow_map
from verify.strategies import gaussian_problem


def two_bumps(dim: int = 2) -> GaussianMixtureData:
    g = torch.Generator().manual_seed(11)
    mu = torch.stack([torch.full((dim,), -1.5), torch.full((dim,), 1.0)]) + 0.3 * torch.randn(2, dim, generator=g)
    var = torch.stack([torch.full((dim,), 0.1), torch.full((dim,), 0.3)])
    return GaussianMixtureData(torch.tensor([0.3, 0.7]), mu, var)


@pytest.mark.parametrize("seed, s, t", [(0, 0.0, 0.9), (1, 0.2, 0.6), (2, 0.5, 0.95)])
def test_exact_gaussian_flow_map_matches_solve_ivp(seed, s, t):
    data, z = gaussian_problem(seed)
    reference = ode_flow_map(data, z, s, t)
    assert torch.allclose(data.flow_map(z, s, t), reference, atol=1e-8)


def test_mixture_of_equal_components_follows_the_gaussian_map():
    """A mixture whose components coincide is one Gaussian: its ODE flow is the closed form."""
    mu, var = torch.tensor([0.5, -1.0]), torch.tensor([0.4, 1.3])
    mixture = GaussianMixtureData(torch.tensor([0.25, 0.75]), torch.stack([mu, mu]), torch.stack([var, var]))
    gaussian = GaussianData(mu, var)
    z = torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(mixture(z, 0.3), gaussian(z, 0.3), atol=1e-13)
    assert torch.allclose(ode_flow_map(mixture, z, 0.1, 0.9), gaussian.flow_map(z, 0.1, 0.9), atol=1e-8)


def test_mixture_ode_flow_map_agrees_across_solvers():
    data = two_bumps()
    z = interpolate(data.sample(6), torch.randn(6, 2, generator=torch.Generator().manual_seed(2)), 0.2)
    dop = ode_flow_map(data, z, 0.2, 0.9)
    radau = ode_flow_map(data, z, 0.2, 0.9, method="Radau", rtol=1e-10, atol=1e-12)
    assert torch.allclose(dop, radau, atol=1e-7)


def quantile_transport(data: GaussianMixtureData, z: torch.Tensor, s: float, t: float) -> torch.Tensor:
    """``F_t^{-1}(F_s(z))`` for one-dimensional data, ``F`` the marginal CDF of ``z_t`` (inverted by bisection).

    In one dimension the probability-flow map is increasing and carries the law of ``z_s`` to that
    of ``z_t``, so it is this monotone rearrangement: an exact answer that needs no ODE.
    """
    level = data.marginal_cdf(z, s).reshape(z.shape)
    lo, hi = torch.full_like(z, -50.0), torch.full_like(z, 50.0)
    for _ in range(120):
        mid = 0.5 * (lo + hi)
        below = data.marginal_cdf(mid, t).reshape(z.shape) < level
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def test_semigroup_mixture_ode_flow_map_is_the_quantile_transport():
    """One ODE jump ``X_{s,t}`` and the composition ``X_{u,t}(X_{s,u})`` both equal the exact 1-d transport."""
    data = two_bumps(dim=1)
    z = 1.5 * torch.randn(8, 1, generator=torch.Generator().manual_seed(3))
    s, u, t = 0.05, 0.4, 0.9
    exact = quantile_transport(data, z, s, t)
    assert torch.allclose(ode_flow_map(data, z, s, t), exact, atol=1e-9)
    assert torch.allclose(ode_flow_map(data, ode_flow_map(data, z, s, u), u, t), exact, atol=1e-9)


def test_mixture_ode_flow_map_transports_the_marginals():
    """Push exact samples of z_s through X_{s,t}: they follow the exact mixture marginal at t (KS test)."""
    data = two_bumps(dim=1)
    g = torch.Generator().manual_seed(4)
    s, t, n = 0.1, 0.9, 400
    x0 = data.sample(n, generator=g)
    z_s = interpolate(x0, torch.randn(n, 1, generator=g), s)
    z_t = ode_flow_map(data, z_s, s, t, rtol=1e-8, atol=1e-10)
    pushed = stats.kstest(z_t[:, 0].numpy(), lambda x: data.marginal_cdf(torch.as_tensor(x), t).numpy())
    assert pushed.pvalue > 1e-3
    # the same test rejects the samples left where they were (the check can fail)
    unmoved = stats.kstest(z_s[:, 0].numpy(), lambda x: data.marginal_cdf(torch.as_tensor(x), t).numpy())
    assert unmoved.pvalue < 1e-6
