"""Sampling's fast paths leave sample sets bit-identical: the in-place noise draw, the check once
per call, the chunked decoder pass; a diverging network is still refused."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from fmlm.config import ConfigError
from fmlm.math.flow import FlowConfig
from fmlm.nn import Denoiser, denoiser_config
from fmlm.nn.denoiser import compile_denoiser
from fmlm.samplers import NoiseStreams, SamplerConfig, batch_sampler, generate
from tests.oracle import OracleNet, gaussian
from tests.tolerance import assert_close_to_scale

FLOW = FlowConfig()


def previous_draws(seed, indices, shape, n):
    """The previous NoiseStreams: one generator per index, each draw a stack of per-sample tensors."""
    gens = [torch.Generator().manual_seed(int(np.random.SeedSequence([seed, i]).generate_state(1, dtype=np.uint64)[0] >> 1))
            for i in indices]
    return [torch.stack([torch.randn(shape, generator=g) for g in gens]) for _ in range(n)]


@pytest.mark.parametrize("shape", [(4, 3), (7, 16), (1, 1), (64, 384)])
def test_noise_draws_are_the_previous_ones_bit_for_bit(shape):
    indices = [0, 5, 2, 11]
    streams = NoiseStreams(3, indices, shape, "cpu")
    for expected in previous_draws(3, indices, shape, 3):
        got = streams.draw()
        assert got.shape == (len(indices), *shape) and got.dtype == torch.float32
        assert torch.equal(got, expected)


def test_noise_draws_convert_to_the_requested_dtype():
    streams = NoiseStreams(0, [1, 2], (3, 2), "cpu", dtype=torch.float64)
    (expected,) = previous_draws(0, [1, 2], (3, 2), 1)
    assert torch.equal(streams.draw(), expected.double())


def network() -> Denoiser:
    torch.manual_seed(0)
    m = Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=300, max_len=12, phase_tokens=4))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


SETTINGS = [
    {"kind": "sde", "steps": 5, "sc_mode": "warm"},
    {"kind": "sde", "steps": 3, "sc_mode": "cold", "fp_iterations": 3, "fp_solver": "anderson"},
    {"kind": "euler", "steps": 3, "sc_mode": "none"},
    {"kind": "ctm", "steps": 2, "gamma": 0.75},
    {"kind": "flow_map", "steps": 2},
]


@pytest.mark.parametrize("setting", SETTINGS)
def test_check_once_and_chunked_decoding_keep_sample_sets_identical(setting):
    model = network()
    cfg = SamplerConfig(flow=FLOW, batch_size=3, seed=4, **setting)
    fast = generate(model, batch_sampler(cfg), cfg, 5, 10, progress=False, decode_chunk=4)
    slow = generate(model, batch_sampler(cfg), cfg, 5, 10, progress=False, checks="network", decode_chunk=None)
    assert torch.equal(fast.latents, slow.latents) and torch.equal(fast.ids, slow.ids) and fast.nfe == slow.nfe
    assert fast.ids.unique().numel() > 5
    assert model.check_finite is True  # restored after sampling


def test_a_diverging_network_is_refused_in_either_mode():
    model = network()
    with torch.no_grad():
        model.out_proj.weight[0, 0] = float("nan")
    cfg = SamplerConfig(flow=FLOW, kind="ctm", steps=2, batch_size=4)
    with pytest.raises(ValueError, match="^sampling: the final latents hold NaN or inf after 2 steps"):
        generate(model, batch_sampler(cfg), cfg, 4, 6, progress=False)
    with pytest.raises(ValueError, match="^z: contains NaN"):
        generate(model, batch_sampler(cfg), cfg, 4, 6, progress=False, checks="network")
    assert model.check_finite is True


def test_a_diverging_oracle_is_refused_once_per_call():
    class Diverging(OracleNet):
        def forward(self, z, t, **kw):
            return super().forward(z, t, **kw) * float("inf")

    cfg = SamplerConfig(flow=FLOW, kind="flow_map", steps=3, batch_size=8)
    with pytest.raises(ValueError, match="^sampling:"):
        generate(Diverging(gaussian()), batch_sampler(cfg), cfg, 8, 4, progress=False)


def test_bad_check_modes_and_infinite_knobs_are_refused():
    cfg = SamplerConfig(flow=FLOW, kind="ctm", steps=1)
    with pytest.raises(ValueError, match="^checks: expected one of"):
        generate(OracleNet(gaussian()), batch_sampler(cfg), cfg, 2, 4, progress=False, checks="never")
    with pytest.raises(ConfigError, match="sampler.w"):
        SamplerConfig(flow=FLOW, w=math.inf)
    with pytest.raises(ConfigError, match="sampler.churn"):
        SamplerConfig(flow=FLOW, churn=math.inf)


@pytest.mark.parametrize("setting", [SETTINGS[0], SETTINGS[3]])
def test_a_compiled_network_samples_like_the_eager_one(setting):
    model = network()
    compiled = compile_denoiser(copy.deepcopy(model), backend="aot_eager")
    cfg = SamplerConfig(flow=FLOW, batch_size=3, seed=1, **setting)
    eager = generate(model, batch_sampler(cfg), cfg, 3, 10, progress=False)
    fast = generate(compiled, batch_sampler(cfg), cfg, 3, 10, progress=False)
    # aot_eager runs the eager kernels (bitwise equal on an AVX2 EPYC); a decomposition that reorders an fp32
    # sum of <= ~100 terms moves a call's output by <= ~6e-6 of its scale, so 1e-4 of the scale covers the
    # few calls of a sampling run, while a wrong path (an argument lost in tracing) is O(1) of it
    assert_close_to_scale(fast.latents, eager.latents, 1e-4)
    assert fast.nfe == eager.nfe
