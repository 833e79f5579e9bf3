"""Stage-2 boundary conditions, the CTM step, time grids and the two-time sampler (docs/method.md sections 7-9)."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from fmlm.math import (
    P_MEAN,
    P_STD,
    TAU_E,
    TAU_T,
    c_skip,
    consistency_time,
    ctm_step,
    ctm_target_time,
    interpolate,
    logit_normal_quantile,
    quantile_grid,
    sample_two_time,
    sorted_draw_grid,
    student_map,
)
from verify.strategies import VERIFY, gaussian_problem, seeds


def logit_normal_cdf(x, p_mean=P_MEAN, p_std=P_STD):
    x = torch.as_tensor(x).clamp(1e-300, 1 - 1e-16)
    return stats.norm.cdf(((torch.log(x) - torch.log1p(-x)).numpy() - p_mean) / p_std)


# ---- stage 2 -------------------------------------------------------------------------------


def test_stage2_cold_start_phase_has_zero_skip():
    assert float(consistency_time(0)) == TAU_E
    assert float(c_skip(consistency_time(0))) == 0.0
    taus = consistency_time(torch.arange(0, 200))
    assert bool((taus[1:61] > taus[:60]).all()) and bool((taus[1:] >= taus[:-1]).all())
    assert abs(float(taus[-1]) - TAU_T) < 1e-12
    skips = c_skip(taus)
    assert bool((skips[1:] >= skips[:-1]).all()) and float(c_skip(TAU_T)) == 1.0


@VERIFY
@given(seed=seeds)
def test_stage2_degenerate_pair_gives_plain_network_output(seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(3, 5, 4, generator=g)
    zero = torch.zeros_like(f)
    out = student_map(zero, f, zero, f, consistency_time(0))
    assert torch.equal(out, f)
    # away from the boundary the map does depend on the slot (the check is not vacuous)
    s = torch.randn(3, 5, 4, generator=g)
    assert not torch.allclose(student_map(s, f, zero, f, consistency_time(3)), f)


# ---- CTM -----------------------------------------------------------------------------------


@VERIFY
@given(seed=seeds, t=st.floats(0.0, 0.9), dt=st.floats(0.0, 0.09))
def test_ctm_gamma_zero_is_the_flow_map_step(seed, t, dt):
    data, z = gaussian_problem(seed)
    t_next = t + dt
    assert abs(float(ctm_target_time(t_next, 0.0)) - t_next) < 1e-15
    xhat = data.two_time(z, t, t_next)
    step = ctm_step(z, xhat, t, t_next, 0.0, torch.randn_like(z))
    assert torch.allclose(step, data.flow_map(z, t, t_next), atol=1e-10)


def test_ctm_any_gamma_preserves_the_noise_variance():
    """With the clean estimate equal to x0, the re-placed noise is N(0, 1) for every gamma."""
    g = torch.Generator().manual_seed(0)
    n, t, t_next, lam = 20000, 0.3, 0.6, 2.0
    x0 = torch.randn(n, 1, generator=g) * 0.7 + 0.2
    z = interpolate(x0, torch.randn(n, 1, generator=g), t)
    for gamma in (0.0, 0.3, 0.75, 1.0):
        z_next = ctm_step(z, x0, t, t_next, gamma, torch.randn(n, 1, generator=g))
        noise = ((z_next - t_next * x0) / ((1 - t_next) * lam))[:, 0].numpy()
        assert stats.kstest(noise, "norm").pvalue > 1e-3, gamma
        chi2 = (n - 1) * noise.var(ddof=1)  # variance test against sigma^2 = 1
        assert stats.chi2.sf(chi2, n - 1) > 1e-3 and stats.chi2.cdf(chi2, n - 1) > 1e-3, gamma
    # a wrong mixing rule (weights 1 - gamma and gamma) shrinks the variance and is rejected
    eps_old, eps_new = torch.randn(n, generator=g), torch.randn(n, generator=g)
    wrong = (0.5 * eps_old + 0.5 * eps_new).numpy()
    assert stats.kstest(wrong, "norm").pvalue < 1e-6


def test_ctm_last_step_returns_the_clean_estimate():
    data, z = gaussian_problem(2)
    xhat = data.two_time(z, 0.8, 1.0)
    for gamma in (0.0, 0.5, 1.0):
        assert torch.equal(ctm_step(z, xhat, 0.8, 1.0, gamma, torch.randn_like(z)), xhat)
    assert float(ctm_target_time(1.0, 0.5)) == 1.0


# ---- time grids and the two-time sampler ---------------------------------------------------


@VERIFY
@given(n_steps=st.integers(1, 300), seed=seeds)
def test_time_grids_monotone_with_pinned_endpoints(n_steps, seed):
    for grid in (quantile_grid(n_steps), sorted_draw_grid(n_steps, generator=torch.Generator().manual_seed(seed))):
        assert grid.shape == (n_steps + 1,)
        assert float(grid[0]) == 0.0 and float(grid[-1]) == 1.0
        assert bool((grid[1:] > grid[:-1]).all())


def test_time_grid_quantiles_match_the_logit_normal():
    interior = quantile_grid(400)[1:-1].numpy()
    assert stats.kstest(interior, logit_normal_cdf).statistic < 2.0 / 400
    draws = sorted_draw_grid(2000, generator=torch.Generator().manual_seed(0))[1:-1].numpy()
    assert stats.kstest(draws, logit_normal_cdf).pvalue > 1e-3
    uniform = torch.linspace(0, 1, 401)[1:-1].numpy()  # the same test rejects a uniform grid
    assert stats.kstest(uniform, logit_normal_cdf).pvalue < 1e-6


@VERIFY
@given(q=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20))
def test_time_tau_to_t_is_monotone(q):
    tau = torch.tensor(sorted(q))
    t = logit_normal_quantile(tau)
    assert bool((t[1:] >= t[:-1]).all())
    assert float(logit_normal_quantile(0.0)) == 0.0 and float(logit_normal_quantile(1.0)) == 1.0


def test_two_time_sampler_orders_diagonal_and_boundary():
    n = 40000
    sample = sample_two_time(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert bool((sample.s <= sample.u).all() and (sample.u <= sample.t).all())
    assert bool(((sample.tau_s <= sample.tau_u) & (sample.tau_u <= sample.tau_t)).all())
    assert torch.allclose(sample.tau_u, (sample.tau_s + sample.tau_t) / 2, atol=1e-15)  # midpoint in tau
    for time, tau in ((sample.s, sample.tau_s), (sample.u, sample.tau_u), (sample.t, sample.tau_t)):
        assert torch.equal(time, logit_normal_quantile(tau))
    diag = sample.diagonal
    assert stats.binomtest(int(diag.sum()), n, 0.5).pvalue > 1e-3
    assert bool((sample.s[diag] == sample.t[diag]).all()) and bool((sample.s[~diag] < sample.t[~diag]).all())
    # the diagonal times are logit-normal (the teacher's training law)
    assert stats.kstest(sample.t[diag].numpy(), logit_normal_cdf).pvalue > 1e-3
    off = ~diag
    boundary = off & (sample.tau_s == 0) & (sample.tau_t == 1)
    assert stats.binomtest(int(boundary.sum()), int(off.sum()), 1 / 32).pvalue > 1e-3
    assert bool((sample.s[boundary] == 0).all() and (sample.t[boundary] == 1).all())
    assert torch.allclose(sample.u[boundary], torch.full_like(sample.u[boundary], 1 / (1 + math.exp(-P_MEAN))))
    # off-diagonal gaps d = tau_t - tau_s are uniform on (0, 1) outside the boundary rows
    gaps = (sample.tau_t - sample.tau_s)[off & ~boundary].numpy()
    assert stats.kstest(gaps, "uniform").pvalue > 1e-3
