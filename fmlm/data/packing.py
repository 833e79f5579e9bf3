"""Pack tokenized documents into fixed-length rows ``[bos] + (row_len - 2) tokens + [eos]``.

Documents are concatenated into one stream, each followed by the separator token
(``sep_id``, by default ``eos_id``): ``d1 sep d2 sep d3 sep ...``. The stream is cut into
bodies of ``row_len - 2`` tokens and each body is framed by ``bos`` and ``eos``.
Paper (GPT-2, bos = eos = sep = <|endoftext|>): ``[EOS] + 1022 tokens + [EOS]``;
a BERT-style tokenizer uses ``[CLS] ... [SEP]`` with ``[SEP]`` between documents.
Only the final incomplete body is dropped; its length is ``PackStats.remainder_tokens``.
Empty documents contribute nothing (not even a separator) and are counted.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

MIN_ROW_LEN = 3  # bos + at least one text token + eos


@dataclasses.dataclass
class PackStats:
    """Counts of one packing run (all in tokens unless named otherwise)."""

    documents: int = 0
    empty_documents: int = 0
    stream_tokens: int = 0  # document tokens plus one separator per non-empty document
    rows: int = 0
    remainder_tokens: int = 0  # the final incomplete body, dropped (set by ``RowPacker.finish``)


class RowPacker:
    """Streaming packer: ``add`` documents in batches, get the completed rows back, ``finish`` at the end."""

    def __init__(self, row_len: int, bos_id: int, eos_id: int, sep_id: int | None = None):
        if row_len < MIN_ROW_LEN:
            raise ValueError(f"row_len: must be at least {MIN_ROW_LEN} (bos + a token + eos), got {row_len}")
        for key, value in (("bos_id", bos_id), ("eos_id", eos_id), ("sep_id", sep_id)):
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
                raise ValueError(f"{key}: expected a non-negative token id, got {value!r}")
        self.row_len = row_len
        self.bos_id = int(bos_id)
        self.eos_id = int(eos_id)
        self.sep_id = int(eos_id if sep_id is None else sep_id)
        self.stats = PackStats()
        self._buffer = np.zeros(0, dtype=np.int64)
        self._finished = False

    @property
    def body_len(self) -> int:
        return self.row_len - 2

    def add(self, token_lists: Iterable[Sequence[int]]) -> np.ndarray:
        """Append documents to the stream; return the rows completed so far, ``(k, row_len)`` int32."""
        if self._finished:
            raise ValueError("RowPacker: add() after finish()")
        pieces = [self._buffer]
        for tokens in token_lists:
            self.stats.documents += 1
            if len(tokens) == 0:
                self.stats.empty_documents += 1
                continue
            pieces.append(np.asarray(tokens, dtype=np.int64))
            pieces.append(np.array([self.sep_id], dtype=np.int64))
            self.stats.stream_tokens += len(tokens) + 1
        stream = np.concatenate(pieces)
        n_rows = len(stream) // self.body_len
        bodies = stream[: n_rows * self.body_len].reshape(n_rows, self.body_len)
        self._buffer = stream[n_rows * self.body_len:]
        self.stats.rows += n_rows
        rows = np.empty((n_rows, self.row_len), dtype=np.int64)
        rows[:, 0] = self.bos_id
        rows[:, 1:-1] = bodies
        rows[:, -1] = self.eos_id
        if rows.size and (rows.min() < 0 or rows.max() > np.iinfo(np.int32).max):
            raise ValueError("token_lists: token ids must lie in [0, 2**31)")
        return rows.astype(np.int32)

    def finish(self) -> PackStats:
        """Drop the incomplete final body (counted in ``stats.remainder_tokens``) and return the stats."""
        if not self._finished:
            self.stats.remainder_tokens = len(self._buffer)
            self._buffer = np.zeros(0, dtype=np.int64)
            self._finished = True
        return self.stats


def pack_rows(token_lists: Iterable[Sequence[int]], row_len: int, bos_id: int, eos_id: int) -> np.ndarray:
    """All full rows of ``token_lists`` as ``(N, row_len)`` int32 (separator = ``eos_id``).

    For the dropped remainder and other counts use ``RowPacker`` directly (``finish()`` returns them).
    """
    packer = RowPacker(row_len, bos_id, eos_id)
    rows = packer.add(token_lists)
    packer.finish()
    return rows
