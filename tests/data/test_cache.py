"""fmlm.data.cache.prepare(): cached folder contents, whitening, reuse, atomicity and bad input; reading it back."""

import json

import numpy as np
import pytest
import torch

import fmlm.data.cache as prep
from fmlm.config import ConfigError, from_dict
from fmlm.data import DataConfig, LatentRows, TokenRows, encoder_for, load_meta, prepare, tokenizer_for, whiten
from tests.data.conftest import TINY_TEXTS


def _minilm_cfg(corpus, **kw):
    base = dict(source=str(corpus), row_len=16, val_fraction=0.2, stats_rows=0, encode_batch_size=4)
    return DataConfig(**(base | kw))


def test_minilm_prepare_writes_whitened_latents(tiny_corpus, tmp_path, minilm):
    folder = prepare(_minilm_cfg(tiny_corpus), tmp_path / "cache", encoder=minilm)
    meta = load_meta(folder)
    ids_tr = np.load(folder / "ids_train.npy")
    ids_va = np.load(folder / "ids_val.npy")
    lat_tr = np.load(folder / "latents_train.npy")
    assert ids_tr.dtype == np.int32 and lat_tr.dtype == np.float16
    assert ids_tr.shape == (meta["rows"]["train"], 16) and lat_tr.shape == (len(ids_tr), 16, 384)
    assert len(ids_tr) >= 5 and len(ids_va) >= 1
    assert (ids_tr[:, 0] == 101).all() and (ids_tr[:, -1] == 102).all()  # [CLS] ... [SEP]
    assert (meta["bos_id"], meta["eos_id"], meta["dim"], meta["vocab_size"]) == (101, 102, 384, 30522)
    # mu/sigma over all training rows (stats_rows=0), and x0 = (E(ids) - mu) / sigma
    h = minilm.encode(ids_tr).double()
    assert meta["mu"] == pytest.approx(float(h.mean()), abs=1e-6)
    assert meta["sigma"] == pytest.approx(float(h.std(unbiased=False)), rel=1e-6)
    x0 = ((h - meta["mu"]) / meta["sigma"]).float().numpy()
    assert np.allclose(lat_tr.astype(np.float32), x0, atol=2e-2, rtol=2e-3)
    assert abs(float(lat_tr.astype(np.float64).mean())) < 1e-3
    assert float(lat_tr.astype(np.float64).std()) == pytest.approx(1.0, rel=1e-3)
    # packing stats reach the meta: every stream token is in a row or in the counted remainder
    for split in ("train", "val"):
        p = meta["packing"][split]
        assert p["stream_tokens"] == p["rows"] * 14 + p["remainder_tokens"]
    assert sum(meta["packing"][s]["documents_in_split"] for s in ("train", "val")) == len(TINY_TEXTS)


def test_rows_and_decoding(tiny_corpus, tmp_path, minilm):
    folder = prepare(_minilm_cfg(tiny_corpus), tmp_path / "cache", encoder=minilm)
    rows = LatentRows(folder, "train")
    ids, x0 = rows[0]
    assert ids.dtype == torch.int64 and ids.shape == (16,)
    assert x0.dtype == torch.float32 and x0.shape == (16, 384)
    b_ids, b_x0 = rows.batch([0, 1])
    assert torch.equal(b_ids[0], ids) and torch.equal(b_x0[0], x0)
    assert rows.meta["row_len"] == 16 and len(rows) == rows.meta["rows"]["train"]
    text = tokenizer_for(folder).decode(ids)
    assert "[CLS]" not in text and "[SEP]" not in text and len(text.split()) >= 8
    words = set(" ".join(TINY_TEXTS).lower().replace(",", " ").replace(".", " ").split())
    assert len(set(text.replace(",", " ").replace(".", " ").split()) & words) >= 5
    loader = torch.utils.data.DataLoader(rows, batch_size=3)
    ids_b, x0_b = next(iter(loader))
    assert ids_b.shape == (3, 16) and x0_b.shape == (3, 16, 384)
    with pytest.raises(ValueError, match="split"):
        LatentRows(folder, "test")


def test_hub_path_with_a_local_tiny_gpt2(tiny_corpus, tiny_gpt2, tmp_path):
    cfg = DataConfig(source=str(tiny_corpus), encoder=str(tiny_gpt2), row_len=12, val_fraction=0.2,
                     stats_rows=4, encode_batch_size=3, cache_dtype="float32")
    folder = prepare(cfg, tmp_path / "cache")
    meta = load_meta(folder)
    ids = np.load(folder / "ids_train.npy")
    assert (ids[:, 0] == 0).all() and (ids[:, -1] == 0).all()  # [EOS] + 10 tokens + [EOS], eos = <|endoftext|>
    assert meta["dim"] == 32 and meta["vocab_size"] == 320 and meta["bos_id"] == meta["eos_id"] == 0
    assert meta["stats_rows_used"] == 4
    lat = np.load(folder / "latents_train.npy")
    assert lat.dtype == np.float32 and lat.shape == (len(ids), 12, 32)
    decoder = tokenizer_for(folder)
    assert "<|endoftext|>" not in decoder.decode(ids[0])
    assert any(piece and piece in " ".join(TINY_TEXTS) for piece in decoder.decode_segments(ids[0]))


def test_ids_only_cache(tiny_corpus, tiny_gpt2, tmp_path):
    cfg = DataConfig(source=str(tiny_corpus), encoder=str(tiny_gpt2), row_len=12, cache_latents=False)
    folder = prepare(cfg, tmp_path / "cache")
    assert not (folder / "latents_train.npy").exists() and load_meta(folder)["sigma"] > 0
    with pytest.raises(ValueError, match="no cached latents"):
        LatentRows(folder, "train")
    rows = TokenRows(folder, "train")
    assert len(rows) == load_meta(folder)["rows"]["train"] and rows[0].dtype == torch.int64
    enc = encoder_for(folder)
    meta = rows.meta
    x0 = whiten(enc.encode(rows[0][None]), meta["mu"], meta["sigma"])  # the on-the-fly path
    assert x0.shape == (1, 12, 32) and torch.isfinite(x0).all()


def test_second_call_reuses_without_recomputing(tiny_corpus, tiny_gpt2, tmp_path, monkeypatch):
    cfg = DataConfig(source=str(tiny_corpus), encoder=str(tiny_gpt2), row_len=12, max_train_rows=3)
    first = prepare(cfg, tmp_path / "cache")
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    assert load_meta(first)["rows"]["train"] == 3 and load_meta(first)["packing"]["train"]["surplus_rows"] >= 0

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(prep, "FrozenEncoder", refuse)
    monkeypatch.setattr(prep, "_build", refuse)
    assert prepare(cfg, tmp_path / "cache") == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamps
    other = DataConfig(source=str(tiny_corpus), encoder=str(tiny_gpt2), row_len=12, max_train_rows=2)
    assert prep.cache_name(other) != first.name


def test_interrupted_prepare_leaves_no_folder(tiny_corpus, tiny_gpt2, tmp_path, monkeypatch):
    cfg = DataConfig(source=str(tiny_corpus), encoder=str(tiny_gpt2), row_len=12, encode_batch_size=2)
    real = prep._write_latents
    calls = []

    def fail_on_val(*args, **kwargs):
        calls.append(args[-1])
        if args[-1] == "val":
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C while the second file was written
        return real(*args, **kwargs)

    monkeypatch.setattr(prep, "_write_latents", fail_on_val)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, cache)
    assert calls == ["train", "val"]
    assert list(cache.iterdir()) == []  # neither the final folder nor the temporary one
    monkeypatch.setattr(prep, "_write_latents", real)
    assert (prepare(cfg, cache) / "meta.json").is_file()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(source="/no/such/file.txt"), "source"),
        (dict(source="no-such-corpus-name"), "source"),
        (dict(tokenizer="OTHER"), "do not match"),
        (dict(row_len=100), "row_len"),
        (dict(source="EMPTY"), "holds no documents"),
        (dict(source="SHORT"), "no full training row"),
    ],
)
def test_bad_input_one_line_errors(tiny_corpus, tiny_gpt2, other_bpe, tmp_path, kwargs, message):
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "short.txt").write_text("a b\n\nc d\n")
    subst = {"OTHER": str(other_bpe), "EMPTY": str(tmp_path / "empty.txt"), "SHORT": str(tmp_path / "short.txt")}
    kwargs = {k: subst.get(v, v) for k, v in kwargs.items()}
    cfg = DataConfig(**({"source": str(tiny_corpus), "encoder": str(tiny_gpt2), "row_len": 12} | kwargs))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=message) as err:
        prepare(cfg, cache)
    assert "\n" not in str(err.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_given_encoder_must_match_the_config(tiny_corpus, tmp_path, minilm):
    with pytest.raises(ValueError, match="the given encoder") as err:
        prepare(_minilm_cfg(tiny_corpus, layer=3), tmp_path / "cache", encoder=minilm)
    assert "\n" not in str(err.value) and list((tmp_path / "cache").iterdir()) == []


def test_config_checks_and_round_trip():
    with pytest.raises(ConfigError, match="row_len"):
        DataConfig(row_len=2)
    with pytest.raises(ConfigError, match="val_fraction"):
        DataConfig(val_fraction=1.0)
    with pytest.raises(ConfigError, match="cache_dtype"):
        from_dict(DataConfig, {"cache_dtype": "int8"})
    cfg = from_dict(DataConfig, json.loads(json.dumps({"source": "kjv", "row_len": 128})))
    assert cfg == DataConfig(source="kjv", row_len=128)


@pytest.mark.parametrize("name", ["ids_train.npy", "ids_val.npy", "latents_train.npy", "latents_val.npy"])
def test_a_cut_cache_file_is_named_when_the_folder_is_opened(tiny_corpus, tiny_gpt2, tmp_path, name):
    cfg = DataConfig(source=str(tiny_corpus), encoder=str(tiny_gpt2), row_len=12, val_fraction=0.3)
    folder = prepare(cfg, tmp_path / "cache")
    path = folder / name
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], data + b"\0" * 8):
        path.write_bytes(damaged)
        for opening in (lambda: prepare(cfg, tmp_path / "cache"), lambda: LatentRows(folder, "train")):
            with pytest.raises(ValueError) as err:
                opening()
            message = str(err.value)
            assert message.startswith(f"{path}: ") and "cut or damaged" in message and "\n" not in message
    path.unlink()
    with pytest.raises(ValueError, match="missing from the prepared folder"):
        TokenRows(folder, "val")
