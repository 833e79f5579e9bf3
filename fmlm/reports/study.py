"""The embedded study's table (``fmlm.study.embedded`` writes the folder): one row per trial and weights.

Reads ``<study>/study.json`` (order, overrides, winners) and each trial's run folder (results.jsonl,
timing.json); writes ``<study>/study_table.md``. Every number comes from the trial folders' records;
the winner of each group is the one ``study.json`` names, chosen there by the validation-seed MAUVE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmlm.experiment.run_folder import STUDY_FILE, STUDY_WEIGHTS
from fmlm.files import read_json_dict, write_text_atomic
from fmlm.reports.formatting import fmt_num, markdown_table
from fmlm.reports.loading import load_results, load_timing

TABLE_FILE = "study_table.md"
WEIGHTS_LABELS = {"ema": "EMA", "model": "raw"}
"""A trial's weights (``STUDY_WEIGHTS``) as the table names them."""


def _trial_rows(study_dir: Path, trial: dict[str, Any], winners: dict[str, str]) -> list[dict[str, str]]:
    """The trial's rows: one per weights (the headline sampler's record, mean over validation seeds)."""
    folder = study_dir / trial["folder"]
    frame = load_results(folder)
    timing = (load_timing(folder) or {}).get("stages", {})
    reference = frame[frame["model"] == "reference"]
    ref_mauve = fmt_num(reference["mauve"].iloc[0], 4) if len(reference) else "-"
    rows = []
    for which, model in STUDY_WEIGHTS.items():
        weights = WEIGHTS_LABELS[which]
        sampled = frame[(frame["model"] == model) & (frame["sampler"] == "sde")]
        decoded = frame[(frame["model"] == model) & (frame["sampler"] == "decode")]
        if sampled.empty:
            continue
        mean = sampled[["mauve", "gen_ppl", "entropy", "distinct_2", "rep4"]].astype(float).mean()
        rows.append({
            "trial": trial["name"], "group": trial["group"], "overrides": " ".join(trial["overrides"]) or "(preset)",
            "weights": weights, "seeds": ",".join(str(s) for s in sorted(sampled["seed"].unique())),
            "n": str(int(sampled["n_samples"].iloc[0])),
            "MAUVE": fmt_num(mean["mauve"], 4), "gen PPL": fmt_num(mean["gen_ppl"]),
            "entropy": fmt_num(mean["entropy"]), "distinct-2": fmt_num(mean["distinct_2"], 3),
            "rep-4": fmt_num(mean["rep4"], 3),
            "decoder token acc": fmt_num(decoded["token_accuracy"].iloc[0], 3) if len(decoded) else "-",
            "real text MAUVE": ref_mauve,
            "prepare s": fmt_num(timing.get("prepare data"), 0), "train s": fmt_num(timing.get("train teacher"), 0),
            "evaluate s": fmt_num(timing.get("evaluate"), 0),
            "won": ", ".join(g for g, w in winners.items() if w == trial["name"]
                             and which == trial.get("weights")) or "",
        })
    return rows


def study_table(study_dir: str | Path) -> str:
    """The markdown of ``study_table.md``."""
    study_dir = Path(study_dir)
    study = read_json_dict(study_dir / STUDY_FILE)
    winners = {g["group"]: g["winner"] for g in study.get("groups", [])}
    rows = [row for trial in study["trials"] for row in _trial_rows(study_dir, trial, winners)]
    lines = [
        "# The embedded preset's study", "",
        f"Base preset `{study['base']}`; each trial trains the teacher (stage 1) only and samples the validation "
        "seeds (never a headline seed). Criterion: " + study["criterion"] + ". Groups run in order, each from "
        "the best overrides so far (the incumbent competes again). 'won' names the groups a trial won, on the "
        "row of the weights that scored it. Wall times in seconds on the machine the study ran on; 'prepare' "
        "is 0 where an earlier trial's data cache was reused. 'real text MAUVE' is the held-out text against a "
        "disjoint held-out slice of the same trial's data (the ceiling).", "",
        markdown_table(rows) if rows else "(no trial finished)", "",
    ]
    if "winner" in study:
        w = study["winner"]
        lines += [f"Winner: **{w['name']}** ({' '.join(w['overrides']) or 'the preset'}), sampled from the "
                  f"{WEIGHTS_LABELS[w['weights']]} weights.", ""]
    return "\n".join(lines)


def write_study_table(study_dir: str | Path) -> Path:
    """Write ``<study_dir>/study_table.md``; returns its path."""
    path = Path(study_dir) / TABLE_FILE
    write_text_atomic(path, study_table(study_dir))
    return path

