"""Self-conditioning as a fixed-point iteration: contraction, Banach bounds, uniqueness, mean field,
Anderson versus Picard, and flows driven by the fixed-point denoiser (docs/method.md section 6)."""

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
from verify.checks import banach_violation, converged, evaluations_to_tol, lipschitz_estimate
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
def test_contraction_measured_lipschitz_is_the_constructed_constant(seed, lipschitz, kind, t):
    """No difference ratio of F exceeds the constructed L, and ratios next to the fixed point attain it
    (so the Banach checks below run with the sharp constant)."""
    model, z = wrapped(kind, seed, lipschitz)
    F = lambda s: model(z, t, s)  # noqa: E731
    points, directions = random_directions(z, seed)
    measured = lipschitz_estimate(F, points, directions, step=1e-3)
    assert measured <= lipschitz * (1 + 1e-9)
    if kind == "linear":
        assert abs(measured - lipschitz) < 1e-9
    near = lipschitz_estimate(F, model.fixed_point(z, t) + 1e-4 * points, directions, step=1e-4)
    assert near >= lipschitz * (1 - 1e-5)


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
    for kind in ("a_priori", "a_posteriori", "step"):
        assert banach_violation(run.iterates, s_star, lipschitz, kind) <= 1e-6


@pytest.mark.parametrize("kind", ["linear", "tanh"])
def test_contraction_wrong_banach_constant_is_caught(kind):
    lipschitz = 0.6
    model, z = wrapped(kind, 1, lipschitz)
    run = picard(lambda s: model(z, 0.4, s), 0.1 * torch.ones_like(z) + model.fixed_point(z, 0.4), 25)
    s_star = model.fixed_point(z, 0.4)
    assert banach_violation(run.iterates, s_star, lipschitz, "a_priori") <= 1e-6
    for kind in ("a_priori", "a_posteriori", "step"):
        assert banach_violation(run.iterates, s_star, lipschitz / 2, kind) > 1.0


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


def test_fixed_point_flow_tanh_wrapped_gaussian_is_the_exact_flow():
    """D* from iterating a nonlinear self-conditioned denoiser drives the exact flow: its ODE map
    X_{0.1,0.9} is the closed-form Gaussian flow map (the first pass F(0) is not D*, so it would not be)."""
    data, z = gaussian_problem(8, batch=2, length=2)
    model = TanhSelfConditioned(data, 0.7, mixing=orthogonal(2, 8))
    d_star = FixedPointDenoiser(model, n_iter=60, tol=1e-12)
    assert float((model(z, 0.1, torch.zeros_like(z)) - data(z, 0.1)).abs().max()) > 1e-2
    flow = ode_flow_map(d_star, z, 0.1, 0.9, rtol=1e-9, atol=1e-11)
    assert torch.allclose(flow, data.flow_map(z, 0.1, 0.9), atol=1e-6)


def test_fixed_point_flow_mean_field_moves_with_the_fixed_point_velocity():
    """The flow of the mean-field D* (Anderson from a zero slot inside the ODE) moves, at the interior
    point x_u = X_{0.1,u}(z), with velocity (s* - x_u)/(1 - u), where s* = F(s*) is solved for
    separately (Picard from a random start) and the flow's velocity is a second-order difference of
    the flow map. The mean-field s* is neither the first pass F(0) nor the exact posterior mean, and
    both of those would give a velocity that fails the check."""
    data, model, z = markov_problem(WEAK, t=0.1, batch=2, length=3)
    d_star = FixedPointDenoiser(model, n_iter=60, tol=1e-11)
    flow = lambda z, s, t: ode_flow_map(d_star, z, s, t, rtol=1e-8, atol=1e-10)  # noqa: E731
    u, h = 0.5, 1e-4
    x_u = flow(z, 0.1, u)
    derivative = (-3.0 * x_u + 4.0 * flow(x_u, u, u + h) - flow(x_u, u, u + 2.0 * h)) / (2.0 * h)
    F = lambda s: model(x_u, u, s)  # noqa: E731
    start = torch.randn(x_u.shape, generator=torch.Generator().manual_seed(3))
    s_star = picard(F, start, 200, tol=1e-12).iterates[-1]
    assert float((F(s_star) - s_star).abs().max()) < 1e-11
    velocity = lambda d: (d - x_u) / (1.0 - u)  # noqa: E731
    assert float((derivative - velocity(s_star)).abs().max()) < 1e-6
    for other in (F(torch.zeros_like(x_u)), data(x_u, u)):  # the check can tell them apart
        assert float((velocity(other) - velocity(s_star)).abs().max()) > 1e-2
