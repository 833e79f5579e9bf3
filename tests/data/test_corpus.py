"""Text sources and the split by document."""

import json
import re

import numpy as np
import pytest

from fmlm.data.corpus import embedded_part, load_documents, source_fingerprint, split_documents


def test_folder_glob_and_combination(tiny_corpus):
    docs = load_documents(str(tiny_corpus))
    assert len(docs) == 12 and docs[0].startswith("The quick brown fox")
    assert load_documents(str(tiny_corpus / "doc0*.txt")) == docs[:10]
    assert load_documents(f"{tiny_corpus / 'doc00.txt'}+{tiny_corpus / 'doc01.txt'}") == docs[:2]


def test_txt_file_splits_at_blank_lines_and_jsonl_per_line(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("first doc\nstill first\n\n\nsecond doc\n")
    assert load_documents(str(txt)) == ["first doc\nstill first", "second doc"]
    jl = tmp_path / "b.jsonl"
    jl.write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "two", "id": 3}) + "\n")
    assert load_documents(str(jl)) == ["one", "two"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: str(p / "missing.txt"), "neither an embedded part"),
        (lambda p: "no-such-corpus", "neither an embedded part"),
        (lambda p: str(p / "*.nothing"), "matches no text files"),
        (lambda p: (p / "empty.txt").write_text("\n \n") and str(p / "empty.txt"), "holds no documents"),
        (lambda p: (p / "bad.jsonl").write_text('{"x": 1}\n') and str(p / "bad.jsonl"), "has no string field"),
        (lambda p: "gensim-lee+hf:openwebtext", "stand alone"),
        (lambda p: "", "non-empty string"),
    ],
)
def test_bad_sources_raise_one_line(tmp_path, make, message):
    with pytest.raises(ValueError, match=message) as err:
        load_documents(make(tmp_path))
    assert "\n" not in str(err.value) and "source" in str(err.value)


def test_hf_source_offline_fails_fast_with_one_line(monkeypatch):
    import fmlm.data.corpus as corpus

    monkeypatch.setattr(corpus, "hub_reachable", lambda: False)
    monkeypatch.setattr(corpus, "_hf_offline_cache_allowed", lambda: False)
    with pytest.raises(ValueError, match="hub is unreachable") as err:
        load_documents("hf:openwebtext")
    assert "\n" not in str(err.value)


def test_embedded_lee_and_kjv():
    lee = embedded_part("gensim-lee")
    assert len(lee) == 300
    kjv = embedded_part("kjv")
    assert len(kjv) == 1189  # chapters of the Bible
    assert kjv[0].startswith("In the beginning God created the heavens and the earth. And the earth")
    assert not any(re.search(r"\d+:\d+", doc) for doc in kjv)  # no verse references left


def test_embedded_wiki_is_clean_prose():
    wiki = embedded_part("gensim-wiki")
    assert 90 <= len(wiki) <= 106  # 106 non-redirect articles, a few hold no prose
    joined = "\n".join(wiki)
    for marker in ("{{", "}}", "[[", "]]", "<ref", "</", "'''", "==", "{|", "|}", "&nbsp;", "thumb|"):
        assert marker not in joined, marker
    assert wiki[0].startswith("Anarchism is a political philosophy")


def test_split_is_deterministic_disjoint_and_complete():
    train, val = split_documents(100, 0.1, seed=3)
    train2, val2 = split_documents(100, 0.1, seed=3)
    assert np.array_equal(train, train2) and np.array_equal(val, val2)
    assert len(val) == 10 and len(train) == 90
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(100))
    other_train, _ = split_documents(100, 0.1, seed=4)
    assert not np.array_equal(train, other_train)
    assert len(split_documents(7, 0.01, seed=0)[1]) == 1  # ceil: at least one validation document
    assert len(split_documents(7, 0.0, seed=0)[1]) == 0


@pytest.mark.parametrize("n, frac", [(1, 0.5), (5, 1.0), (5, -0.1), (0, 0.1)])
def test_split_rejects_impossible_fractions(n, frac):
    with pytest.raises(ValueError, match="val_fraction|n_docs"):
        split_documents(n, frac, seed=0)


def test_fingerprint_tracks_file_changes(tiny_corpus):
    before = source_fingerprint(str(tiny_corpus))
    (tiny_corpus / "doc00.txt").write_text("changed text that is longer than before\n")
    assert source_fingerprint(str(tiny_corpus)) != before


def test_hf_source_through_datasets(monkeypatch, tiny_gpt2, tmp_path):
    """The hf: path with datasets.load_dataset answered locally (the hub is unreachable here)."""
    import datasets

    import fmlm.data.corpus as corpus
    from fmlm.data import DataConfig, load_meta, prepare
    from tests.data.conftest import TINY_TEXTS

    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        if name == "broken":
            raise ConnectionError("Couldn't reach 'broken' on the Hub (LocalEntryNotFoundError)\nmore lines")
        return datasets.Dataset.from_dict({"text": TINY_TEXTS, "id": list(range(len(TINY_TEXTS)))})

    monkeypatch.setattr(corpus, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    docs = load_documents("hf:some/owt:plain")
    assert calls[-1] == ("some/owt", "plain", "train")
    assert len(docs) == len(TINY_TEXTS) and docs[3] == TINY_TEXTS[3] and docs.take([1, 0]) == TINY_TEXTS[1::-1]
    with pytest.raises(ValueError, match="cannot load 'hf:broken'") as err:
        load_documents("hf:broken")
    assert "\n" not in str(err.value)
    folder = prepare(DataConfig(source="hf:some/owt", encoder=str(tiny_gpt2), row_len=12), tmp_path / "cache")
    assert load_meta(folder)["documents"] == len(TINY_TEXTS)


def test_binary_files_are_refused_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "binary"
    folder.mkdir()
    (folder / "a.txt").write_text("An ordinary sentence.\twith a tab\r\nand a form feed \f page.\n")
    (folder / "b.txt").write_bytes(bytes(rng.integers(0, 128, size=4096, dtype=np.uint8)))  # 7-bit: decodes as UTF-8
    with pytest.raises(ValueError, match=re.escape(f"source: {folder / 'b.txt'} is not a text file")) as err:
        load_documents(str(folder / "*.txt"))
    assert "\n" not in str(err.value)
    (folder / "b.txt").write_bytes(b"\0" * 200_000)
    with pytest.raises(ValueError, match=r"b\.txt is not a text file \(control character '\\x00' at character 0\)"):
        load_documents(str(folder))
    (folder / "b.txt").unlink()
    assert load_documents(str(folder)) == ["An ordinary sentence.\twith a tab\nand a form feed \x0c page."]  # CR LF is read as a newline
