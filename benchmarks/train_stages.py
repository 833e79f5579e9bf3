"""The stages the training benchmark (``training.py``) times, and one step of each as closures.

Stages: the teacher (self-conditioned, stage 1), the no-SC teacher, ELF* (stage 2: the frozen
teacher's K-step Anderson trajectory, then the student's pair pass and its no-grad third pass)
and FMLM* (stage 3: the frozen ELF*'s diagonal targets and the student's two no-grad target
passes, then its grad pass). One step is what ``fmlm.train.loop.train`` does for one
micro-batch of a denoising step: the loss under the preset's precision (bf16 autocast on CUDA
under ``auto``), backward, gradient clipping, the optimiser steps and the EMA update. The
teacher's decoder step (``decoder_step=True``, the same branch in every stage) is timed once.
Random latents and ids of the preset's shapes stand in for data.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from bench_common import (
    autocast_for,
)
from fmlm.losses.common import Batch, sample_guidance
from fmlm.losses.fixed_point import FixedPointLoss, teacher_trajectory
from fmlm.losses.flow_map import FlowMapLoss
from fmlm.losses.teacher import TeacherLoss
from fmlm.train.ema import EMA
from fmlm.train.optim import OptimConfig, build_optimizers, set_lr
from fmlm.train.schedule import micro_generator


@dataclasses.dataclass
class Stage:
    """A stage to time: its student, the networks it calls, its loss and its optimiser settings."""

    name: str
    model: nn.Module
    watched: dict[str, nn.Module]
    loss: object
    optim: OptimConfig
    forward_kwargs: dict
    state: tuple | None = None  # (optimisers, EMA), built on first use and shared by every step of the stage

    def trainer_state(self) -> tuple:
        """The stage's optimisers (lr 1e-5) and EMA, one set however many step closures use them."""
        if self.state is None:
            optimizers = build_optimizers(self.model, self.optim)
            set_lr(optimizers, 1e-5)
            self.state = (optimizers, EMA(self.model, self.optim.ema_decay, self.optim.ema_warmup))
        return self.state


def build_stages(exp, models: dict, optim: OptimConfig, batch: int, device) -> list[Stage]:
    """The four stages on their own copies of the networks (a distillation loss freezes its teacher)."""
    frozen_teacher = copy.deepcopy(models["teacher"])
    frozen_elf = copy.deepcopy(models["elf-star"])
    student_elf, student_fm = models["elf-star"], models["fmlm-star"]
    w = torch.full((batch,), 3.0, device=device)
    t = torch.full((batch,), 0.5, device=device)
    tau = torch.full((batch,), student_elf.config.default_phase, device=device)
    return [
        Stage("teacher", models["teacher"], {"student": models["teacher"]}, TeacherLoss(exp.teacher, exp.flow), optim,
              {"sc": "z", "w": w}),
        Stage("teacher-nosc", models["teacher-nosc"], {"student": models["teacher-nosc"]},
              TeacherLoss(dataclasses.replace(exp.teacher, self_conditioning=False), exp.flow), optim, {}),
        Stage("ELF* (stage 2)", student_elf, {"teacher": frozen_teacher, "student": student_elf},
              FixedPointLoss(exp.fixed_point, frozen_teacher, exp.flow), optim, {"sc": "z", "w": w, "tau": tau}),
        Stage("FMLM* (stage 3)", student_fm, {"teacher": frozen_elf, "student": student_fm},
              FlowMapLoss(exp.flow_map, frozen_elf, exp.flow), optim, {"s": t * 0.5, "w": w}),
    ]


def step_fn(stage: Stage, batch: Batch, device, precision: str, decoder_step: bool = False):
    """One training step of ``stage`` as the trainer takes it (module docstring), a fresh generator per step."""
    stage.model.train()
    optimizers, ema = stage.trainer_state()
    counter = [0]

    def step():
        gen = micro_generator(0, counter[0], 0, device)
        counter[0] += 1
        with autocast_for(device, precision):
            out = stage.loss(stage.model, batch, gen, decoder_step)
        out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(stage.model.parameters(), stage.optim.grad_clip)
        float(grad_norm)  # the trainer's finite-gradient check (one sync)
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        ema.update(stage.model)

    return step


def loss_forward_fn(stage: Stage, batch: Batch, device, precision: str):
    """The stage's loss with gradients enabled, without backward: what its graph keeps for backward (the
    activations) plus its no-grad passes' transients; the graph is dropped on return."""
    counter = [0]

    def run():
        gen = micro_generator(0, counter[0], 0, device)
        counter[0] += 1
        with autocast_for(device, precision):
            out = stage.loss(stage.model, batch, gen, False)
        return float(out.loss.detach())

    return run


def forward_fn(stage: Stage, batch: Batch, device, precision: str):
    """One no-grad forward of the stage's network at the batch, called as the stage calls it."""
    z = batch.x0
    t = torch.full((z.shape[0],), 0.5, device=device)
    kwargs = {k: (z if v == "z" else v) for k, v in stage.forward_kwargs.items()}

    def forward():
        with torch.no_grad(), autocast_for(device, precision):
            return stage.model(z, t, **kwargs)

    return forward


def trajectory_fn(stage: Stage, batch: Batch, exp, device, precision: str):
    """Stage 2's K-step teacher trajectory alone (no grad), at the step's batch."""
    z, teacher = batch.x0, stage.watched["teacher"]
    t = torch.full((z.shape[0],), 0.5, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    w = sample_guidance(z.shape[0], exp.flow, gen, device, z.dtype)

    def run():
        with autocast_for(device, precision):
            return teacher_trajectory(teacher, z, t, w, exp.fixed_point)

    return run
