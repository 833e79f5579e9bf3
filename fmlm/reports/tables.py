"""Markdown tables built from the per-setting summary (see ``fmlm.reports.aggregate.summarize``).

Each function returns a markdown body (no top-level title); measured numbers
and numbers quoted from the paper are never in the same column.
"""

from __future__ import annotations

import pandas as pd

from fmlm.experiment.run_folder import FEW_STEP_MODELS, MODEL_LABELS
from fmlm.experiment.sweep_choice import SWEEP_TAGS
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
    if not summary.empty and summary["sweep"].isin(SWEEP_TAGS).any():
        parts.append("Where a setting was swept (w, gamma at the swept step count, the SDE's churn), the run chose "
                     "its value on the sweep's seeds and sampled the headline at it; `sweep_table.md` has every "
                     "point, the value chosen and whether the headline used it.")
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


METRIC_GUIDE = (
    "What each number rewards, and how it can be fooled:\n\n"
    "- **gen PPL** (lower = text the evaluator finds likely) rewards repetition: a sampler that emits one "
    "token over and over scores a very low gen PPL.\n"
    "- **entropy** (unigram entropy per sample, nats; higher = more varied tokens) rewards random tokens: "
    "uniform noise has the highest entropy of all.\n"
    "- **distinct-n** (unique n-grams / all n-grams over the whole sample set, evaluator tokens; higher = less "
    "repeated) rewards random tokens as well (noise makes every n-gram new), and falls as samples get longer "
    "or more numerous.\n"
    "- **rep-4** (per sample, 1 - unique 4-grams / 4-grams, averaged over samples with a 4-gram; lower = less "
    "looping) is also fooled by random tokens, which never repeat a 4-gram.\n"
    "- **MAUVE** (0 to 1, higher = the samples' distribution is closer to held-out real text) penalises both "
    "repetition and noise, but it is noisy on small sample sets (few k-means buckets: the counts are in the "
    "table) and depends on the feature choice (here the run's evaluator, mean-pooled last hidden state, not "
    "the MAUVE paper's gpt2-large), so it is comparable only within one run and one sample count. The "
    "held-out text row is MAUVE against a DIFFERENT held-out slice: the ceiling at this sample count.\n\n"
    "Read the columns together: a lower gen PPL means better text only when MAUVE and distinct-2 do not fall "
    "and rep-4 does not rise with it."
)
"""The paragraph the diversity table opens with (also quoted in report.md)."""

_SHARE_COLUMNS = (("empty", "empty_share"), ("one-token", "single_token_share"))


def _dist_cell(row: pd.Series, name: str) -> str:
    """``fmt_stat`` of a distribution metric; ``NOT_MEASURED`` when no record of the setting carries it."""
    measured = row["n_mauve"] if name == "mauve" else row["n_distribution"]
    return NOT_MEASURED if measured == 0 else fmt_stat(row, name, 3)


def _mauve_counts(row: pd.Series) -> str:
    """``samples / reference / buckets`` of the MAUVE computation, '-' when not measured."""
    if row["n_mauve"] == 0:
        return "-"
    parts = [row["mauve_n"], row["mauve_n_reference"], row["mauve_num_buckets"]]
    return " / ".join("-" if p is None else ",".join(map(str, p)) if isinstance(p, tuple) else str(p) for p in parts)


def diversity_table(summary: pd.DataFrame) -> str:
    """Every evaluated setting with MAUVE, distinct-2, rep-4 and the empty / one-token shares beside gen PPL and
    entropy (``METRIC_GUIDE`` says what each rewards)."""
    if summary.empty:
        return f"{METRIC_GUIDE}\n\nNo evaluated settings ({NOT_MEASURED}: results.jsonl is missing or empty).\n"
    rows = []
    for _, r in summary.iterrows():
        row = {"model": f"{MODEL_LABELS.get(r['model'], r['label'])} ({r['model']})", "sampler": r["sampler"],
               "steps": str(r["steps"]), "setting": fmt_setting(r),
               "sweep": "-" if r["sweep"] is None else r["sweep"], "n": str(r["n_records"]),
               "gen PPL": fmt_stat(r, "gen_ppl"), "entropy": fmt_stat(r, "entropy"),
               "MAUVE": _dist_cell(r, "mauve"), "distinct-2": _dist_cell(r, "distinct_2"),
               "rep-4": _dist_cell(r, "rep4")}
        row.update({label: _dist_cell(r, name) for label, name in _SHARE_COLUMNS})
        row["MAUVE samples / reference / buckets"] = _mauve_counts(r)
        rows.append(row)
    parts = [METRIC_GUIDE, "One row per evaluated setting (mean ± sample std over seeds, n records). "
             "`empty`: share of samples with no text; `one-token`: share that are one word repeated."]
    if not summary["n_distribution"].any():
        parts.append(f"No record of this run folder carries MAUVE or distinct-n: they were {NOT_MEASURED} "
                     "(the run was measured before these metrics were recorded).")
    else:
        features = sorted({str(f) for f in summary["mauve_features"] if f is not None})
        if features:
            parts.append("MAUVE features: " + "; ".join(f"`{f}`" for f in features) + ".")
        notes = dict.fromkeys(n for ns in summary["mauve_notes"] for n in ns)
        parts += [f"MAUVE {n}." for n in notes]
    parts.append(markdown_table(rows, list(rows[0])))
    return "\n\n".join(parts) + "\n"


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


__all__ = ["main_table", "side_table", "cost_table", "sc_table", "diversity_table", "METRIC_GUIDE", "NOT_MEASURED",
           "PAPER_GEN_PPL_ENTROPY"]
