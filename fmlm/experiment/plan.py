"""The evaluation plan: every (model, sampler setting, sweep) the main job measures, per seed.

Per seed: the teacher, ELF* and the no-SC teacher at ``teacher_steps`` SDE steps (w, churn), an
untrained network as the floor to beat, the teacher at few steps; the self-conditioning comparison
(warm start, cold start with N fixed-point iterations, no-SC teacher) at ``sc_sweep_steps``; FMLM* and
FMLM at 1/2/4 CTM steps with their gammas; and the deterministic flows the flow maps distil (sweep
"ode"). FMLM*'s w and gamma sweeps, where hyperparameters are chosen, are sampled on the validation
seeds (``evaluation.validation_seeds``, disjoint from ``evaluation.seeds``) only, never on a headline
seed. Every setting carries the run's one flow. The plan is built, and so checked, before the first
stage trains.
"""

from __future__ import annotations

import dataclasses

import torch

from fmlm.experiment.config import ExperimentConfig
from fmlm.experiment.run_folder import ODE_SWEEP
from fmlm.nn import Denoiser
from fmlm.samplers import SamplerConfig, sampler_for

PlanEntry = tuple[str, SamplerConfig, "str | None"]


def teacher_setting(cfg: ExperimentConfig, seed: int) -> SamplerConfig:
    """The teacher's headline SDE setting at ``seed``, from which every other setting is derived."""
    e = cfg.evaluation
    return sampler_for(cfg.flow, {"kind": "sde", "steps": e.teacher_steps, "w": e.teacher_w, "churn": e.churn,
                                  "seed": seed, "batch_size": e.sample_batch})


def sweep_plan(cfg: ExperimentConfig, seed: int) -> list[PlanEntry]:
    """FMLM*'s w and gamma sweeps at ``sweep_steps`` for one (validation) seed, each with the headline value."""
    e = cfg.evaluation
    fm = dataclasses.replace(teacher_setting(cfg, seed), kind="ctm", w=e.flow_map_w)
    sweep_gamma = dict(zip(e.flow_map_steps, e.ctm_gamma)).get(e.sweep_steps, 1.0)
    sw = dataclasses.replace(fm, steps=e.sweep_steps, gamma=sweep_gamma)
    return ([("flow-map", dataclasses.replace(sw, w=w), "w") for w in (*e.w_sweep, e.flow_map_w)]
            + [("flow-map", dataclasses.replace(sw, gamma=g), "gamma") for g in (*e.gamma_sweep, sweep_gamma)])


def evaluation_plan(cfg: ExperimentConfig) -> list[PlanEntry]:
    """Every (model, sampler setting, sweep tag) the experiment measures: per headline seed, then the
    w / gamma sweeps per validation seed."""
    e = cfg.evaluation
    plan: list[PlanEntry] = []
    for seed in e.seeds:
        base = teacher_setting(cfg, seed)
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
        # The probability-flow ODE each flow map distils: ELF* at the flow maps' w (FMLM*), the no-SC
        # teacher (FMLM); the teacher's own ODE at the most steps, beside its SDE headline.
        ode = dataclasses.replace(base, kind="euler", churn=0.0, sc_mode="none")
        for n in e.ode_steps:
            plan += [("fixed-point", dataclasses.replace(ode, steps=n, w=e.flow_map_w), ODE_SWEEP),
                     ("teacher-nosc", dataclasses.replace(ode, steps=n), ODE_SWEEP)]
        if e.ode_steps:
            plan.append(("teacher", dataclasses.replace(ode, steps=max(e.ode_steps), sc_mode=base.sc_mode), ODE_SWEEP))
    for seed in e.validation_seeds:
        plan += sweep_plan(cfg, seed)
    return plan


def untrained_network(cfg: ExperimentConfig, meta: dict, device) -> Denoiser:
    """The teacher's architecture at its random initialisation (seeded), as the floor to beat."""
    torch.manual_seed(cfg.train_teacher.seed)
    return Denoiser(cfg.network.denoiser(meta, self_conditioning=True)).to(device).eval()
