"""The evaluation plan in two phases: the hyperparameter sweeps on the validation seeds only, each at the
values chosen before it, then the headline settings at the chosen values; and the choice rule itself."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fmlm.config import ConfigError
from fmlm.experiment.config import EvalConfig, ExperimentConfig
from fmlm.experiment.plan import candidates, check_plan, evaluation_plan, sweep_plan
from fmlm.experiment.sweep_choice import SWEEP_TAGS, SWEEPS, Point, Sweep, choose, preset_knob, sweep_points

FM_W, FM_GAMMA, FMLM_GAMMA, CHURN = (Sweep("flow-map", "w"), Sweep("flow-map", "gamma"),
                                     Sweep("flow-map-nosc", "gamma"), Sweep("teacher", "churn"))


def config(**evaluation) -> ExperimentConfig:
    cfg = ExperimentConfig()
    return dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, **evaluation))


# --- the plan ---


def test_sweeps_sample_the_validation_seeds_and_the_headline_never_does():
    cfg = config(seeds=(0, 1), validation_seeds=(1000, 1001))
    e = cfg.evaluation
    assert SWEEPS == (FM_W, FM_GAMMA, FMLM_GAMMA, CHURN)
    for sweep in SWEEPS:
        for seed in e.validation_seeds:
            entries = sweep_plan(cfg, sweep, seed)
            assert {(name, tag) for name, _, tag in entries} == {(sweep.model, sweep.knob)}
            assert [getattr(s, sweep.knob) for _, s, _ in entries] == list(candidates(cfg, sweep))
            assert {s.seed for _, s, _ in entries} == {seed}
    headline = evaluation_plan(cfg)
    assert {s.seed for _, s, _ in headline} == {0, 1}
    assert not any(tag in SWEEP_TAGS for _, _, tag in headline)
    assert candidates(cfg, FM_W) == (1.0, 3.0, 5.0) and candidates(cfg, CHURN) == (0.5, 3.0, 1.5)
    assert candidates(config(w_sweep=(5.0, 1.0)), FM_W) == (5.0, 1.0)  # the preset's value once


def test_each_sweep_runs_at_the_values_chosen_before_it():
    cfg = config()
    gamma = sweep_plan(cfg, FM_GAMMA, 1000, {FM_W: 1.0})
    assert {(s.kind, s.steps, s.w) for _, s, _ in gamma} == {("ctm", cfg.evaluation.sweep_steps, 1.0)}
    assert {s.w for _, s, _ in sweep_plan(cfg, FM_GAMMA, 1000)} == {cfg.evaluation.flow_map_w}
    churn = sweep_plan(cfg, CHURN, 1000, {FM_W: 1.0})
    assert {(s.kind, s.steps, s.w, s.sc_mode) for _, s, _ in churn} == {("sde", 32, cfg.evaluation.teacher_w, "warm")}


def test_the_headline_uses_the_chosen_values():
    cfg = config(ode_steps=(4,))
    chosen = {FM_W: 1.0, FM_GAMMA: 0.0, FMLM_GAMMA: 0.5, CHURN: 3.0}
    plan = evaluation_plan(cfg, chosen)
    ctm = {(name, s.steps): s for name, s, tag in plan if s.kind == "ctm" and tag is None}
    assert {s.w for (name, _), s in ctm.items() if name == "flow-map"} == {1.0}  # every step count
    assert ctm["flow-map", 4].gamma == 0.0 and ctm["flow-map-nosc", 4].gamma == 0.5  # swept at sweep_steps = 4
    assert ctm["flow-map", 2].gamma == 0.75 and ctm["flow-map-nosc", 2].gamma == 0.75  # not swept: the preset's
    sde = [s for _, s, _ in plan if s.kind == "sde"]
    assert sde and {s.churn for s in sde} == {3.0}  # every SDE setting, the SC comparison too
    ode = {(name, s.w) for name, s, tag in plan if tag == "ode"}
    assert ("fixed-point", 1.0) in ode  # ELF*'s ODE at the flow map's w
    unchosen = evaluation_plan(cfg)
    assert {s.churn for _, s, _ in unchosen if s.kind == "sde"} == {1.5}
    assert {s.w for name, s, _ in unchosen if name == "flow-map"} == {5.0}


def test_every_candidate_is_checked_before_training():
    check_plan(config())
    with pytest.raises(ConfigError, match="evaluation.churn_sweep: churns must be finite and >= 0, got -1"):
        EvalConfig(churn_sweep=(0.5, -1.0))
    with pytest.raises(ConfigError, match="evaluation.churn_sweep"):
        EvalConfig(churn_sweep=(float("inf"),))


def test_validation_seeds_must_differ_from_the_headline_seeds():
    assert EvalConfig().validation_seeds == (1000,)
    with pytest.raises(ConfigError, match="validation_seeds: must be disjoint from evaluation.seeds; both hold 2"):
        EvalConfig(seeds=(0, 2), validation_seeds=(2, 5))
    with pytest.raises(ConfigError, match="evaluation.validation_seeds: must name at least one seed"):
        EvalConfig(validation_seeds=())


# --- the choice rule ---


def test_choose_takes_the_highest_mauve_over_a_lower_gen_ppl():
    points = [Point(1.0, 0.2, 50.0), Point(3.0, 0.6, 400.0), Point(5.0, 0.4, 30.0)]
    assert choose(points)[:2] == (3.0, "mauve")


def test_choose_falls_back_to_the_lowest_gen_ppl_when_a_point_lacks_mauve():
    assert choose([Point(1.0, 0.9, 90.0), Point(3.0, None, 70.0), Point(5.0, 0.1, None)])[:2] == (3.0, "gen_ppl")
    assert choose([Point(1.0, None, None)]) is None and choose([]) is None


def test_a_tie_goes_to_the_smaller_value_whatever_the_order():
    assert choose([Point(5.0, 0.5, 1.0), Point(1.0, 0.5, 2.0)])[:2] == (1.0, "mauve")
    assert choose([Point(1.0, 0.5, 2.0), Point(5.0, 0.5, 1.0)])[:2] == (1.0, "mauve")
    assert choose([Point(5.0, None, 7.0), Point(1.0, 0.5, 7.0)])[:2] == (1.0, "gen_ppl")


def record(value: float, seed: int, mauve, ppl, model="flow-map", knob="w") -> dict:
    return {"model": model, "sweep": knob, knob: value, "seed": seed, "mauve": mauve, "gen_ppl": ppl}


def test_sweep_points_average_over_the_given_seeds_only():
    records = [record(1.0, 1000, 0.2, 100.0), record(1.0, 1001, 0.4, 200.0), record(3.0, 1000, 0.3, "inf"),
               record(3.0, 1001, None, 50.0), record(1.0, 0, 0.99, 1.0),  # a headline seed: left out
               record(1.0, 1000, 0.9, 1.0, model="flow-map-nosc"), record(1.0, 1000, 0.9, 1.0, knob="gamma")]
    points = sweep_points(records, FM_W, seeds=(1000, 1001), order=(3.0, 1.0, 5.0))
    assert [p.value for p in points] == [3.0, 1.0]  # the planned order; 5.0 has no record
    assert points[0] == Point(3.0, None, 50.0)  # one seed without MAUVE: none; the finite gen PPL only
    assert points[1].mauve == pytest.approx(0.3) and points[1].gen_ppl == pytest.approx(150.0)
    assert choose(points)[:2] == (3.0, "gen_ppl")


def rows(log_ppl: float, spread: float, n: int = 40) -> np.ndarray:
    """``n`` samples of 10 tokens at log PPL ``log_ppl`` +- ``spread`` (alternating), whose corpus log PPL is exact."""
    return np.asarray([[10.0 * (log_ppl + spread * (-1) ** i), 10.0] for i in range(n)])


def test_the_preset_is_kept_when_the_best_point_is_within_its_noise():
    # gen PPL (no MAUVE): w = 1 at log PPL 4.60 against the preset w = 5 at 4.61, samples +-0.5 around it:
    # a 0.01 difference is far inside the bootstrap's noise (a 40-sample mean's se ~ 0.08)
    best = Point(1.0, None, math.exp(4.60), (), (rows(4.60, 0.5),))
    preset = Point(5.0, None, math.exp(4.61), (), (rows(4.61, 0.5),))
    pick = choose([best, preset], preset=5.0)
    assert (pick.value, pick.metric, pick.best, pick.kept) == (5.0, "gen_ppl", 1.0, True)
    assert pick.interval.low < 0 < pick.interval.high
    # the same means with samples +-0.001: resolved, the best point replaces the preset
    tight = choose([Point(1.0, None, math.exp(4.60), (), (rows(4.60, 0.001),)),
                    Point(5.0, None, math.exp(4.61), (), (rows(4.61, 0.001),))], preset=5.0)
    assert (tight.value, tight.kept) == (1.0, False) and tight.interval.high < 0


def test_mauve_on_one_validation_seed_has_no_interval_so_the_preset_stays():
    points = [Point(1.0, 0.2, 50.0, (0.2,)), Point(3.0, 0.6, 400.0, (0.6,)), Point(5.0, 0.4, 30.0, (0.4,))]
    assert choose(points, preset=5.0)[:2] == (5.0, "mauve") and choose(points, preset=5.0).kept
    assert choose(points, preset=3.0) == (3.0, "mauve", 3.0, None, False)  # the preset is the best: no comparison
    # three seeds, MAUVE 0.6 +- 0.01 against 0.4 +- 0.01: t over 3 seeds resolves it
    three = [Point(3.0, 0.6, 400.0, (0.59, 0.6, 0.61)), Point(5.0, 0.4, 30.0, (0.41, 0.4, 0.39))]
    assert choose(three, preset=5.0)[:2] == (3.0, "mauve") and not choose(three, preset=5.0).kept


def test_sweep_points_read_the_sample_rows_of_their_records(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "a.jsonl").write_text('{"nll_sum": 20.0, "n_tokens": 10}\n{"nll_sum": 40.0, "n_tokens": 10}\n')
    recs = [dict(record(1.0, 1000, 0.2, math.exp(3.0)), samples_file="eval/a.jsonl"),
            dict(record(3.0, 1000, 0.3, 100.0), samples_file="eval/missing.jsonl")]
    points = sweep_points(recs, FM_W, seeds=(1000,), run_dir=tmp_path)
    assert points[0].ppl_rows[0].tolist() == [[20.0, 10.0], [40.0, 10.0]]
    assert points[1].ppl_rows[0].tolist() == [[pytest.approx(math.log(100.0), abs=1e-12), 1.0]]  # the record's own
    assert points[0].mauve_seeds == (0.2,)


def test_preset_knob_reads_a_config_or_its_dict():
    e = {"flow_map_w": 5.0, "flow_map_steps": [1, 2, 4], "ctm_gamma": [1.0, 0.75, 0.5], "sweep_steps": 4, "churn": 1.5}
    assert [preset_knob(e, k) for k in ("w", "gamma", "churn")] == [5.0, 0.5, 1.5]
    assert preset_knob(EvalConfig(), "w") == EvalConfig().flow_map_w
    with pytest.raises(ValueError, match="knob"):
        preset_knob(e, "lr")


def test_the_embedded_preset_samples_every_headline_setting_on_three_seeds():
    from fmlm.experiment.presets import PRESETS

    e = PRESETS["embedded"]().evaluation
    assert len(e.seeds) >= 3 and not set(e.seeds) & set(e.validation_seeds)


def test_exact_testbed_choice_uses_excess_nll_plus_bigram_kl():
    # exact scores 0.9, 0.4, 0.7: the lowest wins even where MAUVE and gen PPL would pick others
    points = [Point(1.0, 0.9, 10.0, exact=0.9), Point(3.0, 0.1, 90.0, exact=0.4), Point(5.0, 0.5, 5.0, exact=0.7)]
    assert choose(points)[:2] == (3.0, "exact")
    # one point without it: the MAUVE rule applies to the whole sweep
    assert choose([Point(1.0, 0.9, 10.0, exact=0.9), Point(3.0, 0.1, 90.0)])[:2] == (1.0, "mauve")
    sweep = Sweep("flow-map", "w")
    records = [{"model": "flow-map", "sweep": "w", "seed": 7, "w": 2.0, "gen_ppl": 30.0,
                "excess_nll": 0.25, "bigram_kl": 0.5}]
    assert sweep_points(records, sweep, [7])[0].exact == 0.75


def test_no_sc_teacher_is_sampled_at_the_teacher_few_steps():
    cfg = ExperimentConfig(evaluation=EvalConfig(teacher_few_steps=(1, 4)))
    nosc = {(c.steps, c.sc_mode) for m, c, sweep in evaluation_plan(cfg) if m == "teacher-nosc" and sweep is None}
    assert {(1, "none"), (4, "none"), (32, "none")} <= nosc


def test_a_sharpened_sweep_point_does_not_win_by_a_negative_excess_nll():
    sweep = Sweep("teacher", "churn")
    records = [{"model": "teacher", "sweep": "churn", "seed": 7, "churn": 1.5, "gen_ppl": 20.0,
                "excess_nll": -0.5, "bigram_kl": 1.0}]
    assert sweep_points(records, sweep, [7])[0].exact == 1.5


def test_the_exact_denoiser_is_sampled_only_on_the_exact_testbed():
    from fmlm.experiment.presets import PRESETS
    from fmlm.experiment.run_folder import EXACT_MODEL

    exact = PRESETS["exact"]()
    rows = {(c.kind, c.steps, c.sc_mode, sweep) for m, c, sweep in evaluation_plan(exact) if m == EXACT_MODEL}
    e = exact.evaluation
    assert {("sde", n, "none", None) for n in (e.teacher_steps, *e.teacher_few_steps)} <= rows
    assert {("euler", n, "none", "ode") for n in e.ode_steps} <= rows
    assert not [m for m, _, _ in evaluation_plan(PRESETS["embedded"]()) if m == EXACT_MODEL]
