"""The training log: ``metrics.jsonl`` lines, and the metrics averaged since the last logged step.

``LogWindow`` keeps, per key, a running sum and a count on each process; a logged value is the sum
over all processes over the count over all processes. A checkpoint stores the window (with every
process's sums), so a resumed ``metrics.jsonl`` equals the uninterrupted one whatever
``checkpoint_every`` and ``log_every`` are. ``truncate_metrics`` drops the lines past the step a
resumed run restarts from (and a line cut short by a killed process).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from fmlm.files import write_text_atomic


def _logged_step(line: str) -> int | None:
    """The step of a metrics line; None for a line cut short by a killed process."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the logged lines up to ``last_step``, the step training restarts from (0: none).

    Lines past it were written after the checkpoint (they are logged again), and so is a
    partial last line of a killed process. A step logged more than once keeps its last line, so
    every step appears once, in increasing order."""
    if not path.exists():
        return
    keep: dict[int, str] = {}
    for line in path.read_text().splitlines():
        step = _logged_step(line)
        if step is not None and step <= last_step:
            keep[step] = line
    write_text_atomic(path, "".join(keep[step] + "\n" for step in sorted(keep)))


def _all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of ``value`` over all processes (identity without a process group)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def _all_gather(value: torch.Tensor) -> list[torch.Tensor]:
    """``value`` of every process, by rank (``[value]`` without a process group)."""
    if not dist.is_initialized():
        return [value]
    out = [torch.empty_like(value) for _ in range(dist.get_world_size())]
    dist.all_gather(out, value)
    return out


def _share(rows: list[list], rank: int, world_size: int) -> list:
    """Process ``rank``'s row of a table saved with one row per process: its own row when the table
    has ``world_size`` rows; otherwise process 0 takes the column sums and the others zeros."""
    if len(rows) == world_size:
        return rows[rank]
    columns = [sum(column) for column in zip(*rows)]
    return columns if rank == 0 else [0 * c for c in columns]


class LogWindow:
    """The metrics of the optimiser steps since the last logged one, on this process.

    Per key a running sum (added in step order) and a count; the logged value of a key is the sum
    over all processes divided by the count over all processes. ``state`` / ``restore`` carry a
    window through a checkpoint: restored under the same world size, each process continues its own
    sums, so the resumed log equals the uninterrupted one bit for bit."""

    def __init__(self, steps: int = 0, elapsed_s: float = 0.0) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.steps = steps  # optimiser steps in the window, restored ones included
        self.timed = 0  # steps since ``started`` (for the throughput)
        self.started = time.perf_counter()
        self.elapsed_before = elapsed_s  # training time of the calls before this one (restored)

    def add(self, values: dict[str, float]) -> None:
        """Add one micro-batch's metrics."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def _local(self, device: torch.device) -> torch.Tensor:
        values = [*self.sums.values(), *map(float, self.counts.values())]
        return torch.tensor(values, dtype=torch.float64, device=device)

    def means(self, device: torch.device) -> dict[str, float]:
        """Per key the mean over every process's values (one all-reduce; all processes hold the same keys)."""
        total = _all_reduce_sum(self._local(device)).tolist()
        n = len(self.sums)
        return {key: total[i] / total[n + i] for i, key in enumerate(self.sums)}

    def state(self, device: torch.device, elapsed_s: float) -> dict[str, Any]:
        """The window as a JSON object, with the sums and counts of every process (a collective)."""
        n = len(self.sums)
        rows = [row.tolist() for row in _all_gather(self._local(device))] if n else []
        return {"keys": list(self.sums), "steps": self.steps, "elapsed_s": elapsed_s,
                "sums": [row[:n] for row in rows], "counts": [[int(c) for c in row[n:]] for row in rows]}

    @classmethod
    def restore(cls, state: dict[str, Any], rank: int, world_size: int, where: str) -> LogWindow:
        """The window ``state`` describes ({}: an empty one). Under the world size that saved it each
        process takes its own sums; under another, process 0 takes them all (the same means up to
        rounding). A malformed state is a one-line ValueError naming ``where``."""
        if not state:
            return cls()
        try:
            keys, sums, counts = list(state["keys"]), state["sums"], state["counts"]
            window = cls(int(state["steps"]), float(state["elapsed_s"]))
            if not all(len(row) == len(keys) for row in [*sums, *counts]) or len(sums) != len(counts):
                raise ValueError("rows of unequal length")
            if keys and not sums:
                raise ValueError("keys without sums")
            window.sums = {str(k): float(v) for k, v in zip(keys, _share(sums, rank, world_size))}
            window.counts = {str(k): int(c) for k, c in zip(keys, _share(counts, rank, world_size))}
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{where}: not a metrics window saved by this loop ({err})".splitlines()[0]) from None
        return window
