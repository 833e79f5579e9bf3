import math

import pytest
import torch

from fmlm.math import (
    P_MEAN,
    logit_normal_quantile,
    quantile_grid,
    sample_logit_normal,
    sample_two_time,
    sorted_draw_grid,
)


def test_sample_logit_normal_shape_dtype_reproducible():
    a = sample_logit_normal((4, 3), generator=torch.Generator().manual_seed(1))
    b = sample_logit_normal((4, 3), generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 3) and a.dtype == torch.float32 and torch.equal(a, b)
    assert bool(((a > 0) & (a < 1)).all())
    c = sample_logit_normal(5, dtype=torch.float64)
    assert c.shape == (5,) and c.dtype == torch.float64


def test_logit_normal_quantile_endpoints_median_and_dtype():
    assert float(logit_normal_quantile(0.0)) == 0.0 and float(logit_normal_quantile(1.0)) == 1.0
    assert math.isclose(float(logit_normal_quantile(0.5)), 1 / (1 + math.exp(-P_MEAN)), rel_tol=1e-14)
    q = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float32)
    out = logit_normal_quantile(q)
    assert out.dtype == torch.float32 and out[0] == 0 and out[-1] == 1


def test_grids():
    grid = quantile_grid(4)
    assert grid.dtype == torch.float64 and grid.shape == (5,)
    assert torch.allclose(grid[1:-1], logit_normal_quantile(torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)))
    assert torch.equal(quantile_grid(1), torch.tensor([0.0, 1.0], dtype=torch.float64))
    draws = sorted_draw_grid(6, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    assert draws.dtype == torch.float32 and draws[0] == 0 and draws[-1] == 1 and bool((draws.diff() > 0).all())


def test_sample_two_time_shapes_and_dtypes():
    sample = sample_two_time(16, generator=torch.Generator().manual_seed(0))
    for x in (sample.s, sample.u, sample.t, sample.tau_s, sample.tau_u, sample.tau_t):
        assert x.shape == (16,) and x.dtype == torch.float32
    assert sample.diagonal.dtype == torch.bool
    only_diag = sample_two_time(8, diagonal_prob=1.0)
    assert bool((only_diag.s == only_diag.t).all())
    only_boundary = sample_two_time(8, diagonal_prob=0.0, boundary_prob=1.0)
    assert bool((only_boundary.s == 0).all() and (only_boundary.t == 1).all())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: quantile_grid(0), "n_steps"),
        (lambda: sorted_draw_grid(-1), "n_steps"),
        (lambda: logit_normal_quantile(1.5), r"q must lie in \[0, 1\]"),
        (lambda: logit_normal_quantile(0.5, p_std=0.0), "p_std"),
        (lambda: sample_two_time(4, diagonal_prob=1.5), "diagonal_prob"),
        (lambda: sample_two_time(4, boundary_prob=-0.1), "boundary_prob"),
        (lambda: sample_two_time(0), "batch"),
    ],
)
def test_time_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
