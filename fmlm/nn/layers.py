"""Transformer pieces of the denoiser: RMSNorm, QK-normed rotary attention, SwiGLU, the block.

Formulas:
    rms_norm(x) = g * x / sqrt(mean(x^2) + eps)              (over the last axis, in float32;
                                                              fmlm.nn.cpu.fused_norm)
    attention:  q, k, v = x W_qkv + b;  q, k <- rms_norm per head, then rotary;
                out = softmax(q k^T / sqrt(h)) v W_o + b_o   (bidirectional, no mask;
                                                              fmlm.nn.cpu.attention.attend)
    swiglu(x)  = (silu(x W_a + b_a) * (x W_b + b_b)) W_c + b_c
    block(x)   = x' + swiglu(rms_norm(x')),  x' = x + attention(rms_norm(x))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fmlm.nn.cpu.attention import attend
from fmlm.nn.cpu.fused_norm import normed_rotary, rms_norm


def xavier_linear(in_features: int, out_features: int, *, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` with a Xavier-uniform weight and a zero bias."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain (initialised to one)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight)


class Attention(nn.Module):
    """Bidirectional multi-head self-attention with per-head QK RMSNorm and rotary positions."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.qkv = xavier_linear(width, 3 * width)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)
        self.out = xavier_linear(width, width)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        q = normed_rotary(q, self.q_norm.weight, cos, sin)  # = apply_rotary(self.q_norm(q), cos, sin)
        k = normed_rotary(k, self.k_norm.weight, cos, sin)
        out = attend(q, k, v)
        return self.out(out.transpose(1, 2).reshape(batch, length, width))


class SwiGLU(nn.Module):
    """Gated MLP ``(silu(x W_a + b_a) * (x W_b + b_b)) W_c + b_c``; W_a, W_b fused as ``gate_up``."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.gate_up = xavier_linear(width, 2 * hidden)
        self.down = xavier_linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm transformer block: attention and SwiGLU, each with a residual connection."""

    def __init__(self, width: int, heads: int, mlp_hidden: int):
        super().__init__()
        self.attn_norm = RMSNorm(width)
        self.attn = Attention(width, heads)
        self.mlp_norm = RMSNorm(width)
        self.mlp = SwiGLU(width, mlp_hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))
