"""What every screen of the decoder head's argmax shares (``fmlm.nn.cpu.head_argmax.screened_argmax``).

A screen splits the vocabulary into blocks of ``SCREEN_BLOCK`` consecutive ids and, for each token row r
and block j, computes cheaply two numbers that bracket the block's largest real logit:

    lower[r, j] <= max over v in block j of (x_r . w_v + b_v) <= upper[r, j]

(real: the exact value of the fp32 inputs' dot product). The argmax can then only lie in a block whose
``upper`` reaches the row's largest ``lower``; only those blocks are scored in fp32. One screen so far:
``fmlm.nn.cpu.screen_int8`` (integer products, exact, on CPUs with VNNI). The bounds are float64: their own
arithmetic rounds by about 2^-52 of the logits' scale, far inside the (d + 2) 2^-24 of it by which
``screened_argmax`` widens them for the fp32 candidates' rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SCREEN_BLOCK = 256
"""Ids per block of a screen: the unit whose fp32 logits are computed when the bounds cannot rule it out."""

BOUND_SLACK = 1.0 + 2.0**-12
"""Factor on every error bound: covers the rounding of the norms and maxima the bounds are built from
(relative errors below d 2^-53 in float64, below 2^-24 where a float64 value is rounded to fp32)."""


def check_tile(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")


def block_max(values: torch.Tensor, block: int) -> torch.Tensor:
    """Per block of ``block`` consecutive entries of the last dimension, the maximum (the last block may
    be shorter)."""
    whole = values.shape[-1] // block * block
    parts = [values[..., :whole].unflatten(-1, (-1, block)).amax(-1)]
    if whole < values.shape[-1]:
        parts.append(values[..., whole:].amax(-1, keepdim=True))
    return torch.cat(parts, -1)


BUILD_ROWS = 4096
"""Vocabulary rows per chunk when a screen is built: its float64 temporaries stay near 4096 d 8 bytes."""


def row_chunks(vocab: int) -> list[slice]:
    """The build's chunks of ``BUILD_ROWS`` vocabulary rows."""
    return [slice(i, min(i + BUILD_ROWS, vocab)) for i in range(0, vocab, BUILD_ROWS)]


def block_columns(vocab: int, block: int, cols: int | None) -> int:
    """Vocabulary entries per tile of a screen's first pass: whole blocks (``cols=None``: all)."""
    return vocab if cols is None else max(block, cols // block * block)


@dataclass(frozen=True)
class HeadScreen:
    """A screen of one head ``(weight (V, d), bias (V,))``: per block of ``block`` ids, the largest ||w_v||
    and |b_v| (float64), whether the head is finite (a screen of non-finite weights cannot bound
    anything: ``screened_argmax`` then takes the fp32 tiles), and the fp32 tensors' identity when built.
    Subclasses add what their first pass needs and ``block_bounds``."""

    block: int
    weight_norms: torch.Tensor  # (blocks,) float64 max ||w_v|| over each block
    bias_norms: torch.Tensor  # (blocks,) float64 max |b_v| over each block (zeros without a bias)
    usable: bool  # weights and bias finite (and, for a screen with limits, within them)
    key: tuple  # the fp32 tensors' storage and version counters when built

    @staticmethod
    def key_of(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in (weight, bias) if t is not None)

    @staticmethod
    def norms_of(weight: torch.Tensor, bias: torch.Tensor | None, block: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(max ||w_v||, max |b_v|) per block in float64, and whether weight and bias are finite; a bad
        ``block`` is refused first."""
        check_tile("block", block)
        norms = block_max(torch.cat([weight[rows].double().norm(dim=1) for rows in row_chunks(weight.shape[0])]), block)
        biases = torch.zeros_like(norms) if bias is None else block_max(bias.double().abs(), block)
        finite = bool(torch.isfinite(weight).all()) and (bias is None or bool(torch.isfinite(bias).all()))
        return norms, biases, finite

    def fresh(self, weight: torch.Tensor, bias: torch.Tensor | None, block: int = SCREEN_BLOCK) -> bool:
        return self.block == block and self.key == self.key_of(weight, bias)

    def block_bounds(self, x: torch.Tensor, rows: int, cols: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(upper, lower), float64 (N, blocks): bounds on each block's largest real logit for fp32 ``x``
        (N, d), computed in ``rows`` x ``cols`` tiles. Rows with a non-finite value may get any bounds
        (``screened_argmax`` sends them to the fp32 path)."""
        raise NotImplementedError


__all__ = ["BOUND_SLACK", "SCREEN_BLOCK", "HeadScreen", "block_columns", "block_max", "check_tile", "row_chunks"]
