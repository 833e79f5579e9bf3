import math

import pytest
import torch

from fmlm.math import TAU_E, TAU_T, c_skip, consistency_time, student_map, two_point_combination


def test_consistency_time_values():
    assert float(consistency_time(0)) == TAU_E
    k = torch.tensor([0, 1, 5])
    expected = TAU_E + (1 - torch.exp(-0.3 * k.double())) * (TAU_T - TAU_E)
    assert torch.allclose(consistency_time(k), expected)
    assert consistency_time(torch.tensor([1.0, 2.0], dtype=torch.float32)).dtype == torch.float32


def test_c_skip_values():
    assert float(c_skip(TAU_E)) == 0.0 and float(c_skip(TAU_T)) == 1.0 and float(c_skip(100.0)) == 1.0
    assert math.isclose(float(c_skip(2.501)), 0.5, rel_tol=1e-12)
    assert math.isclose(float(c_skip(2.501, g=2.0)), 0.25, rel_tol=1e-12)
    assert float(c_skip(0.0)) == 0.0


def test_two_point_combination_formula():
    g = torch.Generator().manual_seed(0)
    s_a, f_a, s_b, f_b = (torch.randn(2, 3, 4, generator=g, dtype=torch.float64) for _ in range(4))
    r_a, r_b = f_a - s_a, f_b - s_b
    dr = r_a - r_b
    a1 = -(r_b * dr).sum(dim=(1, 2)) / ((dr * dr).sum(dim=(1, 2)) + 1e-9)
    a1 = a1[:, None, None]
    beta = 0.7
    expected = beta * ((1 - a1) * f_b + a1 * f_a) + (1 - beta) * ((1 - a1) * s_b + a1 * s_a)
    assert torch.allclose(two_point_combination(s_a, f_a, s_b, f_b, beta), expected)


def test_two_point_combination_solves_scalar_affine_maps_exactly():
    """For F(s) = a s + b (per row, 1-d) one secant/Anderson step lands on the fixed point b / (1 - a)."""
    a, b = torch.tensor([0.5, -0.3]), torch.tensor([1.0, 2.0])
    F = lambda s: a[:, None] * s + b[:, None]  # noqa: E731
    s_a, s_b = torch.tensor([[0.3], [1.0]]), torch.tensor([[-1.0], [0.2]])
    out = two_point_combination(s_a, F(s_a), s_b, F(s_b))
    assert torch.allclose(out[:, 0], b / (1 - a), atol=1e-5)


def test_student_map_boundaries():
    f = torch.randn(2, 3, 4)
    zero = torch.zeros_like(f)
    assert torch.equal(student_map(zero, f, zero, f, TAU_E), f)
    s_a = torch.randn_like(f)
    assert torch.equal(student_map(s_a, f, zero, f, TAU_T), s_a)
    taus = torch.tensor([TAU_E, TAU_T])
    out = student_map(s_a, f, zero, f + 1, taus)
    assert torch.equal(out[1], s_a[1])


def test_consistency_errors():
    with pytest.raises(ValueError, match="k must be >= 0"):
        consistency_time(-1)
    with pytest.raises(ValueError, match="T must exceed e"):
        c_skip(0.5, e=1.0, T=1.0)
    with pytest.raises(ValueError, match="tau must be finite"):
        c_skip(float("nan"))
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="beta"):
        two_point_combination(x, x, x, x, beta=0.0)
    with pytest.raises(ValueError, match="same shape"):
        two_point_combination(x, x, x, torch.zeros(2, 4))
