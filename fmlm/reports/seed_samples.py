"""Per-seed samples of a setting, in the form the interval mechanism (``fmlm.intervals``) takes.

A setting (one summary row) holds one record per sampling seed; a record's samples are in its
``eval/<id>.jsonl``. Per statistic, each seed gives:

- ``gen_ppl``: the ``(nll_sum, n_tokens)`` rows of its samples (statistic ``log_ppl``, the corpus log gen
  PPL ``sum nll / sum tokens``, which is what the record's ``gen_ppl`` is the exp of); a record whose
  samples file is absent or lacks the two keys is the one row ``(log gen_ppl, 1)``;
- ``entropy``: its samples' unigram entropies (statistic: the mean, which is the record's ``entropy``);
  the record's value alone when the file lacks them;
- ``mauve``: the record's MAUVE (a set-level number: one value per seed, no bootstrap within it).

Several records on one seed pool their samples. Two sides are paired seed by seed in sorted order
(``paired``); a side's extra seeds are left out, so ``n`` is the smaller side's seed count.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmlm.experiment.sweep_choice import ppl_rows
from fmlm.files import read_jsonl
from fmlm.intervals import Statistic, log_ppl, mean
from fmlm.reports.formatting import plain

STATISTICS: dict[str, Statistic] = {"gen_ppl": log_ppl, "entropy": mean, "mauve": mean}
"""The statistic each reported quantity is compared on (gen PPL on the log scale)."""


def _number(value: Any) -> float:
    value = plain(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class SeedSamples:
    """The samples of a run's records by seed; ``run_dir`` None: the records' own values only."""

    def __init__(self, run_dir: Path | str | None, results: pd.DataFrame):
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.records = {} if results.empty else {r["id"]: r for r in results.to_dict("records")}
        self._files: dict[str, list[dict[str, Any]] | None] = {}

    def _rows(self, record: dict[str, Any]) -> list[dict[str, Any]] | None:
        name = plain(record.get("samples_file"))
        if self.run_dir is None or name is None:
            return None
        if name not in self._files:
            path = self.run_dir / name
            self._files[name] = [r for _, r in read_jsonl(path, strict=False)[0]] if path.is_file() else None
        return self._files[name]

    def record_samples(self, record: dict[str, Any], stat: str) -> np.ndarray:
        """One record's samples for ``stat`` (module docstring)."""
        if stat not in STATISTICS:
            raise ValueError(f"stat: expected one of {sorted(STATISTICS)}, got {stat!r}")
        rows = self._rows(record) if stat != "mauve" else None
        if stat == "gen_ppl":  # the sweeps' reader: (nll_sum, n_tokens) rows, else (log gen_ppl, 1)
            return ppl_rows(record, self.run_dir)
        if stat == "entropy":
            values = [_number(r.get("entropy")) for r in rows or []]
            if values and all(math.isfinite(v) for v in values):
                return np.asarray(values, dtype=np.float64)
        return np.asarray([_number(record.get(stat))], dtype=np.float64)

    def side(self, row: pd.Series, stat: str) -> dict[int, np.ndarray]:
        """``{seed: samples}`` of a summary row's records (its ``ids``)."""
        by_seed: dict[int, list[np.ndarray]] = {}
        for rid in row["ids"]:
            record = self.records.get(rid)
            if record is None:
                raise ValueError(f"ids: record {rid!r} of the summary is not among the results")
            by_seed.setdefault(int(record["seed"]), []).append(self.record_samples(record, stat))
        return {seed: np.concatenate(parts) for seed, parts in sorted(by_seed.items())}


def paired(left: dict[int, np.ndarray], right: dict[int, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two sides' seeds paired in sorted order, each cut to the smaller count."""
    n = min(len(left), len(right))
    return [left[s] for s in sorted(left)][:n], [right[s] for s in sorted(right)][:n]


__all__ = ["STATISTICS", "SeedSamples", "paired"]
