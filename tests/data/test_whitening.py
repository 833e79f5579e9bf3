"""Scalar whitening: the running moments and the estimate over encoder outputs."""

import numpy as np
import pytest
import torch

from fmlm.data.whitening import RunningMoments, estimate_whitening, stats_row_indices, unwhiten, whiten


class AffineEncoder:
    """encode(ids) = a * ids + b broadcast over a feature axis: known mean and std."""

    def __init__(self, a: float, b: float, dim: int = 3):
        self.a, self.b, self.dim = a, b, dim

    def encode(self, ids):
        x = torch.as_tensor(np.asarray(ids), dtype=torch.float64)
        return (self.a * x + self.b).unsqueeze(-1).expand(*x.shape, self.dim).float()


def test_running_moments_match_numpy_with_a_large_offset():
    rng = np.random.default_rng(0)
    data = 1e4 + rng.standard_normal(10_000)
    moments = RunningMoments()
    for chunk in np.array_split(data, 7):
        moments.update(torch.from_numpy(chunk))
    assert moments.count == 10_000
    assert moments.mean == pytest.approx(data.mean(), rel=1e-12)
    assert moments.std == pytest.approx(data.std(), rel=1e-9)


def test_estimate_on_known_data_all_rows():
    ids = np.arange(40, dtype=np.int32).reshape(10, 4)
    mu, sigma = estimate_whitening(AffineEncoder(2.0, -1.0), ids, n_rows=10, batch_size=3)
    values = 2.0 * np.arange(40) - 1.0
    assert mu == pytest.approx(values.mean(), rel=1e-6)
    assert sigma == pytest.approx(values.std(), rel=1e-6)


def test_estimate_on_a_subset_uses_the_seeded_rows():
    ids = np.arange(400, dtype=np.int32).reshape(100, 4)
    rows = stats_row_indices(100, 20, seed=5)
    assert len(set(rows.tolist())) == 20 and np.all(np.diff(rows) > 0)
    mu, sigma = estimate_whitening(AffineEncoder(1.0, 0.0), ids, n_rows=20, batch_size=8, seed=5)
    assert mu == pytest.approx(ids[rows].mean()) and sigma == pytest.approx(ids[rows].std())


def test_whitened_latents_have_zero_mean_unit_std_and_invert():
    h = 3.0 + 0.5 * torch.randn(64, 16, 8, dtype=torch.float64)
    mu, sigma = float(h.mean()), float(h.std(unbiased=False))
    x0 = whiten(h, mu, sigma)
    assert float(x0.mean()) == pytest.approx(0.0, abs=1e-12)
    assert float(x0.std(unbiased=False)) == pytest.approx(1.0, rel=1e-12)
    assert torch.allclose(unwhiten(x0, mu, sigma), h)


def test_bad_inputs():
    ids = np.zeros((4, 3), dtype=np.int32)
    with pytest.raises(ValueError, match="n_rows"):
        estimate_whitening(AffineEncoder(1.0, 0.0), ids, n_rows=5, batch_size=2)
    with pytest.raises(ValueError, match="constant"):
        estimate_whitening(AffineEncoder(0.0, 1.0), ids, n_rows=4, batch_size=2)
    with pytest.raises(ValueError, match="RunningMoments"):
        RunningMoments().std
