"""Stop signals: SIGTERM (what Slurm sends before pre-emption) and SIGINT (Ctrl-C) ask training to stop.

While ``StopSignals`` is active the two signals no longer end the process: the first one received
is recorded, later ones are ignored, and the training loop polls ``received`` once per optimiser
step. Under ``torchrun`` every process must stop at the same step, so the loop combines the local
flags with ``agreed_signal`` (one scalar all-reduce) before it decides. Having saved its
checkpoint it raises ``TrainingInterrupted``, a ``SystemExit`` whose code is 128 + the signal
number (143 for SIGTERM, 130 for SIGINT, the shell's convention), so a command line that lets it
through exits with that status and no traceback.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Iterator

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
"""The signals that stop training cleanly."""


class StopSignals:
    """Context manager that records the first of ``STOP_SIGNALS`` received instead of dying of it.

    Handlers are installed on entry and the previous ones restored on exit. Outside the main thread
    (where Python cannot install handlers) it does nothing and ``received`` stays None."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[signal.Signals, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        self._previous = {}


class TrainingInterrupted(SystemExit):
    """Training stopped by signal ``signum`` after saving its checkpoint; exit status 128 + ``signum``."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.message = message

    def __str__(self) -> str:
        return self.message


def signal_name(signum: int) -> str:
    """``SIGTERM``, ``SIGINT``, ... for a signal number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Stopped(SystemExit):
    """A command other than training stopped by signal ``signum``; exit status 128 + ``signum``."""

    def __init__(self, signum: int, what: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.message = (f"stopped by {signal_name(signum)} during {what}; its temporary files were removed; "
                        "run the same command again")

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def stops_raise(what: str) -> Iterator[None]:
    """While active, the first of ``STOP_SIGNALS`` raises ``Stopped`` where the main thread is, so the
    ``finally`` and ``except BaseException`` blocks on the way out remove half-written temporary folders
    (a default SIGTERM ends the process with no cleanup and no message); later signals are ignored so the
    cleanup runs to its end. Training's ``StopSignals`` replaces these handlers while it runs. Outside
    the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if not raised:
            raised.append(signum)
            raise Stopped(signum, what)

    previous = {s: signal.signal(s, handle) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def agreed_signal(received: int | None, device) -> int:
    """The stop signal all processes act on this step: the largest signal number any of them
    received, 0 when none did. One scalar all-reduce under a process group; else ``received``."""
    import torch
    import torch.distributed as dist

    local = received or 0
    if not dist.is_initialized():
        return local
    flag = torch.tensor([local], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())
