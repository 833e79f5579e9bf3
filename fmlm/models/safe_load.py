"""Opening a PyTorch checkpoint file safely: ``torch.load(weights_only=True, mmap=True)``.

Only tensors and plain containers are unpickled; anything else is refused with one line naming the
global it pickles, and nothing in the file is executed (for a plain pickle the global is found with
``pickletools``, which only lists opcodes). Tensors stay memory-mapped where the format allows, so a
multi-GB Lightning checkpoint is read once and only the tensors used are paged in.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fmlm.files import PICKLE_PROTOCOL_WARNING, describe_refused_pickle, first_line


def load_reference_file(path: str | Path) -> dict[str, Any]:
    """The checkpoint's top-level dict, unpickled safely (tensors memory-mapped where the format allows)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PICKLE_PROTOCOL_WARNING)
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as err:  # legacy (non-zip) files cannot be memory-mapped: read them plainly
                if "mmap" not in str(err) and "zip" not in str(err).lower():
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: refused: {describe_refused_pickle(err, path)}; nothing in it was executed") from None
    except Exception as err:  # noqa: BLE001 - a damaged file fails in many ways; one line is the contract
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({first_line(err)})") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a checkpoint dict, found a {type(obj).__name__}")
    return dict(obj)
