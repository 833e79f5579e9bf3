"""Flow-map properties: identity, tangent condition, semigroup, and the gamma target (docs/method.md section 8)."""

from __future__ import annotations

import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from fmlm.math import compose_flow_maps, flow_map, quantile_grid, semigroup_weight
from verify.checks import gamma_violation, identity_violation, semigroup_violation, tangent_violation
from verify.strategies import MIN_GAP, VERIFY, gaussian_problem, ordered_triples, seeds, times

TOL = 1e-10


def exact_gamma(s: float, u: float, t: float) -> float:
    return float(semigroup_weight(s, u, t))


def wrong_gamma(s: float, u: float, t: float) -> float:
    """A plausible-looking but wrong weight: the fraction of the interval covered by the first jump."""
    return (u - s) / (t - s) if t > s else 1.0


def euler_map(data):
    """``X_{s,t}(z) = z + (t - s) v(z, s)``: one Euler step of the flow, tangent but not a semigroup."""
    return lambda z, s, t: z + (t - s) * (data(z, s) - z) / (1.0 - s)


@VERIFY
@given(seed=seeds, s=times)
def test_flow_map_identity_gaussian(seed, s):
    data, z = gaussian_problem(seed)
    assert identity_violation(data.flow_map, z, s) < TOL
    # the two-time parametrisation is the identity at s = t whatever D is
    assert identity_violation(lambda z, a, b: flow_map(z, data.two_time(z, a, b), a, b), z, s) == 0.0


@VERIFY
@given(seed=seeds, s=st.floats(min_value=0.0, max_value=0.9))
def test_flow_map_tangent_gaussian(seed, s):
    data, z = gaussian_problem(seed)
    assert tangent_violation(data.two_time, z, s) < 1e-6


@VERIFY
@given(seed=seeds, stu=ordered_triples())
def test_semigroup_exact_gaussian_flow_map(seed, stu):
    data, z = gaussian_problem(seed)
    assert semigroup_violation(data.flow_map, z, *stu) < TOL


@VERIFY
@given(seed=seeds, stu=ordered_triples())
def test_semigroup_two_time_denoiser_map(seed, stu):
    """The map ``flow_map(z, D(z, s, t), s, t)`` built from the exact two-time denoiser is a semigroup."""
    s, u, t = stu
    data, z = gaussian_problem(seed)
    built = lambda z, a, b: flow_map(z, data.two_time(z, a, b), a, b)  # noqa: E731
    assert semigroup_violation(built, z, s, u, t) < 1e-8
    assert torch.allclose(built(z, s, t), data.flow_map(z, s, t), atol=1e-8)


@VERIFY
@given(seed=seeds, stu=ordered_triples())
def test_semigroup_gamma_target_reproduces_flow_map(seed, stu):
    data, z = gaussian_problem(seed)
    assert gamma_violation(exact_gamma, data.two_time, z, *stu) < 1e-8


@VERIFY
@given(seed=seeds, stu=ordered_triples())
def test_semigroup_weight_in_unit_interval(seed, stu):
    gamma = exact_gamma(*stu)
    assert 0.0 <= gamma <= 1.0


def test_semigroup_wrong_gamma_is_caught():
    data, z = gaussian_problem(3)
    s, u, t = 0.1, 0.4, 0.8
    assert gamma_violation(exact_gamma, data.two_time, z, s, u, t) < 1e-10
    assert gamma_violation(wrong_gamma, data.two_time, z, s, u, t) > 1e-2


def test_semigroup_non_semigroup_map_is_caught():
    data, z = gaussian_problem(4)
    s, u, t = 0.1, 0.4, 0.8
    euler = euler_map(data)
    # the Euler map passes identity and tangency, so only the semigroup check can reject it
    assert identity_violation(euler, z, s) == 0.0
    assert semigroup_violation(euler, z, s, u, t) > 1e-2
    assert semigroup_violation(data.flow_map, z, s, u, t) < TOL


def test_semigroup_gamma_identity_sympy():
    """Compose two maps symbolically, solve for D(z, s, t), read off gamma; compare with the code."""
    s, u, t, z, a, b, d = sp.symbols("s u t z A B D")
    X = lambda z, d, s, t: (1 - t) / (1 - s) * z + (t - s) / (1 - s) * d  # noqa: E731
    composed = X(X(z, a, s, u), b, u, t)
    (d_sol,) = sp.solve(sp.Eq(X(z, d, s, t), composed), d)
    gamma = sp.simplify(sp.diff(d_sol, a))
    assert sp.simplify(sp.diff(d_sol, z)) == 0  # D is a combination of A and B only
    assert sp.simplify(sp.diff(d_sol, b) - (1 - gamma)) == 0  # ... an affine one
    documented = (1 - t) * (u - s) / ((1 - u) * (t - s))
    assert sp.simplify(gamma - documented) == 0
    assert sp.simplify(gamma - (u - s) / (t - s)) != 0  # the check can tell a wrong weight
    numeric = sp.lambdify((s, u, t), gamma)
    g = torch.Generator().manual_seed(0)
    for stu in torch.sort(torch.rand(50, 3, generator=g) * 0.98, dim=1).values.tolist():
        if stu[2] - stu[0] > MIN_GAP:
            assert abs(numeric(*stu) - exact_gamma(*stu)) < 1e-12


def test_semigroup_compose_flow_maps_matches_single_jump():
    """Composing the exact two-time denoiser's maps over a grid equals one jump ``X_{0, t_N}``."""
    data, z = gaussian_problem(5)
    grid = quantile_grid(8)[:-1]  # stop short of t = 1
    out = compose_flow_maps(z, data.two_time, grid)
    assert torch.allclose(out, data.flow_map(z, 0.0, float(grid[-1])), atol=1e-9)
