"""The deterministic flows the flow maps distil, next to the flow maps and the SDE headlines.

A flow map learns the probability-flow ODE of its source: FMLM* that of ELF* (at the
guidance scale it is sampled with), FMLM that of the no-SC teacher. The experiment
samples those ODEs with Euler and no churn (records with ``sweep == "ode"``). Two
tables follow from them:

- distillation: the flow map at k steps (its headline CTM setting) against its
  source ODE at k steps and at the most steps measured; the ratio to the latter
  says how close the flow map comes to the flow it was trained to reproduce;
- sampler: each ODE record against the same model's headline SDE record at the
  same number of steps; the ratio says how much of a model's many-step quality
  comes from churn rather than from its flow.
"""

from __future__ import annotations

import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS, ODE_SWEEP
from fmlm.reports.aggregate import headline
from fmlm.reports.formatting import NOT_MEASURED, fmt_num, fmt_ppl_entropy, fmt_setting, markdown_table

SOURCES = (("flow-map", "fixed-point"), ("flow-map-nosc", "teacher-nosc"))
"""(flow map, the model whose ODE it distils)."""


def ode_rows(summary: pd.DataFrame, model: str, steps: int | None = None) -> pd.DataFrame:
    """The ``sweep == "ode"`` rows of ``model``, optionally at ``steps``."""
    if summary.empty:
        return summary
    mask = (summary["model"] == model) & (summary["sweep"] == ODE_SWEEP)
    if steps is not None:
        mask &= summary["steps"] == steps
    return summary[mask]


def _cell(rows: pd.DataFrame) -> str:
    if rows.empty:
        return NOT_MEASURED
    return "; ".join(f"{fmt_ppl_entropy(r)} [{r['sampler']}, {fmt_setting(r)}]" for _, r in rows.iterrows())


def _ratio(num: pd.DataFrame, den: pd.DataFrame) -> str:
    if len(num) != 1 or len(den) != 1:
        return "-"
    return fmt_num(num.iloc[0]["gen_ppl_mean"] / den.iloc[0]["gen_ppl_mean"], 2)


def distillation_rows(summary: pd.DataFrame) -> list[dict]:
    """Flow map at k steps vs its source ODE at k steps and at the most steps."""
    rows = []
    for flow_map, source in SOURCES:
        ode = ode_rows(summary, source)
        maps = headline(summary, flow_map)
        if ode.empty and maps.empty:
            continue
        most = ode[ode["steps"] == ode["steps"].max()] if not ode.empty else ode
        most_steps = int(most["steps"].iloc[0]) if not most.empty else None
        for k in sorted(set(int(s) for s in maps["steps"]) | set(int(s) for s in ode["steps"]) - {most_steps}):
            here = headline(summary, flow_map, k)
            rows.append({
                "flow map (source ODE)": f"{MODEL_LABELS[flow_map]} ({MODEL_LABELS[source]} ODE)",
                "steps k": str(k),
                "flow map at k": _cell(here) if not here.empty else NOT_MEASURED,
                "source ODE at k": _cell(ode_rows(summary, source, k)),
                "source ODE at most steps": _cell(most),
                "ratio: flow map at k / ODE at most steps": _ratio(here, most),
            })
    return rows


def sampler_rows(summary: pd.DataFrame) -> list[dict]:
    """Each ODE record vs the same model's headline (the SDE sampler) at the same steps."""
    rows = []
    if summary.empty:
        return rows
    for _, r in summary[summary["sweep"] == ODE_SWEEP].iterrows():
        sde = headline(summary, r["model"], int(r["steps"]))
        sde = sde[sde["sampler"] != r["sampler"]]
        if sde.empty:
            continue
        ode = pd.DataFrame([r])
        rows.append({"model": MODEL_LABELS.get(r["model"], r["model"]), "steps": str(r["steps"]),
                     "ODE": _cell(ode), "headline (SDE)": _cell(sde), "ratio: ODE / SDE gen PPL": _ratio(ode, sde)})
    return rows


def flows_table(summary: pd.DataFrame) -> str:
    """Both tables with their explanation; a note when no ODE record exists."""
    head = ("The flow maps are trained to reproduce a deterministic flow: FMLM* the probability-flow ODE of "
            "ELF* (at the guidance scale it is sampled with), FMLM that of the no-SC teacher. These ODEs are "
            "sampled here with Euler steps and no churn (records with `sweep == \"ode\"`). A ratio near 1 in the "
            "first table means the flow map reproduces the flow it distils; the second table shows how far each "
            "model's ODE lies from its own SDE (churn) headline at the same number of steps.")
    distil, sampler = distillation_rows(summary), sampler_rows(summary)
    if not distil and not sampler:
        return head + f"\n\nNo records with `sweep == \"{ODE_SWEEP}\"`: {NOT_MEASURED}.\n"
    parts = [head]
    parts.append("### Flow maps vs the ODE they distil\n\n" + (markdown_table(distil) if distil else NOT_MEASURED))
    parts.append("### ODE vs SDE of the same model\n\n" + (markdown_table(sampler) if sampler else NOT_MEASURED))
    return "\n\n".join(parts) + "\n"


__all__ = ["flows_table", "distillation_rows", "sampler_rows", "ode_rows"]
