"""Bidirectional attention ``softmax(q k^T / sqrt(h)) v``, and the choice of kernel for it.

PyTorch's fused CPU kernel (``scaled_dot_product_attention``) is slow backward in bf16; for short bf16
rows that need gradients on a CPU, two explicit matmuls are faster (``EXPLICIT_ATTENTION_MAX_TOKENS``).
Everything else, and every row while ``FMLM_CPU_KERNELS=off`` (``fmlm.nn.cpu.switch``), takes the fused
kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fmlm.nn.cpu import switch

EXPLICIT_ATTENTION_MAX_TOKENS = 160
"""Longest sequence whose bf16 attention with gradients runs as explicit matmuls on a CPU (``attend``).
PyTorch's fused CPU kernel is slow backward in bf16: forward and backward together it took 2.1-2.9x
as long as explicit matmuls at 44 tokens and 1.2-1.3x at 140, but 0.67-0.69x at 268 (two runs);
without gradients it is as fast or faster at every length (benchmarks/results/kernels_cpu.md)."""


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(h)) v`` over (B, heads, N, h), bidirectional.

    ``F.scaled_dot_product_attention``, except for bf16 inputs that need gradients on a CPU with N <=
    ``EXPLICIT_ATTENTION_MAX_TOKENS`` (unless the switch is off): explicit matmuls, the scores and
    softmax in float32 (as the fused kernels keep them), the probabilities cast back to bf16 for the
    product with v.
    """
    explicit = (q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.shape[-2] <= EXPLICIT_ATTENTION_MAX_TOKENS
                and torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
                and switch.enabled())
    return explicit_attention(q, k, v) if explicit else F.scaled_dot_product_attention(q, k, v)


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(h)) v`` as two matmuls: scores and softmax in float32, then in v's dtype."""
    with torch.autocast(q.device.type, enabled=False):
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)
        return torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)


__all__ = ["EXPLICIT_ATTENTION_MAX_TOKENS", "attend", "explicit_attention"]
