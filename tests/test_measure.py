"""Held-out latents through a decoder: the rows the reference uses, the accuracy, the texts."""

from __future__ import annotations

import torch
from torch import nn

from fmlm.experiment import measure
from fmlm.experiment.measure import Scoring, measure_reconstruction


class OneHotRows:
    """Held-out rows whose latents are the one-hot codes of their ids (vocabulary 5)."""

    def __init__(self, n: int):
        self.ids = torch.arange(n * 4).reshape(n, 4) % 5

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx):
        ids = self.ids[torch.as_tensor(idx)]
        return ids, nn.functional.one_hot(ids, 5).float()


class ReadOut(nn.Module):
    """A decoder head that reads the token off a one-hot latent, shifted by ``shift`` on position 0."""

    def __init__(self, shift: int):
        super().__init__()
        self.shift = shift

    def forward(self, z, t, decode=False):
        assert decode and torch.all(t == 1)
        logits = z.clone()
        logits[:, 0] = z[:, 0].roll(self.shift, dims=-1)
        return logits


class Texts:
    def decode_batch(self, ids):
        return [" ".join(str(int(i)) for i in row) for row in ids]


def run(monkeypatch, tmp_path, shift: int):
    written = {}

    def fake_write(scoring, record, texts, extra=None):
        written.update(record=record, texts=texts, extra=extra)
        return record

    monkeypatch.setattr(measure, "_write", fake_write)
    scoring = Scoring(tmp_path, None, Texts(), 4, score_batch=3, max_tokens=8, device=torch.device("cpu"))
    measure_reconstruction(scoring, "teacher", ReadOut(shift), OneHotRows(10), n_samples=4)
    return written


def test_perfect_decoder_reproduces_the_reference_rows(monkeypatch, tmp_path):
    out = run(monkeypatch, tmp_path, shift=0)
    rows = OneHotRows(10)
    idx = [e["index"] for e in out["extra"]]
    assert idx == [0, 3, 6, 9]  # the reference's evenly spread rows
    assert out["texts"] == Texts().decode_batch(rows.ids[idx])
    rec = out["record"]
    assert rec["token_accuracy"] == 1.0 and rec["id"] == "teacher_decode_0_s0"
    assert (rec["sweep"], rec["sampler"], rec["steps"], rec["nfe"], rec["n_samples"]) == ("decode", "decode", 0, 1, 4)


def test_accuracy_counts_wrong_tokens(monkeypatch, tmp_path):
    out = run(monkeypatch, tmp_path, shift=1)  # position 0 of every row decoded wrong: 1 of 4 tokens
    assert out["record"]["token_accuracy"] == 0.75
