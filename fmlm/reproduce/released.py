"""Reproducing the paper's table from its three released models (the logic of
``experiments/reproduce_released.py``): which settings are sampled, how the sample indices are spread
over processes, and what is written into the run folder.

Settings (``released_settings``), each a model's STORED paper sampler setting (``fmlm.models.sampling``):

    flow-map      "1", "2", "4"   FMLM*: CTM gamma-sampling, w = 5, gamma 1.0 / 0.75 / 1.0
    teacher       "32"            ELF: SDE, w = 3, churn 1.5, warm self-conditioning
    fixed-point   "32"            ELF*: Euler, w = 3, no self-conditioning

with the run's seed and sampling batch size applied. Only the flow map is required.

Shards: setting by setting, the sample indices ``0 .. n-1`` are cut into ``world`` contiguous ranges,
the first ``n % world`` one index longer (``shard_range``). Sample i always draws its noise from its
own generator seeded by (seed, i) (``fmlm.samplers.common``), so the sample set does not depend on the
number of processes. Each process writes ``RUN/eval/<id>.rank<r>.jsonl``; rank 0 merges them into
``RUN/eval/<id>.jsonl`` in index order and removes them (``merge_shards``).

Scoring (``score_framings``): the three numbers of ``fmlm.evaluation.paper_scoring.compare_framings``
(the paper's scoring with blank samples dropped, as the reference does; the same with them kept; the
project's own framing) and the paper scoring's per-sample values. A record (``build_record``) carries
the paper scoring as ``gen_ppl`` / ``entropy`` (comparable with the quoted table) and
``scoring: "paper"``; the other two framings under ``*_keep_empty`` / ``*_project``. Its ``wall_s`` is
the sampling time summed over the processes (device-seconds), so ``wall_s_per_sample`` does not depend
on how many there were; ``timing.json`` holds the elapsed times.

Run folder files (all through a temporary file and a rename, or the append of one complete line):
``experiment.json`` (``experiment_record``; a resumed run must match it, ``merge_experiment``),
``results.jsonl`` (one record per setting; a recorded id is skipped on a later call), ``eval/<id>.jsonl``
and ``timing.json`` (``{"stages": {"sample <id>": s, "score <id>": s}, "total_s": s}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmlm.experiment.run_folder import (EVAL_DIR, EXPERIMENT_FILE, MODEL_LABELS, RESULTS_FILE, check_writable_run_dir,
                                        record_id)
from fmlm.reproduce.shards import check_count

PRESET = "released"
ROLES = {"flow-map": "--flow-map", "teacher": "--teacher", "fixed-point": "--fixed-point"}
"""Stage a folder must hold -> the option that names it."""
SETTING_NAMES = {"flow-map": ("1", "2", "4"), "teacher": ("32",), "fixed-point": ("32",)}
"""Stage -> the stored sampler settings sampled, in order."""
SCORE_MAX_LENGTH = 1024
"""The reference's cap on the retokenised length of a scored text (its ``max_length``)."""
MATCHING_KEYS = ("preset", "evaluator", "n", "length", "seed", "score_max_length")
"""experiment.json keys a resumed run must share with the recorded one."""


@dataclass(frozen=True)
class Setting:
    """One evaluated sample set: a model, one of its stored sampler settings, the record's id."""

    stage: str
    name: str  # the stored setting's name ("1", "2", "4", "32")
    sampler: Any  # fmlm.samplers.SamplerConfig
    guided: bool  # the model has a guidance bank (w is part of the setting)
    id: str


# ---------------------------------------------------------------- checks


def check_run_dir(run_dir: Path) -> Path:
    """Refuse a run folder path that is a file or lies below a file (nothing is created)."""
    run_dir = Path(run_dir)
    check_writable_run_dir(run_dir)
    if (run_dir / RESULTS_FILE).exists() and not (run_dir / EXPERIMENT_FILE).is_file():
        raise ValueError(f"--run-dir {run_dir}: holds {RESULTS_FILE} but no {EXPERIMENT_FILE}; "
                         "not a released-models run folder")
    return run_dir


def check_stage(option: str, folder, info, stage: str) -> None:
    """The folder given to ``option`` must hold ``stage`` and store the settings sampled for it."""
    if info.stage != stage:
        raise ValueError(f"{option} {folder}: holds a {info.stage!r} model, not a {stage!r} one")
    absent = [name for name in SETTING_NAMES[stage] if name not in info.samplers]
    if absent:
        raise ValueError(f"{option} {folder}: stores no sampler setting {absent[0]!r} (it has {sorted(info.samplers)})")


def check_length(length: int, models: dict[str, Any]) -> int:
    """``1 <= length <= max_len`` of every model (one-line ``ValueError`` naming the first that is shorter)."""
    check_count("--length", length)
    for stage, pretrained in models.items():
        max_len = pretrained.info.architecture.max_len
        if length > max_len:
            raise ValueError(f"--length {length}: exceeds the {stage} model's max_len of {max_len}")
    return length


def check_evaluator(evaluator) -> None:
    """The paper's scoring needs an EOS token (its pad and end token)."""
    if evaluator.tokenizer.eos_token_id is None:
        raise ValueError(f"--evaluator {evaluator.name}: its tokenizer has no EOS token, the paper's scoring needs one")


def load_released(folders: dict[str, str | Path | None], device="cpu") -> dict[str, Any]:
    """``stage -> PretrainedModel`` for the given folders (``None`` entries skipped); the flow map is
    required, every folder must hold the stage its option names. All configs are read (and checked)
    before any weights are loaded."""
    from fmlm.models.folder import read_info, resolve_folder

    unknown = sorted(set(folders) - set(ROLES))
    if unknown:
        raise ValueError(f"folders: unknown stage {unknown[0]!r} (known: {list(ROLES)})")
    if folders.get("flow-map") is None:
        raise ValueError("--flow-map: required (the FMLM* model folder)")
    resolved = {}
    for stage, folder in folders.items():
        if folder is None:
            continue
        try:
            path = resolve_folder(folder)
            info = read_info(path)
        except ValueError as err:
            raise ValueError(f"{ROLES[stage]} {err}") from None
        check_stage(ROLES[stage], folder, info, stage)
        resolved[stage] = path
    from fmlm.models.folder import load_model

    models = {}
    for stage in ROLES:  # flow-map, teacher, fixed-point
        if stage in resolved:
            try:
                models[stage] = load_model(resolved[stage], device=str(device))
            except ValueError as err:
                raise ValueError(f"{ROLES[stage]} {err}") from None
    return models


# ---------------------------------------------------------------- settings and shards


def released_settings(models: dict[str, Any], *, seed: int = 0, batch_size: int = 32) -> list[Setting]:
    """The settings sampled, in table order: FMLM* 1, 2, 4 steps, then ELF 32 and ELF* 32 when given."""
    from fmlm.models.sample import check_sampler_fits

    check_count("batch_size", batch_size)
    out = []
    for stage in ROLES:
        if stage not in models:
            continue
        pretrained = models[stage]
        guided = pretrained.model.config.guidance_tokens > 0
        for name in SETTING_NAMES[stage]:
            if name not in pretrained.info.samplers:
                raise ValueError(f"{ROLES[stage]} {pretrained.folder}: stores no sampler setting {name!r}")
            sampler = pretrained.sampler(int(name), [f"seed={seed}", f"batch_size={batch_size}"])
            check_sampler_fits(stage, sampler)
            out.append(Setting(stage, name, sampler, guided, record_id(stage, sampler, guided, None)))
    return out


# ---------------------------------------------------------------- scoring and records


def score_framings(evaluator, texts: list[str], *, batch_size: int = 32, max_length: int = SCORE_MAX_LENGTH,
                   progress: bool = True) -> tuple[dict, Any]:
    """``(compare_framings(...) summaries, the paper score with per-sample values)`` in one pass each:
    the same three calls ``compare_framings`` makes, keeping the paper's ``PaperScore`` instead of
    only its summary."""
    from fmlm.evaluation.metrics import evaluate_texts
    from fmlm.evaluation.paper_scoring import score_like_paper

    common = dict(batch_size=batch_size, max_length=max_length, progress=progress)
    paper = score_like_paper(evaluator, texts, drop_empty=True, **common)
    kept = score_like_paper(evaluator, texts, drop_empty=False, **common)
    max_tokens = min(max_length + 1, evaluator.context_length)
    project = evaluate_texts(evaluator, texts, batch_size=batch_size, max_tokens=max_tokens, progress=progress)
    return {"paper": paper.summary(), "paper_keep_empty": kept.summary(), "project": project.summary()}, paper


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_number(value: float) -> float | str:
    """A finite number as itself, a non-finite one as ``"inf"`` / ``"nan"`` (how results.jsonl writes it)."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def scored_rows(rows: list[dict], paper) -> list[dict]:
    """Per-sample rows with the paper scoring's ``paper_ppl``, ``paper_entropy``, ``paper_n_tokens``
    (null for a blank sample, which the paper drops, and for a PPL of no scored token)."""
    where = {position: j for j, position in enumerate(paper.indices)}
    out = []
    for position, row in enumerate(rows):
        j = where.get(position)
        out.append({**row,
                    "paper_ppl": None if j is None else _finite_or_none(paper.ppls[j]),
                    "paper_entropy": None if j is None else paper.entropies[j],
                    "paper_n_tokens": None if j is None else paper.n_tokens[j]})
    return out


def build_record(setting: Setting, framings: dict, *, n_samples: int, nfe: int, wall_s: float, evaluator: str,
                 length: int, max_length: int = SCORE_MAX_LENGTH) -> dict[str, Any]:
    """The results.jsonl record of one scored setting (keys: module docstring and ``run_folder.RECORD_SCHEMA``)."""
    paper, kept, project = framings["paper"], framings["paper_keep_empty"], framings["project"]
    cfg = setting.sampler
    flow = cfg.kind in ("euler", "sde")
    cold = flow and cfg.sc_mode == "cold"
    return {
        "id": setting.id, "model": setting.stage, "label": MODEL_LABELS.get(setting.stage, setting.stage),
        "sampler": cfg.kind, "steps": cfg.steps, "setting": setting.name,
        "w": cfg.w if setting.guided else None, "gamma": cfg.gamma if cfg.kind == "ctm" else None,
        "churn": cfg.churn if cfg.kind == "sde" else None, "sc_mode": cfg.sc_mode if flow else None,
        "fp_iterations": cfg.fp_iterations if cold else None, "fp_solver": cfg.fp_solver if cold else None,
        "grid": cfg.grid, "decode_guided": cfg.decode_guided, "seed": cfg.seed, "sweep": None,
        "n_samples": n_samples, "nfe": nfe, "wall_s": wall_s, "wall_s_per_sample": wall_s / n_samples,
        "scoring": "paper", "gen_ppl": _json_number(paper["gen_ppl"]), "entropy": _json_number(paper["entropy"]),
        "n_scored": paper["n_scored"], "total_tokens": paper["total_tokens"],
        "gen_ppl_keep_empty": _json_number(kept["gen_ppl"]), "entropy_keep_empty": _json_number(kept["entropy"]),
        "gen_ppl_project": _json_number(project["gen_ppl"]), "entropy_project": _json_number(project["entropy"]),
        "project_total_tokens": project["total_tokens"], "project_n_truncated": project["n_truncated"],
        "evaluator": evaluator, "length": length, "score_max_length": max_length,
        "samples_file": f"{EVAL_DIR}/{setting.id}.jsonl",
    }


# ---------------------------------------------------------------- run folder files


def experiment_record(models: dict[str, Any], *, evaluator: str, n: int, length: int, seed: int,
                      max_length: int = SCORE_MAX_LENGTH) -> dict[str, Any]:
    """experiment.json: the preset, each model's folder and source file (sha256), the scoring settings."""
    entries = {stage: {"folder": str(p.folder), "sha256": p.info.source.get("sha256"), "file": p.info.source.get("file")}
               for stage, p in models.items()}
    return {"preset": PRESET, "models": entries, "evaluator": evaluator, "n": n, "length": length, "seed": seed,
            "score_max_length": max_length}


def merge_experiment(old: dict | None, new: dict) -> dict:
    """The experiment.json of a resumed run: ``new`` must share ``MATCHING_KEYS`` with ``old`` and name the
    same source (sha256) for every model both list; models only ``old`` lists are kept."""
    if old is None:
        return new
    for key in MATCHING_KEYS:
        if old.get(key) != new.get(key):
            raise ValueError(f"{EXPERIMENT_FILE}: the run folder was made with {key}={old.get(key)!r}, this run "
                             f"asks {key}={new.get(key)!r}; use another --run-dir")
    models = dict(old.get("models") or {})
    for stage, entry in new["models"].items():
        before = models.get(stage)
        if before is not None and before.get("sha256") != entry.get("sha256"):
            raise ValueError(f"{EXPERIMENT_FILE}: the run folder's {stage} model came from sha256 "
                             f"{before.get('sha256')}, {ROLES[stage]} from {entry.get('sha256')}; use another --run-dir")
        models[stage] = entry
    return {**old, **new, "models": models}


def timing_with(timing: dict | None, name: str, seconds: float) -> dict:
    """``timing`` with stage ``name`` set to ``seconds`` (a rerun replaces it) and ``total_s`` recomputed."""
    stages = dict((timing or {}).get("stages", {}))
    stages[name] = float(seconds)
    return {"stages": stages, "total_s": float(sum(stages.values()))}


