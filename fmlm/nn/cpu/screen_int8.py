"""The int8 screen of the decoder head's argmax (``fmlm.nn.cpu.head_screen``): exact integer products of
quantised features and weights, on CPUs whose VNNI instructions make them the cheapest GEMM there is.

Quantisation. Each token row x (d features) gets a scale sigma_x = max_i |x_i| / 127 and integers
q_x = round(x / sigma_x) in [-127, 127]; each block j of ids one scale sigma_j = max |w_vi| / 127 over the
block and integers q_v = round(w_v / sigma_j). Write x~ = sigma_x q_x, w~_v = sigma_j q_v and the
remainders dx = x - x~, dw_v = w_v - w~_v (all four computed in float64, exactly but for a relative 2^-53).

Bound. For every id v of block j, exactly (real arithmetic on the fp32 values):

    x . w_v = sigma_x sigma_j (q_x . q_v) + x~ . dw_v + dx . w_v

and by Cauchy-Schwarz the last two terms lie within ``E = ||x~|| max ||dw_v|| + ||dx|| max ||w_v||``
(maxima over the block; the inequality holds for any rounding, so clamping and ties need no care).
``torch._int_mm`` sums q_x . q_v in int32, exactly while d 127^2 < 2^31 (d <= 133,144); a head wider than that
is not screened. With A the block's largest integer product and b_min, b_max its bias range, the block's
largest real logit lies in

    [sigma_x sigma_j A + b_min - E,  sigma_x sigma_j A + b_max + E]

(the lower end: the real logit of the id that attains A). Only the rows' (N, blocks) maxima leave the
GEMM tiles; the scaling, the bias and the bound are float64 arithmetic on those.

Cost and effect. On one thread of a 2-core AMD EPYC (AVX512-VNNI, AVX512-BF16), with the trained FMLM*'s
head (384 x 30,522) and the features of 1024 random latents: the first pass (tiled int8 GEMM, block
maxima, bounds) took 32-33 ms against 70.5 ms for the bf16 screen's, the whole argmax 49 ms against 87 ms.
4.4 of 120 blocks per token are scored in fp32 against 4.7 through the bf16 screen: the integer
products have no rounding error, so the bound is as tight although int8 keeps fewer bits.

Exactness of the integer kernel is a property of the machine: without VNNI, x86 kernels may sum pairs of
products in saturating int16 (``vpmaddubsw``). ``int8_screen_pays`` asks for VNNI and checks, once,
``torch._int_mm`` against int64 products on inputs that saturate such a kernel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from fmlm.nn.cpu.head_screen import BOUND_SLACK, SCREEN_BLOCK, HeadScreen, block_columns, block_max, row_chunks

INT8_LEVELS = 127  # symmetric range [-127, 127]
MAX_EXACT_WIDTH = (2**31 - 1) // INT8_LEVELS**2
"""Largest d whose int32 sums of d products of [-127, 127] integers cannot overflow."""


@functools.cache
def int_mm_is_exact() -> bool:
    """Whether ``torch._int_mm`` on this CPU returns the exact int32 sums, checked on inputs of extreme
    values (127 and -127: a kernel summing pairs in saturating int16 gets them wrong) and random ones at
    several shapes."""
    gen = torch.Generator().manual_seed(0)
    cases = []
    for n, k, m in ((1, 64, 8), (17, 384, 33), (64, 1000, 5)):
        a = torch.full((n, k), INT8_LEVELS, dtype=torch.int8)
        a[:, 1::3] = -INT8_LEVELS
        b = torch.full((m, k), INT8_LEVELS, dtype=torch.int8)
        b[1::2, 1::3] = -INT8_LEVELS
        cases.append((a, b))
        cases.append((torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen),
                      torch.randint(-127, 128, (m, k), dtype=torch.int8, generator=gen)))
    try:
        return all(torch.equal(torch._int_mm(a, b.t()).long(), a.long() @ b.long().t()) for a, b in cases)
    except RuntimeError:  # no integer GEMM on this build
        return False


def int8_screen_runs(device: torch.device | str) -> bool:
    """True on a CPU whose ``torch._int_mm`` is exact: the screen's ids are right there, fast or not."""
    return torch.device(device).type == "cpu" and int_mm_is_exact()


def int8_screen_pays(device: torch.device | str) -> bool:
    """True on a CPU with VNNI (``torch.cpu._is_vnni_supported``) whose ``torch._int_mm`` is exact."""
    if torch.device(device).type != "cpu":
        return False
    return bool(getattr(torch.cpu, "_is_vnni_supported", lambda: False)()) and int_mm_is_exact()


def _scales(absmax: torch.Tensor) -> torch.Tensor:
    """max |value| / 127 in float64, 1 where the maximum is 0 (the integers are then all 0)."""
    absmax = absmax.double()
    return torch.where(absmax > 0, absmax / INT8_LEVELS, torch.ones_like(absmax))


def quantize(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """round(values / scales) in [-127, 127] as float64 (scales per row, broadcast), 0 where not finite."""
    q = torch.round(values.double() / scales.unsqueeze(-1)).clamp_(-INT8_LEVELS, INT8_LEVELS)
    return torch.nan_to_num_(q, nan=0.0)


@dataclass(frozen=True)
class Int8Screen(HeadScreen):
    """The head's integers q_v (V, d) int8, per block its scale sigma_j, largest ||dw_v|| and bias range."""

    weight: torch.Tensor  # int8 (V, d)
    scales: torch.Tensor  # (blocks,) float64 sigma_j
    error_norms: torch.Tensor  # (blocks,) float64 max ||w_v - sigma_j q_v||
    bias_max: torch.Tensor  # (blocks,) float64 (zeros without a bias)
    bias_min: torch.Tensor

    @classmethod
    @torch.no_grad()
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, block: int = SCREEN_BLOCK) -> "Int8Screen":
        norms, biases, finite = cls.norms_of(weight, bias, block)
        vocab, d = weight.shape
        scales = _scales(block_max(weight.abs().amax(1), block)) if finite else torch.ones_like(norms)
        per_id = scales.repeat_interleave(block)[:vocab]
        q = torch.empty((vocab, d), dtype=torch.int8, device=weight.device)
        errors = []
        for rows in row_chunks(vocab):  # float64 temporaries of a few MB at a time
            qi = quantize(weight[rows], per_id[rows])
            q[rows] = qi.to(torch.int8)
            errors.append((weight[rows].double() - per_id[rows].unsqueeze(1) * qi).norm(dim=1))
        errors = block_max(torch.cat(errors), block)
        if bias is None:
            high = low = torch.zeros_like(norms)
        else:
            high, low = block_max(bias.double(), block), -block_max(-bias.double(), block)
        usable = finite and d <= MAX_EXACT_WIDTH
        return cls(block, norms, biases, usable, cls.key_of(weight, bias), q, scales, errors, high, low)

    @torch.no_grad()
    def block_bounds(self, x: torch.Tensor, rows: int, cols: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        vocab, block = self.weight.shape[0], self.block
        cols = block_columns(vocab, block, cols)
        scale_x = _scales(x.abs().amax(1))
        q = quantize(x, scale_x)
        q8 = q.to(torch.int8)
        maxima = torch.empty((n, self.scales.numel()), dtype=torch.int32)
        for c0 in range(0, vocab, cols):
            w = self.weight[c0 : c0 + cols].t()
            j0 = c0 // block
            for r0 in range(0, n, rows):
                tile = block_max(torch._int_mm(q8[r0 : r0 + rows], w), block)
                maxima[r0 : r0 + rows, j0 : j0 + tile.shape[1]] = tile
        x_q = scale_x.unsqueeze(1) * q  # x~
        x_err = (x.double() - x_q).norm(dim=1, keepdim=True)  # ||dx||; NaN on a non-finite row
        bound = BOUND_SLACK * (x_q.norm(dim=1, keepdim=True) * self.error_norms + x_err * self.weight_norms)
        base = scale_x.unsqueeze(1) * self.scales * maxima.double()
        return base + self.bias_max + bound, base + self.bias_min - bound


__all__ = ["Int8Screen", "int8_screen_pays", "int8_screen_runs", "int_mm_is_exact"]
