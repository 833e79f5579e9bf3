"""The hyperparameter sweeps (FMLM*'s w and gamma, FMLM's gamma, the teacher's churn): every point, the
value each sweep chooses, the seeds it came from, and the value the headline used.

The choice rule is the run's own (``fmlm.experiment.sweep_choice.choose``): the highest MAUVE when every
point of the sweep has a finite MAUVE, else the lowest gen PPL (finite values only), and the preset's
value (read from ``experiment.json``) is kept unless that best point is resolved better than it (95%
interval, ``fmlm.intervals``), so the report names the value the run sampled its headline at. Each point
shows its gen PPL's 95% interval (bootstrap over its samples, t over its seeds).

Seeds: a run samples the sweeps on its validation seeds (``evaluation.validation_seeds``), disjoint
from the headline seeds, so the chosen value is not fitted to the numbers it is reported beside. The
seeds are read from the records themselves: a sweep seed that is also a headline seed (the records
with ``sweep == null``) is a headline seed, and the table says so (older run folders sampled the
sweeps on the headline seeds). When a sweep has records on validation seeds, only those are used.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS
from fmlm.experiment.sweep_choice import (SWEEP_TAGS, SWEEPS, Choice, Point, Sweep, preset_knob,
                                          sweep_points)
from fmlm.experiment.sweep_choice import choose as choose_point
from fmlm.intervals import compare, log_ppl
from fmlm.reports.aggregate import headline, summarize
from fmlm.reports.formatting import NOT_MEASURED, fmt_stat, markdown_table, missing, steps_text

KNOBS = ("w", "gamma", "churn")
"""The sampler knobs a sweep row shows."""


def headline_seeds(results: pd.DataFrame) -> list[int]:
    """Seeds of the headline sample sets (``sweep`` null, not the held-out data rows)."""
    if results.empty:
        return []
    heads = results[results["sweep"].isna() & (results["sampler"] != "data")]
    return sorted({int(s) for s in heads["seed"]})


def split_seeds(seeds: list[int], headline: list[int]) -> tuple[list[int], list[int]]:
    """``(validation seeds, headline seeds)`` among ``seeds``: those not in ``headline``, and those in it."""
    return sorted(set(seeds) - set(headline)), sorted(set(seeds) & set(headline))


def _mean(row: pd.Series, stat: str) -> float | None:
    value = float(row[f"{stat}_mean"])
    return value if math.isfinite(value) else None


def choose(points: pd.DataFrame, sweep: str) -> Choice | None:
    """``(value, metric, ...)`` of the sweep by the run's rule without a preset (``sweep_choice.choose``); None
    when no point qualifies. ``points``: summary rows of one sweep."""
    return choose_point(Point(float(r[sweep]), _mean(r, "mauve") if r["n_mauve"] > 0 else None,
                              _mean(r, "gen_ppl")) for _, r in points.iterrows())


def ppl_interval(point: Point) -> str:
    """The point's gen PPL with the 95% interval of its log gen PPL, exponentiated (``fmlm.intervals``)."""
    if not point.ppl_rows:
        return NOT_MEASURED
    interval = compare(list(point.ppl_rows), [[[0.0, 1.0]]] * len(point.ppl_rows), statistic=log_ppl)
    if interval.method in ("no interval", "non-finite value"):
        return f"{math.exp(interval.estimate):.4g} (no interval)"
    return f"{math.exp(interval.estimate):.4g} [{math.exp(interval.low):.4g}, {math.exp(interval.high):.4g}]"


def _preset(experiment: dict | None, sweep: str) -> float | None:
    evaluation = (experiment or {}).get("evaluation")
    try:
        return preset_knob(evaluation, sweep) if isinstance(evaluation, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def _choice_sentence(pick: Choice, sweep: str, preset: float | None) -> str:
    rule = {"mauve": "by the highest MAUVE", "exact": "by the lowest abs(excess NLL) + bigram KL under the exact law"}.get(
        pick.metric, "by the lowest gen PPL; MAUVE is not measured at every point")
    name = {"mauve": "MAUVE", "exact": "abs(excess NLL) + bigram KL"}.get(pick.metric, "log gen PPL")
    diff = "" if pick.interval is None else (f" ({name}, best - preset: {pick.interval.text()})")
    if pick.kept:
        return (f"**Chosen {sweep} = {pick.value:g}, the preset's value, kept**: the best point {rule}, {sweep} = "
                f"{pick.best:g}, is not resolved better than it{diff}; within the noise, the preset's value stays.")
    against = "" if preset is None or pick.interval is None else f", resolved better than the preset's {preset:g}{diff}"
    return f"**Chosen {sweep} = {pick.value:g}** ({rule}{against})."


def margin_note(points: pd.DataFrame, sweep: str, metric: str) -> str:
    """A sentence when the chosen point beats the runner-up by less than the larger std over seeds of the two
    (the sweep does not separate them); empty otherwise, when either has a single record, or for a metric the
    summary has no column of (the exact testbed's score: its interval is in the choice sentence)."""
    if f"{metric}_mean" not in points or f"{metric}_std" not in points:
        return ""
    stat = points[f"{metric}_mean"].astype(float)
    order = stat.sort_values(ascending=metric != "mauve").index
    if len(order) < 2:
        return ""
    best, runner = points.loc[order[0]], points.loc[order[1]]
    stds = [float(best[f"{metric}_std"]), float(runner[f"{metric}_std"])]
    if not all(math.isfinite(x) for x in stds):
        return ""
    gap = abs(float(best[f"{metric}_mean"]) - float(runner[f"{metric}_mean"]))
    if gap >= max(stds):
        return ""
    name = "MAUVE" if metric == "mauve" else "gen PPL"
    return (f" Its {name} margin over {sweep} = {float(runner[sweep]):g} ({gap:.3g}) is smaller than the std over "
            f"seeds ({max(stds):.3g}): the sweep does not separate these values.")


def _seed_sentence(validation: list[int], on_headline: list[int], ignored: list[int]) -> str:
    if validation:
        text = (f"Sampled on the validation seed{'s' * (len(validation) > 1)} {validation}, disjoint from the "
                "headline seeds: the chosen value came from the validation seeds.")
        if ignored:
            text += f" Records of this sweep on the headline seeds {ignored} are left out of the choice."
        return text
    return (f"Sampled on the headline seed{'s' * (len(on_headline) > 1)} {on_headline}, as recorded (no "
            "validation seed): the chosen value is NOT independent of the headline numbers it is reported beside.")


def _headline_value(summary: pd.DataFrame, model: str, steps: int, sweep: str) -> str:
    rows = headline(summary, model, steps)
    values = sorted({float(v) for v in rows[sweep] if not missing(v)})
    return ", ".join(f"{v:g}" for v in values) if values else NOT_MEASURED


def sweep_section(results: pd.DataFrame, summary: pd.DataFrame, model: str, sweep: str, steps: int,
                  run_dir: Any = None, experiment: dict | None = None) -> str:
    """One sweep (``model``, ``sweep``, ``steps``): its points, the chosen value, the seeds it came from."""
    mine = results[(results["model"] == model) & (results["sweep"] == sweep) & (results["steps"] == steps)]
    validation, on_headline = split_seeds(sorted({int(s) for s in mine["seed"]}), headline_seeds(results))
    used = mine[mine["seed"].isin(validation)] if validation else mine
    points = summarize(used).sort_values(sweep, na_position="last")
    fixed = [k for k in KNOBS if k != sweep and k in points and not points[k].map(missing).all()]
    records = [{k: (None if missing(v) else v) for k, v in r.items()} for r in used.to_dict("records")]
    by_value = {p.value: p for p in sweep_points(records, Sweep(model, sweep), {int(s) for s in used["seed"]},
                                                 run_dir=run_dir)}
    rows = []
    for _, r in points.iterrows():
        point = None if missing(r[sweep]) else by_value.get(float(r[sweep]))
        rows.append({sweep: "-" if missing(r[sweep]) else f"{float(r[sweep]):g}",
                     **{k: "-" if missing(r[k]) else f"{float(r[k]):g}" for k in fixed},
                     "seeds": str(list(r["seeds"])), "n": str(r["n_records"]),
                     "gen PPL": fmt_stat(r, "gen_ppl"),
                     "gen PPL [95% interval]": NOT_MEASURED if point is None else ppl_interval(point),
                     "entropy": fmt_stat(r, "entropy"),
                     "MAUVE": NOT_MEASURED if r["n_mauve"] == 0 else fmt_stat(r, "mauve", 3),
                     "distinct-2": NOT_MEASURED if r["n_distribution"] == 0 else fmt_stat(r, "distinct_2", 3),
                     "rep-4": NOT_MEASURED if r["n_distribution"] == 0 else fmt_stat(r, "rep4", 3)})
    preset = _preset(experiment, sweep)
    chosen = choose_point(by_value.values(), preset=preset)
    label = MODEL_LABELS.get(model, model)
    if chosen is None:
        verdict = f"Chosen {sweep}: none (no point has a finite MAUVE or gen PPL)."
    else:
        used_value = _headline_value(summary, model, steps, sweep)
        agrees = ("the chosen value" if used_value == f"{chosen.value:g}" else
                  "NOT the chosen value (the headline was sampled before the run applied its sweeps' choices, "
                  "or before the preset's value was kept within the noise)"
                  if used_value != NOT_MEASURED else "")
        verdict = (f"{_choice_sentence(chosen, sweep, preset)}{margin_note(points, sweep, chosen.metric)} "
                   f"The headline {label} at {steps_text(steps)} uses {sweep} = {used_value}"
                   f"{', ' + agrees if agrees else ''}.")
    title = f"### {label} ({model}), {sweep} sweep at {steps_text(steps)}"
    parts = [title, markdown_table(rows, list(rows[0])), verdict,
             _seed_sentence(validation, on_headline, on_headline if validation else [])]
    return "\n\n".join(parts)


def sweep_table(results: pd.DataFrame, summary: pd.DataFrame, run_dir: Any = None,
                experiment: dict | None = None) -> str:
    """Every hyperparameter sweep of the run (``sweep_section``), with the choice rule stated once."""
    rule = ("Choice rule (fixed in advance): on the exact testbed the lowest abs(excess NLL) + bigram KL; else the "
            "highest MAUVE when every point of a sweep has one, else the "
            "lowest gen PPL; a tie goes to the smaller value; the preset's value is kept unless that best point is "
            "resolved better than it (95% interval of the difference: MAUVE, t over the validation seeds, none on "
            "one seed; log gen PPL, also a bootstrap over the samples). Lowest gen PPL at a healthy entropy is "
            "not the rule: "
            "gen PPL rewards repetition. The sweeps run in order ("
            + ", ".join(f"{MODEL_LABELS.get(w.model, w.model)} {w.knob}" for w in SWEEPS)
            + "), each at the values chosen before it, and the run samples its headline settings at the "
            "chosen values. "
            "Cells: mean ± sample std over the seeds used; gen PPL [95% interval]: the point's own spread.")
    if results.empty or not results["sweep"].isin(SWEEP_TAGS).any():
        return f"{rule}\n\nNo records with `sweep` in {list(SWEEP_TAGS)}: {NOT_MEASURED}.\n"
    sweeps = results[results["sweep"].isin(SWEEP_TAGS)]
    keys = list(dict.fromkeys(zip(sweeps["model"], sweeps["sweep"], sweeps["steps"])))
    sections = [sweep_section(results, summary, m, s, int(n), run_dir, experiment) for m, s, n in keys]
    return "\n\n".join([rule, *sections]) + "\n"


__all__ = ["choose", "margin_note", "headline_seeds", "split_seeds", "sweep_section", "sweep_table"]
