"""What every part of the GPU check shares: its sizes (the paper's, or ``--tiny``), the machine it ran
on, the time limit of a part, and running a part so that a failure is one line in the report and
the next part still runs.

Time limits: each part has a budget (``BUDGET_S``, seconds on one H100, the first CUDA call assumed to
cost about 20 s of the first part's); a part also stops at the run's deadline (``TOTAL_S`` after the
start, less a margin for writing the report). A part past its limit is interrupted by SIGALRM between
two Python statements; what it recorded so far stays in the report, marked "cut".
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench_common import DIMS, machine
from fmlm.files import first_line

ROOT = Path(__file__).resolve().parents[2]

PARTS = ("numerics", "training", "sampling", "released", "distributed", "compile")
"""The parts in the order they run (the issue's order: a cut-off run still reports the first ones)."""

BUDGET_S = {"numerics": 45, "training": 120, "sampling": 40, "released": 75, "distributed": 100, "compile": 90}
"""Seconds each part may take on one H100 (they add up to 470; the run stops at ``TOTAL_S``, so the last part
gets what the others left)."""

TOTAL_S = 450.0  # the whole run, under the 8 minutes with 30 s to spare for start-up and the report
MARGIN_S = 5.0  # kept back from the deadline for writing the report after the last part


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes one run uses: the paper preset's on a GPU, the quick preset's tiny ones with ``--tiny``."""

    preset: str
    dims: tuple[int, int]  # (latent dim, vocabulary) of the networks
    length: int  # tokens per row
    numerics_batch: int  # rows of the bf16 / fp32 comparison
    small_batch: int  # the training steps' small batch (and the loss-fall, distributed and compile batches)
    timed_steps: int  # timed steps after the warm-up, per training case
    fall_steps: int  # steps of the fixed batch whose loss must fall
    sample_batch: int  # rows of the sampling part
    sample_repeats: int  # timed rounds of the sampling part
    released_samples: int  # samples drawn from the imported checkpoint
    dist_steps: int  # optimiser steps of the torchrun run (it is signalled after SIGNAL_AFTER of them)
    rounds: int  # interleaved rounds of the compile part


PAPER = Sizes(preset="paper", dims=DIMS["paper"], length=1024, numerics_batch=4, small_batch=8, timed_steps=3,
              fall_steps=20, sample_batch=64, sample_repeats=2, released_samples=16, dist_steps=12, rounds=5)
TINY = Sizes(preset="quick", dims=(32, 512), length=16, numerics_batch=2, small_batch=2, timed_steps=1,
             fall_steps=20, sample_batch=2, sample_repeats=1, released_samples=2, dist_steps=8, rounds=1)
"""The paper preset's shapes (GPT-2 Large latents, the GPT-2 vocabulary, rows of 1024), and the quick preset's
tiny network on latents of 32 and a vocabulary of 512, so that ``--tiny`` takes seconds on a CPU."""


@dataclasses.dataclass
class Check:
    """One run: its device, sizes, scratch folder and the results so far (``payload``)."""

    device: torch.device
    sizes: Sizes
    tiny: bool
    work: Path  # scratch folder (checkpoints, model folders), removed at the end
    payload: dict
    deadline: float  # time.monotonic() at which the run must end
    write: Callable[[], None]  # rewrites the report from ``payload``
    peak_tflops: float = 0.0  # --peak-tflops (0: the device's known value)

    @property
    def precision(self) -> str:
        """bf16 autocast on CUDA (the paper preset's training precision); fp32 on a CPU, as the trainer's auto."""
        return "bf16" if self.device.type == "cuda" else "fp32"

    def left_s(self) -> float:
        """Seconds before the deadline, less the report's margin."""
        return self.deadline - time.monotonic() - MARGIN_S


class PartTimeout(Exception):
    """A part ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise ``PartTimeout`` in the main thread after ``seconds`` (no limit outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise PartTimeout(f"ran past its time limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_part(check: Check, name: str, fn: Callable[[Check, dict], None], skip: bool = False) -> dict:
    """Run part ``name`` under its time limit, recording into ``payload["parts"][name]``; any failure is one line."""
    rec: dict = {"status": "skipped (--skip)" if skip else "running"}
    check.payload["parts"][name] = rec
    if skip:
        check.write()
        return rec
    limit = min(BUDGET_S[name], check.left_s())
    if limit <= 1:
        rec["status"] = "not run (the run's deadline had passed)"
        check.write()
        return rec
    rec["time_limit_s"] = round(limit, 1)
    check.write()
    start = time.perf_counter()
    try:
        with time_limit(limit):
            fn(check, rec)
        rec["status"] = "ok"
    except PartTimeout as err:
        rec.update(status="cut", error=str(err))
    except Exception as err:  # noqa: BLE001 (a part's failure is recorded and the next part runs)
        rec.update(status="failed", error=f"{type(err).__name__}: {first_line(err)}")
    finally:
        rec["seconds"] = round(time.perf_counter() - start, 1)
        free_memory(check.device)
        check.write()
    return rec


def free_memory(device: torch.device) -> None:
    """Drop unreferenced tensors and return the cached device memory (between parts and stages)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def machine_info(device: torch.device) -> dict:
    """``bench_common.machine`` plus the CUDA and cuDNN versions, the GPU's memory, capability and driver."""
    info = machine(device)
    info["cuda"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu_memory_bytes=props.total_memory, capability=f"{props.major}.{props.minor}",
                    multiprocessors=props.multi_processor_count, driver=_driver())
    return info


def _driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi (None where it cannot be asked)."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def device_slug(device: torch.device, tiny: bool) -> str:
    """The results files' name part: the GPU's name in lower case with dashes, or cpu-tiny."""
    if device.type != "cuda":
        return "cpu-tiny" if tiny else "cpu"
    name = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return name + ("-tiny" if tiny else "")


def subprocess_env() -> dict:
    """The environment of a child process: this checkout and benchmarks/ importable."""
    paths = [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
