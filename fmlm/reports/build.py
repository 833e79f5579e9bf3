"""Assemble the whole report of a run folder: tables, comparisons, plots, ``samples.md`` and ``report.md``.

Whatever can be produced is produced; every piece that is missing or
unreadable is listed under "Missing and notes" in ``report.md``. Only a path
that is not a run folder, or a malformed ``results.jsonl``, is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS, REPORT_DIR, RESULTS_FILE
from fmlm.files import write_text_atomic
from fmlm.reports.aggregate import summarize
from fmlm.reports.comparisons import compare, comparisons_markdown
from fmlm.reports.decoder import decoder_table
from fmlm.reports.flows import flows_table
from fmlm.reports.formatting import fmt_num, missing, steps_text
from fmlm.reports.gallery import gallery_markdown
from fmlm.reports.guidance import guidance_table
from fmlm.reports.loading import (load_experiment, load_fixed_point, load_guidance, load_results, load_stage_metrics,
                                  load_timing, require_run_folder)
from fmlm.reports.plots import mauve_vs_steps, ppl_vs_entropy, ppl_vs_steps, training_curves
from fmlm.reports.released import released_table
from fmlm.reports.seed_samples import SeedSamples
from fmlm.reports.sweeps import sweep_table
from fmlm.reports.tables import cost_table, diversity_table, main_table, sc_table

TABLES = {
    "main_table.md": "Main table: gen PPL / entropy",
    "comparisons.md": "Measured comparisons",
    "cost_table.md": "Cost of each evaluated setting",
    "self_conditioning_table.md": "Self-conditioning: warm, none, cold with N fixed-point iterations",
    "flows_table.md": "Flow maps and the deterministic flows they distil",
    "guidance_table.md": "Guidance response of the teacher",
    "decoder_table.md": "Decoders alone: held-out latents decoded",
    "diversity_table.md": "Diversity and MAUVE beside gen PPL and entropy",
    "sweep_table.md": "w / gamma / churn sweeps: the chosen values, the seeds they came from, the headline's",
}
RUN_KIND_TABLES = {
    "released_table.md": "Released models: ours beside the paper's quoted numbers",
}
"""Tables written only for the run folders they describe (records with ``scoring == "paper"``)."""
PLOTS = {
    "ppl_vs_steps.png": "gen PPL vs steps",
    "ppl_vs_entropy.png": "gen PPL vs entropy (w / gamma / churn sweeps)",
    "training_curves.png": "training loss per stage",
    "mauve_vs_steps.png": "MAUVE vs steps",
}
SAMPLES_FILE = "samples.md"
"""Readable samples beside held-out text (``fmlm.reports.gallery``)."""
EXCERPT_CHARS = 300
"""Length of the sample excerpts quoted in report.md (enough to see degenerate repetition)."""


def _optional(loader: Callable[[Path], Any], run: Path, name: str, notes: list[str], required: bool) -> Any:
    """Call an optional-file loader; an absent or unreadable file becomes a note instead of an error."""
    try:
        value = loader(run)
    except ValueError as err:
        notes.append(f"{name} is unreadable and was skipped: {err}")
        return None
    if value is None:
        notes.append(f"{name} is missing" + ("" if required else " (optional)"))
    return value


def _find_key(data: Any, key: str) -> Any:
    """First value stored under ``key`` anywhere in nested dicts/lists (breadth first), or None."""
    queue = [data]
    while queue:
        item = queue.pop(0)
        if isinstance(item, dict):
            if key in item:
                return item[key]
            queue.extend(item.values())
        elif isinstance(item, list):
            queue.extend(item)
    return None


def _describe_value(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, dict):
        for key in ("name", "model", "path", "kind"):
            if isinstance(value.get(key), str):
                return value[key]
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)[:120]


def _run_name(run: Path, experiment: dict | None) -> str:
    """The run's recorded name, else its folder name."""
    name = (experiment or {}).get("name")
    return name if isinstance(name, str) and name else Path(run).resolve().name


def _context(name: str, experiment: dict | None, results: pd.DataFrame, summary: pd.DataFrame) -> str:
    exp = experiment or {}
    seeds = sorted({int(s) for s in results["seed"]}) if not results.empty else []
    n_samples = sorted({int(n) for n in results["n_samples"].dropna()}) if not results.empty else []
    return (f"Run **{name}** (preset `{_describe_value(exp.get('preset'))}`), "
            f"evaluator `{_describe_value(_find_key(exp, 'evaluator'))}`. "
            f"{len(results)} evaluation records over {len(summary)} settings; samples per evaluated set: "
            f"{n_samples or 'not recorded'}; seeds: {seeds or 'none'}. Generative perplexity (gen PPL) is the "
            "evaluator's perplexity on the generated text (lower is better); entropy is the unigram entropy per "
            "sample in nats (it grows with sample length; compare with the held-out real text row when there is one; "
            "real text of 1024 tokens scores about 5.2, far below means repetitive text). Where several seeds exist the tables show "
            "mean ± sample std (ddof = 1) and n. Numbers from the paper appear only in columns labelled "
            "'paper (quoted)'.")


def _result_notes(run: Path, results: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    notes = []
    present = set(results["model"]) if not results.empty else set()
    for model, label in MODEL_LABELS.items():
        if model not in present:
            notes.append(f"no results for {label} ({model})")
    for model in sorted(present - set(MODEL_LABELS)):
        notes.append(f"records for an unknown model {model!r} (shown in the cost table only)")
    for _, r in results.iterrows():
        expected = MODEL_LABELS.get(r["model"])
        if expected is not None and r["label"] != expected:
            notes.append(f"record {r['id']}: label {r['label']!r} differs from {expected!r} for model {r['model']}")
        if not missing(r["samples_file"]) and not (run / r["samples_file"]).is_file():
            notes.append(f"record {r['id']}: samples file {r['samples_file']} is missing")
    for _, r in summary.iterrows():
        if isinstance(r["n_samples"], tuple):
            notes.append(f"setting with ids {list(r['ids'])} averages records of different sample counts "
                         f"{list(r['n_samples'])}")
        if r["n_seeds"] < r["n_records"]:
            notes.append(f"setting with ids {list(r['ids'])} has repeated seeds; all {r['n_records']} records "
                         "are averaged")
    return notes


def _timing_md(timing: dict | None) -> str:
    if timing is None:
        return "timing.json: not available.\n"
    rows = [{"stage": k, "seconds": fmt_num(v, 1), "hours": fmt_num(v / 3600.0, 2)}
            for k, v in timing["stages"].items()]
    if "total_s" in timing:
        rows.append({"stage": "total", "seconds": fmt_num(timing["total_s"], 1),
                     "hours": fmt_num(timing["total_s"] / 3600.0, 2)})
    frame = pd.DataFrame(rows, columns=["stage", "seconds", "hours"])
    return frame.to_markdown(index=False, disable_numparse=True) + "\n"


def _excerpts(run: Path, summary: pd.DataFrame, notes: list[str]) -> str:
    lines = []
    heads = summary[summary["sweep"].isna()] if not summary.empty else summary
    for _, r in heads.iterrows():
        rel = next((f for f in r["samples_files"] if not missing(f) and (run / f).is_file()), None)
        if rel is None:
            continue
        try:
            with open(run / rel, encoding="utf-8") as handle:
                first = json.loads(handle.readline())
            text = str(first["text"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            notes.append(f"{rel}: first sample unreadable ({type(err).__name__})")
            continue
        excerpt = " ".join(text.split())[:EXCERPT_CHARS].replace("|", "\\|")
        lines.append(f"- **{MODEL_LABELS.get(r['model'], r['model'])}**, {r['sampler']}, {steps_text(r['steps'])} "
                     f"(`{rel}`, first sample): {excerpt!s}…")
    return "\n".join(lines) + "\n" if lines else "No sample files available.\n"


def build_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write every table, plot and ``report.md`` for ``run_dir`` into ``out_dir`` (default ``<run>/report``).

    Returns the path of ``report.md``. Raises ``RunFolderError`` (a ``ValueError``)
    if ``run_dir`` is not a run folder, ``ValueError`` if ``results.jsonl`` is malformed.
    """
    run = require_run_folder(run_dir)
    out = Path(out_dir) if out_dir is not None else run / REPORT_DIR
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir: {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"out_dir: cannot create {out} ({err.strerror or err})") from None
    notes: list[str] = []
    if not (run / RESULTS_FILE).is_file():
        notes.append("results.jsonl is missing: no evaluation has finished")
    results = load_results(run, notes)
    summary = summarize(results)
    experiment = _optional(load_experiment, run, "experiment.json", notes, required=True)
    timing = _optional(load_timing, run, "timing.json", notes, required=True)
    fixed_point = _optional(load_fixed_point, run, "fixed_point.json", notes, required=False)
    guidance = _optional(load_guidance, run, "guidance.json", notes, required=False)
    metrics = load_stage_metrics(run, notes)
    if not metrics:
        notes.append("no training curves (stages/*/metrics.jsonl) found")
    notes += _result_notes(run, results, summary)

    bodies = {
        "main_table.md": main_table(summary),
        "comparisons.md": comparisons_markdown(compare(summary, fixed_point, SeedSamples(run, results))),
        "cost_table.md": cost_table(summary),
        "self_conditioning_table.md": sc_table(summary),
        "flows_table.md": flows_table(summary),
        "guidance_table.md": guidance_table(guidance),
        "decoder_table.md": decoder_table(results),
        "diversity_table.md": diversity_table(summary),
        "sweep_table.md": sweep_table(results, summary, run, experiment),
    }
    released = released_table(results, experiment)  # only for records scored the paper's way
    if released is None:
        (out / "released_table.md").unlink(missing_ok=True)  # never leave a stale table from an earlier report
    else:
        bodies = {"released_table.md": released, **bodies}
    titles = {**TABLES, **RUN_KIND_TABLES}
    for name, body in bodies.items():
        write_text_atomic(out / name, f"# {titles[name]}\n\n{body}")
    makers = {"ppl_vs_steps.png": lambda p: ppl_vs_steps(summary, p),
              "ppl_vs_entropy.png": lambda p: ppl_vs_entropy(summary, p),
              "training_curves.png": lambda p: training_curves(metrics, p),
              "mauve_vs_steps.png": lambda p: mauve_vs_steps(summary, p)}
    written = []
    for name, make in makers.items():
        (out / name).unlink(missing_ok=True)  # never leave a stale plot from an earlier report
        notes += make(out / name)
        if (out / name).is_file():
            written.append(name)

    excerpts = _excerpts(run, summary, notes)
    gallery = gallery_markdown(run, results, notes)
    if gallery is None:
        (out / SAMPLES_FILE).unlink(missing_ok=True)  # never leave a stale gallery from an earlier report
    else:
        write_text_atomic(out / SAMPLES_FILE, "# Samples beside held-out text\n\n" + gallery)
    run_name = _run_name(run, experiment)
    parts = [f"# Report: {run_name}", _context(run_name, experiment, results, summary),
             "## Missing and notes\n\n" + ("\n".join(f"- {n}" for n in notes) if notes else "- nothing missing")]
    for name, body in bodies.items():
        parts.append(f"## {titles[name]}\n\n([{name}]({name}))\n\n{body.replace(chr(10) + '### ', chr(10) + '#### ')}")
    plots = [f"### {PLOTS[name]}\n\n![{PLOTS[name]}]({name})" for name in written]
    parts.append("## Plots\n\n" + ("\n\n".join(plots) if plots else "No plot could be drawn (see notes)."))
    parts.append("## Timing\n\n" + _timing_md(timing))
    parts.append("## Sample excerpts (headline settings)\n\n" + excerpts)
    if gallery is not None:
        parts.append(f"## Samples to read\n\n([{SAMPLES_FILE}]({SAMPLES_FILE})): the first samples of every headline "
                     "setting beside the first held-out texts, in full, with their per-sample PPL and entropy.")
    return write_text_atomic(out / "report.md", "\n\n".join(parts) + "\n")
