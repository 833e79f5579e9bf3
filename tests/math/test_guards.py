import math

import pytest
import torch

from fmlm.math.guards import as_time_tensors, check_finite, check_ordered, check_times, expand_like, row_dot, row_norms


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, torch.tensor([0.2, 1.01]), torch.tensor([math.nan])])
def test_check_times_rejects_values_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=r"t_next must lie in \[0, 1\]"):
        check_times("t_next", bad)


@pytest.mark.parametrize("good", [0, 0.0, 1.0, 0.5, torch.tensor(1.0), torch.tensor([0.0, 0.3, 1.0])])
def test_check_times_accepts_unit_interval(good):
    check_times("t", good)


def test_check_ordered_names_both_arguments():
    check_ordered("s", torch.tensor([0.1, 0.5]), "t", torch.tensor([0.1, 0.6]))
    check_ordered("s", 0.2, "t", torch.tensor([0.3, 0.4]))
    with pytest.raises(ValueError, match="s must not exceed t"):
        check_ordered("s", torch.tensor([0.1, 0.7]), "t", 0.6)


def test_check_finite():
    check_finite("x", torch.ones(3))
    check_finite("ids", torch.tensor([1, 2]))
    for bad in (torch.tensor([1.0, math.nan]), torch.tensor([math.inf])):
        with pytest.raises(ValueError, match="s0 must be finite"):
            check_finite("s0", bad)


def test_expand_like_shapes_dtype_device():
    x = torch.zeros(3, 4, 5, dtype=torch.float32)
    assert expand_like(0.5, x).shape == () and expand_like(0.5, x).dtype == torch.float32
    t = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    out = expand_like(t, x)
    assert out.shape == (3, 1, 1) and out.dtype == torch.float32
    assert torch.equal((out * torch.ones_like(x))[:, 2, 3], t.float())
    with pytest.raises(ValueError, match="shape"):
        expand_like(torch.tensor([0.1, 0.2]), x)
    with pytest.raises(ValueError, match="shape"):
        expand_like(torch.zeros(3, 1), x)


def test_as_time_tensors_promotes_and_broadcasts():
    a, b = as_time_tensors(0.5, torch.tensor([0.1, 0.2], dtype=torch.float32))
    assert a.shape == b.shape == (2,) and a.dtype == b.dtype == torch.float32
    (c,) = as_time_tensors(0.25)
    assert c.dtype == torch.float64


def test_row_reductions():
    a = torch.arange(12.0).reshape(2, 3, 2)
    assert torch.allclose(row_norms(a), a.reshape(2, -1).norm(dim=1))
    assert torch.allclose(row_dot(a, a), row_norms(a) ** 2)
