"""Configuration of the denoiser network and its named size presets.

``DenoiserConfig`` fixes every shape of ``fmlm.nn.Denoiser``; ``denoiser_config``
builds one from a preset name (``elf-b``, ``elf-m``, ``elf-l``: the paper's sizes;
``cpu-small`` and ``tiny``: for CPU experiments and tests) plus the data-dependent
sizes and any overrides. Every check raises ``fmlm.config.ConfigError`` naming
the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from fmlm.config import ConfigError, from_dict, require


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class DenoiserConfig:
    """Shapes of the ELF denoiser (docs/method.md section 4).

    The prefix banks come in the order time, guidance, phase, mode; a bank of
    size 0 is absent. The time bank's first half carries the target time t, its
    second half the source time s (s = t is the one-time model).
    """

    latent_dim: int  # d of the encoder latents (384 embedded MiniLM, 1280 GPT-2 Large)
    vocab_size: int  # decoder head output size (the data tokenizer's vocabulary)
    max_len: int  # text positions (rotary table length)
    depth: int = 12
    width: int = 768
    heads: int = 12
    mlp_ratio: float = 4.0
    bottleneck: int = 128
    time_tokens: int = 4  # prefix bank; first half carries target time t, second half source time s
    guidance_tokens: int = 4  # bank for the self-conditioning guidance scale w (0 = none)
    phase_tokens: int = 0  # stage-2/3 consistency-time bank (0 = none); zero-initialised
    mode_tokens: int = 4  # decoder-mode bank: learned tokens on decoder passes, zeros otherwise (0 = none)
    self_conditioning: bool = True  # input is [z, sc] (2d); False: input is z alone (the no-SC baseline)
    default_phase: float = 0.002  # tau fed to the phase bank when a caller passes none (tau_0 = e)
    # tau fed on decoder passes when a caller passes none; None = default_phase. The paper's
    # reference runs its decoder passes at phase 0 (imported models set 0.0).
    decode_phase: float | None = None
    # "tokens": the phase bank is its own prefix tokens (the paper's architecture; zero tokens still take
    # part in attention, so a warm start moves the output). "time": its tokens are added onto the time
    # bank's, so a zero-initialised bank leaves a warm-started student exactly equal to its teacher.
    phase_placement: Literal["tokens", "time"] = "tokens"
    # What the decoder head reads. "hidden": the last hidden state, ``gelu(h W_p + b_p) W_u + b_u`` (the
    # paper's). "latent": the latent it is given, ``z W_u + b_u``, a per-token linear readout that runs no
    # block (``fmlm.nn.readout`` initialises it from the frozen encoder's token embeddings).
    decoder_input: Literal["hidden", "latent"] = "hidden"

    def __post_init__(self) -> None:
        for name in ("latent_dim", "vocab_size", "max_len", "depth", "width", "heads", "bottleneck"):
            value = getattr(self, name)
            require(_is_int(value) and value > 0, name, f"must be a positive integer, got {value!r}")
        for name in ("guidance_tokens", "phase_tokens", "mode_tokens"):
            value = getattr(self, name)
            require(_is_int(value) and value >= 0, name, f"must be an integer >= 0, got {value!r}")
        require(
            _is_int(self.time_tokens) and self.time_tokens >= 2 and self.time_tokens % 2 == 0,
            "time_tokens",
            f"must be an even integer >= 2 (half for t, half for s), got {self.time_tokens!r}",
        )
        require(
            self.width % self.heads == 0,
            "heads",
            f"width {self.width} is not divisible by heads {self.heads}",
        )
        require(
            (self.width // self.heads) % 2 == 0,
            "heads",
            f"head dim width/heads = {self.width // self.heads} must be even for rotary embeddings",
        )
        require(
            isinstance(self.mlp_ratio, (int, float))
            and not isinstance(self.mlp_ratio, bool)
            and math.isfinite(self.mlp_ratio)
            and self.mlp_ratio > 0,
            "mlp_ratio",
            f"must be a positive number, got {self.mlp_ratio!r}",
        )
        require(
            self.mlp_hidden >= 1,
            "mlp_ratio",
            f"SwiGLU hidden size int(int(mlp_ratio * width) * 2/3) is {self.mlp_hidden}; must be >= 1",
        )
        require(
            isinstance(self.self_conditioning, bool),
            "self_conditioning",
            f"must be true or false, got {self.self_conditioning!r}",
        )
        require(
            self.self_conditioning or self.guidance_tokens == 0,
            "guidance_tokens",
            "must be 0 when self_conditioning is False (the guidance scale w steers self-conditioning)",
        )
        require(
            self.phase_placement in ("tokens", "time"),
            "phase_placement",
            f"must be 'tokens' or 'time', got {self.phase_placement!r}",
        )
        require(
            self.phase_placement == "tokens" or self.phase_tokens in (0, self.time_tokens),
            "phase_tokens",
            f"must equal time_tokens ({self.time_tokens}) when phase_placement is 'time', got {self.phase_tokens}",
        )
        require(
            self.decoder_input in ("hidden", "latent"),
            "decoder_input",
            f"must be 'hidden' or 'latent', got {self.decoder_input!r}",
        )
        for name in ("default_phase", "decode_phase"):
            value = getattr(self, name)
            require(
                (value is None and name == "decode_phase")
                or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)),
                name,
                f"must be a finite number, got {value!r}",
            )

    @property
    def phase_prefix(self) -> int:
        """Prefix positions the phase bank occupies (0 when it is added onto the time bank)."""
        return self.phase_tokens if self.phase_placement == "tokens" else 0

    @property
    def head_dim(self) -> int:
        """Channels per attention head, width / heads."""
        return self.width // self.heads

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU hidden size, int(int(mlp_ratio * width) * 2 / 3) (parameter-matched to a GELU MLP).

        The paper's reference rule: first the GELU width int(mlp_ratio * width), then two thirds of it.
        """
        return int(int(self.mlp_ratio * self.width) * 2 / 3)

    @property
    def phase_on_decode(self) -> float:
        """tau fed to the phase bank on a decoder pass that is given none."""
        return self.default_phase if self.decode_phase is None else self.decode_phase

    @property
    def prefix_len(self) -> int:
        """Number of prefix tokens before the text: time + guidance + phase + mode."""
        return self.time_tokens + self.guidance_tokens + self.phase_prefix + self.mode_tokens


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's sizes (ELF-B is the ~105M model of the experiments).
    "elf-b": {"depth": 12, "width": 768, "heads": 12, "bottleneck": 128},
    "elf-m": {"depth": 24, "width": 1056, "heads": 16, "bottleneck": 128},
    "elf-l": {"depth": 32, "width": 1280, "heads": 16, "bottleneck": 128},
    # Small CPU model (head dim 64, like ELF-B) for experiments on 2 cores.
    "cpu-small": {"depth": 6, "width": 384, "heads": 6, "bottleneck": 64},
    # Test model: seconds for a forward and backward on a CPU.
    "tiny": {"depth": 2, "width": 64, "heads": 2, "bottleneck": 16},
}


def denoiser_config(
    preset: str, *, latent_dim: int, vocab_size: int, max_len: int, **overrides: Any
) -> DenoiserConfig:
    """``DenoiserConfig`` of ``preset`` with the data sizes and ``overrides`` applied.

    Unknown presets and unknown or mistyped override keys raise ``ConfigError``.
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset: unknown denoiser preset {preset!r} (known: {', '.join(PRESETS)})")
    data = dict(PRESETS[preset])
    data.update(latent_dim=latent_dim, vocab_size=vocab_size, max_len=max_len)
    data.update(overrides)
    return from_dict(DenoiserConfig, data)
