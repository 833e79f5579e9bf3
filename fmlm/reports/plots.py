"""PNG plots of a run: gen PPL vs steps, gen PPL vs entropy along the w / gamma / churn sweeps, MAUVE vs steps,
training curves.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas (no
pyplot, no global backend). Each function returns the notes the report
prints: points that could not be drawn (non-finite or non-positive on a log
axis) are listed, never dropped silently. A plot with nothing to draw is not
written, and the note says why.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fmlm.experiment.run_folder import MODEL_LABELS, ODE_SWEEP
from fmlm.experiment.sweep_choice import SWEEP_TAGS
from fmlm.files import save_figure_atomic
from fmlm.reports.formatting import fmt_num, missing, steps_text

def _figure(width: float = 6.4, height: float = 4.4) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _drawable(value: float) -> bool:
    """Can ``value`` sit on a log axis?"""
    return math.isfinite(value) and value > 0


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _step_curves(ax, curves, metric: str, name: str, drawable, path: Path, notes: list[str]) -> int:
    """One errorbar curve of ``<metric>_mean`` against steps per (model, sampler); points ``drawable``
    rejects are noted, not drawn. Returns the number of curves drawn."""
    drawn = 0
    for (model, sampler), rows in curves.groupby(["model", "sampler"], sort=False):
        rows = rows.sort_values("steps")
        ok = rows[f"{metric}_mean"].map(drawable)
        for _, bad in rows[~ok].iterrows():
            notes.append(f"{path.name}: {_label(model)} {sampler} {bad['steps']} steps not drawn "
                         f"({name} {fmt_num(bad[f'{metric}_mean'])})")
        rows = rows[ok]
        if rows.empty:
            continue
        err = np.nan_to_num(rows[f"{metric}_std"].to_numpy(dtype=float), nan=0.0, posinf=0.0)
        ode = sampler == "euler"
        ax.errorbar(rows["steps"], rows[f"{metric}_mean"], yerr=err, marker="s" if ode else "o", capsize=3,
                    linestyle="--" if ode else "-", label=f"{_label(model)} ({'ODE, ' if ode else ''}{sampler})")
        drawn += 1
    return drawn


def ppl_vs_steps(summary: pd.DataFrame, path: Path) -> list[str]:
    """Gen PPL (mean, error bars = std over seeds) against steps, one line per model and sampler.

    Headline settings are solid lines; the deterministic ODE references (sweep "ode") dashed.
    """
    if summary.empty:
        return [f"{path.name}: not written (no results)"]
    heads = summary[summary["sweep"].isna()]
    shown = summary[summary["sweep"].isna() | (summary["sweep"] == ODE_SWEEP)]
    curves = shown[(shown["model"] != "reference") & (shown["steps"] > 0)]
    refs = heads[heads["model"] == "reference"]
    notes: list[str] = []
    fig = _figure()
    ax = fig.add_subplot()
    drawn = 0
    drawn += _step_curves(ax, curves, "gen_ppl", "gen PPL", _drawable, path, notes)
    for _, ref in refs.iterrows():
        if _drawable(ref["gen_ppl_mean"]):
            ax.axhline(ref["gen_ppl_mean"], linestyle="--", color="gray", label=_label("reference"))
            drawn += 1
        else:
            notes.append(f"{path.name}: reference line not drawn (gen PPL {fmt_num(ref['gen_ppl_mean'])})")
    if drawn == 0:
        return notes + [f"{path.name}: not written (no drawable headline results)"]
    ax.set_xscale("log", base=2)
    steps = sorted(set(int(s) for s in curves["steps"]))
    if steps:
        ax.set_xticks(steps, [str(s) for s in steps])
    ax.set_yscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("generative perplexity (log scale)")
    ax.set_title("gen PPL vs steps (headlines; dashed: ODE; bars: std over seeds)")
    ax.legend(fontsize="small")
    save_figure_atomic(fig, path)
    return notes


def ppl_vs_entropy(summary: pd.DataFrame, path: Path) -> list[str]:
    """Gen PPL against entropy along the hyperparameter sweeps; each point annotated with its value."""
    if summary.empty:
        return [f"{path.name}: not written (no results)"]
    sweeps = summary[summary["sweep"].isin(SWEEP_TAGS)]
    if sweeps.empty:
        return [f"{path.name}: not written (no records with sweep in {list(SWEEP_TAGS)})"]
    notes: list[str] = []
    fig = _figure()
    ax = fig.add_subplot()
    drawn = 0
    for (model, sweep, sampler, steps), rows in sweeps.groupby(["model", "sweep", "sampler", "steps"], sort=False):
        rows = rows.sort_values(sweep, na_position="last")
        ok = rows["gen_ppl_mean"].map(_drawable) & rows["entropy_mean"].map(math.isfinite)
        for _, bad in rows[~ok].iterrows():
            notes.append(f"{path.name}: {_label(model)} {sweep}={bad[sweep]} not drawn (gen PPL "
                         f"{fmt_num(bad['gen_ppl_mean'])}, entropy {fmt_num(bad['entropy_mean'])})")
        rows = rows[ok]
        if rows.empty:
            continue
        ax.plot(rows["entropy_mean"], rows["gen_ppl_mean"], marker="o",
                label=f"{_label(model)}, {sweep} sweep ({sampler}, {steps_text(steps)})")
        for _, r in rows.iterrows():
            value = "-" if missing(r[sweep]) else f"{r[sweep]:g}"
            ax.annotate(f"{sweep}={value}", (r["entropy_mean"], r["gen_ppl_mean"]),
                        textcoords="offset points", xytext=(4, 4), fontsize="x-small")
        drawn += 1
    for _, ref in summary[(summary["model"] == "reference") & summary["sweep"].isna()].iterrows():
        if _drawable(ref["gen_ppl_mean"]) and math.isfinite(ref["entropy_mean"]):
            ax.scatter([ref["entropy_mean"]], [ref["gen_ppl_mean"]], marker="*", s=120, color="gray",
                       label=_label("reference"), zorder=3)
    if drawn == 0:
        return notes + [f"{path.name}: not written (no drawable sweep points)"]
    ax.set_yscale("log")
    ax.set_xlabel("unigram entropy per sample (nats)")
    ax.set_ylabel("generative perplexity (log scale)")
    ax.set_title("gen PPL vs entropy as w / gamma / churn vary")
    ax.legend(fontsize="x-small")
    save_figure_atomic(fig, path)
    return notes


def mauve_vs_steps(summary: pd.DataFrame, path: Path) -> list[str]:
    """MAUVE (mean, error bars = std over seeds) against steps, one line per model and sampler, headlines solid
    and the ODE references (sweep "ode") dashed; the held-out text's MAUVE (against a disjoint held-out slice)
    as a gray line. A run folder whose records carry no MAUVE gets a note and no plot."""
    if summary.empty:
        return [f"{path.name}: not written (no results)"]
    if not (summary["n_mauve"] > 0).any():
        return [f"{path.name}: not written (no record carries MAUVE: the run was measured before MAUVE was "
                "recorded, or MAUVE was not measured)"]
    shown = summary[(summary["sweep"].isna() | (summary["sweep"] == ODE_SWEEP)) & (summary["n_mauve"] > 0)]
    curves = shown[(shown["model"] != "reference") & (shown["steps"] > 0)]
    refs = shown[(shown["model"] == "reference") & shown["sweep"].isna()]
    notes: list[str] = []
    fig = _figure()
    ax = fig.add_subplot()
    drawn = 0
    drawn += _step_curves(ax, curves, "mauve", "MAUVE", math.isfinite, path, notes)
    for _, ref in refs.iterrows():
        if math.isfinite(ref["mauve_mean"]):
            ax.axhline(ref["mauve_mean"], linestyle="--", color="gray",
                       label=f"{_label('reference')} (vs another held-out slice)")
    if drawn == 0:
        return notes + [f"{path.name}: not written (no finite MAUVE of a sampled setting)"]
    ax.set_xscale("log", base=2)
    steps = sorted(set(int(s) for s in curves["steps"]))
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("MAUVE vs held-out text (higher is closer)")
    ax.set_title("MAUVE vs steps (headlines; dashed: ODE; bars: std over seeds)")
    ax.legend(fontsize="small")
    save_figure_atomic(fig, path)
    return notes


def training_curves(metrics: dict[str, tuple[pd.DataFrame, list[int]]], path: Path) -> list[str]:
    """Loss against step, one panel per training stage."""
    notes: list[str] = []
    usable = {}
    for stage, (frame, bad) in metrics.items():
        if bad:
            notes.append(f"{path.name}: stage {stage}: unparseable metrics lines {bad} skipped")
        if frame.empty or not {"step", "loss"} <= set(frame.columns):
            notes.append(f"{path.name}: stage {stage}: no 'step'/'loss' records")
            continue
        steps = pd.to_numeric(frame["step"], errors="coerce").to_numpy(dtype=float)
        loss = pd.to_numeric(frame["loss"], errors="coerce").to_numpy(dtype=float)
        n_bad = int(np.sum(~np.isfinite(loss) | ~np.isfinite(steps)))
        if n_bad:
            notes.append(f"{path.name}: stage {stage}: {n_bad} records with non-finite step or loss (gaps)")
        usable[stage] = (steps, loss)
    if not usable:
        return notes + [f"{path.name}: not written (no stages/*/metrics.jsonl with step and loss)"]
    n = len(usable)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(4.2 * cols, 3.2 * rows)
    for i, (stage, (steps, loss)) in enumerate(usable.items(), start=1):
        ax = fig.add_subplot(rows, cols, i)
        order = np.argsort(steps, kind="stable")
        ax.plot(steps[order], loss[order], linewidth=1.0, label=f"{stage} loss")
        ax.set_xlabel("training step")
        ax.set_ylabel("loss")
        ax.set_title(f"stage: {stage}")
        ax.legend(fontsize="small")
    fig.tight_layout()
    save_figure_atomic(fig, path)
    return notes
