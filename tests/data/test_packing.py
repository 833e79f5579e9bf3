"""Row layout [bos] + body + [eos], document separators, row count and the dropped remainder."""

import numpy as np
import pytest

from fmlm.data.packing import RowPacker, pack_rows

BOS, EOS, SEP = 101, 102, 103


def test_layout_rows_and_remainder():
    docs = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9]]
    packer = RowPacker(row_len=5, bos_id=BOS, eos_id=EOS, sep_id=SEP)
    rows = packer.add(docs)
    stats = packer.finish()
    # stream: 1 2 3 S 4 5 S 6 7 8 9 S  (12 tokens, empty document adds nothing) -> 4 bodies of 3, remainder 0
    assert rows.dtype == np.int32 and rows.shape == (4, 5)
    assert (rows[:, 0] == BOS).all() and (rows[:, -1] == EOS).all()
    assert rows[:, 1:-1].reshape(-1).tolist() == [1, 2, 3, SEP, 4, 5, SEP, 6, 7, 8, 9, SEP]
    assert (stats.documents, stats.empty_documents, stats.stream_tokens, stats.rows, stats.remainder_tokens) == (
        4, 1, 12, 4, 0)


def test_remainder_is_counted_not_silently_lost():
    packer = RowPacker(row_len=6, bos_id=BOS, eos_id=EOS)
    rows = packer.add([list(range(1, 11))])  # 10 tokens + sep = 11 -> 2 bodies of 4, remainder 3
    assert rows.shape == (2, 6)
    assert packer.finish().remainder_tokens == 3
    assert rows[1, 1:-1].tolist() == [5, 6, 7, 8]


def test_streaming_equals_one_shot():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50, size=rng.integers(0, 30)).tolist() for _ in range(40)]
    whole = pack_rows(docs, row_len=16, bos_id=BOS, eos_id=EOS)
    packer = RowPacker(16, BOS, EOS)
    parts = [packer.add(docs[i:i + 7]) for i in range(0, 40, 7)]
    assert np.array_equal(np.concatenate(parts), whole)
    n_stream = sum(len(d) + 1 for d in docs if d)
    assert len(whole) == n_stream // 14 and packer.finish().remainder_tokens == n_stream % 14


def test_gpt2_style_bos_equals_eos_equals_sep():
    rows = pack_rows([[7, 8], [9]], row_len=7, bos_id=50256, eos_id=50256)
    assert rows.tolist() == [[50256, 7, 8, 50256, 9, 50256, 50256]]


@pytest.mark.parametrize("kwargs, key", [({"row_len": 2}, "row_len"), ({"bos_id": -1}, "bos_id")])
def test_bad_arguments(kwargs, key):
    args = {"row_len": 8, "bos_id": 1, "eos_id": 2} | kwargs
    with pytest.raises(ValueError, match=key):
        RowPacker(**args)


def test_add_after_finish_is_an_error():
    packer = RowPacker(8, 1, 2)
    packer.finish()
    with pytest.raises(ValueError, match="after finish"):
        packer.add([[3]])
