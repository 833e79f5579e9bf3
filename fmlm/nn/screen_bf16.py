"""The bf16 screen of the decoder head's argmax (``fmlm.nn.head_screen``): every logit computed from bf16
inputs, products accumulated in fp32 by oneDNN's AMX or AVX512-BF16 kernels, the result rounded to bf16.

With unit roundoff u = 2^-8 and A_v = sum_i |x_i w_vi| <= ||x|| ||w_v||, a screened logit s_v lies within
``E = 4.5 u ||x|| max ||w_v|| + 3 u max |b_v|`` (maxima over v's block) of the real one. The bias enters
the bf16 GEMM as one more input column (against a 1), so the terms are two input roundings
(2u (A + |b|)), the fp32 sum (below u (A + |b|) / 16 for d <= 4096) and the output rounding (u (A + |b|)):
3.1 u (A + |b|) with the second-order terms; the factors 4.5 and 3 also cover a kernel that added the
bias in bf16 after rounding the product (4.1 u A + 2 u |b|). A block's largest real logit then lies
within E of its largest screened logit.

Both CPU kernels that take bf16 inputs (AMX tiles, AVX512-BF16 ``vdpbf16ps``) flush denormal inputs,
products and partial sums to zero. A flushed input moves its product by less than 2^-126 times the
other factor (at most sqrt(d + 1) (||x|| + max ||w_v||) over all inputs), a flushed product or partial sum
the sum by less than 2^-126 (2 (d + 1) of them), so ``2 (d + 2) 2^-126 (1 + ||x|| + max ||w_v||)`` more
covers every flush (it matters only for logits near 1e-36).

On the trained FMLM*'s head (embedded preset, 1024 random latents), 4.7 of 120 blocks per token are
scored in fp32. Chosen where the CPU has AMX or AVX512-BF16 but no VNNI (``bf16_screen_pays``; every
such CPU so far has VNNI, which ``fmlm.nn.screen_int8`` uses). A GPU's bf16 GEMM may reduce in bf16,
which the bound does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fmlm.nn.head_screen import BOUND_SLACK, SCREEN_BLOCK, HeadScreen, block_columns, block_max

UNIT_ROUNDOFF_BF16 = 2.0**-8
ERROR_FACTOR = 4.5  # times u ||x|| max ||w||: the bf16 screen's error bound (module docstring)
BIAS_ERROR_FACTOR = 3.0  # times u max |b|
FLUSH_UNIT = 2.0**-126  # the smallest normal fp32: what a denormal flushed to zero can move a sum by

BF16_CPU_PROBES = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
"""``torch.cpu`` probes of the instructions that take bf16 inputs and accumulate in fp32 (AMX, AVX512-BF16)."""


def bf16_screen_pays(device: torch.device | str) -> bool:
    """True on a CPU whose bf16 instructions (AMX or AVX512-BF16) make the bf16 GEMM cheaper than the fp32
    one: about 5x (AMX) and 2x (AVX512-BF16) on the embedded head."""
    if torch.device(device).type != "cpu":
        return False
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in BF16_CPU_PROBES)


def augmented_width(d: int) -> int:
    """Inner width of the screen's GEMM: the features, a 1 for the bias, zeros up to a multiple of 32."""
    return -(-(d + 1) // 32) * 32


@dataclass(frozen=True)
class Bf16Screen(HeadScreen):
    """The head's bf16 copy ``[w_v, b_v, 0...]`` (V, K), K = d + 1 rounded up to a multiple of 32."""

    weight: torch.Tensor

    @classmethod
    @torch.no_grad()
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, block: int = SCREEN_BLOCK) -> "Bf16Screen":
        norms, biases, finite = cls.norms_of(weight, bias, block)
        vocab, d = weight.shape
        augmented = weight.new_zeros((vocab, augmented_width(d)), dtype=torch.bfloat16)
        augmented[:, :d] = weight
        if bias is not None:
            augmented[:, d] = bias
        return cls(block, norms, biases, finite, cls.key_of(weight, bias), augmented)

    @torch.no_grad()
    def block_bounds(self, x: torch.Tensor, rows: int, cols: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        n, d = x.shape
        vocab, block = self.weight.shape[0], self.block
        cols = block_columns(vocab, block, cols)
        x_b = x.new_zeros((n, self.weight.shape[1]), dtype=torch.bfloat16)  # [x, 1, 0...]: the bias as a column
        x_b[:, :d] = x
        x_b[:, d] = 1.0
        maxima = x.new_empty((n, self.weight_norms.numel()))
        for c0 in range(0, vocab, cols):
            w = self.weight[c0 : c0 + cols]
            j0 = c0 // block
            for r0 in range(0, n, rows):
                tile = block_max(F.linear(x_b[r0 : r0 + rows], w), block)
                maxima[r0 : r0 + rows, j0 : j0 + tile.shape[1]] = tile
        x_norm = x.double().norm(dim=1, keepdim=True)
        flush = FLUSH_UNIT * 2 * (d + 2) * (1 + x_norm + self.weight_norms)
        bound = BOUND_SLACK * UNIT_ROUNDOFF_BF16 * (ERROR_FACTOR * x_norm * self.weight_norms
                                                    + BIAS_ERROR_FACTOR * self.bias_norms) + flush
        maxima = maxima.double()
        return maxima + bound, maxima - bound


__all__ = ["BF16_CPU_PROBES", "Bf16Screen", "bf16_screen_pays"]
