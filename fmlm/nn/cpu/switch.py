"""``FMLM_CPU_KERNELS``: the one switch over this package's fast paths, read here and nowhere else.

    auto (default, or unset)  each path where it pays: the fused norms' written-out backward; explicit
                              attention for short bf16 rows with gradients on a CPU; the decoder pass's
                              vocabulary tiles on a CPU and its int8 screen on a CPU with VNNI whose
                              ``torch._int_mm`` is exact
    off                       none of them: autograd through the norm formula, ``scaled_dot_product_attention``
                              everywhere, the decoder pass's whole logits per chunk of tokens (fp32)
    on                        as auto, and the int8 screen wherever ``torch._int_mm`` is exact (VNNI or not)

Every path gives the same values as the plain one up to float rounding (the argmax paths the same ids),
so the switch changes speed, not results; ``off`` runs the plain computations on any machine. It sets
defaults only: an explicit ``screen=`` or ``vocab_tile=`` argument to ``Denoiser.token_ids`` is kept.
Read once, at first use (a process changes it through the environment before it starts; tests through
``set_mode``); a value other than the three is refused in one line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

ENV = "FMLM_CPU_KERNELS"
MODES = ("auto", "off", "on")

_mode: str | None = None  # read from the environment at first use


def parse_mode(value: str | None) -> str:
    """The mode named by ``value`` (None or "" is "auto"); anything else is a ValueError in one line."""
    if value is None or value == "":
        return "auto"
    if value not in MODES:
        raise ValueError(f"{ENV}: expected one of {', '.join(MODES)}, got {value!r}")
    return value


def mode() -> str:
    """"auto", "off" or "on": ``FMLM_CPU_KERNELS`` as read at first use."""
    global _mode
    if _mode is None:
        _mode = parse_mode(os.environ.get(ENV))
    return _mode


def enabled() -> bool:
    """Whether the fast paths may run (every mode but "off")."""
    return mode() != "off"


@contextlib.contextmanager
def set_mode(value: str) -> Iterator[None]:
    """Within the block the mode is ``value`` (checked like the variable), restored on exit."""
    global _mode
    before, _mode = _mode, parse_mode(value)
    try:
        yield
    finally:
        _mode = before


__all__ = ["ENV", "MODES", "enabled", "mode", "parse_mode", "set_mode"]
