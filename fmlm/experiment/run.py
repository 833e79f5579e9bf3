"""The main job: data -> five stages -> measurements, into one run folder (``run_folder`` says what
it holds). Every step reuses what an earlier, interrupted call finished: stages resume from their
checkpoints, recorded measurements are skipped. Under ``torchrun`` every process trains; rank 0
prepares the data while the others wait, and measures at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import torch

from fmlm.config import to_dict
from fmlm.data import LatentRows, load_meta, prepare, rows_for, tokenizer_for
from fmlm.data.corpus import check_source
from fmlm.evaluation.evaluator import check_evaluator_name, load_evaluator
from fmlm.evaluation.exact import ExactScorer
from fmlm.experiment import run_folder as rf
from fmlm.experiment.run_folder import EXACT_PROBES_FILE
from fmlm.experiment.config import ExperimentConfig
from fmlm.experiment.measure import (Scoring, measure_model, measure_reconstruction, measure_reference, setting_id,
                                    with_references)
from fmlm.experiment.plan import (Chosen, candidates, check_plan, evaluation_plan, preset_value, sweep_plan,
                                  untrained_network)
from fmlm.experiment.presets import load_run_config
from fmlm.experiment.exact_data import prepare_language
from fmlm.experiment.exact_probes import exact_probes
from fmlm.experiment.probes import fixed_point_distances, guidance_response
from fmlm.experiment.stages import run_stage
from fmlm.experiment.sweep_choice import SWEEPS, choose, sweep_points
from fmlm.files import read_jsonl, write_json_atomic
from fmlm.nn import Denoiser
from fmlm.synthetic.hmm_language import HMMLanguage
from fmlm.synthetic.law_denoiser import LawDenoiser
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo, barrier, init_distributed, shutdown
from fmlm.train.lock import FolderLock


def check_experiment(cfg: ExperimentConfig, *, evaluator: bool = True) -> None:
    """Everything about ``cfg`` that can be checked before any work: the evaluation plan, the network
    sizes, the text source's files and (``evaluator``) whether the evaluator's name resolves; a one-line
    error naming the key. Nothing is written before this passes."""
    check_plan(cfg)  # every sampler setting any choice can lead to is built, so checked
    cfg.network.check(cfg.data.row_len)
    if cfg.language is not None:  # the exact testbed: rows drawn from the language, scored under its law
        return
    check_source(cfg.data.source)
    if evaluator:
        from fmlm.data import hub

        check_evaluator_name(cfg.evaluation.evaluator, "evaluation.evaluator", hub_reachable=hub.hub_reachable)


def bind_run_folder(run_dir: Path, cfg: ExperimentConfig) -> None:
    """Write ``experiment.json``, or check that the folder already holds this same configuration.

    A run accepts changes that only add measurements (``run_folder.adds_measurements_only``); a
    field the folder's file lacks counts as its default (read through the config classes)."""
    path = run_dir / rf.EXPERIMENT_FILE
    new = to_dict(cfg)
    if path.exists():
        old = to_dict(load_run_config(run_dir))
        if old == new:
            return
        if not rf.adds_measurements_only(old, new):
            raise ValueError(f"{run_dir} holds a run with another configuration (differs in "
                             f"{rf.changed_sections(old, new)}); use a new --run-dir folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, new)


def timed(timing: rf.Timing | None, name: str):
    """``timing.part(name)``: the block's wall time counts in ``timing.json`` however it ends; a no-op
    without a timer (processes other than rank 0)."""
    return contextlib.nullcontext() if timing is None else timing.part(name)


def prepare_data(cfg: ExperimentConfig, info: DistInfo, timing: rf.Timing | None = None) -> Path:
    """The prepared data folder: rank 0 prepares (timed), the others wait, then all look it up."""
    if cfg.language is not None:  # the exact testbed: rows drawn from a known language
        with timed(timing if info.is_main else None, "prepare data"):
            return prepare_language(cfg.language, cfg.data, Path(cfg.cache_dir), cfg.flow.lam)
    if info.is_main:
        with timed(timing, "prepare data"):
            prepare(cfg.data, Path(cfg.cache_dir), device=str(info.device))
    barrier()
    return prepare(cfg.data, Path(cfg.cache_dir), device=str(info.device))  # finished above: a look-up


def train_all(cfg: ExperimentConfig, run_dir: Path, data_folder: Path, info: DistInfo, timing: rf.Timing | None,
              progress: bool = True, stages: tuple[str, ...] = rf.STAGES) -> dict[str, Path]:
    """Train (or reuse) ``stages`` in order; returns the checkpoint folder of each."""
    folders: dict[str, Path] = {}
    for stage in rf.check_stages(stages):
        teacher = folders.get(rf.TEACHER_OF.get(stage, ""))
        with timed(timing, f"train {stage}"):  # counted also when stopped by a signal or failed
            folders[stage] = run_stage(stage, cfg.stage_config(stage), data_folder, run_dir / rf.STAGES_DIR / stage,
                                       info, teacher, progress=progress)
    return folders


def exact_scorer(cfg: ExperimentConfig, meta: dict) -> ExactScorer:
    """The exact testbed's scorer: ``cfg.language``'s law, the rows and the entropy of a prepared folder's meta."""
    return ExactScorer(HMMLanguage(cfg.language, cfg.flow.lam), int(meta["row_len"]),
                       float(meta["entropy_per_token"]), float(meta["entropy_per_token_se"]))


def open_scoring(cfg: ExperimentConfig, run_dir: Path, data_folder: Path, device,
                 progress: bool = True) -> tuple[Scoring, LatentRows]:
    """The run's evaluator and held-out rows as a ``Scoring`` with its MAUVE references, and those rows."""
    e = cfg.evaluation
    meta = load_meta(data_folder)
    exact = exact_scorer(cfg, meta) if cfg.language is not None else None  # the language's law, no evaluator
    evaluator = None if exact else load_evaluator(e.evaluator, cache_dir=Path(cfg.cache_dir), device=device,
                                                  key="evaluation.evaluator")
    scoring = Scoring(run_dir, evaluator, tokenizer_for(data_folder), int(meta["row_len"]),
                      e.score_batch, e.max_tokens, device, progress, exact=exact)
    val = rows_for(data_folder, "val", device)
    return with_references(scoring, val, e.n_samples), val  # the held-out texts MAUVE compares against


def measure_all(cfg: ExperimentConfig, run_dir: Path, data_folder: Path, folders: dict, device, timing: rf.Timing,
                progress: bool = True) -> None:
    """Measure every planned setting whose model was trained (``folders``), plus the references; timed
    as the part "evaluate" (counted also when it fails)."""
    with timed(timing, "evaluate"):
        _measure_all(cfg, run_dir, data_folder, folders, device, progress)


def _measure_all(cfg: ExperimentConfig, run_dir: Path, data_folder: Path, folders: dict, device, progress: bool) -> None:
    """Measure every planned setting whose model was trained (``folders``), plus the references."""
    e = cfg.evaluation
    meta = load_meta(data_folder)
    scoring, val = open_scoring(cfg, run_dir, data_folder, device, progress)
    measure_reference(scoring, val, e.n_samples)
    models: dict[str, Denoiser] = {}

    def model(name: str) -> Denoiser:
        if name not in models:
            if name == rf.EXACT_MODEL:
                models[name] = LawDenoiser(scoring.exact.law, int(meta["row_len"]))
            else:
                models[name] = (untrained_network(cfg, meta, device) if name == "untrained"
                                else ckpt.load_denoiser(folders[name], "ema", device))
        return models[name]

    chosen = measure_sweeps(cfg, scoring, model, folders)
    for name, sampler, sweep in evaluation_plan(cfg, chosen):
        if name in ("untrained", rf.EXACT_MODEL) or name in folders:
            measure_model(scoring, name, model(name), sampler, e.samples_for(sweep), sweep)
    for name in (s for s in rf.STAGES if s in folders):  # each trained model's decoder on held-out latents
        measure_reconstruction(scoring, name, model(name), val, e.samples_for(rf.DECODE_SWEEP), lam=cfg.flow.lam)
    fp_path = run_dir / rf.FIXED_POINT_FILE
    if "fixed-point" in folders and not fp_path.exists():
        result = fixed_point_distances(model("teacher"), model("fixed-point"), val, e.fixed_point_rows,
                                       cfg.fixed_point, cfg.flow, e.teacher_w, device=device)
        write_json_atomic(fp_path, result)
    exact_path = run_dir / EXACT_PROBES_FILE
    if scoring.exact is not None and all(s in folders for s in rf.STAGES) and not exact_path.exists():
        _, x0 = val.batch(torch.arange(min(e.fixed_point_rows, len(val))).numpy())
        result = exact_probes(scoring.exact.law, {s: model(s) for s in rf.STAGES}, x0, cfg.flow, e.flow_map_w,
                              e.sweep_samples or e.n_samples)
        write_json_atomic(exact_path, result)
    guidance_path = run_dir / rf.GUIDANCE_FILE
    if "teacher" in folders and not guidance_path.exists():
        result = guidance_response(model("teacher"), val, e.fixed_point_rows, cfg.flow, e.flow_map_w, device=device)
        write_json_atomic(guidance_path, result)


def measure_sweeps(cfg: ExperimentConfig, scoring: Scoring, model, folders: dict) -> Chosen:
    """Sample every sweep of a trained model on the validation seeds, in order, each at the values chosen
    before it, and choose its value (``sweep_choice.choose``); returns the chosen values. A sweep whose
    model was not trained, or whose points have no finite gen PPL, keeps the preset's value, and so does
    one whose best point is not resolved better than the preset's (``sweep_choice``: within the noise)."""
    e = cfg.evaluation
    chosen: Chosen = {}
    for sweep in SWEEPS:
        if sweep.model not in folders:
            continue
        planned = [entry for seed in e.validation_seeds for entry in sweep_plan(cfg, sweep, seed, chosen)]
        for name, sampler, tag in planned:
            measure_model(scoring, name, model(name), sampler, e.samples_for(tag), tag)
        ids = {setting_id(name, model(name), sampler, tag) for name, sampler, tag in planned}
        records, _ = read_jsonl(scoring.run_dir / rf.RESULTS_FILE, strict=False)
        mine = [r for _, r in records if r.get("id") in ids]
        pick = choose(sweep_points(mine, sweep, e.validation_seeds, candidates(cfg, sweep), scoring.run_dir),
                      preset=preset_value(cfg, sweep))
        if pick is not None:
            chosen[sweep] = pick.value
            label = rf.MODEL_LABELS.get(sweep.model, sweep.model)
            kept = f"; the best, {pick.best:g}, is within the noise of the preset's value" if pick.kept else ""
            by = dict(mauve="MAUVE", exact="abs(excess NLL) + bigram KL").get(pick.metric, "gen PPL")
            print(f"chosen on validation seeds {list(e.validation_seeds)}: {label} {sweep.knob} = {pick.value:g} "
                  f"(by {by}{kept})")
    return chosen


def run_experiment(cfg: ExperimentConfig, run_dir: str | Path, *, device: str = "auto", progress: bool = True,
                   stages: tuple[str, ...] = rf.STAGES) -> Path:
    """Prepare data, train ``stages`` (under torchrun: on every process), then measure on rank 0."""
    run_dir = Path(run_dir)
    rf.check_writable_run_dir(run_dir)
    stages = rf.check_stages(stages)
    check_experiment(cfg)  # before anything is written: experiment.json never holds an unchecked setting
    if cfg.training_seeds:
        return run_seeds(cfg, run_dir, device=device, progress=progress, stages=stages)
    info = init_distributed(device)
    with FolderLock(run_dir, info.rank, "run folder"):  # a second job on this folder is refused here
        if info.is_main:
            bind_run_folder(run_dir, cfg)
        barrier()
        timing = rf.Timing(run_dir / rf.TIMING_FILE) if info.is_main else None
        data_folder = prepare_data(cfg, info, timing)
        folders = train_all(cfg, run_dir, data_folder, info, timing, progress, stages)
        shutdown()
        if info.is_main:
            measure_all(cfg, run_dir, data_folder, folders, info.device, timing, progress)
    return run_dir


def seed_config(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``cfg`` for one training seed: every stage's ``train.seed`` (initialisation, data order, noise) set to it."""
    return dataclasses.replace(cfg, training_seeds=(), **{
        key: dataclasses.replace(getattr(cfg, key), seed=seed)
        for key in ("train_teacher", "train_fixed_point", "train_flow_map")})


def run_seeds(cfg: ExperimentConfig, run_dir: Path, *, device: str = "auto", progress: bool = True,
              stages: tuple[str, ...] = rf.STAGES) -> Path:
    """Every training seed of ``cfg.training_seeds`` as its own run folder ``run_dir/seeds/seed<k>`` (the five
    stages trained, sampled and measured as any run), one after the other; ``run_dir/experiment.json`` holds
    the whole configuration and ``timing.json`` the wall time of each seed."""
    bind_run_folder(run_dir, cfg)
    timing = rf.Timing(run_dir / rf.TIMING_FILE)
    for seed in cfg.training_seeds:
        with timing.part(f"seed {seed}"):
            run_experiment(seed_config(cfg, seed), rf.seed_folder(run_dir, seed), device=device, progress=progress,
                           stages=stages)
    return run_dir
