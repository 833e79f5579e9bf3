"""Rotary position embedding on text positions; prefix tokens get the identity rotation.

Formulas (head dim h even, channel pairs (i, i + h/2), i < h/2):
    freq_i = theta^(-2i / h)
    angle(p, i) = p * freq_i                     for text position p = 0, 1, ...
    rot(x)_i       = x_i cos(angle) - x_{i+h/2} sin(angle)
    rot(x)_{i+h/2} = x_i sin(angle) + x_{i+h/2} cos(angle)
    i.e. rot(x) = x C + swap(x) S with C = [cos, cos], S = [-sin, sin], swap([x1, x2]) = [x2, x1]
A prefix token has cos = 1, sin = 0 (no rotation), so the prefix carries no
position and the text's relative positions are unchanged by the prefix length.
"""

from __future__ import annotations

import torch

ROTARY_THETA = 10000.0  # base of the frequency ladder (the usual RoPE choice; periods up to ~2*pi*1e4 tokens)


def rotary_tables(positions: int, head_dim: int, theta: float = ROTARY_THETA) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)``, each (positions, head_dim / 2), of ``angle(p, i) = p * theta^(-2i/head_dim)``."""
    if head_dim % 2 != 0:
        raise ValueError(f"head_dim: must be even for rotary embeddings, got {head_dim}")
    if positions < 0:
        raise ValueError(f"positions: must be >= 0, got {positions}")
    exponents = torch.arange(0, head_dim // 2, dtype=torch.float64) * 2.0 / head_dim
    freqs = theta ** (-exponents)
    angles = torch.arange(positions, dtype=torch.float64)[:, None] * freqs[None, :]
    return torch.cos(angles).float(), torch.sin(angles).float()


def prefixed_tables(
    cos: torch.Tensor, sin: torch.Tensor, prefix_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend ``prefix_len`` identity rows (cos = 1, sin = 0) to rotary tables."""
    ones = torch.ones(prefix_len, cos.shape[-1], dtype=cos.dtype, device=cos.device)
    zeros = torch.zeros(prefix_len, sin.shape[-1], dtype=sin.dtype, device=sin.device)
    return torch.cat([ones, cos], dim=0), torch.cat([zeros, sin], dim=0)


def swap_halves(x: torch.Tensor) -> torch.Tensor:
    """``[x2, x1]`` for ``x = [x1, x2]`` split at the middle of the last axis (its own inverse)."""
    half = x.shape[-1] // 2
    return torch.cat([x[..., half:], x[..., :half]], dim=-1)


def rotary_planes(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-width tables ``C = [cos, cos]`` and ``S = [-sin, sin]`` (N, h), so ``rot(x) = x C + swap_halves(x) S``."""
    return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)


def rotate(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``x C + swap_halves(x) S`` with the planes ``(C, S)`` of ``rotary_planes``, in x's dtype."""
    return torch.addcmul(x * c.to(x.dtype), swap_halves(x), s.to(x.dtype))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + h/2) of ``x`` (..., N, h) by the angles of ``cos``/``sin`` (N, h/2).

    ``rot(x) = [x1 cos - x2 sin, x1 sin + x2 cos] = x C + swap_halves(x) S`` with ``x = [x1, x2]``;
    computed in the dtype of ``x``. (The denoiser's attention applies it fused with the q/k norm,
    ``fmlm.nn.cpu.fused_norm.normed_rotary``.)
    """
    return rotate(x, *rotary_planes(cos, sin))
