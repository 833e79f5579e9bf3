"""Probes of trained denoisers: the guidance response on a denoiser with a known answer."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fmlm.math.flow import FlowConfig
from fmlm.experiment.probes import guidance_response


class GuidedLinear(nn.Module):
    """``D(z, t, s, w) = 0.5 z + 0.2 s (1 + k (1 - 1/w))``: its w tokens move the output by k times the guided target."""

    def __init__(self, k: float):
        super().__init__()
        self.k = k
        self.config = SimpleNamespace(guidance_tokens=4)

    def forward(self, z, t, *, sc=None, w=None):
        s = torch.zeros_like(z) if sc is None else sc
        gain = 1 + self.k * (1 - 1 / w.view(-1, 1, 1))
        return 0.5 * z + 0.2 * s * gain


class Rows:
    def __init__(self, n: int):
        self.x0 = torch.randn(n, 6, 3, generator=torch.Generator().manual_seed(1))

    def __len__(self):
        return len(self.x0)

    def batch(self, idx):
        return None, self.x0[torch.as_tensor(idx)]


@pytest.mark.parametrize("k", [0.0, 0.3, 1.0])
def test_ratio_is_the_share_of_the_guided_target_the_w_tokens_deliver(k):
    result = guidance_response(GuidedLinear(k), Rows(5), 8, FlowConfig(), w=5.0, times=(0.2, 0.8))
    assert result["n_rows"] == 5 and result["w"] == 5.0
    assert [e["t"] for e in result["by_t"]] == [0.2, 0.8]
    for entry in result["by_t"]:
        assert entry["target"] > 0
        assert math.isclose(entry["ratio"], k, rel_tol=1e-5, abs_tol=1e-6)


def test_w_must_be_positive():
    with pytest.raises(ValueError, match="w: must be > 0"):
        guidance_response(GuidedLinear(1.0), Rows(2), 2, FlowConfig(), w=0.0)


def test_row_rms_keeps_one_distance_per_row_and_rms_averages_them():
    from fmlm.experiment.probes import rms, row_rms

    a = torch.tensor([[[3.0, 4.0]], [[0.0, 0.0]], [[1.0, 1.0]]])  # rows: sqrt(25/2), 0, 1
    assert row_rms(a).tolist() == pytest.approx([math.sqrt(12.5), 0.0, 1.0], rel=1e-6)  # float32 sqrt
    assert rms(a) == pytest.approx((math.sqrt(12.5) + 1.0) / 3, rel=1e-6)  # float32 mean of 3 values
