"""The released models' table: records scored the paper's way (``scoring == "paper"``, written by
``experiments/reproduce_released.py``) beside the numbers QUOTED from the paper.

One row per model, sampler setting and step count (several seeds: mean ± sample std over the records).
Cells are gen PPL / entropy of this run's samples under three scorings of the same texts:

- paper scoring: the reference's metric code, blank samples dropped (the number the paper reports);
- blank samples kept: the same code with every sample (a blank one adds no scored token but a 0 to the
  entropy mean);
- project framing: this project's ``[start] + text + [end]`` scoring of each text on its own;

then samples scored of samples drawn (paper scoring) and the "paper (quoted)" column from
``fmlm.reports.paper`` ('-' where the paper prints no number: ELF and ELF* at 32 steps are not in its
few-step table). Measured and quoted numbers are never in the same column.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS
from fmlm.reports.aggregate import mean_std, summarize
from fmlm.reports.formatting import fmt_num, fmt_setting, fmt_stat, markdown_table
from fmlm.reports.paper import PAPER_SOURCE, quoted_cell

PAPER_SCORING = "paper"
"""The ``scoring`` value of a record whose gen_ppl / entropy follow the paper's metric code."""

FRAMINGS = (
    ("ours: paper scoring", "gen_ppl", "entropy"),
    ("ours: blank samples kept", "gen_ppl_keep_empty", "entropy_keep_empty"),
    ("ours: project framing", "gen_ppl_project", "entropy_project"),
)
"""Column -> the record keys of its gen PPL and entropy."""

ROW_ORDER = ("flow-map", "teacher", "fixed-point")
"""The flow map (the paper's few-step table) first, then the 32-step models; other models after."""

QUOTED_COLUMN = "paper (quoted)"
COLUMNS = ["model", "sampler", "steps", "setting", "NFE", "seeds", *(c for c, _, _ in FRAMINGS), "scored",
           QUOTED_COLUMN]


def released_records(results: pd.DataFrame) -> pd.DataFrame:
    """The records with ``scoring == "paper"`` (an empty frame when there is none)."""
    if results.empty or "scoring" not in results:
        return results.iloc[0:0]
    return results[results["scoring"] == PAPER_SCORING]


def as_float(value: Any) -> float:
    """A record's number as a float: null / NA -> NaN, ``"inf"`` / ``"nan"`` strings as written."""
    if value is None or value is pd.NA:
        return math.nan
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return float(value)


def _stat_cell(group: pd.DataFrame, ppl_key: str, entropy_key: str) -> str:
    stats: dict[str, Any] = {"n_records": len(group)}
    for name, key in (("ppl", ppl_key), ("entropy", entropy_key)):
        values = [as_float(v) for v in group[key]] if key in group else [math.nan] * len(group)
        stats[f"{name}_mean"], stats[f"{name}_std"] = mean_std(values)
    return f"{fmt_stat(stats, 'ppl')} / {fmt_stat(stats, 'entropy')}"


def _scored_cell(group: pd.DataFrame) -> str:
    if "n_scored" not in group:
        return "-"
    scored = [as_float(v) for v in group["n_scored"]]
    drawn = [as_float(v) for v in group["n_samples"]]
    if any(math.isnan(v) for v in scored + drawn):
        return "-"
    return f"{int(sum(scored))} of {int(sum(drawn))}"


def _row(setting: pd.Series, group: pd.DataFrame) -> dict[str, str]:
    model = setting["model"]
    row = {"model": f"{MODEL_LABELS.get(model, model)} ({model})", "sampler": setting["sampler"],
           "steps": str(setting["steps"]), "setting": fmt_setting(setting),
           "NFE": fmt_num(setting["nfe_mean"], 0), "seeds": ", ".join(str(s) for s in setting["seeds"])}
    for column, ppl_key, entropy_key in FRAMINGS:
        row[column] = _stat_cell(group, ppl_key, entropy_key)
    row["scored"] = _scored_cell(group)
    row[QUOTED_COLUMN] = quoted_cell(model, int(setting["steps"]))
    return row


def _run_sentence(experiment: dict | None) -> str:
    exp = experiment or {}
    n, length, evaluator = exp.get("n"), exp.get("length"), exp.get("evaluator")
    if n is None and length is None and evaluator is None:
        return "This run's settings are not recorded (experiment.json)."
    return (f"This run: {n if n is not None else '?'} samples of {length if length is not None else '?'} tokens "
            f"per setting, evaluator `{evaluator if evaluator is not None else '?'}`.")


def released_table(results: pd.DataFrame, experiment: dict | None = None) -> str | None:
    """Markdown body of ``released_table.md``, or None when no record carries ``scoring == "paper"``."""
    records = released_records(results)
    if records.empty:
        return None
    settings = summarize(records)  # one row per setting, in the summary's order within a model
    rank = {model: i for i, model in enumerate(ROW_ORDER)}
    order = sorted(range(len(settings)), key=lambda i: rank.get(settings.iloc[i]["model"], len(rank)))
    rows = []
    for i in order:
        setting = settings.iloc[i]
        rows.append(_row(setting, records[records["id"].isin(setting["ids"])]))
    head = (
        "The paper's released checkpoints (imported with `python -m fmlm import`), each sampled with its stored "
        "paper setting. Cells are **gen PPL / entropy** (entropy in nats; several seeds: mean ± sample std). "
        "The same texts are scored three ways: the paper's metric code with blank samples dropped (the number the "
        "paper reports), the same code with blank samples kept, and this project's framing. 'scored' counts the "
        "samples the paper scoring kept of those drawn. " + _run_sentence(experiment)
    )
    quoted = (f"The **{QUOTED_COLUMN}** column is {PAPER_SOURCE}; '-' where the paper prints no number "
              "(ELF and ELF* at 32 steps are not in its few-step table).")
    return "\n\n".join([head, quoted, markdown_table(rows, COLUMNS)]) + "\n"


__all__ = ["released_table", "released_records", "PAPER_SCORING"]
