import pytest
import torch

from fmlm.math import LAM, T_EPS, euler_step, interpolate, velocity_to_x, x_to_velocity


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_interpolate_endpoints_and_dtype(dtype):
    x0, eps = torch.randn(4, 3, 2, dtype=dtype), torch.randn(4, 3, 2, dtype=dtype)
    assert torch.equal(interpolate(x0, eps, 1.0), x0)
    assert torch.allclose(interpolate(x0, eps, 0.0), LAM * eps)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=dtype)
    z = interpolate(x0, eps, t)
    assert z.dtype == dtype and z.shape == x0.shape
    assert torch.allclose(z[1], 0.25 * x0[1] + 0.75 * LAM * eps[1])


@pytest.mark.parametrize("t", [0.0, 0.3, 0.97, 1.0])
def test_velocity_round_trip(t):
    z, x = torch.randn(3, 5, 4, dtype=torch.float64), torch.randn(3, 5, 4, dtype=torch.float64)
    v = x_to_velocity(x, z, t)
    assert torch.allclose(velocity_to_x(v, z, t), x, atol=1e-12)
    assert torch.allclose(x_to_velocity(velocity_to_x(v, z, t), z, t), v, atol=1e-12)
    assert torch.allclose(v, (x - z) / max(1 - t, T_EPS))


def test_euler_step_with_implied_velocity_lands_on_the_prediction():
    z, x = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    t = torch.tensor([0.2, 0.6], dtype=torch.float64)
    assert torch.allclose(euler_step(z, x_to_velocity(x, z, t), t, 1.0), x)


def test_zero_length_euler_step_is_identity():
    z, v = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    assert torch.equal(euler_step(z, v, 0.4, 0.4), z)
    t = torch.tensor([0.1, 0.5, 1.0])
    assert torch.equal(euler_step(z, v, t, t), z)


def test_interpolant_errors_name_the_argument():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="t must not exceed t_next"):
        euler_step(z, z, 0.5, 0.4)
    with pytest.raises(ValueError, match=r"t_next must lie in \[0, 1\]"):
        euler_step(z, z, 0.5, 1.2)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        interpolate(z, z, torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match="v must be finite"):
        euler_step(z, torch.full_like(z, float("nan")), 0.1, 0.2)
    with pytest.raises(ValueError, match="same shape"):
        x_to_velocity(torch.zeros(2, 4), z, 0.3)
    with pytest.raises(ValueError, match="t_eps"):
        x_to_velocity(z, z, 0.3, t_eps=0.0)
