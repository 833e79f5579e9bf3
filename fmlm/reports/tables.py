"""Markdown tables built from the per-setting summary (see ``fmlm.reports.aggregate.summarize``).

Each function returns a markdown body (no top-level title); measured numbers
and numbers quoted from the paper are never in the same column.
"""

from __future__ import annotations

import pandas as pd

from fmlm.experiment.run_folder import FEW_STEP_MODELS, MODEL_LABELS
from fmlm.reports.aggregate import headline
from fmlm.reports.formatting import (NOT_MEASURED, fmt_num, fmt_ppl_entropy, fmt_setting, fmt_stat, markdown_table,
                                     steps_text)
from fmlm.reports.paper import PAPER_GEN_PPL_ENTROPY, PAPER_SOURCE, quoted_cell

PAPER_STEPS = (1, 2, 4)
"""The few-step rows of the paper's table."""

_SIDE_MODELS = ("teacher", "fixed-point", "teacher-nosc", "untrained", "reference")
"""Models shown at their own step counts beside the few-step table."""

_SC_ORDER = {"warm": 0, "none": 1, "cold": 2}


def _sampler_tag(row: pd.Series) -> str:
    setting = fmt_setting(row)
    return row["sampler"] if setting == "-" else f"{row['sampler']}, {setting}"


def _cells(rows: pd.DataFrame) -> str:
    """One cell for the headline settings of one model at one step count."""
    if rows.empty:
        return NOT_MEASURED
    if len(rows) == 1:
        return fmt_ppl_entropy(rows.iloc[0])
    return "; ".join(f"{fmt_ppl_entropy(r)} [{_sampler_tag(r)}]" for _, r in rows.iterrows())


def main_table(summary: pd.DataFrame) -> str:
    """The paper's layout: steps x {FMLM, FMLM*} measured, a quoted block, and a side block at own steps."""
    measured_steps = set()
    for model in FEW_STEP_MODELS:
        measured_steps |= set(int(s) for s in headline(summary, model)["steps"])
    steps_rows = sorted(set(PAPER_STEPS) | measured_steps)
    measured_cols = [f"measured: {MODEL_LABELS[m]} ({m})" for m in FEW_STEP_MODELS]
    quoted_cols = [f"paper (quoted): {MODEL_LABELS[m]}" for m in FEW_STEP_MODELS]
    rows = []
    for steps in steps_rows:
        row = {"steps": str(steps)}
        for model, col in zip(FEW_STEP_MODELS, measured_cols):
            row[col] = _cells(headline(summary, model, steps))
        for model, col in zip(FEW_STEP_MODELS, quoted_cols):
            row[col] = quoted_cell(model, steps)
        rows.append(row)
    parts = [
        "Cells are **gen PPL / entropy** (lower gen PPL is better; entropy in nats; it grows with sample length: compare with the held-out real text row, about 5.2 for real text of 1024 tokens). "
        "Measured cells use each model's headline sampler setting (records with `sweep == null`) and show "
        "mean ± sample std over seeds with n when there are several seeds.",
        f"The **paper (quoted)** columns are {PAPER_SOURCE}. They are not comparable one-to-one with a run "
        "that uses another corpus, evaluator, sample count or model size.",
        markdown_table(rows, ["steps", *measured_cols, *quoted_cols]),
    ]
    used = []
    for model in FEW_STEP_MODELS:
        for _, r in headline(summary, model).iterrows():
            used.append(f"- {MODEL_LABELS[model]} at {steps_text(r['steps'])}: sampler {_sampler_tag(r)}; "
                        f"NFE {fmt_num(r['nfe_mean'], 0)}; seeds {list(r['seeds'])}")
    parts.append("Headline settings used:\n" + ("\n".join(used) if used else f"- none ({NOT_MEASURED})"))
    parts.append("### Teacher, ELF*, references (at their own step counts)\n\n" + side_table(summary))
    return "\n\n".join(parts) + "\n"


def side_table(summary: pd.DataFrame) -> str:
    """Headline rows of the teacher, ELF*, ELF (no SC), the untrained network and held-out text."""
    rows = []
    others = [m for m in dict.fromkeys(summary["model"]) if m not in FEW_STEP_MODELS and m not in _SIDE_MODELS]
    for model in (*_SIDE_MODELS, *others):
        found = headline(summary, model)
        label = MODEL_LABELS.get(model, model)
        if found.empty:
            rows.append({"model": f"{label} ({model})", "sampler": "-", "steps": "-", "setting": "-",
                         "NFE": "-", "gen PPL / entropy": NOT_MEASURED})
        for _, r in found.iterrows():
            rows.append({"model": f"{label} ({model})", "sampler": r["sampler"], "steps": str(r["steps"]),
                         "setting": fmt_setting(r), "NFE": fmt_num(r["nfe_mean"], 0),
                         "gen PPL / entropy": fmt_ppl_entropy(r)})
    return markdown_table(rows, ["model", "sampler", "steps", "setting", "NFE", "gen PPL / entropy"]) + "\n"


def cost_table(summary: pd.DataFrame) -> str:
    """Every evaluated setting with its cost: NFE and wall time per sample, next to gen PPL and entropy."""
    if summary.empty:
        return f"No evaluated settings ({NOT_MEASURED}: results.jsonl is missing or empty).\n"
    rows = []
    for _, r in summary.iterrows():
        row = {"model": f"{MODEL_LABELS.get(r['model'], r['label'])} ({r['model']})", "sampler": r["sampler"],
               "steps": str(r["steps"]), "setting": fmt_setting(r),
               "sweep": "-" if r["sweep"] is None else r["sweep"], "n": str(r["n_records"]),
               "NFE / sample": fmt_num(r["nfe_mean"], 1 if r["nfe_mean"] % 1 else 0),
               "wall ms / sample": _scaled(r, "wall_s_per_sample", 1000.0),
               "gen PPL": fmt_stat(r, "gen_ppl"), "entropy": fmt_stat(r, "entropy")}
        rows.append(row)
    head = ("One row per evaluated setting (repeats over seeds merged: mean ± sample std, n records). "
            "NFE counts network evaluations per sample; wall time is measured per sample on the run's device.")
    return head + "\n\n" + markdown_table(rows, list(rows[0])) + "\n"


def _scaled(row: pd.Series, name: str, factor: float) -> str:
    scaled = dict(row)
    scaled[f"{name}_mean"] = row[f"{name}_mean"] * factor
    scaled[f"{name}_std"] = row[f"{name}_std"] * factor
    return fmt_stat(scaled, name)


def sc_table(summary: pd.DataFrame) -> str:
    """Teacher with warm self-conditioning, without it, and cold starts with N fixed-point iterations."""
    if summary.empty:
        return f"{NOT_MEASURED}: results.jsonl is missing or empty.\n"
    sweep = summary[summary["sweep"] == "sc"]
    steps = set(int(s) for s in sweep["steps"])
    heads = [headline(summary, m) for m in ("teacher", "teacher-nosc")]
    heads = [h[h["steps"].isin(steps)] if steps else h for h in heads]
    rows_df = pd.concat([*heads, sweep], ignore_index=True)
    notes = []
    if sweep.empty:
        notes.append(f"The self-conditioning sweep (records with `sweep == \"sc\"`) is {NOT_MEASURED}.")
    warm = rows_df[(rows_df["model"] == "teacher") & (rows_df["sc_mode"] == "warm")] if not rows_df.empty else rows_df
    if warm.empty:
        notes.append(f"The teacher with warm self-conditioning (ELF) is {NOT_MEASURED} at these steps.")
    if rows_df.empty:
        return "\n".join(notes) + "\n"
    order = sorted(
        range(len(rows_df)),
        key=lambda i: (rows_df.iloc[i]["steps"], _SC_ORDER.get(rows_df.iloc[i]["sc_mode"], 3),
                       rows_df.iloc[i]["model"] != "teacher",
                       rows_df.iloc[i]["fp_iterations"] if rows_df.iloc[i]["fp_iterations"] is not None else -1),
    )
    rows = []
    for i in order:
        r = rows_df.iloc[i]
        rows.append({"model": f"{MODEL_LABELS.get(r['model'], r['label'])} ({r['model']})",
                     "source": "headline" if r["sweep"] is None else "sc sweep",
                     "sc mode": r["sc_mode"] or "-",
                     "N iterations": "-" if r["fp_iterations"] is None else str(r["fp_iterations"]),
                     "solver": r["fp_solver"] or "-", "sampler": r["sampler"], "steps": str(r["steps"]),
                     "NFE / sample": fmt_num(r["nfe_mean"], 1 if r["nfe_mean"] % 1 else 0),
                     "gen PPL": fmt_stat(r, "gen_ppl"), "entropy": fmt_stat(r, "entropy"), "n": str(r["n_records"])})
    head = ("Warm: the slot carries the previous step's estimate (one forward per step); none: empty slot; "
            "cold: the slot starts empty at every step and is refined by N fixed-point iterations.")
    return "\n\n".join([head, *notes, markdown_table(rows, list(rows[0]))]) + "\n"


__all__ = ["main_table", "side_table", "cost_table", "sc_table", "NOT_MEASURED", "PAPER_GEN_PPL_ENTROPY"]
