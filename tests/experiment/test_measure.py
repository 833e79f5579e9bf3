"""Held-out latents through a decoder: the rows the reference uses, the accuracy, the texts; the held-out
texts each record's MAUVE is computed against."""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from fmlm.evaluation.metrics import EvalResult, SampleRecord
from fmlm.experiment import measure
from fmlm.experiment.measure import (NO_HOLDOUT_NOTE, NO_REFERENCE_NOTE, Scoring, _holdout_rows, _reference_rows,
                                     measure_reconstruction, measure_reference, with_references)
from fmlm.experiment.run_folder import RECORD_SCHEMA


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


def run(monkeypatch, tmp_path, shift: int, lam: float = 1.0):
    written = {}

    def fake_write(scoring, record, texts, extra=None, against="reference"):
        written.update(record=record, texts=texts, extra=extra, against=against)
        return record

    monkeypatch.setattr(measure, "_write", fake_write)
    scoring = Scoring(tmp_path, None, Texts(), 4, score_batch=3, max_tokens=8, device=torch.device("cpu"))
    measure_reconstruction(scoring, "teacher", ReadOut(shift), OneHotRows(10), n_samples=4, lam=lam)
    return written


def test_perfect_decoder_reproduces_the_reference_rows(monkeypatch, tmp_path):
    out = run(monkeypatch, tmp_path, shift=0)
    rows = OneHotRows(10)
    idx = [e["index"] for e in out["extra"]]
    assert idx == [0, 3, 6, 9]  # the reference's evenly spread rows
    assert out["texts"] == Texts().decode_batch(rows.ids[idx])
    rec = out["record"]
    assert rec["token_accuracy"] == 1.0 and rec["id"] == "teacher_decode_0_s0"
    assert out["against"] == "holdout"  # reconstructions of held-out rows are never compared with those rows
    assert (rec["sweep"], rec["sampler"], rec["steps"], rec["nfe"], rec["n_samples"]) == ("decode", "decode", 0, 1, 4)


def test_accuracy_counts_wrong_tokens(monkeypatch, tmp_path):
    out = run(monkeypatch, tmp_path, shift=1)  # position 0 of every row decoded wrong: 1 of 4 tokens
    assert out["record"]["token_accuracy"] == 0.75


def test_accuracy_on_noised_latents(monkeypatch, tmp_path):
    # one-hot latents decoded by their argmax: with lam = 0 the noised latent t x0 keeps the argmax, so every
    # level is exact; with a huge lam the noise decides the argmax and the accuracy drops to about chance (1/5)
    exact = run(monkeypatch, tmp_path, shift=0, lam=0.0)["record"]
    assert [exact[f"token_accuracy_t{t}"] for t in (0.9, 0.7)] == [1.0, 1.0]
    noisy = run(monkeypatch, tmp_path, shift=0, lam=1e6)["record"]
    assert noisy["token_accuracy"] == 1.0
    assert noisy["token_accuracy_t0.9"] < 0.75 and noisy["token_accuracy_t0.7"] < 0.75  # 16 tokens; chance 0.2


# --- the distribution metrics in every record: which held-out texts each set is compared with ---

DISTRIBUTION_KEYS = ("mauve", "mauve_n", "mauve_n_reference", "mauve_num_buckets", "mauve_features", "distinct_1",
                     "distinct_2", "distinct_3", "rep4", "empty_share", "single_token_share")


def fake_scoring(monkeypatch, tmp_path, seen: list):
    """Scoring whose gen PPL and distribution metrics are stand-ins that note what they were handed."""
    def evaluate(evaluator, texts, **kw):
        records = tuple(SampleRecord(t, 2, 1.0, math.e ** 0.5, 0.5, False) for t in texts)
        return EvalResult(math.e ** 0.5, 0.5, len(texts), 2 * len(texts), 0, records)

    def distribution(evaluator, texts, reference, **kw):
        seen.append({"texts": list(texts), "reference": None if reference is None else list(reference.texts)})
        out = dict.fromkeys(DISTRIBUTION_KEYS, 0.25)
        out.update(distinct_3=math.nan, mauve_features="fake features")
        if reference is None:
            out.update(mauve=None, mauve_n=None, mauve_n_reference=None, mauve_num_buckets=None, mauve_features=None)
        return out

    monkeypatch.setattr(measure, "evaluate_texts", evaluate)
    monkeypatch.setattr(measure, "distribution_metrics", distribution)
    return Scoring(tmp_path, None, Texts(), 4, score_batch=3, max_tokens=8, device=torch.device("cpu"))


def _records(tmp_path) -> dict:
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def test_the_holdout_slice_is_disjoint_from_the_reference_rows():
    rows = OneHotRows(10)
    ref, hold = _reference_rows(rows, 4).tolist(), _holdout_rows(rows, 4).tolist()
    assert ref == [0, 3, 6, 9] and len(hold) == 4 and not set(ref) & set(hold)
    assert sorted(hold) == hold and set(hold) <= set(range(10))
    assert len(_holdout_rows(rows, 7)) == 3  # only three rows are left
    assert len(_holdout_rows(OneHotRows(4), 4)) == 0


def test_every_record_carries_the_distribution_metrics(monkeypatch, tmp_path):
    seen: list = []
    scoring = with_references(fake_scoring(monkeypatch, tmp_path, seen), OneHotRows(10), n_samples=4)
    texts = Texts().decode_batch(OneHotRows(10).ids)
    assert scoring.reference.texts == tuple(texts[i] for i in (0, 3, 6, 9))
    hold = _holdout_rows(OneHotRows(10), 4).tolist()
    assert scoring.holdout.texts == tuple(texts[i] for i in hold)
    measure_reference(scoring, OneHotRows(10), n_samples=4)
    measure_reconstruction(scoring, "teacher", ReadOut(0), OneHotRows(10), n_samples=4, lam=1.0)
    measure._write(scoring, {"id": "model_s0"}, ["a b", "c d"])  # a model's samples
    recs = _records(tmp_path)
    for rid in ("reference_data_0", "teacher_decode_0_s0", "model_s0"):
        assert all(k in recs[rid] for k in DISTRIBUTION_KEYS), rid
        assert recs[rid]["distinct_3"] == "nan"  # a non-finite number is written the way loading reads it
    assert recs["reference_data_0"]["mauve_against"] == "holdout" and recs["model_s0"]["mauve_against"] == "reference"
    # the reference and the reconstructions of its rows against the disjoint slice, the samples against the reference
    assert [s["reference"] for s in seen] == [list(scoring.holdout.texts)] * 2 + [list(scoring.reference.texts)]


def test_a_set_is_never_compared_with_its_own_rows(monkeypatch, tmp_path):
    seen: list = []
    scoring = with_references(fake_scoring(monkeypatch, tmp_path, seen), OneHotRows(10), n_samples=4)
    measure_reconstruction(scoring, "teacher", ReadOut(0), OneHotRows(10), n_samples=10, lam=1.0)  # every row, so no slice left
    rec = _records(tmp_path)["teacher_decode_0_s0"]
    assert seen[0]["reference"] is None and rec["mauve"] is None and rec["mauve_note"] == NO_HOLDOUT_NOTE


def test_no_slice_left_marks_the_reference_not_measured(monkeypatch, tmp_path):
    seen: list = []
    scoring = with_references(fake_scoring(monkeypatch, tmp_path, seen), OneHotRows(4), n_samples=4)
    assert scoring.holdout is None
    measure_reference(scoring, OneHotRows(4), n_samples=4)
    rec = _records(tmp_path)["reference_data_0"]
    assert rec["mauve"] is None and rec["mauve_note"] == NO_HOLDOUT_NOTE and rec["rep4"] == 0.25


def test_scoring_without_references_says_so(monkeypatch, tmp_path):
    scoring = fake_scoring(monkeypatch, tmp_path, [])
    measure._write(scoring, {"id": "model_s0"}, ["a b"])
    assert _records(tmp_path)["model_s0"]["mauve_note"] == NO_REFERENCE_NOTE


def test_the_schema_holds_the_new_keys_as_optional():
    for key in DISTRIBUTION_KEYS:
        kind, required, nullable = RECORD_SCHEMA[key]
        assert not required and nullable, key
        assert kind == ("str" if key == "mauve_features" else "int" if key.startswith("mauve_n") else "num"), key
