"""``argmax(x W^T + b)`` over a large vocabulary without writing the logits out, and, where the CPU has a
cheaper GEMM than fp32, through a screen that returns the same ids.

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

``screened_argmax`` first bounds, per token and block of ``SCREEN_BLOCK`` ids, the block's largest real
logit from below and above (``fmlm.nn.cpu.head_screen``: exact int8 products on CPUs with VNNI,
``fmlm.nn.cpu.screen_int8``), then scores in fp32 only the blocks whose upper bound reaches the token's
largest lower bound. The fp32
logits it compares are those of the fp32 GEMM, which lie within gamma = (d + 2) 2^-24 (||x|| max ||w_v||
+ max |b_v|) of the real ones (the worst-case rounding of a sum of d + 1 products); both bounds are
widened by gamma, so the block holding the fp32 argmax is always scored and the ids are the same as
``linear_argmax``'s, ties and all. Rows with a non-finite value, or whose logits could leave the fp32
range, take ``linear_argmax``; so does every row when the head itself is not finite.

``decoder_argmax`` is the decoder pass's choice among these (``Denoiser.token_ids``): the screen and the
vocabulary tile that pay on the features' device, as ``FMLM_CPU_KERNELS`` (``fmlm.nn.cpu.switch``) allows.
A bf16 screen (bf16 products accumulated in fp32, under a rounding bound) was chosen on CPUs with AMX or
AVX512-BF16 but no VNNI. No such CPU exists: every CPU with AVX512-BF16 (Intel Cooper Lake, Sapphire
Rapids and later, AMD Zen 4 and 5) or AMX also has AVX512-VNNI, so it was reached only on a VNNI CPU
whose ``torch._int_mm`` proved inexact: not the AMD EPYC with VNNI (exact), nor an AMX CPU, whose int8
tiles sum in int32. It was removed (``fmlm/nn/screen_bf16.py`` in the git history); a CPU with an inexact
``torch._int_mm`` takes the fp32 tiles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fmlm.nn.cpu import switch
from fmlm.nn.cpu.head_screen import BOUND_SLACK, SCREEN_BLOCK, HeadScreen, check_tile
from fmlm.nn.cpu.screen_int8 import Int8Screen, int8_screen_pays, int8_screen_runs, int_mm_is_exact

FP32_UNIT = 2.0**-24
FP32_SAFE = 2.0**126  # bounds beyond this may mean fp32 logits of +-inf: the row takes the fp32 path

ROW_TILE = 512
COL_TILE = 2048
"""Default tile: 512 x 2048 logits (4 MB in fp32). On the embedded head (384 x 30,522, one CPU thread):
fp32 256 x 2048 tiles took 430 ms for 2048 tokens against 589 ms for 256-token chunks of whole logits;
on the trained FMLM*'s head at 1024 tokens the (since removed) bf16 screen took 68.7 ms with 512-row tiles
against 84.0 ms with 256 (Intel with AMX), the fp32 tiles 180 ms with 1024 rows against 197 ms with 256. On
an AMD EPYC with VNNI, the int8 screen's first pass took 32-33 ms with 512 x 2048 tiles, the bf16 screen's
70.5 ms."""

SCREENS = {"int8": Int8Screen}
"""The screens by name (``screened_argmax(screen=...)``, ``Denoiser.token_ids(screen=...)``)."""


def screen_for(device: torch.device | str) -> str:
    """The screen that pays on ``device``: "int8" on a CPU with VNNI and an exact ``torch._int_mm``, else
    "none" (the fp32 tiles)."""
    return "int8" if int8_screen_pays(device) else "none"


def default_screen(device: torch.device | str) -> str:
    """The screen of ``screen="auto"`` under the switch: "none" when off; when on, "int8" on any CPU whose
    ``torch._int_mm`` is exact; else ``screen_for(device)``."""
    if switch.mode() == "off":
        return "none"
    if switch.mode() == "on":
        return "int8" if int8_screen_runs(device) else "none"
    return screen_for(device)


def default_tile(device: torch.device | str) -> int | None:
    """The vocabulary tile of ``vocab_tile="auto"``: ``COL_TILE`` on a CPU, where the whole logits' memory
    traffic costs more than their arithmetic, unless the switch is off; all (None) on a GPU, where each
    tile is a kernel launch."""
    return COL_TILE if torch.device(device).type == "cpu" and switch.enabled() else None


def _check_inputs(caller: str, x: torch.Tensor, weight: torch.Tensor, rows: int, cols: int | None) -> None:
    """Refuse a bad tile size or shapes other than x (N, d), weight (V, d), naming ``caller``."""
    check_tile("rows", rows)
    if cols is not None:
        check_tile("cols", cols)
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


def screen_of(screen: str, weight: torch.Tensor, bias: torch.Tensor | None = None,
              block: int = SCREEN_BLOCK) -> HeadScreen:
    """The screen named ``screen`` ("int8") of the head (weight, bias); "int8" is refused where
    ``torch._int_mm`` is not exact."""
    if screen not in SCREENS:
        raise ValueError(f"screen: expected one of {sorted(SCREENS)}, got {screen!r}")
    if screen == "int8" and not int_mm_is_exact():
        raise ValueError("screen 'int8': torch._int_mm does not return exact int32 sums on this machine")
    return SCREENS[screen].of(weight, bias, block)


@torch.no_grad()
def screened_argmax(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                    head: HeadScreen | None = None, screen: str = "int8", rows: int = ROW_TILE,
                    cols: int | None = COL_TILE, block: int = SCREEN_BLOCK) -> torch.Tensor:
    """``F.linear(x, weight, bias).argmax(-1)`` for fp32 ``x`` (N, d), ``weight`` (V, d) through a screen
    (module docstring); ``head``: ``screen_of(screen, weight, bias, block)``, when the caller keeps one.

    Pass 1: the screen's bounds per (row, block), in ``rows`` x ``cols`` tiles. Pass 2: per block, the
    fp32 logits of the rows whose upper bound reaches their largest lower bound; the best of those, the
    lowest id among equals as in ``torch.argmax``."""
    _check_inputs("screened_argmax", x, weight, rows, cols)
    check_tile("block", block)
    if x.dtype != torch.float32 or weight.dtype != torch.float32:
        raise ValueError(f"screened_argmax: expected float32 x and weight, got {x.dtype} and {weight.dtype}")
    head = screen_of(screen, weight, bias, block) if head is None else head
    if head.block != block:
        raise ValueError(f"screened_argmax: head was built for blocks of {head.block} ids, not {block}")
    n, vocab = x.shape[0], weight.shape[0]
    if n == 0 or not head.usable:
        return linear_argmax(x, weight, bias, rows=rows, cols=cols)
    upper, lower = head.block_bounds(x, rows, cols)
    x_norm = x.double().norm(dim=1, keepdim=True)
    gamma = BOUND_SLACK * FP32_UNIT * (x.shape[1] + 2) * (x_norm * head.weight_norms + head.bias_norms)
    upper, lower = upper + gamma, lower - gamma
    floor = lower.amax(1)  # below the row's largest real logit, and its fp32 logit's
    fallback = (~torch.isfinite(floor) | ~torch.isfinite(x_norm[:, 0])
                | (torch.maximum(upper.abs(), lower.abs()).amax(1) >= FP32_SAFE))
    need = ((upper >= floor.unsqueeze(1)) & ~fallback.unsqueeze(1)).t().contiguous()  # (blocks, N)
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


def check_decoder_options(screen: str, chunk_tokens: int) -> None:
    """Refuse a ``screen`` other than "auto", "none" or a name in ``SCREENS``, or a bad ``chunk_tokens``."""
    if not isinstance(screen, str) or screen not in ("auto", "none", *SCREENS):
        raise ValueError(f"screen: expected 'auto', 'none' or one of {sorted(SCREENS)}, got {screen!r}")
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise ValueError(f"chunk_tokens: expected an integer >= 1, got {chunk_tokens!r}")


@torch.no_grad()
def decoder_argmax(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   screens: dict[str, HeadScreen], *, chunk_tokens: int = ROW_TILE,
                   vocab_tile: int | None | str = "auto", screen: str = "auto") -> torch.Tensor:
    """``F.linear(features, weight, bias).argmax(-1)`` for ``features`` (N, d): (N,) int64, through
    ``linear_argmax`` in tiles of ``chunk_tokens`` rows by ``vocab_tile`` ids ("auto": ``default_tile``) or,
    for ``screen`` "int8" ("auto": on fp32 features, ``default_screen``), ``screened_argmax``. ``screens``:
    the caller's screens of this head by name, rebuilt here when the weights have changed."""
    check_decoder_options(screen, chunk_tokens)
    if vocab_tile == "auto":
        vocab_tile = default_tile(features.device)
    if screen == "auto":
        fp32 = features.dtype == weight.dtype == torch.float32
        screen = default_screen(features.device) if fp32 else "none"
    if screen == "none":
        return linear_argmax(features, weight, bias, rows=chunk_tokens, cols=vocab_tile)
    head = screens.get(screen)
    if head is None or not head.fresh(weight, bias):
        head = screens[screen] = screen_of(screen, weight, bias)
    return screened_argmax(features, weight, bias, head=head, rows=chunk_tokens, cols=vocab_tile)


__all__ = ["COL_TILE", "ROW_TILE", "SCREENS", "SCREEN_BLOCK", "check_decoder_options", "decoder_argmax",
           "default_screen", "default_tile", "linear_argmax", "screen_for", "screen_of", "screened_argmax"]
