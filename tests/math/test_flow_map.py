import pytest
import torch

from fmlm.math import compose_flow_maps, flow_map, flow_map_denoiser, semigroup_target, semigroup_weight


def test_flow_map_identity_and_endpoint():
    z, x = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    for s in (0.0, 0.4, 1.0):
        assert torch.equal(flow_map(z, x, s, s), z)
    assert torch.allclose(flow_map(z, x, 0.3, 1.0), x)
    s = torch.tensor([0.0, 0.5, 1.0])
    out = flow_map(z, x, s, torch.tensor([0.5, 0.5, 1.0]))
    assert torch.equal(out[1:], z[1:]) and torch.allclose(out[0], 0.5 * z[0] + 0.5 * x[0])


def test_flow_map_denoiser_inverts_flow_map():
    z, x = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    s, t = torch.tensor([0.0, 0.2, 0.5, 0.9]), torch.tensor([0.3, 0.2, 1.0, 0.95])
    one_time = torch.randn(4, 3, dtype=torch.float64)
    d = flow_map_denoiser(z, flow_map(z, x, s, t), s, t, on_diagonal=one_time)
    assert torch.allclose(d[[0, 2, 3]], x[[0, 2, 3]], atol=1e-10)
    assert torch.equal(d[1], one_time[1])
    with pytest.raises(ValueError, match="on_diagonal"):
        flow_map_denoiser(z, z, s, t)


def test_semigroup_weight_values_and_degenerate_cases():
    assert torch.allclose(semigroup_weight(0.0, 0.5, 1.0), torch.tensor(0.0, dtype=torch.float64))
    gamma = semigroup_weight(0.2, 0.5, 0.8)
    assert torch.allclose(gamma, torch.tensor(0.2 * 0.3 / (0.5 * 0.6), dtype=torch.float64))
    assert float(semigroup_weight(0.3, 0.3, 0.3)) == 1.0  # t = s
    assert float(semigroup_weight(0.2, 1.0, 1.0)) == 1.0  # u = 1
    assert float(semigroup_weight(0.2, 0.2, 0.7)) == 0.0  # u = s: target is B
    assert float(semigroup_weight(0.2, 0.7, 0.7)) == 1.0  # u = t: target is A
    batch = semigroup_weight(torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.3]), torch.tensor([0.4, 0.3]))
    assert batch.shape == (2,) and float(batch[1]) == 1.0


def test_semigroup_target_combines_per_row():
    a, b = torch.ones(2, 3, 2), torch.zeros(2, 3, 2)
    s, u, t = torch.tensor([0.2, 0.2]), torch.tensor([0.2, 0.6]), torch.tensor([0.6, 0.6])
    out = semigroup_target(a, b, s, u, t)
    assert torch.equal(out[0], b[0]) and torch.equal(out[1], a[1])


def test_compose_flow_maps_calls_per_row_times():
    z, x = torch.randn(3, 2), torch.randn(3, 2)
    seen = []

    def denoise(z_, s, t):
        seen.append((s.shape, t.shape))
        return x

    out = compose_flow_maps(z, denoise, [0.0, 0.5, 0.5, 1.0])
    assert torch.allclose(out, x) and seen == [((3,), (3,))] * 3
    assert torch.equal(compose_flow_maps(z, denoise, torch.tensor([0.3])), z)


def test_flow_map_errors():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="s must not exceed t"):
        flow_map(z, z, 0.6, 0.5)
    with pytest.raises(ValueError, match=r"s must lie in \[0, 1\]"):
        flow_map(z, z, -0.1, 0.5)
    with pytest.raises(ValueError, match="u must not exceed t"):
        semigroup_weight(0.1, 0.6, 0.5)
    with pytest.raises(ValueError, match="s must not exceed u"):
        semigroup_weight(0.4, 0.3, 0.5)
    with pytest.raises(ValueError, match="times"):
        compose_flow_maps(z, lambda z, s, t: z, [0.5, 0.2])
