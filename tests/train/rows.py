"""An in-memory stand-in for ``fmlm.data.LatentRows`` (same interface) for loop tests."""

import numpy as np
import torch


class MemoryRows:
    def __init__(self, n: int, length: int, dim: int, vocab: int, seed: int = 0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        codebook = rng.standard_normal((vocab, dim)).astype(dtype)
        self.ids = rng.integers(0, vocab, size=(n, length)).astype(np.int32)
        self.x0 = codebook[self.ids]
        self.meta = {"dim": dim, "vocab_size": vocab, "row_len": length}

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, indices):
        return torch.from_numpy(self.ids[indices].astype(np.int64)), torch.from_numpy(self.x0[indices])
