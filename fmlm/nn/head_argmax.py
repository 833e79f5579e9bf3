"""``argmax(x W^T + b)`` over a large vocabulary without writing the logits out, and, where bf16 matrix
units make it cheaper, with a bf16 screen that returns the same ids.

The decoder head's last matrix maps each token's features (d) to the whole vocabulary (30,522 for the
embedded BERT tokenizer). Written whole, the logits of 256 tokens are 31 MB: the GEMM writes them to
memory and the argmax reads them back, and on a CPU that traffic, not the arithmetic, sets the speed.
``linear_argmax`` computes the logits in tiles of ``rows`` tokens by ``cols`` vocabulary entries that stay
in cache, the vocabulary tile outermost so each slice of W is read from memory once, and keeps a running
(best value, best id) per token.

Same result as ``F.linear(x, weight, bias).argmax(-1)``: every logit is the same fp32 dot product
(a tile is a sub-matrix of the one GEMM), ties go to the lowest id as in ``torch.argmax`` (a later tile
replaces the best only when strictly larger; within a tile ``max`` returns the first maximum), and a
NaN logit wins as it does in ``torch.argmax``.

``screened_argmax`` computes every logit in bf16 first (inputs rounded to bf16, products accumulated in
fp32 by oneDNN's AMX or AVX512-BF16 kernels, the result rounded to bf16), then the exact fp32 logit only of the
candidates that a rounding-error bound cannot rule out. With unit roundoff u = 2^-8 and
A_v = sum_i |x_i w_vi| <= ||x|| ||w_v||, a screened logit s_v lies within
``E = 4.5 u ||x|| max ||w_v|| + 3 u max |b_v|`` (maxima over v's block of ``SCREEN_BLOCK`` ids) of the
real one. The bias enters the bf16 GEMM as one more input column (against a 1), so the terms are two
input roundings (2u (A + |b|)), the fp32 sum (below u (A + |b|) / 16 for d <= 4096) and the output
rounding (u (A + |b|)): 3.1 u (A + |b|) with the second-order terms; the factors 4.5 and 3 also cover a
kernel that added the bias in bf16 after rounding the product (4.1 u A + 2 u |b|). So every id whose real logit could reach the
top has ``s_v + E_v >= s_top - E_top``; only the blocks of ``SCREEN_BLOCK`` ids
holding such an id are scored in fp32 (on the trained FMLM*'s head, 5.6 of 120 blocks per token on average
under the looser bound with one global max ||w_v||; fewer with the per-block maxima).
The fp32 logits are those of the fp32 GEMM, so the ids are the same as ``linear_argmax``'s, ties and all.
Both CPU kernels that take bf16 inputs (AMX tiles, AVX512-BF16 ``vdpbf16ps``) flush denormal inputs,
products and partial sums to zero. A flushed input moves its product by less than 2^-126 times the
other factor (at most sqrt(d + 1) (||x|| + max ||w_v||) over all inputs), a flushed product or partial sum
the sum by less than 2^-126 (2 (d + 1) of them), so ``2 (d + 2) 2^-126 (1 + ||x|| + max ||w_v||)`` more
covers every flush (it matters only for logits near 1e-36). Rows with a non-finite value take the fp32
path. Used on CPUs with AMX or AVX512-BF16 (``bf16_screen_pays``): there the bf16 GEMM runs about 5x
(AMX) and 2x (AVX512-BF16) faster than fp32; a GPU's bf16 GEMM may reduce in bf16, which the bound does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

UNIT_ROUNDOFF_BF16 = 2.0**-8
ERROR_FACTOR = 4.5  # times u ||x|| max ||w||: the bf16 screen's error bound (module docstring)
BIAS_ERROR_FACTOR = 3.0  # times u max |b|
FLUSH_UNIT = 2.0**-126  # the smallest normal fp32: what a denormal flushed to zero can move a sum by
SCREEN_BLOCK = 256
"""Ids per block of the screen: the unit whose fp32 logits are computed when the bound cannot rule it out."""

ROW_TILE = 512
COL_TILE = 2048
"""Default tile: 512 x 2048 logits (4 MB in fp32). On the embedded head (384 x 30,522, one CPU thread):
fp32 256 x 2048 tiles took 430 ms for 2048 tokens against 589 ms for 256-token chunks of whole logits;
on the trained FMLM*'s head at 1024 tokens the bf16 screen took 68.7 ms with 512-row tiles against
84.0 ms with 256 (an earlier version with a 3.5 u bound; the current one takes 70 ms at 512), the fp32
tiles 180 ms with 1024 rows against 197 ms with 256. On an AMD EPYC with AVX512-BF16 and no AMX, the
whole decoder pass of the trained FMLM* on 1024 random latents (its forward included) took 328 ms
through the screen against 482 ms through the fp32 tiles (benchmarks/results/sampling_cpu_avx512bf16.md)."""


def _check_tile(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")


def _check_inputs(caller: str, x: torch.Tensor, weight: torch.Tensor, rows: int, cols: int | None) -> None:
    """Refuse a bad tile size or shapes other than x (N, d), weight (V, d), naming ``caller``."""
    _check_tile("rows", rows)
    if cols is not None:
        _check_tile("cols", cols)
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"{caller}: expected x (N, d) and weight (V, d), got {tuple(x.shape)} and "
                         f"{tuple(weight.shape)}")


@torch.no_grad()
def linear_argmax(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                  rows: int = ROW_TILE, cols: int | None = COL_TILE) -> torch.Tensor:
    """``F.linear(x, weight, bias).argmax(-1)`` for ``x`` (N, d), ``weight`` (V, d): (N,) int64, computed in
    ``rows`` x ``cols`` tiles (``cols=None``: the whole vocabulary per tile of rows)."""
    _check_inputs("linear_argmax", x, weight, rows, cols)
    n, vocab = x.shape[0], weight.shape[0]
    cols = vocab if cols is None else min(cols, vocab)
    best = x.new_full((n,), float("-inf"))
    ids = torch.zeros(n, dtype=torch.long, device=x.device)
    for c0 in range(0, vocab, cols):
        w = weight[c0 : c0 + cols]
        b = None if bias is None else bias[c0 : c0 + cols]
        for r0 in range(0, n, rows):
            values, idx = F.linear(x[r0 : r0 + rows], w, b).max(-1)
            old = best[r0 : r0 + rows]
            better = (values > old) | (values.isnan() & ~old.isnan())
            best[r0 : r0 + rows] = torch.where(better, values, old)
            ids[r0 : r0 + rows] = torch.where(better, idx + c0, ids[r0 : r0 + rows])
    return ids


BF16_CPU_PROBES = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
"""``torch.cpu`` probes of the instructions that take bf16 inputs and accumulate in fp32 (AMX, AVX512-BF16)."""


def bf16_screen_pays(device: torch.device | str) -> bool:
    """True on a CPU whose bf16 instructions (AMX or AVX512-BF16) make the screen cheaper than the fp32
    GEMM (measured: 1024 tokens on the embedded head, one thread, module docstring of ``ROW_TILE``)."""
    if torch.device(device).type != "cpu":
        return False
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in BF16_CPU_PROBES)


def _augmented_width(d: int) -> int:
    """Inner width of the screen's GEMM: the features, a 1 for the bias, zeros up to a multiple of 32."""
    return -(-(d + 1) // 32) * 32


def _block_max(values: torch.Tensor, block: int) -> torch.Tensor:
    """Per block of ``block`` consecutive entries of the last dimension, the maximum (the last block may
    be shorter)."""
    whole = values.shape[-1] // block * block
    parts = [values[..., :whole].unflatten(-1, (-1, block)).amax(-1)]
    if whole < values.shape[-1]:
        parts.append(values[..., whole:].amax(-1, keepdim=True))
    return torch.cat(parts, -1)


@dataclass(frozen=True)
class ScreenedHead:
    """What the screen needs of a head besides its fp32 weights: bf16 copies and, per block of ``block``
    ids, the largest ||w_v|| and |b_v| (the bound's terms). ``ScreenedHead.of`` builds it; ``fresh`` says
    whether it still matches the head's tensors."""

    weight: torch.Tensor  # bf16 (V, K): [w_v, b_v, 0...], K = d + 1 rounded up to a multiple of 32
    block: int
    weight_norms: torch.Tensor  # (blocks,) max ||w_v|| over each block
    bias_norms: torch.Tensor  # (blocks,) max |b_v| over each block (zeros without a bias)
    key: tuple  # the fp32 tensors' storage and version counters when built

    @staticmethod
    def _key(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in (weight, bias) if t is not None)

    @classmethod
    @torch.no_grad()
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, block: int = SCREEN_BLOCK) -> "ScreenedHead":
        _check_tile("block", block)
        norms = _block_max(weight.norm(dim=1), block)
        biases = torch.zeros_like(norms) if bias is None else _block_max(bias.abs(), block)
        vocab, d = weight.shape
        augmented = weight.new_zeros((vocab, _augmented_width(d)), dtype=torch.bfloat16)
        augmented[:, :d] = weight
        if bias is not None:
            augmented[:, d] = bias
        return cls(augmented, block, norms, biases, cls._key(weight, bias))

    def fresh(self, weight: torch.Tensor, bias: torch.Tensor | None, block: int = SCREEN_BLOCK) -> bool:
        return self.block == block and self.key == self._key(weight, bias)


@torch.no_grad()
def screened_argmax(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                    head: ScreenedHead | None = None, rows: int = ROW_TILE, cols: int | None = COL_TILE,
                    block: int = SCREEN_BLOCK) -> torch.Tensor:
    """``F.linear(x, weight, bias).argmax(-1)`` for fp32 ``x`` (N, d), ``weight`` (V, d) through the bf16
    screen (module docstring); ``head``: ``ScreenedHead.of(weight, bias, block)``, when the caller keeps one.

    Pass 1: bf16 logits in ``rows`` x ``cols`` tiles, of which only each ``block`` of ids' maximum is kept.
    Pass 2: per block, the fp32 logits of the rows whose block maximum plus the block's bound reaches
    their top less its bound (the only blocks that can hold the fp32 argmax); the best of those, the
    lowest id among equals as in ``torch.argmax``. Rows with a non-finite value take ``linear_argmax``."""
    _check_inputs("screened_argmax", x, weight, rows, cols)
    _check_tile("block", block)
    if x.dtype != torch.float32 or weight.dtype != torch.float32:
        raise ValueError(f"screened_argmax: expected float32 x and weight, got {x.dtype} and {weight.dtype}")
    head = ScreenedHead.of(weight, bias, block) if head is None else head
    if head.block != block:
        raise ValueError(f"screened_argmax: head was built for blocks of {head.block} ids, not {block}")
    n, vocab = x.shape[0], weight.shape[0]
    cols = vocab if cols is None else max(block, cols // block * block)  # whole blocks per tile
    x_norm = x.norm(dim=1)
    x_b = x.new_zeros((n, head.weight.shape[1]), dtype=torch.bfloat16)  # [x, 1, 0...]: the bias as a column
    x_b[:, : x.shape[1]] = x
    x_b[:, x.shape[1]] = 1.0
    maxima = x.new_empty((n, head.weight_norms.numel()))
    for c0 in range(0, vocab, cols):
        w = head.weight[c0 : c0 + cols]
        j0 = c0 // block
        for r0 in range(0, n, rows):
            tile = _block_max(F.linear(x_b[r0 : r0 + rows], w), block)
            maxima[r0 : r0 + rows, j0 : j0 + tile.shape[1]] = tile
    # E[r, j]: the bound on |screened - real| for every id of block j in row r.
    flush = FLUSH_UNIT * 2 * (x.shape[1] + 2) * (1 + x_norm.unsqueeze(1) + head.weight_norms)
    bound = UNIT_ROUNDOFF_BF16 * (ERROR_FACTOR * x_norm.unsqueeze(1) * head.weight_norms
                                  + BIAS_ERROR_FACTOR * head.bias_norms) + flush
    top, top_block = maxima.max(1)
    floor = top - bound.gather(1, top_block.unsqueeze(1)).squeeze(1)  # below the real top logit
    fallback = ~torch.isfinite(floor) | ~torch.isfinite(x_norm)
    need = ((maxima + bound >= floor.unsqueeze(1)) & ~fallback.unsqueeze(1)).t().contiguous()  # (blocks, N)
    found_rows, found_values, found_ids = [], [], []
    for j in need.any(1).nonzero().flatten().tolist():
        r = need[j].nonzero().flatten()
        v0 = j * block
        values, idx = F.linear(x.index_select(0, r), weight[v0 : v0 + block],
                               None if bias is None else bias[v0 : v0 + block]).max(-1)
        found_rows.append(r)
        found_values.append(values)
        found_ids.append(idx + v0)
    ids = torch.zeros(n, dtype=torch.long, device=x.device)
    if found_rows:
        r, values, found = torch.cat(found_rows), torch.cat(found_values), torch.cat(found_ids)
        best = x.new_full((n,), float("-inf")).scatter_reduce(0, r, values, "amax")
        lowest = torch.where(values == best[r], found, torch.full_like(found, vocab))
        ids = torch.full((n,), vocab, dtype=torch.long, device=x.device).scatter_reduce(0, r, lowest, "amin")
    if bool(fallback.any()):
        ids[fallback] = linear_argmax(x[fallback], weight, bias, rows=rows, cols=cols)
    return ids


__all__ = ["COL_TILE", "ROW_TILE", "SCREEN_BLOCK", "ScreenedHead", "bf16_screen_pays", "linear_argmax",
           "screened_argmax"]
