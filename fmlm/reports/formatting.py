"""How numbers and settings are written in the report's tables (no aggregation here: ``aggregate``).

A cell shows the mean, and when a setting has several records also ``± std``
(sample standard deviation, ddof = 1); NaN and inf are printed as such, never
hidden. An absent measurement is ``NOT_MEASURED``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

NOT_MEASURED = "not measured"
"""What every table prints where a measurement is absent."""


def plain(value: Any) -> Any:
    """Turn NaN / pandas NA into None and numpy scalars into Python ones (for keys and JSON)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return plain(value.item())
    return value


def missing(value: Any) -> bool:
    """True for None, pandas NA and float NaN (how pandas may store an absent optional field)."""
    return plain(value) is None


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
        if plain(row[key]) is not None:
            parts.append(f"{name}={float(row[key]):g}")
    if plain(row["sc_mode"]) is not None:
        parts.append(f"sc={row['sc_mode']}")
    if plain(row["fp_iterations"]) is not None:
        solver = f" {row['fp_solver']}" if plain(row["fp_solver"]) is not None else ""
        parts.append(f"N={row['fp_iterations']}{solver}")
    return ", ".join(parts) if parts else "-"
