"""An in-memory stand-in for ``fmlm.data.LatentRows`` (same interface) for loop tests."""

import numpy as np


class MemoryRows:
    def __init__(self, n: int, length: int, dim: int, vocab: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        codebook = rng.standard_normal((vocab, dim)).astype(np.float32)
        self.ids = rng.integers(0, vocab, size=(n, length)).astype(np.int32)
        self.x0 = codebook[self.ids]
        self.row_len = length
        self.meta = {"dim": dim, "vocab_size": vocab, "row_len": length}

    def __len__(self) -> int:
        return len(self.ids)

    def get_rows(self, indices):
        return self.ids[indices], self.x0[indices]
