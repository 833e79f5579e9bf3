"""The whole experiment: data -> five stages -> measurements, into one run folder.

Run folder (the contract ``reports/`` reads)::

    experiment.json   the ExperimentConfig
    stages/<stage>/   checkpoint/, metrics.jsonl   (one per trained stage)
    results.jsonl     one record per evaluated sample set, and per decoder on held-out latents (fmlm.measure)
    eval/<id>.jsonl   per-sample records
    fixed_point.json  ELF*'s one-forward distance to the teacher's fixed point
    guidance.json     the teacher's response to its guidance scale (fmlm.probes)
    timing.json       wall time per stage and in total

Every step reuses what an earlier, interrupted call finished: stages resume
from their checkpoints, recorded measurements are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from fmlm.config import to_dict
from fmlm.data import load_meta, prepare, rows_for, tokenizer_for
from fmlm.evaluation.evaluator import load_evaluator
from fmlm.experiment import ExperimentConfig, load_run_config
from fmlm.labels import DECODE_SWEEP, ODE_SWEEP
from fmlm.measure import Scoring, measure_model, measure_reconstruction, measure_reference
from fmlm.probes import fixed_point_distances, guidance_response
from fmlm.nn import Denoiser
from fmlm.samplers import SamplerConfig
from fmlm.stages import STAGES, TEACHER_OF, run_stage
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo, barrier, init_distributed, shutdown


class Timer:
    """Accumulates wall time per named part in ``timing.json`` (kept across resumed calls)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"stages": {}, "total_s": 0.0}

    def add(self, name: str, seconds: float) -> None:
        self.data["stages"][name] = self.data["stages"].get(name, 0.0) + seconds
        self.data["total_s"] = sum(self.data["stages"].values())
        _write_json(self.path, self.data, sort_keys=False)  # stages stay in the order they ran


def _write_json(path: Path, data: dict, sort_keys: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file, so an interrupted write leaves no partial file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")
    tmp.replace(path)


RECORD_KEYS = ("evaluator", "n_samples", "sweep_samples", "max_tokens", "fixed_point_rows")
"""Evaluation settings a recorded measurement depends on without naming them in its id."""


def _adds_measurements_only(old: dict, new: dict) -> bool:
    """True when ``new`` differs from ``old`` only in what is measured, never in how a record was made.

    Training, data and network settings must be equal; so must ``RECORD_KEYS``; every old evaluation
    seed must stay. Other evaluation settings (seeds, step counts, sweeps) may change: a record's id
    names its model, sampler setting, sweep and seed, so recorded ones stay valid and new ones are added.
    """
    old_eval, new_eval = dict(old.get("evaluation", {})), dict(new.get("evaluation", {}))
    if {**old, "evaluation": None} != {**new, "evaluation": None}:
        return False
    if any(old_eval.get(k) != new_eval.get(k) for k in RECORD_KEYS):
        return False
    return set(old_eval.get("seeds", [])) <= set(new_eval.get("seeds", []))


def bind_run_folder(run_dir: Path, cfg: ExperimentConfig) -> None:
    """Write ``experiment.json``, or check that the folder already holds this same configuration.

    A finished run accepts changes that only add measurements (``_adds_measurements_only``: more
    seeds, step counts or sweeps); recorded evaluations are kept and the new ones get their own ids.
    A config field the folder's file lacks counts as its default.
    """
    path = run_dir / "experiment.json"
    new = to_dict(cfg)
    if path.exists():
        # Read through the config classes: a field added to the code after the run holds its default,
        # which is the behaviour the run had (new options default to the old behaviour).
        old = to_dict(load_run_config(run_dir))
        if old == new:
            return
        if not _adds_measurements_only(old, new):
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed == ["evaluation"]:
                changed = [f"evaluation.{k}" for k in RECORD_KEYS
                           if old["evaluation"].get(k) != new["evaluation"].get(k)] or ["evaluation.seeds"]
            raise ValueError(f"{run_dir} holds a run with another configuration (differs in {changed}); use a new --run folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(path, new)


def check_run_folder(run_dir: Path) -> None:
    """Refuse a run folder that is a file, or that sits below one, before anything is written."""
    for path in (run_dir, *run_dir.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == run_dir else f"lies below the file {path}"
                raise ValueError(f"run folder {run_dir} {where}; pass a folder to --run")
            return


def check_stages(stages: tuple[str, ...]) -> tuple[str, ...]:
    """``stages`` in pipeline order; at least one, and each needs the stage it distils to be included too."""
    if not stages:
        raise ValueError(f"no stage given; choose one or more of {list(STAGES)}")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r}; choose from {list(STAGES)}")
    for stage in stages:
        if stage in TEACHER_OF and TEACHER_OF[stage] not in stages:
            raise ValueError(f"stage {stage!r} needs stage {TEACHER_OF[stage]!r} in the same run")
    return tuple(s for s in STAGES if s in stages)


def train_all(cfg: ExperimentConfig, run_dir: Path, data_folder: Path, info: DistInfo, timer: Timer | None,
              progress: bool = True, stages: tuple[str, ...] = STAGES) -> dict:
    """Train (or reuse) ``stages`` in order; returns the checkpoint folder of each."""
    folders: dict[str, Path] = {}
    for stage in check_stages(stages):
        start = time.perf_counter()
        teacher = folders.get(TEACHER_OF.get(stage, ""))
        stage_cfg = cfg.stage_config(stage)
        if not progress:
            stage_cfg = dataclasses.replace(stage_cfg, train=dataclasses.replace(stage_cfg.train, progress=False))
        folders[stage] = run_stage(stage, stage_cfg, data_folder, run_dir / "stages" / stage, info, teacher)
        if timer is not None:
            timer.add(f"train {stage}", time.perf_counter() - start)
    return folders


def evaluation_plan(cfg: ExperimentConfig) -> list[tuple[str, SamplerConfig, str | None]]:
    """Every (model, sampler setting, sweep tag) the experiment measures, per seed."""
    e = cfg.evaluation
    plan: list[tuple[str, SamplerConfig, str | None]] = []
    for seed in e.seeds:
        base = SamplerConfig(kind="sde", steps=e.teacher_steps, w=e.teacher_w, churn=e.churn, seed=seed,
                             batch_size=e.sample_batch, lam=cfg.teacher.flow.lam, t_eps=cfg.teacher.flow.t_eps,
                             p_mean=cfg.teacher.flow.p_mean, p_std=cfg.teacher.flow.p_std)
        plan += [
            ("teacher", base, None),
            ("teacher-nosc", dataclasses.replace(base, sc_mode="none"), None),
            ("fixed-point", dataclasses.replace(base, sc_mode="none"), None),
            ("untrained", base, None),
        ]
        plan += [("teacher", dataclasses.replace(base, steps=n), None) for n in e.teacher_few_steps]
        # Self-conditioning comparison on one step count: warm start, cold start with N fixed-point
        # iterations (N = 1 is the zero slot, i.e. no self-conditioning at sampling), the no-SC teacher.
        sc = dataclasses.replace(base, steps=e.sc_sweep_steps)
        plan += [("teacher", sc, "sc"), ("teacher-nosc", dataclasses.replace(sc, sc_mode="none"), "sc")]
        plan += [
            ("teacher", dataclasses.replace(sc, sc_mode="cold", fp_iterations=n, fp_solver=e.fp_solver), "sc")
            for n in e.fp_iterations
        ]
        fm = dataclasses.replace(base, kind="ctm", w=e.flow_map_w)
        for steps, gamma in zip(e.flow_map_steps, e.ctm_gamma):
            plan += [(m, dataclasses.replace(fm, steps=steps, gamma=gamma), None) for m in ("flow-map", "flow-map-nosc")]
        sweep_gamma = dict(zip(e.flow_map_steps, e.ctm_gamma)).get(e.sweep_steps, 1.0)
        sw = dataclasses.replace(fm, steps=e.sweep_steps, gamma=sweep_gamma)
        plan += [("flow-map", dataclasses.replace(sw, w=w), "w") for w in (*e.w_sweep, e.flow_map_w)]
        plan += [("flow-map", dataclasses.replace(sw, gamma=g), "gamma") for g in (*e.gamma_sweep, sweep_gamma)]
        # The probability-flow ODE each flow map distils: ELF* at the flow maps' w (FMLM*), the no-SC
        # teacher (FMLM); the teacher's own ODE at the most steps, beside its SDE headline.
        ode = dataclasses.replace(base, kind="euler", churn=0.0, sc_mode="none")
        for n in e.ode_steps:
            plan += [("fixed-point", dataclasses.replace(ode, steps=n, w=e.flow_map_w), ODE_SWEEP),
                     ("teacher-nosc", dataclasses.replace(ode, steps=n), ODE_SWEEP)]
        if e.ode_steps:
            plan.append(("teacher", dataclasses.replace(ode, steps=max(e.ode_steps), sc_mode=base.sc_mode), ODE_SWEEP))
    return plan


def untrained_network(cfg: ExperimentConfig, meta: dict, device) -> Denoiser:
    """The teacher's architecture at its random initialisation (seeded), as the floor to beat."""
    torch.manual_seed(cfg.train_teacher.seed)
    return Denoiser(cfg.network.denoiser(meta, self_conditioning=True)).to(device).eval()


def measure_all(cfg: ExperimentConfig, run_dir: Path, data_folder: Path, folders: dict, device, timer: Timer,
                progress: bool = True) -> None:
    """Measure every planned setting whose model was trained (``folders``), plus the references."""
    e = cfg.evaluation
    meta = load_meta(data_folder)
    start = time.perf_counter()
    evaluator = load_evaluator(e.evaluator, cache_dir=Path(cfg.cache_dir), device=device)
    scoring = Scoring(run_dir, evaluator, tokenizer_for(data_folder), int(meta["row_len"]), e.score_batch,
                      e.max_tokens, device, progress)
    val = rows_for(data_folder, "val", device)
    measure_reference(scoring, val, e.n_samples)
    models: dict[str, Denoiser] = {}

    def model(name: str) -> Denoiser:
        if name not in models:
            models[name] = (untrained_network(cfg, meta, device) if name == "untrained"
                            else ckpt.load_denoiser(folders[name], "ema", device))
        return models[name]

    for name, sampler, sweep in evaluation_plan(cfg):
        if name == "untrained" or name in folders:
            measure_model(scoring, name, model(name), sampler, e.samples_for(sweep), sweep)
    for name in (s for s in STAGES if s in folders):  # each trained model's decoder on held-out latents
        measure_reconstruction(scoring, name, model(name), val, e.samples_for(DECODE_SWEEP))
    fp_path = run_dir / "fixed_point.json"
    if "fixed-point" in folders and not fp_path.exists():
        result = fixed_point_distances(model("teacher"), model("fixed-point"), val, e.fixed_point_rows,
                                       cfg.fixed_point, cfg.teacher.flow, e.teacher_w, device=device)
        _write_json(fp_path, result)
    guidance_path = run_dir / "guidance.json"
    if "teacher" in folders and not guidance_path.exists():
        result = guidance_response(model("teacher"), val, e.fixed_point_rows, cfg.teacher.flow, e.flow_map_w,
                                   device=device)
        _write_json(guidance_path, result)
    timer.add("evaluate", time.perf_counter() - start)


def run_experiment(cfg: ExperimentConfig, run_dir: str | Path, progress: bool = True,
                   stages: tuple[str, ...] = STAGES) -> Path:
    """Prepare data, train ``stages`` (under torchrun: on every process), then measure on rank 0."""
    run_dir = Path(run_dir)
    check_run_folder(run_dir)
    stages = check_stages(stages)
    info = init_distributed(cfg.device)
    if info.is_main:
        bind_run_folder(run_dir, cfg)
    barrier()
    timer = Timer(run_dir / "timing.json") if info.is_main else None
    start = time.perf_counter()
    if info.is_main:
        data_folder = prepare(cfg.data, Path(cfg.cache_dir), device=str(info.device))
        timer.add("prepare data", time.perf_counter() - start)
    barrier()
    data_folder = prepare(cfg.data, Path(cfg.cache_dir), device=str(info.device))  # finished above: a look-up
    folders = train_all(cfg, run_dir, data_folder, info, timer, progress, stages)
    shutdown()
    if info.is_main:
        measure_all(cfg, run_dir, data_folder, folders, info.device, timer, progress)
    return run_dir

