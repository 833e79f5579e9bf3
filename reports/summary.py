"""Group repeated evaluations (same setting, different seeds) and format numbers for tables.

For a group of n records the table shows the mean, and when n > 1 also the
sample standard deviation (ddof = 1) and n. NaN and inf are never skipped:
one non-finite value makes the mean non-finite, and it is printed as such.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from reports.loading import MODEL_LABELS, SETTING_KEYS

GROUP_KEYS = SETTING_KEYS + ("sweep",)
"""A headline setting and the same setting inside a sweep are kept apart."""

NOT_MEASURED = "not measured"
"""What every table prints where a measurement is absent."""

_AGGREGATED = ("gen_ppl", "entropy", "nfe", "wall_s_per_sample")

SUMMARY_COLUMNS = (
    *GROUP_KEYS, "label", "n_records", "n_seeds", "seeds", "n_samples", "ids", "samples_files",
    *(f"{name}_{stat}" for name in _AGGREGATED for stat in ("mean", "std")),
)


def missing(value: Any) -> bool:
    """True for None, pandas NA and float NaN (how pandas may store an absent optional field)."""
    return _plain(value) is None


def _plain(value: Any) -> Any:
    """Turn NaN / pandas NA into None and numpy scalars into Python ones (for keys and JSON)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample std (ddof = 1) of ``values``; std is NaN for one value; NaN/inf propagate."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(np.mean(arr))
        std = float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan
    return mean, std


def _model_order(model: str) -> int:
    names = list(MODEL_LABELS)
    return names.index(model) if model in names else len(names)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluated setting (``GROUP_KEYS``) with mean/std over its records.

    Columns: ``SUMMARY_COLUMNS``; ``seeds`` / ``ids`` / ``samples_files`` are tuples.
    """
    if results.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS), dtype=object)
    keys = [json.dumps([_plain(v) for v in row]) for row in results[list(GROUP_KEYS)].itertuples(index=False)]
    rows = []
    for key, group in results.groupby(pd.Series(keys, index=results.index), sort=False):
        first = dict(zip(GROUP_KEYS, json.loads(key)))
        row: dict[str, Any] = dict(first)
        row["label"] = ", ".join(dict.fromkeys(group["label"]))
        row["n_records"] = len(group)
        row["seeds"] = tuple(sorted(int(s) for s in group["seed"].unique()))
        row["n_seeds"] = len(row["seeds"])
        samples = sorted({int(n) for n in group["n_samples"] if _plain(n) is not None})
        row["n_samples"] = samples[0] if len(samples) == 1 else (tuple(samples) if samples else None)
        row["ids"] = tuple(group["id"])
        row["samples_files"] = tuple(_plain(f) for f in group["samples_file"])
        for name in _AGGREGATED:
            row[f"{name}_mean"], row[f"{name}_std"] = mean_std(group[name])
        rows.append(row)
    # object dtype keeps None as None and integers as integers in the key columns
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS), dtype=object)
    stats = [c for c in SUMMARY_COLUMNS if c.endswith(("_mean", "_std"))]
    table[stats] = table[stats].astype(float)
    table[["n_records", "n_seeds"]] = table[["n_records", "n_seeds"]].astype(int)
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


def steps_text(steps: int) -> str:
    """'1 step', '4 steps'."""
    return f"{steps} step" + ("" if steps == 1 else "s")


def fmt_num(value: Any, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; NaN -> 'nan', +-inf -> 'inf' / '-inf', None -> '-'."""
    if value is None or value is pd.NA:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def fmt_stat(row: pd.Series | dict, name: str, digits: int = 2) -> str:
    """``mean`` for one seed, ``mean ± std`` for several (n is reported in its own column)."""
    mean = row[f"{name}_mean"]
    if row["n_records"] > 1:
        return f"{fmt_num(mean, digits)} ± {fmt_num(row[f'{name}_std'], digits)}"
    return fmt_num(mean, digits)


def fmt_ppl_entropy(row: pd.Series | dict) -> str:
    """The paper's cell: ``gen PPL / entropy`` (each ``mean ± std`` when there are several seeds)."""
    cell = f"{fmt_stat(row, 'gen_ppl')} / {fmt_stat(row, 'entropy')}"
    return cell + (f" (n={row['n_records']})" if row["n_records"] > 1 else "")


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """``rows`` as a markdown table (columns: ``columns``, else the first row's keys); cells are kept as text."""
    return pd.DataFrame(rows, columns=columns or list(rows[0])).to_markdown(index=False, disable_numparse=True)


def fmt_setting(row: pd.Series | dict) -> str:
    """The sampler knobs that are set, e.g. ``w=5, gamma=1, sc=warm``; '-' when none is set."""
    parts = []
    for key, name in (("w", "w"), ("gamma", "gamma"), ("churn", "churn")):
        if _plain(row[key]) is not None:
            parts.append(f"{name}={float(row[key]):g}")
    if _plain(row["sc_mode"]) is not None:
        parts.append(f"sc={row['sc_mode']}")
    if _plain(row["fp_iterations"]) is not None:
        solver = f" {row['fp_solver']}" if _plain(row["fp_solver"]) is not None else ""
        parts.append(f"N={row['fp_iterations']}{solver}")
    return ", ".join(parts) if parts else "-"
