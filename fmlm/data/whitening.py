"""Scalar whitening of encoder latents: ``x0 = (E(ids) - mu) / sigma``.

``mu`` and ``sigma`` are two scalars: the mean and the (population) standard deviation of every entry
of ``E(ids)`` over a sample of rows (paper, GPT-2 Large on OpenWebText, 50k rows:
mu = -0.009134, sigma = 0.925011). Moments are merged batch by batch in float64 (Chan et al.'s
parallel update), so large means do not cancel the variance.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

MIN_SIGMA = 1e-12  # a standard deviation at or below this means a constant encoder: whitening is undefined


def whiten(h: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    """``x0 = (h - mu) / sigma``."""
    return (h - mu) / sigma


def unwhiten(x0: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    """``h = x0 * sigma + mu`` (inverse of ``whiten``)."""
    return x0 * sigma + mu


class RunningMoments:
    """Count, mean and sum of squared deviations of all entries seen, merged per batch in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, values: torch.Tensor) -> None:
        """Merge the entries of ``values``: ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``."""
        v = values.detach().reshape(-1).to(torch.float64)
        n_b = v.numel()
        if n_b == 0:
            return
        mean_b = float(v.mean())
        m2_b = float(((v - mean_b) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    @property
    def std(self) -> float:
        """Population standard deviation ``sqrt(M2 / n)``."""
        if self.count == 0:
            raise ValueError("RunningMoments: no values seen")
        return math.sqrt(self.m2 / self.count)


def stats_row_indices(n_total: int, n_rows: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of ``n_rows`` distinct row indices out of ``n_total``."""
    if not 1 <= n_rows <= n_total:
        raise ValueError(f"n_rows: must lie in [1, {n_total}] (rows available), got {n_rows}")
    if n_rows == n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n_rows, replace=False))


def estimate_whitening(encoder, ids: np.ndarray, n_rows: int, batch_size: int, seed: int = 0) -> tuple[float, float]:
    """(mu, sigma) of ``encoder.encode`` over a seeded sample of ``n_rows`` rows of ``ids`` ``(N, L)``."""
    if ids.ndim != 2:
        raise ValueError(f"ids: expected shape (N, L), got {ids.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be positive, got {batch_size}")
    rows = stats_row_indices(len(ids), n_rows, seed)
    moments = RunningMoments()
    batches = range(0, len(rows), batch_size)
    for start in tqdm(batches, desc="whitening stats", unit="batch", leave=False, disable=None):
        batch = np.asarray(ids[rows[start:start + batch_size]])
        moments.update(encoder.encode(batch))
    sigma = moments.std
    if sigma <= MIN_SIGMA:
        raise ValueError(f"encoder: latents are constant (sigma = {sigma}); whitening is undefined")
    return moments.mean, sigma
