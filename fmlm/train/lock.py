"""One process per folder: an OS lock (``fcntl.flock``) on a lock file inside a run or stage folder.

Two trainings writing into one stage folder delete each other's ``checkpoint.tmp`` and interleave
their ``metrics.jsonl``; so ``FolderLock`` takes an exclusive, non-blocking ``flock`` on
``<folder>/.lock`` and a second process is refused at once with one line naming the holder (its pid
and host, written into the file by the holder). The kernel drops the lock when its process ends,
however it ends, so a lock file left by a dead process never blocks a resume. Under ``torchrun`` each
rank locks its own file (``.lock`` for rank 0, ``.lock.rank<N>`` for the others): no rank waits for
another, and a second job's ranks are refused on the files the first job's ranks hold.

The lock file stays in the folder after the lock is released (removing it would let two processes
each lock a different file of the same name).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = ".lock"


class FolderInUse(ValueError):
    """Another live process holds the folder's lock."""


def lock_path(folder: Path, rank: int = 0) -> Path:
    """The lock file of ``rank`` in ``folder``."""
    return Path(folder) / (LOCK_FILE if rank == 0 else f"{LOCK_FILE}.rank{rank}")


class FolderLock:
    """Context manager holding ``<folder>/.lock`` (created with the folder if absent) exclusively."""

    def __init__(self, folder: str | Path, rank: int = 0, what: str = "folder"):
        self.path = lock_path(Path(folder), rank)
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise FolderInUse(f"{self.what} {self.path.parent} is in use by {_holder(self.path)}; "
                              "wait for it to end or stop it, then run the command again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} host {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _holder(path: Path) -> str:
    """'process <pid> on <host>' as the holder wrote it into the lock file (or 'another process')."""
    try:
        words = path.read_text().split()
    except OSError:
        words = []
    if len(words) == 4 and words[0] == "pid" and words[2] == "host":
        return f"process {words[1]} on {words[3]}"
    return "another process"
