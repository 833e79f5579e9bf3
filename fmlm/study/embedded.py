"""The embedded preset's study: which small-scale knobs move the teacher's text towards real text.

Each trial is the embedded preset as it was before the study (``START``) with a few overrides,
trained through stage 1 (the teacher) only, then measured on the validation seeds
(``evaluation.validation_seeds``; the headline seeds are never sampled): the teacher's headline sampler (SDE, ``teacher_steps``, w, churn, warm self-conditioning)
from the EMA weights and from the raw weights, each decoder on held-out latents, and the held-out text
itself. A trial is scored by the MAUVE of its better weights (gen PPL rewards repetition; MAUVE does
not). Groups of trials run in order; each group's trials start from the best overrides so far, and the
incumbent competes with them, so a group keeps its knob only where it raises MAUVE:

1. ``lam``, the noise scale relative to the whitened latents (unit variance per dimension): 2 (the
   paper's), 4, 8;
2. the decoder's share of the teacher's steps, ``teacher.decoder.prob``: 0.2 (the paper's), 0.4;
3. the row length: 64 tokens, 32 tokens (the same tokens per step and in the training split).

Every trial is a run folder ``<out>/trials/<name>`` (experiment.json, results.jsonl, eval/, timing.json;
its checkpoints live in ``stages/`` and are not committed); ``<out>/study.json`` records the order, the
overrides, each trial's score and each group's winner. ``fmlm.reports.study`` writes the table. Run with
``python experiments/embedded_study.py``; a finished trial is reused when the study is started again.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from fmlm.config import apply_overrides
from fmlm.experiment import run_folder as rf
from fmlm.experiment.config import ExperimentConfig
from fmlm.experiment.measure import measure_model, measure_reconstruction, measure_reference
from fmlm.experiment.plan import teacher_setting
from fmlm.experiment.presets import embedded
from fmlm.experiment.run import bind_run_folder, open_scoring, prepare_data, train_all
from fmlm.files import read_jsonl, write_json_atomic
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import init_distributed

START = (
    "data.row_len=64", "data.max_train_rows=8192", "train_teacher.global_batch=32",
    "train_fixed_point.global_batch=32", "train_fixed_point.optim.lr=0.0",
    "train_flow_map.global_batch=32", "train_flow_map.optim.lr=0.0", "evaluation.fp_iterations=[1,2,4,8]",
)
"""The embedded preset as it was before the study chose its rows (64 tokens, 8,192 rows, batch 32, the
distillation lr batch-scaled, cold start up to N = 8): the study's starting point, so that running it
again reproduces the committed trials (and reuses their folders)."""

GROUPS = (
    ("noise scale lam", (
        ("lam-2", ("flow.lam=2.0",)),
        ("lam-4", ("flow.lam=4.0",)),
        ("lam-8", ("flow.lam=8.0",)),
    )),
    ("decoder share", (("decoder-0.4", ("teacher.decoder.prob=0.4",)),)),
    ("row length", (("rows-32", ("data.row_len=32", "data.max_train_rows=16384", "train_teacher.global_batch=64")),)),
)
"""(group, ((trial name, overrides), ...)); a later group's trial names get the incumbent's name prefixed."""


Groups = tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]


def study_base(cache_dir: str) -> ExperimentConfig:
    """The study's starting point: the embedded preset with ``START``, caching data in ``cache_dir``."""
    return dataclasses.replace(apply_overrides(embedded(), list(START)), cache_dir=cache_dir)


def check_groups(base: ExperimentConfig, groups: Groups) -> None:
    """Build every configuration any trial could use (each group's overrides on top of any earlier
    group's), so a typo is an error before the first trial trains."""
    combos: list[tuple[str, ...]] = [()]
    for _, trials in groups:
        combos = [c + o for c in combos for o in ((), *(o for _, o in trials))]
    for overrides in combos:
        apply_overrides(base, list(overrides))


def run_trial(cfg: ExperimentConfig, trial_dir: Path, device: str, progress: bool) -> None:
    """Prepare the data, train the teacher, then measure on the validation seeds: the held-out text, the
    teacher's headline sampler and its decoder on held-out latents, from the EMA and the raw weights.
    Each part is timed in ``timing.json``; what an interrupted call finished is reused."""
    rf.check_writable_run_dir(trial_dir)
    info = init_distributed(device)
    bind_run_folder(trial_dir, cfg)
    timing = rf.Timing(trial_dir / rf.TIMING_FILE)
    data_folder = prepare_data(cfg, info, timing)
    folders = train_all(cfg, trial_dir, data_folder, info, timing, progress, ("teacher",))
    e = cfg.evaluation
    with timing.part("evaluate"):
        scoring, val = open_scoring(cfg, trial_dir, data_folder, info.device, progress)
        measure_reference(scoring, val, e.n_samples)
        for which, name in rf.STUDY_WEIGHTS.items():
            model = ckpt.load_denoiser(folders["teacher"], which, info.device)
            for seed in e.validation_seeds:
                measure_model(scoring, name, model, teacher_setting(cfg, seed), e.n_samples)
            measure_reconstruction(scoring, name, model, val, e.samples_for(rf.DECODE_SWEEP), lam=cfg.flow.lam)


def trial_score(trial_dir: Path, cfg: ExperimentConfig) -> tuple[float, str]:
    """(MAUVE, weights) of the trial's better weights on the validation seeds (mean over the seeds)."""
    records = {r["id"]: r for _, r in read_jsonl(trial_dir / rf.RESULTS_FILE, strict=False)[0]}
    best = (-math.inf, "")
    for which, name in rf.STUDY_WEIGHTS.items():
        values = []
        for seed in cfg.evaluation.validation_seeds:
            rid = rf.record_id(name, teacher_setting(cfg, seed), True, None)
            value = records.get(rid, {}).get("mauve")
            values.append(float(value) if isinstance(value, (int, float)) else math.nan)
        score = sum(values) / len(values)
        if score > best[0]:
            best = (score, which)
    return best


def run_study(out: str | Path, base: ExperimentConfig | None = None, groups: Groups = GROUPS, device: str = "auto",
              progress: bool = True) -> dict[str, Any]:
    """Run ``groups`` on ``base`` (default: ``study_base("cache")``) in order (see the module docstring);
    returns and writes ``<out>/study.json``."""
    out = Path(out)
    base = study_base("cache") if base is None else base
    check_groups(base, groups)
    incumbent: tuple[str, tuple[str, ...]] = ("", ())
    criterion = "MAUVE of the teacher's headline sampler on the validation seeds, better of EMA and raw weights"
    study: dict[str, Any] = {"base": base.preset, "criterion": criterion, "trials": [], "groups": []}
    scores: dict[str, tuple[float, str]] = {}  # trial name -> (MAUVE, weights)
    for group, trials in groups:
        entrants = [] if not incumbent[0] else [incumbent]
        for name, overrides in trials:
            full = incumbent[1] + tuple(o for o in overrides if o not in incumbent[1])
            entrants.append((f"{incumbent[0]}+{name}" if incumbent[0] else name, full))
        for name, overrides in entrants:
            if name in scores:  # the incumbent, measured in an earlier group
                continue
            cfg = apply_overrides(base, list(overrides))
            trial_dir = out / rf.STUDY_TRIALS_DIR / name
            print(f"study: trial {name} ({' '.join(overrides) or 'the preset'})", flush=True)
            run_trial(cfg, trial_dir, device, progress)
            scores[name] = trial_score(trial_dir, cfg)
            study["trials"].append({"name": name, "group": group, "overrides": list(overrides),
                                    "folder": f"{rf.STUDY_TRIALS_DIR}/{name}", "mauve": scores[name][0],
                                    "weights": scores[name][1]})
            write_json_atomic(out / rf.STUDY_FILE, study)
        # the highest MAUVE; a tie keeps the fewer overrides
        incumbent = max(entrants, key=lambda e: (scores[e[0]][0], -len(e[1])))
        study["groups"].append({"group": group, "entrants": [e[0] for e in entrants], "winner": incumbent[0]})
        write_json_atomic(out / rf.STUDY_FILE, study)
        print(f"study: {group}: {incumbent[0]} wins (MAUVE {scores[incumbent[0]][0]:.4f})", flush=True)
    study["winner"] = {"name": incumbent[0], "overrides": list(incumbent[1]), "weights": scores[incumbent[0]][1]}
    write_json_atomic(out / rf.STUDY_FILE, study)
    return study
