"""Group repeated evaluations (same setting, different seeds) into one row per setting.

For a group of n records the summary holds the mean, and the sample standard
deviation (ddof = 1; NaN for one record). NaN and inf are never skipped: one
non-finite value makes the mean non-finite. How the numbers are printed:
``fmlm.reports.formatting``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS, SETTING_KEYS
from fmlm.reports.formatting import plain

GROUP_KEYS = SETTING_KEYS + ("sweep",)
"""A headline setting and the same setting inside a sweep are kept apart."""

DISTRIBUTION_METRICS = ("mauve", "distinct_1", "distinct_2", "distinct_3", "rep4", "empty_share",
                        "single_token_share")
"""Optional per-record numbers (``fmlm.evaluation.mauve_score``); absent in run folders measured before them."""

_AGGREGATED = ("gen_ppl", "entropy", "nfe", "wall_s_per_sample", *DISTRIBUTION_METRICS)

SUMMARY_COLUMNS = (
    *GROUP_KEYS, "label", "n_records", "n_seeds", "seeds", "n_samples", "ids", "samples_files",
    *(f"{name}_{stat}" for name in _AGGREGATED for stat in ("mean", "std")),
    "n_distribution", "n_mauve", "mauve_n", "mauve_n_reference", "mauve_num_buckets", "mauve_features",
    "mauve_notes",
)
"""``n_distribution``: records that carry the distribution metrics (a ``mauve_features`` or ``mauve_note``);
``n_mauve``: records with a MAUVE feature source; the ``mauve_*`` counts and sources: the value when the
records agree, else a tuple of the values; ``mauve_notes``: the records' notes (a tuple)."""


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample std (ddof = 1) of ``values``; std is NaN for one value; NaN/inf propagate."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(np.mean(arr))
        std = float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan
    return mean, std


def _present(values: Iterable[Any]) -> list[Any]:
    return [plain(v) for v in values if plain(v) is not None]


def _one_or_tuple(values: Iterable[Any]) -> Any:
    """The single distinct value, a sorted tuple of several, or None when there is none."""
    found = sorted(set(_present(values)), key=str)
    return found[0] if len(found) == 1 else (tuple(found) if found else None)


def _model_order(model: str) -> int:
    names = list(MODEL_LABELS)
    return names.index(model) if model in names else len(names)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluated setting (``GROUP_KEYS``) with mean/std over its records.

    Columns: ``SUMMARY_COLUMNS``; ``seeds`` / ``ids`` / ``samples_files`` are tuples.
    """
    if results.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS), dtype=object)
    keys = [json.dumps([plain(v) for v in row]) for row in results[list(GROUP_KEYS)].itertuples(index=False)]
    rows = []
    for key, group in results.groupby(pd.Series(keys, index=results.index), sort=False):
        first = dict(zip(GROUP_KEYS, json.loads(key)))
        row: dict[str, Any] = dict(first)
        row["label"] = ", ".join(dict.fromkeys(group["label"]))
        row["n_records"] = len(group)
        row["seeds"] = tuple(sorted(int(s) for s in group["seed"].unique()))
        row["n_seeds"] = len(row["seeds"])
        samples = sorted({int(n) for n in group["n_samples"] if plain(n) is not None})
        row["n_samples"] = samples[0] if len(samples) == 1 else (tuple(samples) if samples else None)
        row["ids"] = tuple(group["id"])
        row["samples_files"] = tuple(plain(f) for f in group["samples_file"])
        for name in _AGGREGATED:
            row[f"{name}_mean"], row[f"{name}_std"] = mean_std(group[name])
        row["n_mauve"] = len(_present(group["mauve_features"]))
        row["n_distribution"] = sum(plain(f) is not None or plain(n) is not None
                                    for f, n in zip(group["mauve_features"], group["mauve_note"]))
        for name in ("mauve_n", "mauve_n_reference", "mauve_num_buckets", "mauve_features"):
            row[name] = _one_or_tuple(group[name])
        row["mauve_notes"] = tuple(dict.fromkeys(_present(group["mauve_note"])))
        rows.append(row)
    # object dtype keeps None as None and integers as integers in the key columns
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS), dtype=object)
    stats = [c for c in SUMMARY_COLUMNS if c.endswith(("_mean", "_std"))]
    table[stats] = table[stats].astype(float)
    table[["n_records", "n_seeds", "n_mauve", "n_distribution"]] = (
        table[["n_records", "n_seeds", "n_mauve", "n_distribution"]].astype(int))
    order = table.apply(
        lambda r: (_model_order(r["model"]), r["sampler"], r["steps"], r["sweep"] is not None, str(r["sweep"]),
                   str(r["sc_mode"]),
                   -1 if r["fp_iterations"] is None else r["fp_iterations"],
                   *(math.inf if r[k] is None else r[k] for k in ("w", "gamma", "churn"))),
        axis=1,
    )
    return table.iloc[sorted(range(len(table)), key=lambda i: order.iloc[i])].reset_index(drop=True)


def headline(summary: pd.DataFrame, model: str, steps: int | None = None) -> pd.DataFrame:
    """The headline settings (``sweep`` is null) of ``model``, optionally at ``steps``."""
    if summary.empty:
        return summary
    mask = (summary["model"] == model) & summary["sweep"].isna()
    if steps is not None:
        mask &= summary["steps"] == steps
    return summary[mask]
