"""Hypothesis profile, strategies and small synthetic problems shared by the verify/ suite."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fmlm.synthetic import GaussianData

settings.register_profile(
    "fmlm-verify",
    deadline=None,
    max_examples=15,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VERIFY = settings.get_profile("fmlm-verify")
"""Apply with ``@VERIFY`` (float64 comes from the autouse fixture in conftest.py)."""

T_MAX = 0.95
"""Largest time drawn for ODE-free checks that divide by ``1 - t``; keeps them well conditioned."""

MIN_GAP = 1e-3
"""Smallest ``t - s`` drawn where a two-time denoiser is compared directly (its cancellation is ~eps/gap)."""

seeds = st.integers(min_value=0, max_value=2**31 - 1)
times = st.floats(min_value=0.0, max_value=T_MAX, allow_nan=False)


@st.composite
def ordered_triples(draw, low: float = 0.0, high: float = T_MAX) -> tuple[float, float, float]:
    """``s <= u <= t`` in ``[low, high]``, sometimes with ties."""
    values = sorted(draw(st.floats(min_value=low, max_value=high, allow_nan=False)) for _ in range(3))
    return values[0], values[1], values[2]


def gaussian_problem(seed: int, batch: int = 4, length: int = 3, dim: int = 2) -> tuple[GaussianData, torch.Tensor]:
    """A random per-dim Gaussian (``mu``, ``var`` of shape ``(L, d)``) and a batch of latents ``(B, L, d)``."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(length, dim, generator=g, dtype=torch.float64)
    var = 0.2 + torch.rand(length, dim, generator=g, dtype=torch.float64) * 2.0
    z = 2.0 * torch.randn(batch, length, dim, generator=g, dtype=torch.float64)
    return GaussianData(mu, var), z
