"""Tolerances for two computations of one quantity, from the dtype and the values' scale.

Two batchings, kernels or compilations of the same network sum the same products in different orders:
AMX, AVX512-BF16 and AVX2 CPUs block their GEMMs differently, so which order is machine-dependent. The
difference is then a few units of the dtype's roundoff times the magnitude of the *terms* summed, not of
each result: an element near zero by cancellation (a bias gradient summed over rows) differs by as much as
a large one, and an elementwise ``rtol`` fails on it. So these checks bound the largest difference by a
fraction of the tensor's scale (its largest magnitude), and identities between batchings run in float64,
where the reordering costs ~1e-16 of the scale and a real error (a row counted twice, a mask lost) is
O(1) of it.
"""

from __future__ import annotations

import torch

FLOAT64_IDENTITY = 1e-10
"""Scale-relative bound for an identity computed two ways in float64 through a small network: ~1e-16 per
rounding, times at most ~1e4 roundings along any path (depth x width x tokens of the tiny presets), leaves
a factor of ~1e2 to spare; a real difference is O(1) of the scale."""

UNIT_ROUNDOFF_BF16 = 2.0**-8
"""Largest relative error of one rounding to bf16 (8 significand bits, round to nearest)."""


def scale_of(*tensors: torch.Tensor) -> float:
    """The largest magnitude over ``tensors`` (float64), at least the smallest normal float64."""
    return max(max(float(t.detach().double().abs().max()) for t in tensors if t.numel()), 2.0**-1022)


def assert_close_to_scale(got: torch.Tensor, want: torch.Tensor, rel: float, msg: str = "") -> None:
    """``max |got - want| <= rel * max(max |got|, max |want|)`` (shapes must match)."""
    assert got.shape == want.shape, (msg, tuple(got.shape), tuple(want.shape))
    diff = float((got.detach().double() - want.detach().double()).abs().max()) if got.numel() else 0.0
    scale = scale_of(got, want)
    assert diff <= rel * scale, f"{msg}: max |difference| {diff:.3g} > {rel:.3g} x scale {scale:.3g}"
