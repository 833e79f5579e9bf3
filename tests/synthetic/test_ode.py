import pytest
import torch

from fmlm.synthetic import GaussianData, ode_flow_map, pf_velocity


def test_ode_flow_map_identity_and_accuracy():
    data = GaussianData(torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64))
    z = torch.randn(4, 1, dtype=torch.float64)
    assert torch.equal(ode_flow_map(data, z, 0.3, 0.3), z)
    assert torch.allclose(ode_flow_map(data, z, 0.0, 0.8), data.flow_map(z, 0.0, 0.8), atol=1e-8)
    z32 = z.float()
    assert ode_flow_map(data, z32, 0.1, 0.2).dtype == torch.float32


def test_ode_errors():
    data = GaussianData(torch.zeros(1), torch.ones(1))
    with pytest.raises(ValueError, match="t must be < 1"):
        ode_flow_map(data, torch.zeros(2, 1), 0.2, 1.0)
    with pytest.raises(ValueError, match="s must not exceed t"):
        ode_flow_map(data, torch.zeros(2, 1), 0.5, 0.2)
    with pytest.raises(ValueError, match="t must be < 1"):
        pf_velocity(data, torch.zeros(2, 1), 1.0)
