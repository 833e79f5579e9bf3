"""What every sampler shares: its configuration, time grids, per-sample noise
streams, the final decoder pass and the batched driver.

Reproducibility: every random draw of sample i comes from its own generator
seeded by (seed, i), so a sample set does not depend on the batch size or on
how samples are spread over processes.

Checks: by default (``checks="call"``) the network's per-evaluation finite-input
check (one host sync each) is off while a batch is sampled, and the batch's final
latents are checked once instead; ``checks="network"`` keeps the per-evaluation
check. A non-finite network output propagates into the final latents (NaN and inf
survive every later step of the samplers), so both refuse a diverging network; only
the message and the moment differ.
The decoder pass takes the argmax over chunks of token positions
(``Denoiser.token_ids``), never holding the whole batch's logits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fmlm.config import ConfigError, apply_overrides, from_dict, require, to_dict
from fmlm.math.flow import FlowConfig
from fmlm.math.times import quantile_grid, sorted_draw_grid
from fmlm.nn.denoiser import DECODE_CHUNK_TOKENS, finite_checks

CHECKS = ("call", "network")  # where sampling checks for non-finite values (see the module docstring)


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample: algorithm, steps, guidance, self-conditioning mode and seeds.

    kind: ``euler`` (probability-flow ODE), ``sde`` (Euler with churn), ``flow_map``
    (``z <- X_{t_k, t_{k+1}}(z)``) or ``ctm`` (CTM gamma-sampling).
    sc_mode (euler/sde): ``warm`` carries the previous estimate in the slot,
    ``cold`` runs ``fp_iterations`` fixed-point iterations from a zero slot at
    every step, ``none`` keeps the slot zero (no-SC teachers and ELF*).
    """

    flow: FlowConfig  # the flow constants of the model sampled (from its checkpoint or model folder)
    kind: Literal["euler", "sde", "flow_map", "ctm"] = "sde"
    steps: int = 32
    w: float = 3.0
    churn: float = 1.5
    gamma: float = 1.0
    sc_mode: Literal["warm", "cold", "none"] = "warm"
    fp_iterations: int = 1
    fp_solver: Literal["picard", "anderson"] = "picard"
    grid: Literal["quantile", "sorted"] = "quantile"
    seed: int = 0
    batch_size: int = 64
    # Guidance fed to the final decoder pass: False = none (w = 1, how this project trains its decoder
    # branch); True = the sampler's w (how the paper's reference decodes; set for imported models).
    decode_guided: bool = False

    def __post_init__(self) -> None:
        require(self.steps >= 1, "sampler.steps", f"must be >= 1, got {self.steps}")
        require(self.w > 0 and math.isfinite(self.w), "sampler.w", f"must be a finite number > 0, got {self.w}")
        require(self.churn >= 0 and math.isfinite(self.churn), "sampler.churn",
                f"must be a finite number >= 0, got {self.churn}")
        require(0 <= self.gamma <= 1, "sampler.gamma", f"must lie in [0, 1], got {self.gamma}")
        require(self.fp_iterations >= 1, "sampler.fp_iterations", f"must be >= 1, got {self.fp_iterations}")
        require(self.batch_size >= 1, "sampler.batch_size", f"must be >= 1, got {self.batch_size}")
        require(isinstance(self.flow, FlowConfig), "sampler.flow", "must be the model's FlowConfig")


def sampler_for(flow: FlowConfig, setting: dict | None = None, overrides: list[str] | tuple[str, ...] = ()) -> SamplerConfig:
    """A ``SamplerConfig`` from ``setting`` (its fields but the flow) carrying ``flow``, the constants of
    the model to sample (read from its checkpoint or model folder), then ``overrides`` (``key=value``).

    The one way samplers are configured: the flow is never a default, and an override of ``flow.*``
    is refused (a model samples only with the constants it was trained with)."""
    for item in overrides:
        if str(item).split("=", 1)[0].strip().split(".")[0] == "flow":
            raise ConfigError(f"{item}: the flow constants are the model's own (from its checkpoint); "
                              "they cannot be overridden at sampling")
    if setting and "flow" in setting:
        raise ConfigError("sampler setting: holds 'flow'; the flow comes from the model")
    cfg = from_dict(SamplerConfig, {**(setting or {}), "flow": to_dict(flow)}, prefix="sampler.")
    return apply_overrides(cfg, list(overrides))


@dataclass
class SampleSet:
    """Generated latents, their decoded token ids and the network evaluations per sample."""

    latents: Tensor  # (N, L, d) final latents at t = 1
    ids: Tensor  # (N, L) argmax of the decoder head
    nfe: int  # network evaluations per sample, the decoder pass included
    wall_s: float  # wall time of the whole set
    indices: list[int]


def time_grid(cfg: SamplerConfig) -> Tensor:
    """``0 = t_0 < ... < t_N = 1`` (float64): the logit-normal quantile grid or sorted draws."""
    if cfg.grid == "quantile":
        return quantile_grid(cfg.steps, p_mean=cfg.flow.p_mean, p_std=cfg.flow.p_std, dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, 1]).generate_state(1)[0]))
    return sorted_draw_grid(cfg.steps, generator=gen, p_mean=cfg.flow.p_mean, p_std=cfg.flow.p_std, dtype=torch.float64)


class NoiseStreams:
    """One generator per sample index; ``draw()`` returns the next standard normal for every sample.

    ``draw`` fills one preallocated (B, *shape) tensor row by row from each sample's generator
    (no per-sample tensors and no stack); the loop over generators stays, as no batched CPU
    draw reproduces B separate mt19937 streams.
    """

    def __init__(self, seed: int, indices: list[int], shape: tuple[int, ...], device, dtype=torch.float32):
        self.gens = [
            torch.Generator().manual_seed(int(np.random.SeedSequence([seed, i]).generate_state(1, dtype=np.uint64)[0] >> 1))
            for i in indices
        ]
        self.shape, self.device, self.dtype = shape, device, dtype

    def draw(self) -> Tensor:
        out = torch.empty((len(self.gens), *self.shape))
        for row, gen in zip(out, self.gens):
            torch.randn(self.shape, generator=gen, out=row)
        return out.to(self.device, self.dtype)


def guidance_of(model: nn.Module, w: float, batch: int, device) -> Tensor | None:
    """Per-row guidance scale for a model with a guidance bank, None for a model without one."""
    if model.config.guidance_tokens == 0:
        return None
    return torch.full((batch,), float(w), device=device)


def decode(
    model: nn.Module, z: Tensor, w: float | None = None, *, chunk_tokens: int | None = DECODE_CHUNK_TOKENS
) -> Tensor:
    """Token ids from the decoder head at t = 1 (one network evaluation), guided by ``w`` if given.

    A model with ``token_ids`` (the Denoiser) takes the argmax ``chunk_tokens`` positions at a time;
    ``chunk_tokens=None``, or a model without it, computes the whole logits tensor first (same ids).
    """
    ones = torch.ones(z.shape[0], device=z.device, dtype=z.dtype)
    guidance = None if w is None else guidance_of(model, w, z.shape[0], z.device)
    kwargs = {} if guidance is None else {"w": guidance}
    if chunk_tokens is not None and hasattr(model, "token_ids"):
        return model.token_ids(z, ones, chunk_tokens=chunk_tokens, **kwargs)
    return model(z, ones, decode=True, **kwargs).argmax(-1)


def check_latents(z: Tensor, steps: int) -> None:
    """Refuse a batch whose final latents hold NaN or inf (one host sync per sampled batch)."""
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"sampling: the final latents hold NaN or inf after {steps} steps (the network diverged)")


# A batch sampler maps (model, noise streams, grid) to (final latents, network evaluations per sample).
BatchSampler = Callable[[nn.Module, NoiseStreams, Tensor], tuple[Tensor, int]]


@torch.no_grad()
def generate(
    model: nn.Module,
    sample_batch: BatchSampler,
    cfg: SamplerConfig,
    n_samples: int,
    length: int,
    *,
    device: torch.device | str = "cpu",
    first_index: int = 0,
    progress: bool = True,
    desc: str = "sample",
    checks: Literal["call", "network"] = "call",
    decode_chunk: int | None = DECODE_CHUNK_TOKENS,
) -> SampleSet:
    """Run ``sample_batch`` over samples ``first_index .. first_index + n_samples - 1`` in batches, then decode.

    ``checks``: ``"call"`` checks each batch's final latents once, ``"network"`` every network
    input (module docstring). ``decode_chunk``: token positions per logits chunk of the decoder
    pass (None: all at once); the ids are the same either way.
    """
    if checks not in CHECKS:
        raise ValueError(f"checks: expected one of {CHECKS}, got {checks!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if length < 1 or length > model.config.max_len:
        raise ValueError(f"length must lie in [1, {model.config.max_len}], got {length}")
    model.eval()
    grid = time_grid(cfg)
    shape = (length, model.config.latent_dim)
    latents, ids, nfe = [], [], 0
    start = time.perf_counter()
    indices = list(range(first_index, first_index + n_samples))
    bar = tqdm(total=n_samples, desc=desc, unit="sample", disable=not progress, dynamic_ncols=True, leave=False)
    with finite_checks(model, checks == "network"):
        for lo in range(0, n_samples, cfg.batch_size):
            chunk = indices[lo : lo + cfg.batch_size]
            noise = NoiseStreams(cfg.seed, chunk, shape, device)
            z, nfe = sample_batch(model, noise, grid)
            if checks == "call":
                check_latents(z, cfg.steps)
            latents.append(z.float().cpu())
            ids.append(decode(model, z, cfg.w if cfg.decode_guided else None, chunk_tokens=decode_chunk).cpu())
            bar.update(len(chunk))
    bar.close()
    return SampleSet(torch.cat(latents), torch.cat(ids), nfe + 1, time.perf_counter() - start, indices)
