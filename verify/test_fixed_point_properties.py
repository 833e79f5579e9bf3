"""Self-conditioning as a fixed-point iteration: contraction, Banach bounds, uniqueness, mean field,
Anderson versus Picard, and flows driven by the fixed-point denoiser (METHOD.md section 6)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fmlm.math import anderson, interpolate, picard
from fmlm.synthetic import (
    FixedPointDenoiser,
    LinearSelfConditioned,
    MarkovChainData,
    MeanFieldSelfConditioned,
    TanhSelfConditioned,
    ode_flow_map,
    simplex_codebook,
)
from verify.checks import (
    banach_violation,
    converged,
    evaluations_to_tol,
    identity_violation,
    lipschitz_estimate,
    semigroup_violation,
)
from verify.strategies import VERIFY, gaussian_problem, seeds

lipschitz_values = st.floats(min_value=0.1, max_value=0.9)
WEAK, STRONG = 0.5, 8.0  # Markov-chain couplings: contraction / period-two oscillation of mean field


def orthogonal(dim: int, seed: int) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed)))[0]


def wrapped(kind: str, seed: int, lipschitz: float):
    """A self-conditioned model around the exact Gaussian denoiser, and one ``(z, t)``."""
    data, z = gaussian_problem(seed)
    if kind == "linear":
        return LinearSelfConditioned(data, lipschitz), z
    return TanhSelfConditioned(data, lipschitz, mixing=orthogonal(z.shape[-1], seed)), z


def markov_problem(coupling: float, t: float, seed: int = 0, batch: int = 4, length: int = 6):
    g = torch.Generator().manual_seed(seed)
    data = MarkovChainData(simplex_codebook(4, 3, generator=g), coupling)
    x0, _ = data.sample(batch, length, generator=g)
    z = interpolate(x0, torch.randn(x0.shape, generator=g), t)
    return data, MeanFieldSelfConditioned(data), z


def random_directions(z: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(z.shape, generator=g), torch.randn(z.shape, generator=g)


@VERIFY
@given(seed=seeds, lipschitz=lipschitz_values, kind=st.sampled_from(["linear", "tanh"]), t=st.floats(0.0, 0.95))
def test_contraction_measured_lipschitz_below_one(seed, lipschitz, kind, t):
    model, z = wrapped(kind, seed, lipschitz)
    points, directions = random_directions(z, seed)
    measured = lipschitz_estimate(lambda s: model(z, t, s), points, directions, step=1e-3)
    assert measured <= lipschitz * (1 + 1e-9) < 1.0
    if kind == "linear":
        assert abs(measured - lipschitz) < 1e-9


def test_contraction_mean_field_weak_coupling_only():
    for coupling, expect_contraction in ((WEAK, True), (STRONG, False)):
        _, model, z = markov_problem(coupling, t=0.2)
        points, directions = random_directions(z, 7)
        measured = lipschitz_estimate(lambda s: model(z, 0.2, s), 0.3 * points, directions, step=1e-4)
        assert (measured < 1.0) == expect_contraction, (coupling, measured)


@VERIFY
@given(seed=seeds, lipschitz=lipschitz_values, kind=st.sampled_from(["linear", "tanh"]))
def test_contraction_banach_bounds_hold(seed, lipschitz, kind):
    model, z = wrapped(kind, seed, lipschitz)
    t = 0.4
    s0 = 3.0 * torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    run = picard(lambda s: model(z, t, s), s0, 25)
    s_star = model.fixed_point(z, t)
    assert banach_violation(run.iterates, s_star, lipschitz, "a_priori") <= 1e-6
    assert banach_violation(run.iterates, s_star, lipschitz, "a_posteriori") <= 1e-6


@pytest.mark.parametrize("kind", ["linear", "tanh"])
def test_contraction_wrong_banach_constant_is_caught(kind):
    lipschitz = 0.6
    model, z = wrapped(kind, 1, lipschitz)
    run = picard(lambda s: model(z, 0.4, s), 0.1 * torch.ones_like(z) + model.fixed_point(z, 0.4), 25)
    s_star = model.fixed_point(z, 0.4)
    assert banach_violation(run.iterates, s_star, lipschitz, "a_priori") <= 1e-6
    assert banach_violation(run.iterates, s_star, lipschitz / 2, "a_priori") > 1.0
    assert banach_violation(run.iterates, s_star, lipschitz / 2, "a_posteriori") > 1.0


@VERIFY
@given(seed=seeds, lipschitz=lipschitz_values, kind=st.sampled_from(["linear", "tanh"]))
def test_contraction_unique_fixed_point_from_different_starts(seed, lipschitz, kind):
    model, z = wrapped(kind, seed, lipschitz)
    g = torch.Generator().manual_seed(seed + 1)
    starts = [4.0 * torch.randn(z.shape, generator=g) for _ in range(3)]
    for start in starts:
        end = picard(lambda s: model(z, 0.5, s), start, 400, tol=1e-12).iterates[-1]
        assert torch.allclose(end, model.fixed_point(z, 0.5), atol=1e-10)


@pytest.mark.parametrize("t", [0.1, 0.4, 0.8])
def test_mean_field_converges_under_weak_coupling(t):
    data, model, z = markov_problem(WEAK, t)
    g = torch.Generator().manual_seed(1)
    starts = (torch.zeros_like(z), torch.randn(z.shape, generator=g))
    runs = [picard(lambda s: model(z, t, s), start, 80) for start in starts]
    assert all(converged(run.residual_norms, 1e-10) for run in runs)
    assert torch.allclose(runs[0].iterates[-1], runs[1].iterates[-1], atol=1e-9)  # unique fixed point
    # mean field approximates the exact (forward-backward) posterior mean under weak coupling
    assert float((runs[0].iterates[-1] - data(z, t)).abs().max()) < 0.1


def test_mean_field_nonconvergence_detected_under_strong_coupling():
    _, model, z = markov_problem(STRONG, t=0.2)
    run = picard(lambda s: model(z, 0.2, s), torch.zeros_like(z), 80)
    assert not converged(run.residual_norms, 1e-6)
    late = run.iterates[-6:]
    assert float((late[-1] - late[-2]).abs().max()) > 0.1  # still moving ...
    assert torch.allclose(late[-1], late[-3], atol=1e-8)  # ... as a period-two oscillation


def test_mean_field_coupling_zero_is_the_independent_codebook_posterior():
    from fmlm.synthetic import CodebookData

    data, model, z = markov_problem(0.0, t=0.3)
    codebook = CodebookData(data.codebook)
    assert torch.allclose(model(z, 0.3, torch.randn_like(z)), codebook(z, 0.3), atol=1e-12)
    assert torch.allclose(data(z, 0.3), codebook(z, 0.3), atol=1e-12)


@VERIFY
@given(seed=seeds, n_iter=st.integers(0, 12), beta=st.floats(0.1, 1.0))
def test_anderson_m1_equals_picard(seed, n_iter, beta):
    model, z = wrapped("tanh", seed, 0.8)
    F = lambda s: model(z, 0.3, s)  # noqa: E731
    s0 = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    plain, accel = picard(F, s0, n_iter), anderson(F, s0, n_iter, m=1, beta=1.0)
    assert accel.evaluations == plain.evaluations == n_iter
    assert all(torch.equal(a, b) for a, b in zip(accel.iterates, plain.iterates))
    one = anderson(F, s0, 1, m=3, beta=beta)  # first step: s_1 = beta F(s_0) + (1 - beta) s_0
    assert torch.allclose(one.iterates[1], beta * F(s0) + (1 - beta) * s0, atol=1e-14)
    assert torch.equal(anderson(F, s0, 1, m=3).iterates[1], picard(F, s0, 1).iterates[1])


@VERIFY
@given(seed=seeds, lipschitz=st.floats(0.3, 0.95), kind=st.sampled_from(["linear", "tanh", "matrix"]))
def test_anderson_needs_no_more_evaluations_than_picard(seed, lipschitz, kind):
    if kind == "matrix":  # a random non-normal linear contraction with ||A|| = L
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(4, 6, 6, generator=g)
        a = lipschitz * a / torch.linalg.matrix_norm(a, 2)[:, None, None]
        b = torch.randn(4, 6, generator=g)
        F = lambda s: torch.bmm(a, s[..., None])[..., 0] + b  # noqa: E731
        s0 = torch.zeros(4, 6)
    else:
        model, z = wrapped(kind, seed, lipschitz)
        F = lambda s: model(z, 0.3, s)  # noqa: E731
        s0 = torch.zeros_like(z)
    tol = 1e-8
    plain, accel = picard(F, s0, 400, tol=tol), anderson(F, s0, 400, m=3, tol=tol)
    assert converged(plain.residual_norms, tol, window=1) and converged(accel.residual_norms, tol, window=1)
    assert evaluations_to_tol(accel.residual_norms, tol) == accel.evaluations
    assert accel.evaluations <= plain.evaluations


def test_anderson_reaches_mean_field_fixed_point_faster():
    _, model, z = markov_problem(WEAK, t=0.3)
    F = lambda s: model(z, 0.3, s)  # noqa: E731
    plain = evaluations_to_tol(picard(F, torch.zeros_like(z), 200).residual_norms, 1e-10)
    accel = evaluations_to_tol(anderson(F, torch.zeros_like(z), 200, m=3).residual_norms, 1e-10)
    assert accel <= plain < 200


def test_semigroup_fixed_point_flow_tanh_wrapped_mixture_is_the_exact_flow():
    """D* from iterating a nonlinear self-conditioned denoiser drives the exact flow: identity, semigroup,
    and agreement with the flow of the exact denoiser it wraps."""
    data, z = gaussian_problem(8, batch=2, length=2)
    model = TanhSelfConditioned(data, 0.7, mixing=orthogonal(2, 8))
    d_star = FixedPointDenoiser(model, n_iter=60, tol=1e-12)
    flow = lambda z, s, t: ode_flow_map(d_star, z, s, t, rtol=1e-9, atol=1e-11)  # noqa: E731
    assert identity_violation(flow, z, 0.3) == 0.0
    assert semigroup_violation(flow, z, 0.1, 0.5, 0.9) < 1e-6
    assert torch.allclose(flow(z, 0.1, 0.9), data.flow_map(z, 0.1, 0.9), atol=1e-6)


def test_semigroup_fixed_point_flow_mean_field():
    """The mean-field fixed point is not the exact posterior mean, yet its flow is a valid flow map."""
    _, model, z = markov_problem(WEAK, t=0.1, batch=2, length=3)
    d_star = FixedPointDenoiser(model, n_iter=60, tol=1e-11)
    flow = lambda z, s, t: ode_flow_map(d_star, z, s, t, rtol=1e-8, atol=1e-10)  # noqa: E731
    assert identity_violation(flow, z, 0.2) == 0.0
    assert semigroup_violation(flow, z, 0.1, 0.4, 0.8) < 1e-5
    # tangent at s: the map moves with the velocity of D* (finite difference of the ODE map)
    h = 1e-4
    derivative = (flow(z, 0.3, 0.3 + h) - z) / h
    assert torch.allclose(derivative, (d_star(z, 0.3) - z) / 0.7, atol=1e-3)
