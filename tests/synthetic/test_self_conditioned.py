import pytest
import torch

from fmlm.synthetic import FixedPointDenoiser, GaussianData, LinearSelfConditioned, TanhSelfConditioned


def base():
    return GaussianData(torch.tensor([0.2, -0.4], dtype=torch.float64), torch.tensor([0.5, 1.5], dtype=torch.float64))


def test_fixed_point_is_the_exact_denoiser():
    z = torch.randn(3, 4, 2, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(2, 2, dtype=torch.float64))[0]
    for model in (LinearSelfConditioned(base(), 0.7), TanhSelfConditioned(base(), 0.7, mixing=q)):
        exact = base()(z, 0.3)
        assert torch.allclose(model(z, 0.3, exact), exact)
        assert torch.allclose(model.fixed_point(z, 0.3), exact)
        assert torch.allclose(FixedPointDenoiser(model, 60, tol=1e-12)(z, 0.3), exact, atol=1e-10)


def test_linear_wrapper_formula_and_zero_slot():
    z = torch.randn(2, 2, dtype=torch.float64)
    model = LinearSelfConditioned(base(), 0.25)
    exact = base()(z, 0.6)
    assert torch.allclose(model(z, 0.6, torch.zeros_like(z)), 0.75 * exact)


def test_fixed_point_denoiser_raises_when_the_iteration_does_not_settle():
    z = torch.randn(2, 2, dtype=torch.float64)
    expanding = LinearSelfConditioned(base(), 1.5)
    with pytest.raises(ValueError, match="did not converge"):
        FixedPointDenoiser(expanding, 10, m=1, tol=1e-8)(z, 0.4)


def test_self_conditioned_errors():
    with pytest.raises(ValueError, match="lipschitz"):
        LinearSelfConditioned(base(), -0.1)
    with pytest.raises(ValueError, match="orthogonal"):
        TanhSelfConditioned(base(), 0.5, mixing=torch.ones(2, 2))
    with pytest.raises(ValueError, match="same shape"):
        LinearSelfConditioned(base(), 0.5)(torch.zeros(2, 2), 0.3, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_iter"):
        FixedPointDenoiser(LinearSelfConditioned(base(), 0.5), 0)
