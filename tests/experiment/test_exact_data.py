"""The exact testbed's data folder: the same contract as a text folder, rows drawn from the language."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fmlm.config import ConfigError
from fmlm.data import DataConfig, load_meta, rows_for, tokenizer_for
from fmlm.experiment.exact_data import prepare_language
from fmlm.experiment.presets import exact
from fmlm.synthetic.hmm_language import HMMLanguage, LanguageSpec

SPEC = LanguageSpec(vocab=12, topics=2, dim=4, window=6)
DATA = DataConfig(source="exact", encoder="codebook", row_len=8, max_train_rows=40, max_val_rows=10,
                  cache_dtype="float32")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return prepare_language(SPEC, DATA, tmp_path_factory.mktemp("cache"), lam=2.0)


def test_folder_holds_the_contract(folder):
    meta = load_meta(folder)
    assert (meta["dim"], meta["vocab_size"], meta["row_len"], meta["rows"]) == (4, 12, 8, {"train": 40, "val": 10})
    law = HMMLanguage(SPEC)
    rows = rows_for(folder, "val")
    ids, x0 = rows.batch(np.arange(10))
    # x0 is the codebook row of each id, stored in float32: exact up to float32 rounding of O(1) values
    torch.testing.assert_close(x0, law.codebook[ids].float(), rtol=0, atol=1e-6)
    assert tokenizer_for(folder).decode(ids[0]) == " ".join(f"t{i}" for i in ids[0].tolist())
    assert 0 < meta["entropy_per_token"] < np.log(12) and 0 < meta["entropy_per_token_se"] < 0.01


def test_splits_are_disjoint_draws_and_the_folder_is_reused(folder, tmp_path):
    train = np.load(folder / "ids_train.npy")
    val = np.load(folder / "ids_val.npy")
    assert not np.array_equal(train[:10], val)
    stamp = (folder / "meta.json").stat().st_mtime_ns
    assert prepare_language(SPEC, DATA, folder.parent, lam=2.0) == folder
    assert (folder / "meta.json").stat().st_mtime_ns == stamp
    assert json.loads((folder / "meta.json").read_text())["language"]["vocab"] == 12


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="data.source"):
        prepare_language(SPEC, DataConfig(source="embedded"), tmp_path, lam=2.0)
    with pytest.raises(ConfigError, match="language"):
        exact().__class__(language=SPEC)  # a language without the exact source and evaluator
