"""The five trainable stages and how each one is built from the previous one.

=================  ==========================  ==========================  =============
stage              network                     loss                        starts from
=================  ==========================  ==========================  =============
teacher            SC slot + guidance bank     ``TeacherLoss`` (SC)        random init
teacher-nosc       no slot, no guidance bank   ``TeacherLoss`` (no SC)     random init
fixed-point        teacher + phase bank        ``FixedPointLoss``          teacher (EMA)
flow-map           = fixed-point network       ``FlowMapLoss`` (guided)    fixed-point (EMA)
flow-map-nosc      = teacher-nosc network      ``FlowMapLoss`` (unguided)  teacher-nosc (EMA)
=================  ==========================  ==========================  =============

Every stage after the first checks its teacher checkpoint (stage, completion, architecture, data)
before any training starts and refuses a wrong one with a one-line ``ValueError``. A stage's own
checkpoint is resumed or reused only under the settings that wrote it (``check_resume``); the
device and progress bars are arguments of the run and may differ.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from fmlm.config import ConfigError, from_dict, to_dict
from fmlm.data import encoder_for, rows_for
from fmlm.experiment.config import StageConfig, upgrade_stage
from fmlm.experiment.run_folder import STAGES, TEACHER_OF
from fmlm.losses.fixed_point import FixedPointLoss
from fmlm.losses.flow_map import FlowMapLoss
from fmlm.losses.teacher import TeacherLoss
from fmlm.nn import Denoiser, warm_start
from fmlm.nn.readout import accumulate_moments, readout_init
from fmlm.train import checkpoint as ckpt
from fmlm.train.distributed import DistInfo
from fmlm.train.loop import train
from fmlm.train.schedule import make_schedule


def check_teacher(teacher_dir: Path, stage: str, meta: dict[str, Any], device: str | torch.device = "cpu") -> Denoiser:
    """Load the frozen EMA teacher of ``stage`` onto ``device`` after checking stage, completion and data fit."""
    expected = TEACHER_OF[stage]
    ckpt.require_stage(teacher_dir, (expected,))
    cfg = ckpt.read_denoiser_config(teacher_dir)
    if (cfg.latent_dim, cfg.vocab_size) != (int(meta["dim"]), int(meta["vocab_size"])):
        raise ValueError(
            f"teacher {teacher_dir} was trained on latents of dim {cfg.latent_dim} and vocabulary {cfg.vocab_size}; "
            f"this data has dim {meta['dim']} and vocabulary {meta['vocab_size']}"
        )
    if cfg.max_len < int(meta["row_len"]):
        raise ValueError(f"teacher {teacher_dir} handles rows of {cfg.max_len} tokens; this data has {meta['row_len']}")
    return ckpt.load_denoiser(teacher_dir, "ema", device)


def build_stage(stage: str, cfg: StageConfig, meta: dict[str, Any], teacher_dir: Path | None,
                device: str | torch.device = "cpu"):
    """(student network, loss) for ``stage``; checks happen here, before training.

    A distillation stage's frozen teacher is loaded onto ``device``, the device training runs on
    (the loop moves only the student there)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {list(STAGES)}")
    if stage in ("teacher", "teacher-nosc"):
        sc = stage == "teacher"
        loss_cfg = dataclasses.replace(cfg.teacher, self_conditioning=sc)
        return Denoiser(cfg.network.denoiser(meta, sc)), TeacherLoss(loss_cfg, cfg.flow)
    if teacher_dir is None:
        raise ValueError(f"stage {stage!r} needs the checkpoint of a finished {TEACHER_OF[stage]!r} stage")
    teacher = check_teacher(Path(teacher_dir), stage, meta, device)
    check_same_flow(Path(teacher_dir), cfg)
    if stage == "fixed-point":
        if not teacher.config.self_conditioning:
            raise ValueError(f"fixed-point distillation needs a self-conditioned teacher; {teacher_dir} has no slot")
        student = Denoiser(dataclasses.replace(teacher.config, phase_tokens=cfg.network.phase_tokens or 4,
                                               phase_placement=cfg.network.phase_placement))
        warm_start(student, teacher.state_dict())
        return student, FixedPointLoss(cfg.fixed_point, teacher, cfg.flow)
    student = Denoiser(teacher.config)
    warm_start(student, teacher.state_dict())
    return student, FlowMapLoss(cfg.flow_map, teacher, cfg.flow)


def stored_stage_config(folder: Path) -> StageConfig:
    """The ``StageConfig`` a checkpoint was trained with (older layouts upgraded; one-line errors)."""
    meta = ckpt.read_meta(folder)
    try:
        return from_dict(StageConfig, upgrade_stage(meta.stage, meta.stage_config, str(folder)))
    except ConfigError as err:
        raise ValueError(f"checkpoint {folder}: its stage settings do not read as this version's ({err})") from None


def check_same_flow(teacher_dir: Path, cfg: StageConfig) -> None:
    """A student is trained on its teacher's flow: refuse a teacher trained with other flow constants."""
    theirs = stored_stage_config(teacher_dir).flow
    if theirs != cfg.flow:
        diff = [f"flow.{k} {getattr(theirs, k)} -> {getattr(cfg.flow, k)}" for k in to_dict(cfg.flow)
                if getattr(theirs, k) != getattr(cfg.flow, k)]
        raise ValueError(f"teacher {teacher_dir} was trained with another flow ({', '.join(diff)})")


READOUT_FIT_ROWS = 1024  # training rows read per chunk while the latent readout's moments accumulate


@torch.no_grad()
def init_latent_readout(model: Denoiser, rows, data_folder: Path) -> None:
    """A fresh teacher whose decoder reads the latent: its readout fitted to the training rows and the
    frozen encoder's token embeddings (``fmlm.nn.readout``; one pass over the rows)."""
    vocab = model.config.vocab_size
    embeddings = encoder_for(data_folder).model.get_input_embeddings().weight.detach().float()[:vocab]
    moments = None
    for start in range(0, len(rows), READOUT_FIT_ROWS):
        ids, x0 = rows.batch(list(range(start, min(start + READOUT_FIT_ROWS, len(rows)))))
        chunk = accumulate_moments(x0.cpu(), ids.cpu(), vocab)
        moments = chunk if moments is None else tuple(a + b for a, b in zip(moments, chunk))
    weight, bias = readout_init(*moments, embeddings)
    model.unembed.weight.copy_(weight)
    model.unembed.bias.copy_(bias)


RESUMABLE_KEYS = ("train.log_every", "train.checkpoint_every", "train.max_steps", "train.epochs")
"""Stage settings that may differ between the call that wrote a checkpoint and one resuming it
(the logging cadence, and the length of training, which may grow but never shrink below the
checkpoint's step)."""


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume(folder: Path, cfg: StageConfig, total_steps: int) -> None:
    """Refuse (one line) to resume or reuse the checkpoint in ``folder`` under other settings than ``cfg``.

    Only ``RESUMABLE_KEYS`` may differ, and the run must not end (``total_steps``) before the step the
    checkpoint reached."""
    if not (folder / "meta.json").is_file():
        return
    old, new = _flat(to_dict(stored_stage_config(folder))), _flat(to_dict(cfg))
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and k not in RESUMABLE_KEYS]
    if changed:
        shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3])
        raise ValueError(f"checkpoint {folder} was trained with other settings ({shown}"
                         f"{', ...' if len(changed) > 3 else ''}); use a new run folder or its settings")
    step = ckpt.read_meta(folder).step
    if total_steps < step:
        raise ValueError(f"checkpoint {folder} is at step {step}, past this run's {total_steps} steps; "
                         "use a new run folder or at least its length of training")


def run_stage(stage: str, cfg: StageConfig, data_folder: Path, run_dir: Path, dist_info: DistInfo,
              teacher_dir: Path | None = None, *, progress: bool = True) -> Path:
    """Train ``stage`` into ``run_dir`` (resuming or reusing what is there); returns the checkpoint folder."""
    rows = rows_for(data_folder, "train", dist_info.device)
    newest = ckpt.newest_checkpoint(Path(run_dir) / "checkpoint")  # train() recovers it; check it first
    if newest is not None:
        check_resume(newest, cfg, make_schedule(cfg.train, len(rows), dist_info.world_size).total_steps)
    torch.manual_seed(cfg.train.seed)  # the initialisation, like data order and noise, follows train.seed
    model, loss = build_stage(stage, cfg, rows.meta, teacher_dir, dist_info.device)
    if teacher_dir is None and newest is None and model.config.decoder_input == "latent":
        init_latent_readout(model, rows, data_folder)  # students inherit their teacher's readout
    return train(
        model, loss, rows, cfg.train, run_dir, dist_info,
        stage=stage,
        stage_config=to_dict(cfg),
        data_info={"folder": str(data_folder), "rows": len(rows)},
        progress=progress,
    )
