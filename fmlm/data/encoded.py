"""Rows whose latents are computed on the fly by the frozen encoder.

At paper scale the latents are too large to cache (one 1024 x 1280 fp16 row is
2.6 MB; OpenWebText would need ~23 TB), so a folder prepared with
``cache_latents=False`` stores ids only and each batch is encoded when it is
drawn: ``x0 = (E(ids) - mu) / sigma`` with the folder's whitening scalars.
``rows_for(folder, split, device)`` returns whichever reader fits the folder;
both expose ``meta``, ``len()`` and ``batch(indices) -> (ids, x0)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fmlm.data.dataset import LatentRows, TokenRows, encoder_for, load_meta
from fmlm.data.whitening import whiten


class EncodedRows:
    """``TokenRows`` plus the folder's frozen encoder: ``batch`` returns ``(ids, x0)`` like ``LatentRows``."""

    def __init__(self, folder: str | Path, split: str, device: str | torch.device = "cpu"):
        self.tokens = TokenRows(folder, split)
        self.encoder = encoder_for(folder, str(device))
        self.device = torch.device(device)

    @property
    def meta(self) -> dict:
        return self.tokens.meta

    def __len__(self) -> int:
        return len(self.tokens)

    @torch.no_grad()
    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``indices``: ids int64 (B, L) and whitened latents float32 (B, L, d), on the encoder's device."""
        idx = np.asarray(indices, dtype=np.int64)
        ids = torch.stack([self.tokens[int(i)] for i in idx]).to(self.device)
        x0 = whiten(self.encoder.encode(ids).float(), float(self.meta["mu"]), float(self.meta["sigma"]))
        return ids, x0


def rows_for(folder: str | Path, split: str, device: str | torch.device = "cpu"):
    """``LatentRows`` when the folder caches latents, else ``EncodedRows`` encoding on ``device``."""
    if load_meta(folder)["latents"]:
        return LatentRows(folder, split)
    return EncodedRows(folder, split, device)
