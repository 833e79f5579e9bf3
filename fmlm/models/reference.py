"""Reading the paper's released checkpoints (PyTorch Lightning ``.ckpt`` files of the reference code).

A reference checkpoint is a pickled dict; the parts this module reads:

    state_dict   {"model.<name>": tensor, "encoder.<name>": tensor, ...}   raw weights
    ema          {"decay": float, "shadow": {"<name>": tensor}}             EMA weights (the default)

It is opened with ``torch.load(weights_only=True, mmap=True)``: only tensors and plain containers are
unpickled (anything else is refused with one line naming the global, and nothing is executed), and the
tensors stay memory-mapped, so the GPT-2 Large encoder stored beside the denoiser (``encoder.*``) is
never read into memory and the file is loaded once.

Key map, reference name -> ``fmlm.nn.Denoiser`` name (``i`` a block):

    self_cond_proj.*                 sc_mix.*
    text_proj.proj1.weight           bottleneck_down.weight
    text_proj.proj2.*                bottleneck_up.*
    t_emb_tokens (1, n, H)           time_bank.tokens (n, H)
    t_embedder.mlp_0.* / mlp_2.*     time_bank.embed.hidden.* / .out.*
    self_cond_cfg_tokens, _embedder  guidance_bank.tokens, .embed
    phase_emb_tokens, phase_embedder phase_bank.tokens, .embed
    mode_tokens (1, n, H)            mode_tokens (n, H)
    blocks.i.norm1 / norm2           blocks.i.attn_norm / mlp_norm
    blocks.i.attn.qkv.*              blocks.i.attn.qkv.*        q and k rows permuted (below)
    blocks.i.attn.q_norm / k_norm    blocks.i.attn.q_norm / k_norm   permuted (below)
    blocks.i.attn.proj.*             blocks.i.attn.out.*
    blocks.i.mlp.w12.* / w3.*        blocks.i.mlp.gate_up.* / down.*
    final_layer.norm / linear        out_norm / out_proj
    proj_kernel (H, d), proj_bias    decode_proj.weight = proj_kernel^T, decode_proj.bias
    unembed_kernel (d, V), _bias     unembed.weight = unembed_kernel^T, unembed.bias

Rotary convention: the reference rotates adjacent channel pairs (2j, 2j + 1) of each head by the
angle of frequency j; ``fmlm.nn.rotary`` rotates (j, j + h/2). With the permutation
``perm = [0, 2, ..., h - 2, 1, 3, ..., h - 1]`` applied to every head's query and key channels (the
rows of W_q, W_k and their biases, and the QK-norm gains), our channel j is the reference's channel
2j and our channel j + h/2 its channel 2j + 1, so both rotations act on the same pairs with the same
frequencies. Attention only uses the dot products q . k, which a common permutation leaves unchanged,
and RMS normalisation is permutation-equivariant: the imported network computes the same function.
Values, the output projection and everything else are copied as they are.

Everything the shapes cannot say (stage, row length, phase, flow constants, encoder, whitening) comes
from the reference's training YAML when given, else from the stage name and the paper's values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fmlm.models.reference_settings import merged_settings, read_settings, stage_from
from fmlm.models.safe_load import load_reference_file
from fmlm.nn.config import DenoiserConfig

MODEL_PREFIX = "model."  # the denoiser's raw weights inside a Lightning state_dict
SKIPPED_PREFIXES = ("encoder.", "teacher_model.")  # the frozen encoder (and a teacher) beside it: never read
WEIGHTS = ("ema", "raw")

PHASED_STAGES = ("fixed-point", "flow-map")

DECODE_PHASE = 0.0  # the reference's decoder passes see phase 0 (it passes no phase there)


@dataclass(frozen=True)
class ReferenceModel:
    """What an import produced: the network's config and weights, and the facts around them."""

    config: DenoiserConfig
    state: dict[str, torch.Tensor]
    stage: str
    settings: dict[str, Any]  # the reference settings used (YAML values or the paper's defaults)
    weights: str  # "ema" or "raw"
    skipped: int  # tensors left unread beside the denoiser (encoder.*, teacher_model.*)


def weights_of(checkpoint: Mapping[str, Any], weights: str, source: str) -> tuple[dict[str, torch.Tensor], int]:
    """The denoiser's tensors (reference names, no ``model.`` prefix) and how many tensors were skipped."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights: {weights!r} is not one of {list(WEIGHTS)}")
    state = checkpoint.get("state_dict")
    if state is None and weights == "raw":
        raise ValueError(f"{source}: has no 'state_dict' (not a Lightning checkpoint)")
    state = dict(state or {})
    skipped = sum(1 for k in state if k.startswith(SKIPPED_PREFIXES))
    others = sorted(k for k in state if not k.startswith((MODEL_PREFIX, *SKIPPED_PREFIXES)))
    if others:
        raise ValueError(f"{source}: state_dict entry {others[0]!r} belongs to no known part ({len(others)} in all)")
    if weights == "raw":
        return {k[len(MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}, skipped
    ema = checkpoint.get("ema")
    if not isinstance(ema, Mapping) or not isinstance(ema.get("shadow"), Mapping):
        raise ValueError(f"{source}: has no EMA weights ('ema' with a 'shadow' dict); use --weights raw")
    shadow = dict(ema["shadow"])
    raw = {k[len(MODEL_PREFIX):] for k in state if k.startswith(MODEL_PREFIX)}
    if raw and set(shadow) != raw:
        diff = sorted(set(shadow) ^ raw)
        raise ValueError(f"{source}: EMA and raw weights name different tensors (first: {diff[0]!r})")
    return shadow, skipped


def _tensor(state: Mapping[str, torch.Tensor], key: str, source: str, ndim: int | None = None) -> torch.Tensor:
    value = state.get(key)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{source}: missing tensor {key!r}" if value is None else f"{source}: {key!r} is not a tensor")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"{source}: {key!r} has shape {tuple(value.shape)}, expected {ndim} dimensions")
    return value


def _bank_size(state: Mapping[str, torch.Tensor], key: str, source: str) -> int:
    return int(_tensor(state, key, source, 3).shape[1]) if key in state else 0


def infer_config(state: Mapping[str, torch.Tensor], settings: Mapping[str, Any], stage: str,
                 source: str) -> DenoiserConfig:
    """The ``DenoiserConfig`` of reference weights: sizes from the tensor shapes, the rest from ``settings``."""
    width, bottleneck = _tensor(state, "text_proj.proj2.weight", source, 2).shape
    latent_dim = int(_tensor(state, "final_layer.linear.weight", source, 2).shape[0])
    depth = len({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    if depth == 0:
        raise ValueError(f"{source}: holds no transformer blocks ('blocks.0.*')")
    head_dim = int(_tensor(state, "blocks.0.attn.q_norm.weight", source, 1).shape[0])
    if width % head_dim:
        raise ValueError(f"{source}: width {width} is not a multiple of the QK-norm size {head_dim}")
    hidden = int(_tensor(state, "blocks.0.mlp.w3.weight", source, 2).shape[1])
    mlp_ratio = _mlp_ratio(hidden, int(width), source)
    phase_tokens = _bank_size(state, "phase_emb_tokens", source)
    if stage in PHASED_STAGES and not phase_tokens:
        raise ValueError(f"{source}: stage {stage!r} needs a phase bank, but the weights have no phase_emb_tokens")
    if stage not in PHASED_STAGES and phase_tokens:
        raise ValueError(f"{source}: the weights have a phase bank, so they are not a {stage!r} model")
    inference_phase = float(settings["cdeq_inference_phase"])
    config = DenoiserConfig(
        latent_dim=latent_dim,
        vocab_size=int(_tensor(state, "unembed_bias", source, 1).shape[0]),
        max_len=int(settings["max_length"]),
        depth=depth,
        width=int(width),
        heads=width // head_dim,
        mlp_ratio=mlp_ratio,
        bottleneck=int(bottleneck),
        time_tokens=_bank_size(state, "t_emb_tokens", source),
        guidance_tokens=_bank_size(state, "self_cond_cfg_tokens", source),
        phase_tokens=phase_tokens,
        mode_tokens=_bank_size(state, "mode_tokens", source),
        self_conditioning="self_cond_proj.weight" in state,
        default_phase=inference_phase,
        decode_phase=DECODE_PHASE if phase_tokens else None,
    )
    return config


def _mlp_ratio(hidden: int, width: int, source: str) -> float:
    """The ``mlp_ratio`` r whose rule ``int(int(r * width) * 2/3)`` gives the SwiGLU width ``hidden``."""
    for gelu_width in range(int(hidden * 1.5) - 1, int(hidden * 1.5) + 3):
        ratio = gelu_width / width
        if int(int(ratio * width) * 2 / 3) == hidden:
            return ratio
    raise ValueError(f"{source}: SwiGLU width {hidden} does not follow the rule int(int(r * {width}) * 2/3)")


def rotary_permutation(head_dim: int) -> torch.Tensor:
    """``[0, 2, ..., h - 2, 1, 3, ..., h - 1]``: reference head channels in ``fmlm.nn.rotary`` order."""
    return torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])


def _qkv(value: torch.Tensor, heads: int, perm: torch.Tensor) -> torch.Tensor:
    """Permute the query and key rows (each head's channels) of a fused qkv weight or bias."""
    head_dim = perm.numel()
    out = value.reshape(3, heads, head_dim, *value.shape[1:]).clone()
    out[:2] = out[:2, :, perm]
    return out.reshape(value.shape)


def key_map(config: DenoiserConfig) -> dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """Reference name -> (``Denoiser`` name, transform) for every tensor of a network of ``config``."""
    same = lambda x: x  # noqa: E731 - the identity transform
    squeeze = lambda x: x.squeeze(0)  # noqa: E731 - (1, n, H) token banks -> (n, H)
    transpose = lambda x: x.t()  # noqa: E731 - kernels stored (in, out) -> nn.Linear (out, in)
    perm = rotary_permutation(config.head_dim)
    qkv = lambda x: _qkv(x, config.heads, perm)  # noqa: E731
    head = lambda x: x[perm]  # noqa: E731

    def linear(ref: str, ours: str, bias: bool = True) -> dict:
        entries = {f"{ref}.weight": (f"{ours}.weight", same)}
        if bias:
            entries[f"{ref}.bias"] = (f"{ours}.bias", same)
        return entries

    def bank(ref_tokens: str, ref_embedder: str, ours: str) -> dict:
        return {ref_tokens: (f"{ours}.tokens", squeeze), **linear(f"{ref_embedder}.mlp_0", f"{ours}.embed.hidden"),
                **linear(f"{ref_embedder}.mlp_2", f"{ours}.embed.out")}

    entries: dict = {}
    if config.self_conditioning:
        entries.update(linear("self_cond_proj", "sc_mix"))
    entries.update(linear("text_proj.proj1", "bottleneck_down", bias=False))
    entries.update(linear("text_proj.proj2", "bottleneck_up"))
    entries.update(bank("t_emb_tokens", "t_embedder", "time_bank"))
    if config.guidance_tokens:
        entries.update(bank("self_cond_cfg_tokens", "self_cond_cfg_embedder", "guidance_bank"))
    if config.phase_tokens:
        entries.update(bank("phase_emb_tokens", "phase_embedder", "phase_bank"))
    if config.mode_tokens:
        entries["mode_tokens"] = ("mode_tokens", squeeze)
    for i in range(config.depth):
        ref, ours = f"blocks.{i}", f"blocks.{i}"
        entries[f"{ref}.norm1.weight"] = (f"{ours}.attn_norm.weight", same)
        entries[f"{ref}.norm2.weight"] = (f"{ours}.mlp_norm.weight", same)
        entries[f"{ref}.attn.qkv.weight"] = (f"{ours}.attn.qkv.weight", qkv)
        entries[f"{ref}.attn.qkv.bias"] = (f"{ours}.attn.qkv.bias", qkv)
        entries[f"{ref}.attn.q_norm.weight"] = (f"{ours}.attn.q_norm.weight", head)
        entries[f"{ref}.attn.k_norm.weight"] = (f"{ours}.attn.k_norm.weight", head)
        entries.update(linear(f"{ref}.attn.proj", f"{ours}.attn.out"))
        entries.update(linear(f"{ref}.mlp.w12", f"{ours}.mlp.gate_up"))
        entries.update(linear(f"{ref}.mlp.w3", f"{ours}.mlp.down"))
    entries["final_layer.norm.weight"] = ("out_norm.weight", same)
    entries.update(linear("final_layer.linear", "out_proj"))
    entries["proj_kernel"] = ("decode_proj.weight", transpose)
    entries["proj_bias"] = ("decode_proj.bias", same)
    entries["unembed_kernel"] = ("unembed.weight", transpose)
    entries["unembed_bias"] = ("unembed.bias", same)
    return entries


def map_weights(state: Mapping[str, torch.Tensor], config: DenoiserConfig, source: str) -> dict[str, torch.Tensor]:
    """Our state dict from reference tensors; every tensor must be used exactly once (else a one-line error)."""
    entries = key_map(config)
    leftover = sorted(set(state) - set(entries))
    if leftover:
        raise ValueError(f"{source}: tensor {leftover[0]!r} has no place in the network ({len(leftover)} unused)")
    missing = sorted(set(entries) - set(state))
    if missing:
        raise ValueError(f"{source}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    out = {}
    for ref, (ours, transform) in entries.items():
        value = state[ref]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{source}: {ref!r} is not a floating-point tensor")
        out[ours] = transform(value.float()).contiguous()
    return out


def import_reference(path: str | Path, *, config_path: str | Path | None = None, weights: str = "ema",
                     stage: str | None = None) -> ReferenceModel:
    """Read a reference checkpoint into an ``fmlm`` state dict and config (nothing is written)."""
    source = str(path)
    raw_settings = read_settings(config_path)
    stage = stage or stage_from(raw_settings, source)
    settings = merged_settings(raw_settings, str(config_path or source))
    checkpoint = load_reference_file(path)
    state, skipped = weights_of(checkpoint, weights, source)
    config = infer_config(state, settings, stage, source)
    mapped = map_weights(state, config, source)
    return ReferenceModel(config, mapped, stage, settings, weights, skipped)
