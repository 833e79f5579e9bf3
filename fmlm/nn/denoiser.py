"""The ELF denoiser: a bidirectional transformer over [prefix banks, text latents].

Forward pass (docs/method.md section 4; t = 0 pure noise, t = 1 clean data):
    x      = W_up (W_down (W_sc [z, sc] + b_sc)) + b_up     text tokens (B, L, width);
                                                          without self-conditioning W_sc is absent
    prefix = [time(t | s), guidance(w), phase(tau), mode]  in this order; absent banks are skipped;
                                                          mode = learned tokens if decode else zeros;
                                                          phase_placement "time": phase added onto time
    h      = blocks([prefix, x])                          rotary on text positions 0..L-1 only
    xhat   = W_out rms_norm(h_text) + b_out               x-prediction (B, L, latent_dim)
    logits = gelu(h_text W_p + b_p) W_u + b_u             decoder mode (B, L, vocab_size)
    logits = z W_u + b_u                                  decoder mode with decoder_input "latent": no block runs
The time bank's first half embeds the target time t, its second half the source
time s; s = t (the default) is exactly the one-time denoiser D(z_t, t). The
x-prediction head and the decoder head read the same last hidden state; the
decoder head reads it before the final RMSNorm (as in the paper's reference).
Weights under ``blocks.`` are the transformer's hidden matrices (the trainer gives
their 2-D weights to Muon).

``token_ids`` is the decoder pass reduced to its argmax, computed over tiles of
``chunk_tokens`` token positions (and, on a CPU, 2048 vocabulary entries) so the
(tokens, vocab_size) logits never exist at once (the same ids as
``forward(..., decode=True).argmax(-1)``; ``fmlm.nn.cpu.head_argmax.decoder_argmax``).
Input checks: every call refuses non-finite inputs (one host sync) while
``check_finite`` is true; ``finite_checks(model, False)`` switches that off for a
block (the samplers check once per sampling call instead), and
``compile_denoiser`` returns a ``torch.compile``d model with the check off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fmlm.nn.config import DenoiserConfig
from fmlm.nn.embedding import TOKEN_INIT_STD, PrefixBank
from fmlm.nn.cpu.head_argmax import ROW_TILE, check_decoder_options, decoder_argmax
from fmlm.nn.cpu.head_screen import HeadScreen
from fmlm.nn.layers import Block, RMSNorm, xavier_linear
from fmlm.nn.rotary import prefixed_tables, rotary_tables

DEFAULT_GUIDANCE = 1.0  # w = 1: the guided target equals the plain one (1 - 1/w = 0), i.e. no guidance
DECODE_CHUNK_TOKENS = ROW_TILE  # token positions per logits tile in token_ids (fmlm.nn.cpu.head_argmax)


class Denoiser(nn.Module):
    """``D(z, t; s, sc, w, tau)``: x-prediction, or token logits in decoder mode."""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        if not isinstance(config, DenoiserConfig):
            raise ValueError(f"config: expected a DenoiserConfig, got {type(config).__name__}")
        self.config = config
        d, width = config.latent_dim, config.width
        # Input: [z, sc] (2d) -> d -> bottleneck -> width.
        self.sc_mix = xavier_linear(2 * d, d) if config.self_conditioning else None
        self.bottleneck_down = xavier_linear(d, config.bottleneck, bias=False)
        self.bottleneck_up = xavier_linear(config.bottleneck, width)
        # Prefix banks, in order: time (t then s), guidance (w), phase (tau), mode.
        self.time_bank = PrefixBank(config.time_tokens, width, groups=2)
        self.guidance_bank = PrefixBank(config.guidance_tokens, width) if config.guidance_tokens else None
        self.phase_bank = PrefixBank(config.phase_tokens, width, zero_init=True) if config.phase_tokens else None
        if config.mode_tokens:
            self.mode_tokens = nn.Parameter(torch.randn(config.mode_tokens, width) * TOKEN_INIT_STD)
        else:
            self.register_parameter("mode_tokens", None)
        self.blocks = nn.ModuleList(
            Block(width, config.heads, config.mlp_hidden) for _ in range(config.depth)
        )
        # x-prediction head, zero-initialised: the untrained model predicts xhat = 0.
        self.out_norm = RMSNorm(width)
        self.out_proj = nn.Linear(width, d)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)
        # Decoder head: logits = gelu(h W_p + b_p) W_u + b_u, or z W_u + b_u (decoder_input "latent").
        self.decode_proj = xavier_linear(width, d) if config.decoder_input == "hidden" else None
        self.unembed = xavier_linear(d, config.vocab_size)
        cos, sin = prefixed_tables(*rotary_tables(config.max_len, config.head_dim), config.prefix_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        # Refuse non-finite inputs (one host sync per call; switch off for torch.compile).
        self.check_finite = True
        self._screens: dict[str, HeadScreen] = {}  # token_ids' screens of the decoder head, by name

    @property
    def prefix_len(self) -> int:
        """Prefix tokens ahead of the text."""
        return self.config.prefix_len

    def forward(
        self,
        z: torch.Tensor,
        t: Any,
        *,
        s: Any = None,
        sc: torch.Tensor | None = None,
        w: Any = None,
        tau: Any = None,
        decode: bool = False,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x-prediction (B, L, latent_dim), or logits (B, L, vocab_size) when ``decode``.

        z: (B, L, latent_dim), the latent at source time s (= t unless given), L <= max_len.
        t, s, w, tau: per-row scalars, (B,) tensors (a Python number or 0-d tensor is
        broadcast). sc: self-conditioning slot like z (None = zeros). w: guidance
        scale (None = 1, no guidance). tau: phase (None = config.default_phase, or on a decoder
        pass config.phase_on_decode).
        positions: decoder mode only, a bool (B, L) mask; the logits of the selected tokens
        alone are computed and returned as (N, vocab_size) (cheaper when the vocabulary is large).
        """
        if decode:
            features = self._decoder_features(z, t, s=s, sc=sc, w=w, tau=tau)
            if positions is not None:
                if positions.shape != features.shape[:2] or positions.dtype != torch.bool:
                    raise ValueError(f"positions: expected a bool mask of shape {tuple(features.shape[:2])}")
                features = features[positions]
            return self.unembed(features)
        if positions is not None:
            raise ValueError("positions: only used in decoder mode (decode=True)")
        h = self._text_hidden(z, t, s=s, sc=sc, w=w, tau=tau, decode=False)
        return self.out_proj(self.out_norm(h))

    @torch.no_grad()
    def token_ids(
        self,
        z: torch.Tensor,
        t: Any,
        *,
        s: Any = None,
        sc: torch.Tensor | None = None,
        w: Any = None,
        tau: Any = None,
        chunk_tokens: int = DECODE_CHUNK_TOKENS,
        vocab_tile: int | None | str = "auto",
        screen: str = "auto",
    ) -> torch.Tensor:
        """``argmax`` of the decoder-mode logits, (B, L) int64, without gradients.

        The same ids as ``forward(z, t, ..., decode=True).argmax(-1)``; the logits are computed
        ``chunk_tokens`` token positions at a time by ``vocab_tile`` vocabulary entries (None: all;
        "auto": 2048 on a CPU, all on a GPU). ``screen``: "int8", through that screen (the same ids, the
        fp32 logits computed only in blocks whose bounds cannot rule them out); "none": the fp32 tiles;
        "auto": on fp32 features the one that pays on their device. The choices, and what
        ``FMLM_CPU_KERNELS`` makes of "auto": ``fmlm.nn.cpu.head_argmax.decoder_argmax``.
        """
        check_decoder_options(screen, chunk_tokens)
        features = self._decoder_features(z, t, s=s, sc=sc, w=w, tau=tau)  # (B, L, latent_dim), as in forward
        batch, length = features.shape[:2]
        return decoder_argmax(features.reshape(batch * length, -1), self.unembed.weight, self.unembed.bias,
                              self._screens, chunk_tokens=chunk_tokens, vocab_tile=vocab_tile,
                              screen=screen).view(batch, length)

    def _decoder_features(self, z, t, *, s, sc, w, tau) -> torch.Tensor:
        """What ``W_u`` reads, (B, L, latent_dim): ``gelu(h W_p + b_p)`` of the text hidden states, or with
        decoder_input "latent" the checked latent ``z`` itself (t, s, sc, w and tau then play no part)."""
        if self.decode_proj is None:
            self._check_latent(z)
            if self.check_finite:
                _check_finite({"z": z})
            return z
        return F.gelu(self.decode_proj(self._text_hidden(z, t, s=s, sc=sc, w=w, tau=tau, decode=True)))

    def _text_hidden(self, z, t, *, s, sc, w, tau, decode: bool) -> torch.Tensor:
        """Checked inputs through the input projection, the prefix banks and the blocks: (B, L, width)."""
        cfg = self.config
        batch, length = self._check_latent(z)
        scalars = torch.float64 if z.dtype == torch.float64 else torch.float32  # a float64 network stays float64
        t = _per_row(t, "t", batch, z.device, scalars)
        s = t if s is None else _per_row(s, "s", batch, z.device, scalars)
        checks = {"z": z, "t": t, "s": s}
        if sc is not None:
            if self.sc_mix is None:
                raise ValueError("sc: this model has self_conditioning=False and takes no self-conditioning slot")
            if not isinstance(sc, torch.Tensor) or sc.shape != z.shape:
                got = tuple(sc.shape) if isinstance(sc, torch.Tensor) else type(sc).__name__
                raise ValueError(f"sc: expected shape {tuple(z.shape)} (like z), got {got}")
            checks["sc"] = sc
        if w is not None:
            if self.guidance_bank is None:
                raise ValueError("w: this model has guidance_tokens=0 and takes no guidance scale")
            w = checks["w"] = _per_row(w, "w", batch, z.device, scalars)
        if tau is not None:
            if self.phase_bank is None:
                raise ValueError("tau: this model has phase_tokens=0 and takes no phase")
            tau = checks["tau"] = _per_row(tau, "tau", batch, z.device, scalars)
        if self.check_finite:
            _check_finite(checks)

        x = z
        if self.sc_mix is not None:
            x = self.sc_mix(torch.cat([z, torch.zeros_like(z) if sc is None else sc.to(z.dtype)], dim=-1))
        x = self.bottleneck_up(self.bottleneck_down(x))

        time = self.time_bank(t, s)
        phase = None
        if self.phase_bank is not None:
            if tau is None:
                tau = torch.full_like(t, cfg.phase_on_decode if decode else cfg.default_phase)
            phase = self.phase_bank(tau)
            if cfg.phase_placement == "time":
                time, phase = time + phase, None
        prefix = [time]
        if self.guidance_bank is not None:
            prefix.append(self.guidance_bank(torch.full_like(t, DEFAULT_GUIDANCE) if w is None else w))
        if phase is not None:
            prefix.append(phase)
        if self.mode_tokens is not None:
            mode = self.mode_tokens.unsqueeze(0).expand(batch, -1, -1)
            prefix.append(mode if decode else torch.zeros_like(mode))
        h = torch.cat(prefix + [x], dim=1)

        n = self.prefix_len + length
        cos, sin = self.rope_cos[:n], self.rope_sin[:n]
        for block in self.blocks:
            h = block(h, cos, sin)
        return h[:, self.prefix_len :]

    def _check_latent(self, z: Any) -> tuple[int, int]:
        """(B, L) of a valid latent batch z, else a ValueError naming z."""
        cfg = self.config
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise ValueError(f"z: expected a floating-point tensor, got {getattr(z, 'dtype', type(z).__name__)}")
        if z.dim() != 3:
            raise ValueError(f"z: expected shape (B, L, {cfg.latent_dim}), got {tuple(z.shape)}")
        batch, length, dim = z.shape
        if dim != cfg.latent_dim:
            raise ValueError(f"z: latent dim {dim} != config.latent_dim {cfg.latent_dim}")
        if batch == 0 or length == 0:
            raise ValueError(f"z: empty batch or sequence, shape {tuple(z.shape)}")
        if length > cfg.max_len:
            raise ValueError(f"z: sequence length {length} > config.max_len {cfg.max_len}")
        return batch, length


def _per_row(value: Any, name: str, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``value`` as a (B,) tensor of ``dtype`` on ``device``; a number or 0-d tensor is broadcast."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise ValueError(f"{name}: expected a number or a ({batch},) tensor, got {type(value).__name__}")
    out = torch.as_tensor(value).to(device=device, dtype=dtype)
    if out.dim() == 0:
        return out.expand(batch)
    if out.shape != (batch,):
        raise ValueError(f"{name}: expected shape ({batch},) (one per row of z), got {tuple(out.shape)}")
    return out


def _check_finite(tensors: dict[str, torch.Tensor]) -> None:
    """Raise a ValueError naming the first non-finite input (one device sync in all)."""
    flags = torch.stack([torch.isfinite(x).all() for x in tensors.values()])
    if not bool(flags.all()):
        bad = next(name for name, ok in zip(tensors, flags.tolist()) if not ok)
        raise ValueError(f"{bad}: contains NaN or infinite values")


def _inner(model: nn.Module) -> nn.Module:
    """The module itself, or the one a ``torch.compile`` wrapper holds."""
    return getattr(model, "_orig_mod", model)


@contextlib.contextmanager
def finite_checks(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Within the block, a Denoiser's per-call finite-input check is ``enabled`` (restored on exit).

    A model without the switch (a test oracle) is left alone; a compiled model's inner module is set.
    """
    inner = _inner(model)
    if not hasattr(inner, "check_finite"):
        yield
        return
    before = inner.check_finite
    inner.check_finite = bool(enabled)
    try:
        yield
    finally:
        inner.check_finite = before


def compile_denoiser(model: Denoiser, **options: Any) -> nn.Module:
    """``torch.compile(model, dynamic=False, **options)`` with the per-call finite check switched off.

    The check's host sync would break the graph; callers check their own results instead
    (``fmlm.samplers.generate`` checks once per sampling call).
    """
    if not isinstance(model, Denoiser):
        raise ValueError(f"model: expected a Denoiser, got {type(model).__name__}")
    model.check_finite = False
    return torch.compile(model, **{"dynamic": False, **options})
