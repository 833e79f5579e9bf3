"""The evaluation plan: every (model, sampler setting, sweep) the main job measures, per seed.

Two phases. First the hyperparameter sweeps (``fmlm.experiment.sweep_choice.SWEEPS``: FMLM*'s w and
gamma, FMLM's gamma, the teacher's SDE churn), sampled on the validation seeds
(``evaluation.validation_seeds``, disjoint from ``evaluation.seeds``) only, each at the values chosen
by the sweeps before it (``sweep_plan``). Then, per headline seed, at the chosen values
(``evaluation_plan``): the teacher, ELF* and the no-SC teacher at ``teacher_steps`` SDE steps, an
untrained network as the floor to beat, the teacher at few steps; the self-conditioning comparison
(warm start, cold start with N fixed-point iterations, no-SC teacher) at ``sc_sweep_steps``; FMLM* and
FMLM at 1/2/4 CTM steps; and the deterministic flows the flow maps distil (sweep "ode"). A chosen gamma
applies at ``sweep_steps``, where it was swept; the other step counts keep ``ctm_gamma``. Every setting
carries the run's one flow. ``check_plan`` builds, and so checks, every setting any choice can lead to
before the first stage trains.
"""

from __future__ import annotations

import dataclasses

import torch

from fmlm.experiment.config import ExperimentConfig
from fmlm.experiment.run_folder import EXACT_MODEL, ODE_SWEEP
from fmlm.experiment.sweep_choice import SWEEPS, Sweep, preset_knob
from fmlm.nn import Denoiser
from fmlm.samplers import SamplerConfig, sampler_for

PlanEntry = tuple[str, SamplerConfig, "str | None"]
Chosen = dict[Sweep, float]
"""The value each finished sweep chose; a sweep not in it samples at the preset's value."""


def preset_value(cfg: ExperimentConfig, sweep: Sweep) -> float:
    """The preset's value of ``sweep``'s knob (what the headline uses when the sweep has not chosen)."""
    return preset_knob(cfg.evaluation, sweep.knob)


def candidates(cfg: ExperimentConfig, sweep: Sweep) -> tuple[float, ...]:
    """The values ``sweep`` samples: its sweep list, then the preset's value (each once)."""
    e = cfg.evaluation
    listed = {"w": e.w_sweep, "gamma": e.gamma_sweep, "churn": e.churn_sweep}[sweep.knob]
    return tuple(dict.fromkeys(float(v) for v in (*listed, preset_value(cfg, sweep))))


def _preset_gamma(cfg: ExperimentConfig, steps: int) -> float:
    e = cfg.evaluation
    return dict(zip(e.flow_map_steps, e.ctm_gamma)).get(steps, 1.0)


def _value(cfg: ExperimentConfig, chosen: Chosen, model: str, knob: str) -> float:
    sweep = Sweep(model, knob)
    return chosen.get(sweep, preset_value(cfg, sweep))


def teacher_setting(cfg: ExperimentConfig, seed: int, chosen: Chosen | None = None) -> SamplerConfig:
    """The teacher's headline SDE setting at ``seed`` (at the chosen churn), from which every other
    setting is derived."""
    e = cfg.evaluation
    churn = _value(cfg, chosen or {}, "teacher", "churn")
    return sampler_for(cfg.flow, {"kind": "sde", "steps": e.teacher_steps, "w": e.teacher_w, "churn": churn,
                                  "seed": seed, "batch_size": e.sample_batch})


def flow_map_setting(cfg: ExperimentConfig, model: str, seed: int, steps: int,
                     chosen: Chosen | None = None) -> SamplerConfig:
    """``model``'s CTM setting at ``steps``: the chosen w (FMLM*), the chosen gamma at ``sweep_steps``,
    the preset's ``ctm_gamma`` at other step counts."""
    chosen = chosen or {}
    gamma = (_value(cfg, chosen, model, "gamma") if steps == cfg.evaluation.sweep_steps
             else _preset_gamma(cfg, steps))
    return dataclasses.replace(teacher_setting(cfg, seed, chosen), kind="ctm", steps=steps, gamma=gamma,
                               w=_value(cfg, chosen, "flow-map", "w"))


def sweep_plan(cfg: ExperimentConfig, sweep: Sweep, seed: int, chosen: Chosen | None = None) -> list[PlanEntry]:
    """``sweep`` at one validation seed: its model at every candidate value, the other knobs at their
    chosen (or preset) values; the teacher's churn at ``teacher_steps`` SDE steps, the flow maps' knobs
    at ``sweep_steps`` CTM steps."""
    if sweep.model == "teacher":
        base = teacher_setting(cfg, seed, chosen)
    else:
        base = flow_map_setting(cfg, sweep.model, seed, cfg.evaluation.sweep_steps, chosen)
    return [(sweep.model, dataclasses.replace(base, **{sweep.knob: v}), sweep.knob) for v in candidates(cfg, sweep)]


def evaluation_plan(cfg: ExperimentConfig, chosen: Chosen | None = None) -> list[PlanEntry]:
    """Every headline (model, sampler setting, sweep tag) per headline seed, at the ``chosen`` values."""
    e = cfg.evaluation
    chosen = chosen or {}
    plan: list[PlanEntry] = []
    for seed in e.seeds:
        base = teacher_setting(cfg, seed, chosen)
        plan += [
            ("teacher", base, None),
            ("teacher-nosc", dataclasses.replace(base, sc_mode="none"), None),
            ("fixed-point", dataclasses.replace(base, sc_mode="none"), None),
            ("untrained", base, None),
        ]
        plan += [("teacher", dataclasses.replace(base, steps=n), None) for n in e.teacher_few_steps]
        # the no-SC teacher at the same few steps: self-conditioning against none, step for step
        plan += [("teacher-nosc", dataclasses.replace(base, steps=n, sc_mode="none"), None) for n in e.teacher_few_steps]
        # Self-conditioning comparison on one step count: warm start, cold start with N fixed-point
        # iterations (N = 1 is the zero slot, i.e. no self-conditioning at sampling), the no-SC teacher.
        sc = dataclasses.replace(base, steps=e.sc_sweep_steps)
        plan += [("teacher", sc, "sc"), ("teacher-nosc", dataclasses.replace(sc, sc_mode="none"), "sc")]
        plan += [
            ("teacher", dataclasses.replace(sc, sc_mode="cold", fp_iterations=n, fp_solver=e.fp_solver), "sc")
            for n in e.fp_iterations
        ]
        for steps in e.flow_map_steps:
            plan += [(m, flow_map_setting(cfg, m, seed, steps, chosen), None) for m in ("flow-map", "flow-map-nosc")]
        # The probability-flow ODE each flow map distils: ELF* at FMLM*'s w, the no-SC teacher (FMLM);
        # the teacher's own ODE at the most steps, beside its SDE headline.
        ode = dataclasses.replace(base, kind="euler", churn=0.0, sc_mode="none")
        for n in e.ode_steps:
            plan += [("fixed-point", dataclasses.replace(ode, steps=n, w=_value(cfg, chosen, "flow-map", "w")), ODE_SWEEP),
                     ("teacher-nosc", dataclasses.replace(ode, steps=n), ODE_SWEEP)]
        if e.ode_steps:
            plan.append(("teacher", dataclasses.replace(ode, steps=max(e.ode_steps), sc_mode=base.sc_mode), ODE_SWEEP))
        if cfg.language is not None:
            # The exact testbed: the language's exact denoiser through the same samplers, the floor the
            # samplers themselves set (fmlm.synthetic.law_denoiser).
            plan += [(EXACT_MODEL, dataclasses.replace(base, steps=n, sc_mode="none"), None)
                     for n in (e.teacher_steps, *e.teacher_few_steps)]
            plan += [(EXACT_MODEL, dataclasses.replace(ode, steps=n), ODE_SWEEP) for n in e.ode_steps]
    return plan


def check_plan(cfg: ExperimentConfig) -> None:
    """Build every sweep setting and every headline setting that any chosen value can lead to, so a bad
    setting fails before the first stage trains (each value is checked once; the settings are built from
    per-field values, so checking each value is checking every combination)."""
    evaluation_plan(cfg)
    for sweep in SWEEPS:
        for value in candidates(cfg, sweep):
            for seed in cfg.evaluation.validation_seeds:
                sweep_plan(cfg, sweep, seed, {sweep: value})
            evaluation_plan(cfg, {sweep: value})


def untrained_network(cfg: ExperimentConfig, meta: dict, device) -> Denoiser:
    """The teacher's architecture at its random initialisation (seeded), as the floor to beat."""
    torch.manual_seed(cfg.train_teacher.seed)
    return Denoiser(cfg.network.denoiser(meta, self_conditioning=True)).to(device).eval()
