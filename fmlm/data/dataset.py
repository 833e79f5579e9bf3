"""Read a prepared folder (``fmlm.data.cache``): rows for training, meta, and a decoder back to text.

``LatentRows(folder, split)`` is a torch Dataset over the memory-mapped cache: item ``i`` is
``(ids int64 (L,), x0 float32 (L, d))``; ``batch(indices)`` gathers many rows at once (faster than
collating single items). Arrays open lazily in each process, so DataLoader workers never pickle them.

``TokenRows(folder, split)`` gives ids only (folders prepared without cached latents: paper scale);
``encoder_for(folder)`` loads the encoder it was prepared with, for encoding on the fly.

``tokenizer_for(folder)`` returns a ``TextDecoder`` built from the tokenizer saved in the folder.
``decode`` skips special tokens: bos/eos/sep/pad mark row structure (row frame, document
boundaries, padding), not text, so a row decodes to its words only; document boundaries inside a
row therefore vanish from the text. ``decode_segments`` keeps them by splitting at the separator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fmlm.data.cache import FORMAT_VERSION, META_FILE, SPLITS, TOKENIZER_DIR, check_files


def load_meta(folder: str | Path) -> dict:
    """The ``meta.json`` of a prepared folder (one-line ValueError when it is not one)."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ValueError(f"folder: {folder} is not a prepared data folder (no {META_FILE})")
    meta = json.loads(path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"folder: {folder} has format {meta.get('format_version')}, this code reads {FORMAT_VERSION}")
    return meta


def _open_split(folder: str | Path, split: str) -> tuple[Path, str, dict]:
    """(folder, split, meta) of a prepared folder's split; an unknown split is a one-line ValueError."""
    if split not in SPLITS:
        raise ValueError(f"split: {split!r} is not one of {list(SPLITS)}")
    meta = load_meta(folder)
    check_files(Path(folder), meta)
    return Path(folder), split, meta


class LatentRows(torch.utils.data.Dataset):
    """Rows of one split: ``(ids int64 (L,), x0 float32 (L, d))``."""

    def __init__(self, folder: str | Path, split: str):
        self.folder, self.split, self._meta = _open_split(folder, split)
        if not self._meta["latents"]:
            raise ValueError(f"folder: {folder} holds no cached latents (prepared with cache_latents=false)")
        self._ids: np.ndarray | None = None
        self._x0: np.ndarray | None = None
        self._len = int(self._meta["rows"][split])

    @property
    def meta(self) -> dict:
        return self._meta

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ids is None:
            self._ids = np.load(self.folder / f"ids_{self.split}.npy", mmap_mode="r")
            self._x0 = np.load(self.folder / f"latents_{self.split}.npy", mmap_mode="r")
            if len(self._ids) != self._len or len(self._x0) != self._len:
                raise ValueError(f"folder: {self.folder} {self.split} arrays disagree with meta.json row count")
        return self._ids, self._x0

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_ids"] = state["_x0"] = None  # reopen in the worker instead of pickling the data
        return state

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self._len <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} rows")
        ids, x0 = self._open()
        return (torch.from_numpy(np.asarray(ids[index], dtype=np.int64)),
                torch.from_numpy(np.asarray(x0[index], dtype=np.float32)))

    def batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``indices`` at once: ``(ids int64 (B, L), x0 float32 (B, L, d))``."""
        ids, x0 = self._open()
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            raise IndexError(f"indices out of range for {self._len} rows")
        return (torch.from_numpy(np.asarray(ids[idx], dtype=np.int64)),
                torch.from_numpy(np.asarray(x0[idx], dtype=np.float32)))


class TokenRows(torch.utils.data.Dataset):
    """Rows of one split as ids only, ``int64 (L,)``: for folders prepared with ``cache_latents=False``,
    where the trainer computes ``x0 = whiten(encoder.encode(ids), mu, sigma)`` on the fly
    (``encoder_for`` gives the encoder, ``meta`` mu and sigma)."""

    def __init__(self, folder: str | Path, split: str):
        self.folder, self.split, self._meta = _open_split(folder, split)
        self._ids: np.ndarray | None = None
        self._len = int(self._meta["rows"][split])

    @property
    def meta(self) -> dict:
        return self._meta

    def _open(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.load(self.folder / f"ids_{self.split}.npy", mmap_mode="r")
        return self._ids

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _ids=None)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -self._len <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} rows")
        return torch.from_numpy(np.asarray(self._open()[index], dtype=np.int64))


def encoder_for(folder: str | Path, device: str = "cpu"):
    """The ``FrozenEncoder`` (name, layer, tokenizer, dtype) a folder was prepared with, on ``device``."""
    from fmlm.data.encoder import FrozenEncoder

    cfg = load_meta(folder)["config"]
    return FrozenEncoder(cfg["encoder"], cfg["layer"], cfg["tokenizer"] or None, device, cfg["encoder_dtype"])


class TextDecoder:
    """Token ids -> text with the tokenizer saved in a prepared folder."""

    def __init__(self, tokenizer, sep_id: int):
        self.tokenizer = tokenizer
        self.sep_id = int(sep_id)

    @staticmethod
    def _as_list(ids) -> list[int]:
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"ids: expected one row (L,), got shape {ids.shape}")
        return [int(i) for i in ids]

    def decode(self, ids) -> str:
        """One row of ids -> text, special tokens skipped (see module docstring)."""
        return self.tokenizer.decode(self._as_list(ids), skip_special_tokens=True).strip()

    def decode_batch(self, ids) -> list[str]:
        """Rows ``(B, L)`` -> B texts."""
        return [self.decode(row) for row in ids]

    def decode_segments(self, ids) -> list[str]:
        """One row -> the texts between separators (document pieces), special tokens skipped, empties dropped."""
        pieces, current = [], []
        for token in self._as_list(ids):
            if token == self.sep_id:
                pieces.append(current)
                current = []
            else:
                current.append(token)
        pieces.append(current)
        texts = (self.tokenizer.decode(p, skip_special_tokens=True).strip() for p in pieces)
        return [t for t in texts if t]


def tokenizer_for(folder: str | Path) -> TextDecoder:
    """A ``TextDecoder`` for the ids of a prepared folder."""
    from transformers import AutoTokenizer

    meta = load_meta(folder)
    return TextDecoder(AutoTokenizer.from_pretrained(Path(folder) / TOKENIZER_DIR), meta["sep_id"])
