"""Configuration of the whole experiment (data, network, one flow, five stages, evaluation), and of
one stage as its checkpoint records it.

``ExperimentConfig`` is built by a preset (``fmlm.experiment.presets``) and overridden by ``key=value``
pairs. It holds ONE ``FlowConfig`` (docs/method.md sections 2 and 5), handed to every loss, sampler and
probe. ``ExperimentConfig.stage_config(stage)`` is exactly what that stage's training depends on: its
network settings (none for a flow map, whose network is its teacher's), its training budget, the flow,
and its own loss settings; that is what a stage checkpoint stores and what a resume must match.
The device and progress bars are arguments of a run, never settings.

``upgrade_experiment`` / ``upgrade_stage`` read run folders and checkpoints written before this layout
(a flow per loss section, a guidance section, ``device``/``progress`` fields): equal copies fold into
the one flow, unequal ones are refused naming the sections.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from fmlm.config import ConfigError, require
from fmlm.data import DataConfig
from fmlm.losses.fixed_point import FixedPointConfig
from fmlm.losses.flow_map import FlowMapConfig
from fmlm.losses.teacher import TeacherConfig
from fmlm.math.flow import FlowConfig
from fmlm.nn import DenoiserConfig, denoiser_config
from fmlm.train.schedule import TrainConfig

LOSS_SECTION = {"teacher": "teacher", "teacher-nosc": "teacher", "fixed-point": "fixed_point",
                "flow-map": "flow_map", "flow-map-nosc": "flow_map"}
"""Stage -> the name of its loss section."""

TRAIN_SECTION = {"teacher": "train_teacher", "teacher-nosc": "train_teacher", "fixed-point": "train_fixed_point",
                 "flow-map": "train_flow_map", "flow-map-nosc": "train_flow_map"}
"""Stage -> the name of its training budget (the no-SC stages share their SC twins')."""


@dataclass(frozen=True)
class NetworkConfig:
    """Network size: a preset of ``fmlm.nn`` plus optional overrides (0 = the preset's value)."""

    preset: str = "cpu-small"
    depth: int = 0
    width: int = 0
    heads: int = 0
    bottleneck: int = 0
    phase_tokens: int = 4  # added by the fixed-point stage
    phase_placement: Literal["tokens", "time"] = "tokens"  # see fmlm.nn.DenoiserConfig
    # "hidden": the paper's decoder head on the last hidden state; "latent": a linear readout of the latent,
    # fitted to the encoder's token embeddings before the teacher trains (fmlm.nn.readout); no mode tokens
    decoder_input: Literal["hidden", "latent"] = "hidden"

    def __post_init__(self) -> None:
        for name in ("depth", "width", "heads", "bottleneck", "phase_tokens"):
            require(getattr(self, name) >= 0, f"network.{name}", "must be >= 0")
        require(self.decoder_input in ("hidden", "latent"), "network.decoder_input",
                f"must be 'hidden' or 'latent', got {self.decoder_input!r}")

    def check(self, row_len: int) -> None:
        """Build the teacher's and the fixed-point student's network configurations on stand-in data
        sizes (the network checks need none of the data's), so a bad size is refused before any work,
        as ``network.<key>``."""
        try:
            teacher = self.denoiser({"dim": 8, "vocab_size": 8, "row_len": row_len}, True)
            dataclasses.replace(teacher, phase_tokens=self.phase_tokens or 4, phase_placement=self.phase_placement)
        except ConfigError as err:
            key = err.key if err.key in {f.name for f in dataclasses.fields(self)} else "preset"
            raise ConfigError(f"network.{key}: {err.detail or err}", key=f"network.{key}", detail=err.detail) from None

    def denoiser(self, meta: dict[str, Any], self_conditioning: bool) -> DenoiserConfig:
        """The teacher's network for data with ``meta`` (latent dim, vocabulary, row length)."""
        overrides = {k: getattr(self, k) for k in ("depth", "width", "heads", "bottleneck") if getattr(self, k)}
        return denoiser_config(
            self.preset,
            latent_dim=int(meta["dim"]),
            vocab_size=int(meta["vocab_size"]),
            max_len=int(meta["row_len"]),
            self_conditioning=self_conditioning,
            guidance_tokens=4 if self_conditioning else 0,
            decoder_input=self.decoder_input,
            **({"mode_tokens": 0} if self.decoder_input == "latent" else {}),  # no decoder pass runs a block
            **overrides,
        )


@dataclass(frozen=True)
class StageConfig:
    """Everything one stage's training depends on besides the data and the teacher (only its own loss
    section is set)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    network: NetworkConfig | None = None
    teacher: TeacherConfig | None = None
    fixed_point: FixedPointConfig | None = None
    flow_map: FlowMapConfig | None = None


@dataclass(frozen=True)
class EvalConfig:
    """What is sampled and scored, and how (docs/method.md sections 9 and 11)."""

    evaluator: str = "embedded"  # "embedded" (SmolLM2-135M) or a causal LM name/folder (paper: gpt2-large)
    n_samples: int = 128
    seeds: tuple[int, ...] = (0,)
    # Sampling seeds of the w / gamma / churn sweeps (hyperparameters are chosen there, never on ``seeds``)
    validation_seeds: tuple[int, ...] = (1000,)
    score_batch: int = 16
    max_tokens: int = 1024  # evaluator tokens per sample (longer samples are truncated and counted)
    sample_batch: int = 64
    teacher_steps: int = 32
    teacher_w: float = 3.0
    churn: float = 1.5
    teacher_few_steps: tuple[int, ...] = (1, 4)  # the teacher at few steps, for the distillation comparison
    flow_map_steps: tuple[int, ...] = (1, 2, 4)
    flow_map_w: float = 5.0
    ctm_gamma: tuple[float, ...] = (1.0, 0.75, 1.0)  # one per flow_map_steps (paper)
    fp_iterations: tuple[int, ...] = (1, 2, 4, 8)  # cold-start fixed-point iterations per step
    fp_solver: Literal["picard", "anderson"] = "picard"
    sc_sweep_steps: int = 32  # flow steps of the self-conditioning comparison (warm, cold N, no-SC teacher)
    sweep_steps: int = 4
    sweep_samples: int = 0  # samples per set of the sweeps (w, gamma, sc, ode) and decoder reconstructions (0 = n_samples)
    w_sweep: tuple[float, ...] = (1.0, 3.0)  # FMLM* at sweep_steps, besides flow_map_w
    gamma_sweep: tuple[float, ...] = (0.0, 0.5)  # FMLM* and FMLM at sweep_steps, besides its ctm_gamma
    churn_sweep: tuple[float, ...] = (0.5, 3.0)  # the teacher's SDE at teacher_steps, besides churn
    # The deterministic flows the flow maps distil (probability-flow ODE, Euler, no churn): ELF* at
    # flow_map_w and the no-SC teacher at these steps, the teacher at the largest (sweep "ode").
    ode_steps: tuple[int, ...] = (4, 32)
    fixed_point_rows: int = 64  # held-out rows for the one-forward probes (distance to s*, guidance response)

    def __post_init__(self) -> None:
        require(self.n_samples >= 1, "evaluation.n_samples", "must be >= 1")
        require(len(self.seeds) >= 1, "evaluation.seeds", "must name at least one seed")
        require(len(self.flow_map_steps) >= 1, "evaluation.flow_map_steps", "must name at least one step count")
        require(len(self.ctm_gamma) == len(self.flow_map_steps), "evaluation.ctm_gamma",
                f"needs one gamma per flow_map_steps entry ({len(self.flow_map_steps)})")
        require(all(0 <= g <= 1 for g in (*self.ctm_gamma, *self.gamma_sweep)), "evaluation.ctm_gamma",
                "gammas must lie in [0, 1]")
        require(self.score_batch >= 1 and self.sample_batch >= 1, "evaluation.score_batch", "batch sizes must be >= 1")
        require(self.sweep_samples >= 0, "evaluation.sweep_samples", "must be >= 0 (0 = n_samples)")
        require(self.sc_sweep_steps >= 1 and self.sweep_steps >= 1, "evaluation.sweep_steps", "must be >= 1")
        require(all(n >= 1 for n in self.fp_iterations), "evaluation.fp_iterations", "must all be >= 1")
        require(all(n >= 1 for n in self.ode_steps), "evaluation.ode_steps", "must all be >= 1")
        require(self.teacher_steps >= 1, "evaluation.teacher_steps", f"must be >= 1, got {self.teacher_steps}")
        for key in ("teacher_few_steps", "flow_map_steps"):
            bad = [n for n in getattr(self, key) if n < 1]
            require(not bad, f"evaluation.{key}", f"must all be >= 1, got {bad[0] if bad else ''}")
        for key in ("teacher_w", "flow_map_w"):
            require(getattr(self, key) > 0, f"evaluation.{key}", f"must be > 0, got {getattr(self, key)}")
        require(all(w > 0 for w in self.w_sweep), "evaluation.w_sweep", "guidance scales must be > 0")
        require(self.churn >= 0, "evaluation.churn", f"must be >= 0, got {self.churn}")
        bad = [c for c in self.churn_sweep if not (math.isfinite(c) and c >= 0)]
        require(not bad, "evaluation.churn_sweep", f"churns must be finite and >= 0, got {bad[0] if bad else ''}")
        require(self.max_tokens >= 2, "evaluation.max_tokens",
                f"must be >= 2 (a start token and one scored token), got {self.max_tokens}")
        require(all(s >= 0 for s in self.seeds), "evaluation.seeds", "seeds must be >= 0")
        require(len(self.validation_seeds) >= 1 and all(s >= 0 for s in self.validation_seeds),
                "evaluation.validation_seeds", "must name at least one seed, each >= 0")
        shared = sorted(set(self.seeds) & set(self.validation_seeds))
        require(not shared, "evaluation.validation_seeds",
                f"must be disjoint from evaluation.seeds; both hold {shared[0] if shared else ''}")
        require(self.fixed_point_rows >= 1, "evaluation.fixed_point_rows", "must be >= 1")
        require(isinstance(self.evaluator, str) and self.evaluator.strip() != "", "evaluation.evaluator",
                "must name the evaluator (embedded, a hub name or a local folder)")

    def samples_for(self, sweep: str | None) -> int:
        """Samples per set: every sweep (w, gamma, self-conditioning, the ODE references, the decoder
        reconstructions) may use fewer than the headline settings (``sweep is None``), which use ``n_samples``."""
        return self.sweep_samples if sweep is not None and self.sweep_samples else self.n_samples


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole pipeline; ``stage_config(stage)`` gives what one stage's training needs."""

    preset: str = "embedded"
    cache_dir: str = "cache"
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    fixed_point: FixedPointConfig = field(default_factory=FixedPointConfig)
    flow_map: FlowMapConfig = field(default_factory=FlowMapConfig)
    train_teacher: TrainConfig = field(default_factory=TrainConfig)
    train_fixed_point: TrainConfig = field(default_factory=TrainConfig)
    train_flow_map: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def stage_config(self, stage: str) -> StageConfig:
        """The ``StageConfig`` of one stage: only what its training depends on."""
        if stage not in LOSS_SECTION:
            raise ValueError(f"unknown stage {stage!r}; choose one of {list(LOSS_SECTION)}")
        section = LOSS_SECTION[stage]
        network = None if section == "flow_map" else self.network
        return StageConfig(train=getattr(self, TRAIN_SECTION[stage]), flow=self.flow, network=network,
                           **{section: getattr(self, section)})


RETIRED_TRAIN_KEYS = ("device", "progress")  # run arguments now, once persisted in every train section
LOSS_SECTIONS = ("teacher", "fixed_point", "flow_map")


def _fold_flow(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Lift the per-loss ``flow``/``guidance`` sections of an older layout into one ``flow`` (must agree)."""
    found: dict[str, dict[str, Any]] = {}
    for section in LOSS_SECTIONS:
        loss = data.get(section)
        if isinstance(loss, dict) and ("flow" in loss or "guidance" in loss):
            loss = dict(loss)
            found[section] = {**loss.pop("flow", {}), **loss.pop("guidance", {})}
            data[section] = loss
    if found and "flow" not in data:
        values = list(found.values())
        if any(v != values[0] for v in values):
            raise ConfigError(f"{where}: the sections {sorted(found)} hold different flow constants; "
                              "this version runs one flow for all stages")
        data["flow"] = values[0]
    return data


def _drop_run_arguments(train: Any) -> Any:
    return {k: v for k, v in train.items() if k not in RETIRED_TRAIN_KEYS} if isinstance(train, dict) else train


def upgrade_experiment(data: dict[str, Any], where: str = "experiment.json") -> dict[str, Any]:
    """An ``ExperimentConfig`` dict in this layout from one in an older layout (unchanged if current)."""
    data = {k: v for k, v in data.items() if k != "device"}
    for key in ("train_teacher", "train_fixed_point", "train_flow_map"):
        if key in data:
            data[key] = _drop_run_arguments(data[key])
    return _fold_flow(data, where)


def upgrade_stage(stage: str, data: dict[str, Any], where: str = "checkpoint") -> dict[str, Any]:
    """A ``StageConfig`` dict in this layout from a checkpoint's older one (unchanged if current)."""
    data = {k: v for k, v in data.items() if k != "teacher_dir"}
    if "flow" in data:
        return data  # this layout
    if "train" in data:
        data["train"] = _drop_run_arguments(data["train"])
    data = _fold_flow(data, where)
    own = LOSS_SECTION.get(stage)
    for section in LOSS_SECTIONS:  # an older checkpoint stored every stage's loss settings
        if section != own:
            data.pop(section, None)
    if own == "flow_map":
        data.pop("network", None)
    return data
