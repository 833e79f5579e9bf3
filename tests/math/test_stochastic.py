import math

import pytest
import torch

from fmlm.math import LAM, ctm_step, ctm_target_time, flow_map, sde_churn


def test_ctm_target_time():
    assert math.isclose(float(ctm_target_time(0.5, 0.0)), 0.5, rel_tol=1e-15)
    assert float(ctm_target_time(0.5, 1.0)) == 1.0
    assert math.isclose(float(ctm_target_time(0.2, 0.6)), 1 - 0.8 * 0.8, rel_tol=1e-14)
    per_row = ctm_target_time(torch.tensor([0.1, 0.4]), torch.tensor([0.0, 1.0]))
    assert torch.allclose(per_row, torch.tensor([0.1, 1.0]))


def test_ctm_step_gamma_zero_is_the_flow_map_formula():
    z, x = torch.randn(3, 4, 2, dtype=torch.float64), torch.randn(3, 4, 2, dtype=torch.float64)
    out = ctm_step(z, x, 0.3, 0.7, 0.0, torch.randn_like(z))
    assert torch.allclose(out, flow_map(z, x, 0.3, 0.7), atol=1e-12)


def test_ctm_step_gamma_one_uses_only_fresh_noise():
    z, x, eps = (torch.randn(2, 3, dtype=torch.float64) for _ in range(3))
    out = ctm_step(z, x, 0.3, 0.6, 1.0, eps)
    assert torch.allclose(out, 0.6 * x + 0.4 * LAM * eps)


def test_ctm_step_zero_length_gamma_zero_is_identity_and_last_step_is_xhat():
    z, x = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    assert torch.allclose(ctm_step(z, x, 0.4, 0.4, 0.0, torch.randn_like(z)), z, atol=1e-14)
    assert torch.equal(ctm_step(z, x, 0.4, 1.0, 0.5, torch.randn_like(z)), x)


def test_sde_churn():
    z, eps = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    z_b, t_b = sde_churn(z, 0.5, 0.6, 0.0, eps)
    assert torch.equal(z_b, z) and float(t_b) == 0.5
    z_b, t_b = sde_churn(z, 0.5, 0.7, 1.5, eps)
    alpha = 1 - 1.5 * 0.2
    assert math.isclose(float(t_b), alpha * 0.5, rel_tol=1e-6)
    assert torch.allclose(z_b, alpha * z + (1 - alpha) * LAM * eps)
    z_b, t_b = sde_churn(z, torch.tensor([0.0, 0.2]), torch.tensor([1.0, 0.3]), 2.0, eps)
    assert torch.allclose(t_b, torch.tensor([0.0, 0.16])) and torch.allclose(z_b[0], LAM * eps[0])


def test_stochastic_errors():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="gamma must lie in"):
        ctm_step(z, z, 0.2, 0.4, 1.2, z)
    with pytest.raises(ValueError, match="t must be < 1"):
        ctm_step(z, z, 1.0, 1.0, 0.5, z)
    with pytest.raises(ValueError, match="t must not exceed t_next"):
        ctm_step(z, z, 0.5, 0.4, 0.5, z)
    with pytest.raises(ValueError, match="t must not exceed t_next"):
        sde_churn(z, 0.5, 0.4, 1.0, z)
    with pytest.raises(ValueError, match="gam"):
        sde_churn(z, 0.2, 0.4, -1.0, z)
    with pytest.raises(ValueError, match="gamma must lie in"):
        ctm_target_time(0.5, -0.1)
