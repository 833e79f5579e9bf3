"""The run folder: what the main job writes and the reports read (torch-free; the one contract).

    experiment.json                 the ExperimentConfig (reports read it as a plain dict)
    stages/<stage>/checkpoint/      the stage's checkpoint (fmlm.train.checkpoint)
    stages/<stage>/metrics.jsonl    training curve {"step", "loss", ...}
    results.jsonl                   one record per evaluated sample set (RECORD_SCHEMA), and per decoder
                                    on held-out latents (sweep "decode")
    eval/<id>.jsonl                 per-sample records of each result
    fixed_point.json                ELF*'s one-forward distance to the teacher's fixed point (optional)
    guidance.json                   the teacher's response to its guidance scale (optional)
    exact_probes.json               the exact testbed's probes against the exact denoiser (optional)
    seeds/seed<k>/                  with several training seeds: one run folder per seed (the files above)
    timing.json                     {"stages": {part: seconds}, "total_s": seconds}
    report/                         what ``python -m fmlm report RUN`` writes

A folder is a run folder when it holds ``experiment.json`` or ``results.jsonl``. Every JSON file is
written through a temporary file and a rename (``fmlm.files``); ``results.jsonl`` grows by whole lines,
and a crash can at most cut its last line, which readers drop with a note.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from fmlm.files import read_json_dict, read_jsonl, write_json_atomic

EXPERIMENT_FILE = "experiment.json"
RESULTS_FILE = "results.jsonl"
TIMING_FILE = "timing.json"
FIXED_POINT_FILE = "fixed_point.json"
GUIDANCE_FILE = "guidance.json"
EXACT_PROBES_FILE = "exact_probes.json"
SEEDS_DIR = "seeds"
EVAL_DIR = "eval"
STAGES_DIR = "stages"
REPORT_DIR = "report"

STAGES: tuple[str, ...] = ("teacher", "teacher-nosc", "fixed-point", "flow-map", "flow-map-nosc")
"""The five trainable stages, in training order."""

TEACHER_OF: dict[str, str] = {"fixed-point": "teacher", "flow-map": "fixed-point", "flow-map-nosc": "teacher-nosc"}
"""The stage whose finished checkpoint each distillation stage starts from."""

FEW_STEP_MODELS = ("flow-map-nosc", "flow-map")
"""Models whose headline rows are the step counts 1, 2, 4."""

MODEL_LABELS = {
    "teacher": "ELF",
    "teacher-nosc": "ELF (no SC)",
    "fixed-point": "ELF*",
    "flow-map": "FMLM*",
    "flow-map-nosc": "FMLM",
    "untrained": "untrained network",
    "exact": "exact denoiser D*",
    "reference": "held-out real text",
}
"""Model name -> the label the paper uses (one name per model)."""

EXACT_MODEL = "exact"
"""Model name of the exact testbed's exact denoiser sampled like a network (``fmlm.synthetic.law_denoiser``)."""

ODE_SWEEP = "ode"
"""Sweep tag of the deterministic probability-flow ODE references (Euler, no churn) the flow maps distil."""

DECODE_SWEEP = "decode"
"""Sweep tag of the records that decode held-out latents with a model's decoder head (no sampling)."""

NOISED_DECODE_TIMES = (0.9, 0.7)
"""Noise levels t at which decoder records also measure token accuracy, on ``z_t = t x0 + (1 - t) lam eps``
(key ``token_accuracy_t<t>``; t = 1, the clean latents, is ``token_accuracy``)."""

STUDY_FILE = "study.json"
"""The file in a study folder (``fmlm.study.embedded``) that records the order, overrides, scores and winners."""
STUDY_TRIALS_DIR = "trials"
"""The study folder's subfolder holding one run folder per trial."""
STUDY_WEIGHTS = {"ema": "teacher", "model": "teacher-raw"}
"""The weights a study trial samples from (EMA, and "model": the raw weights) -> the model name of their records."""

SETTING_KEYS = ("model", "sampler", "steps", "grid", "w", "gamma", "churn", "sc_mode", "fp_iterations", "fp_solver")
"""Records equal on these keys (and on ``sweep``) but with different seeds are repeats."""

# key -> (kind, required, nullable); kind "str", "int" or "num"
RECORD_SCHEMA: dict[str, tuple[str, bool, bool]] = {
    "id": ("str", True, False),
    "model": ("str", True, False),
    "label": ("str", False, True),
    "sampler": ("str", True, False),
    "steps": ("int", True, False),
    "grid": ("str", False, True),
    "w": ("num", False, True),
    "gamma": ("num", False, True),
    "churn": ("num", False, True),
    "sc_mode": ("str", False, True),
    "fp_iterations": ("int", False, True),
    "fp_solver": ("str", False, True),
    "seed": ("int", True, False),
    "n_samples": ("int", False, True),
    "gen_ppl": ("num", True, True),
    "entropy": ("num", True, True),
    "nfe": ("num", False, True),
    "wall_s": ("num", False, True),
    "wall_s_per_sample": ("num", False, True),
    "sweep": ("str", False, True),
    "token_accuracy": ("num", False, True),
    # decoder records: token accuracy on noised held-out latents (NOISED_DECODE_TIMES); absent in older folders
    "token_accuracy_t0.9": ("num", False, True),
    "token_accuracy_t0.7": ("num", False, True),
    "samples_file": ("str", False, True),
    # distribution metrics (fmlm.evaluation.mauve_score.distribution_metrics); absent in older run folders
    "mauve": ("num", False, True),
    "mauve_n": ("int", False, True),
    "mauve_n_reference": ("int", False, True),
    "mauve_num_buckets": ("int", False, True),
    "mauve_features": ("str", False, True),
    "mauve_against": ("str", False, True),
    "mauve_note": ("str", False, True),
    "distinct_1": ("num", False, True),
    "distinct_2": ("num", False, True),
    "distinct_3": ("num", False, True),
    "rep4": ("num", False, True),
    "empty_share": ("num", False, True),
    "single_token_share": ("num", False, True),
}
"""The keys of a ``results.jsonl`` record; other keys are allowed and kept. The distribution metrics are
optional, so a run folder written before they were measured still loads (its values are NaN / None)."""

RECORD_KEYS = ("evaluator", "n_samples", "sweep_samples", "max_tokens", "fixed_point_rows",
               "validation_seeds", "sweep_steps", "w_sweep", "gamma_sweep", "churn_sweep")
"""Evaluation settings a recorded measurement depends on without naming them in its id (the last five
decide the values the hyperparameter sweeps choose, at which the headline settings are sampled)."""


def is_run_folder(path: Path | str) -> bool:
    """True for a folder holding ``experiment.json`` or ``results.jsonl``."""
    path = Path(path)
    return path.is_dir() and ((path / EXPERIMENT_FILE).is_file() or (path / RESULTS_FILE).is_file())


def seed_folder(run_dir: Path | str, seed: int) -> Path:
    """The run folder of training seed ``seed`` inside a several-seed run."""
    return Path(run_dir) / SEEDS_DIR / f"seed{seed}"


def check_writable_run_dir(run_dir: Path) -> None:
    """Refuse a run folder that is a file, or that sits below one, before anything is written."""
    run_dir = Path(run_dir)
    for path in (run_dir, *run_dir.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == run_dir else f"lies below the file {path}"
                raise ValueError(f"run folder {run_dir} {where}; pass a folder to --run-dir")
            return


def check_stages(stages: tuple[str, ...]) -> tuple[str, ...]:
    """``stages`` in training order; at least one, and each needs the stage it distils included too."""
    if not stages:
        raise ValueError(f"no stage given; choose one or more of {list(STAGES)}")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r}; choose from {list(STAGES)}")
    for stage in stages:
        if stage in TEACHER_OF and TEACHER_OF[stage] not in stages:
            raise ValueError(f"stage {stage!r} needs stage {TEACHER_OF[stage]!r} in the same run")
    return tuple(s for s in STAGES if s in stages)


def adds_measurements_only(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when experiment dict ``new`` differs from ``old`` only in what is measured, never in how a
    record was made: training, data, network and flow settings equal, ``RECORD_KEYS`` equal, every old
    evaluation seed kept (a record's id names its model, sampler setting, sweep and seed, so recorded
    ones stay valid and new ones are added)."""
    old_eval, new_eval = dict(old.get("evaluation", {})), dict(new.get("evaluation", {}))
    if {**old, "evaluation": None} != {**new, "evaluation": None}:
        return False
    if any(old_eval.get(k) != new_eval.get(k) for k in RECORD_KEYS):
        return False
    return set(old_eval.get("seeds", [])) <= set(new_eval.get("seeds", []))


def changed_sections(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The top-level sections (or ``evaluation.<key>``) in which two experiment dicts differ."""
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed == ["evaluation"]:
        changed = [f"evaluation.{k}" for k in RECORD_KEYS
                   if old["evaluation"].get(k) != new["evaluation"].get(k)] or ["evaluation.seeds"]
    return changed


def _fmt(value: float) -> str:
    return f"{value:g}".replace(".", "p").replace("-", "m")


def record_id(model: str, cfg: Any, guided: bool, sweep: str | None) -> str:
    """A record's id and file name: ``<model>_<kind>_<steps>[_w][_c|_g][_scmode][_sweep]_s<seed>`` from a
    ``SamplerConfig`` ``cfg`` (read by attribute, so this module needs no torch)."""
    parts = [model, cfg.kind, str(cfg.steps)]
    if guided:
        parts.append("w" + _fmt(cfg.w))
    if cfg.kind == "sde":
        parts.append("c" + _fmt(cfg.churn))
    if cfg.kind == "ctm":
        parts.append("g" + _fmt(cfg.gamma))
    if cfg.kind in ("euler", "sde"):
        parts.append(cfg.sc_mode + (f"{cfg.fp_iterations}{cfg.fp_solver}" if cfg.sc_mode == "cold" else ""))
    if sweep:
        parts.append(sweep)
    parts.append(f"s{cfg.seed}")
    return "_".join(parts)


def recorded_ids(run_dir: Path) -> set[str]:
    """Ids of the records already in ``results.jsonl`` (a cut last line is ignored: it is measured again)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return set()
    records, _ = read_jsonl(path, strict=False)
    return {r["id"] for _, r in records if isinstance(r.get("id"), str)}


class Timing:
    """Wall time per named part in ``timing.json``, accumulated across resumed calls."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data = read_json_dict(self.path) if self.path.exists() else {"stages": {}, "total_s": 0.0}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to part ``name`` and rewrite the file."""
        with self._lock:
            self._write(name, self.data["stages"].get(name, 0.0) + seconds)

    def _write(self, name: str, seconds: float) -> None:
        self.data["stages"][name] = seconds
        self.data["total_s"] = sum(self.data["stages"].values())
        write_json_atomic(self.path, self.data, sort_keys=False)  # parts stay in the order they ran

    @contextlib.contextmanager
    def part(self, name: str, every_s: float = 30.0) -> Iterator[None]:
        """Time the block as part ``name``, added to what the file already holds for it (a resumed call).

        The file is rewritten every ``every_s`` seconds while the block runs (a killed process loses
        at most that much) and once more when it ends, however it ends (an exception, training
        stopped by a signal), so interrupted work counts."""
        with self._lock:
            before = self.data["stages"].get(name, 0.0)
        start = time.perf_counter()

        def record() -> None:
            with self._lock:
                self._write(name, before + time.perf_counter() - start)

        stop = threading.Event()
        writer = threading.Thread(target=self._every, args=(stop, every_s, record), daemon=True, name=f"timing {name}")
        writer.start()
        try:
            yield
        finally:
            stop.set()
            writer.join()
            record()

    @staticmethod
    def _every(stop: threading.Event, seconds: float, action: Callable[[], None]) -> None:
        """Call ``action`` every ``seconds`` until ``stop`` is set; a failed write is retried at the next
        call (the last one, when the part ends, reports its error)."""
        while not stop.wait(seconds):
            with contextlib.suppress(OSError):
                action()
