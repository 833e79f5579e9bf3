"""Prefix banks: learned tokens plus an embedding of a scalar (time, guidance scale, phase).

Formulas:
    features(x)_j       = cos(x f_j),  features(x)_{j + F/2} = sin(x f_j),
                          f_j = max_period^(-j / (F/2)),  j < F/2  (F = 256 features)
    embed(x)            = W_2 silu(W_1 features(x) + b_1) + b_2
    bank(x_1..x_G)_i    = token_i + embed(x_g)  for token i in group g
The scalar enters unscaled (t, s in [0, 1], w in [w_min, w_max] = [0.5, 5],
tau in [e, T]); the frequencies then span 1 down to 1e-4 per unit, as in the
paper's reference.
A bank of G groups splits its tokens into G equal halves/thirds/...: the time
bank has two groups, target time t then source time s.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCALAR_FEATURES = 256  # sinusoidal feature count F fed to the scalar MLP (DiT's frequency embedding size)
MAX_PERIOD = 10000.0  # longest period of the sinusoidal features (lowest frequency 1 / MAX_PERIOD)
TOKEN_INIT_STD = 0.02  # std of learned prefix tokens and of the scalar-MLP weights at init


def sinusoidal_features(x: torch.Tensor, dim: int = SCALAR_FEATURES, max_period: float = MAX_PERIOD) -> torch.Tensor:
    """``[cos(x f_j), sin(x f_j)]`` with ``f_j = max_period^(-j/(dim/2))``; x (B,) -> (B, dim), float32 (float64 for float64 x)."""
    if dim % 2 != 0:
        raise ValueError(f"dim: sinusoidal feature count must be even, got {dim}")
    half = dim // 2
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=x.device) / half)
    args = x.to(dtype)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ScalarEmbedding(nn.Module):
    """``W_2 silu(W_1 features(x) + b_1) + b_2``: one scalar per row to a width-vector.

    ``zero_out`` zero-initialises ``W_2`` and ``b_2`` so the embedding is exactly zero at init.
    """

    def __init__(self, width: int, *, zero_out: bool = False):
        super().__init__()
        self.hidden = nn.Linear(SCALAR_FEATURES, width)
        self.out = nn.Linear(width, width)
        nn.init.normal_(self.hidden.weight, std=TOKEN_INIT_STD)
        nn.init.zeros_(self.hidden.bias)
        if zero_out:
            nn.init.zeros_(self.out.weight)
        else:
            nn.init.normal_(self.out.weight, std=TOKEN_INIT_STD)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The features are float32 (float64 for a float64 network); cast to the weights' dtype so a
        # network moved to float64 (the float64 identity tests) runs end to end.
        return self.out(nn.functional.silu(self.hidden(sinusoidal_features(x).to(self.hidden.weight.dtype))))


class PrefixBank(nn.Module):
    """``tokens`` (n, width) plus the embedding of one scalar per group of n / groups tokens.

    ``zero_init`` zero-initialises the tokens and the embedding's last layer: the
    bank then emits exact zeros until trained (the phase bank's warm-start property).
    """

    def __init__(self, n_tokens: int, width: int, *, groups: int = 1, zero_init: bool = False):
        super().__init__()
        if n_tokens <= 0 or n_tokens % groups != 0:
            raise ValueError(f"n_tokens: {n_tokens} tokens do not split into {groups} equal groups")
        self.groups = groups
        self.tokens = nn.Parameter(torch.zeros(n_tokens, width))
        if not zero_init:
            nn.init.normal_(self.tokens, std=TOKEN_INIT_STD)
        self.embed = ScalarEmbedding(width, zero_out=zero_init)

    def forward(self, *scalars: torch.Tensor) -> torch.Tensor:
        """Bank tokens (B, n, width); ``scalars`` are ``groups`` tensors of shape (B,), in token order."""
        if len(scalars) != self.groups:
            raise ValueError(f"scalars: bank has {self.groups} groups, got {len(scalars)} scalars")
        per_group = self.tokens.shape[0] // self.groups
        emb = torch.stack([self.embed(x) for x in scalars], dim=1)  # (B, groups, width)
        emb = emb.repeat_interleave(per_group, dim=1)  # (B, n, width)
        return self.tokens.unsqueeze(0) + emb
