"""PASS / FAIL logic of the measured comparisons, on crafted numbers (both outcomes)."""

from __future__ import annotations

import math

import pytest

import numpy as np

from fmlm.reports.comparisons import (FAIL, MIN_SEEDS, NOT_MEASURED, PASS, UNRESOLVED, at_least_factor, closer,
                                      compare, comparisons_markdown, entropy_close, higher, judge, lower_ppl,
                                      within_factor)
from fmlm.reports.aggregate import summarize
from fmlm.reports.loading import load_results
from fmlm.reports.seed_samples import SeedSamples
from tests.reports.fake_run import full_records, record, with_distribution, write_run

FP_GOOD = {"teacher_first_iterate_dist": 0.5, "student_dist": 0.1, "n_rows": 4,
           "teacher_first_iterate_dists": [0.5, 0.45, 0.55, 0.5], "student_dists": [0.1, 0.12, 0.08, 0.1]}
FP_AVERAGES = {"teacher_first_iterate_dist": 0.5, "student_dist": 0.1, "n_rows": 64}
SEED_FACTORS = (1.0, 1.01, 0.99)
"""Headline records on 3 seeds: gen PPL x these factors, entropy + 0.01 (factor - 1) x 100 / 100 (MAUVE kept)."""


def three_seeds(records):
    """Every headline record with one seed repeated on seeds 0, 1, 2 (its gen PPL and entropy moved a little)."""
    out = []
    for r in records:
        if r["sweep"] is not None or r["model"] == "flow-map" and r["steps"] == 1:  # FMLM* 1 step has 3 seeds
            out.append(r)
            continue
        for seed, f in enumerate(SEED_FACTORS):
            out.append({**r, "seed": seed, "id": f"{r['id']}_{seed}", "samples_file": f"eval/{r['id']}_{seed}.jsonl",
                        "gen_ppl": r["gen_ppl"] * f, "entropy": r["entropy"] + (f - 1.0)})
    return out


def _results(tmp_path, records, fixed_point=FP_GOOD):
    run = write_run(tmp_path / "run", records)
    results = load_results(run)
    return {c.check: c for c in compare(summarize(results), fixed_point, SeedSamples(run, results))}


def _replace(records, model, steps, **values):
    out = []
    for r in records:
        if r["model"] == model and r["steps"] == steps and r["sweep"] is None:
            r = {**r, **values}
        out.append(r)
    return out


def _seeds(*per_seed):
    return [np.atleast_1d(np.asarray(v, dtype=float)) for v in per_seed]


@pytest.mark.parametrize("rule, stat, left, right, expected", [
    # gen PPL as (nll_sum, n_tokens) rows: log PPL 3 seeds at log 100 vs log 200 -> -0.69, no spread
    (lower_ppl(), "gen_ppl", [[[math.log(100), 1.0]]] * 3, [[[math.log(200), 1.0]]] * 3, PASS),
    (lower_ppl(), "gen_ppl", [[[math.log(200), 1.0]]] * 3, [[[math.log(100), 1.0]]] * 3, FAIL),
    (within_factor(3.0), "gen_ppl", [[[math.log(119), 1.0]]] * 3, [[[math.log(40), 1.0]]] * 3, PASS),
    (within_factor(3.0), "gen_ppl", [[[math.log(121), 1.0]]] * 3, [[[math.log(40), 1.0]]] * 3, FAIL),
    (entropy_close(), "entropy", _seeds(5.2, 5.25, 5.3), _seeds(5.0, 5.0, 5.0), PASS),  # 0.2-0.3 - 0.5 < 0
    (entropy_close(), "entropy", _seeds(5.6, 5.65, 5.7), _seeds(5.0, 5.0, 5.0), FAIL),
    (entropy_close(), "entropy", _seeds(5.0, 5.4, 5.8), _seeds(5.0, 5.0, 5.0), UNRESOLVED),  # t straddles 0
    (higher(), "mauve", _seeds(0.6, 0.61, 0.62), _seeds(0.2, 0.21, 0.22), PASS),
    (at_least_factor(0.5), "mauve", _seeds(0.3, 0.31, 0.29), _seeds(0.9, 0.9, 0.9), FAIL),
    (closer(4.2, "H"), "entropy", _seeds(4.0, 4.0, 4.0), _seeds(0.5, 0.5, 0.5), PASS),
    (closer(4.2, "H"), "entropy", _seeds(0.5, 0.5, 0.5), _seeds(4.0, 4.0, 4.0), FAIL),
    (lower_ppl(), "gen_ppl", [[[math.nan, 1.0]]] * 3, [[[1.0, 1.0]]] * 3, f"{FAIL} (non-finite value)"),
])
def test_rules(rule, stat, left, right, expected):
    assert judge(rule, left, right, stat)[1] == expected


def test_one_seed_is_unresolved_however_clear():
    # 1 seed of 2 samples a side, log PPL 4.6 vs 6.0: the bootstrap alone is tight, but one seed is not enough
    left, right = [[[46.0, 10.0], [46.2, 10.0]]], [[[60.0, 10.0], [60.2, 10.0]]]
    text, result = judge(lower_ppl(), left, right, "gen_ppl")
    assert result == f"{UNRESOLVED} (1 seed < {MIN_SEEDS})" and "bootstrap" in text
    assert judge(higher(), _seeds(0.6), _seeds(0.2), "mauve")[1] == f"{UNRESOLVED} (no interval)"


MAUVE = {("teacher", 1): 0.2, ("teacher", 4): 0.4, ("teacher", 32): 0.9, ("flow-map-nosc", 1): 0.3,
         ("flow-map-nosc", 2): 0.35, ("flow-map-nosc", 4): 0.4}


def _with_mauve(records, mauve=MAUVE):
    """``records`` with MAUVE on the teacher's and FMLM's headlines, and FMLM at 2 steps added."""
    records = records + [record("flow-map-nosc", 2, 150.0, 5.15, w=5.0, gamma=0.75)]
    return [with_distribution(r, mauve[(r["model"], r["steps"])])
            if r["sweep"] is None and (r["model"], r["steps"]) in mauve else r for r in records]


MAUVE_CHECKS = ["MAUVE: FMLM* 1 step vs ELF 1 step", "MAUVE: FMLM* 1 step vs ELF 4 steps",
                "MAUVE: FMLM* 4 steps vs ELF many steps"] + [
    f"{kind} at {n}" for n in ("1 step", "2 steps", "4 steps") for kind in ("FMLM* beats FMLM", "MAUVE: FMLM* vs FMLM")]


def test_everything_passes_on_good_numbers(tmp_path):
    results = _results(tmp_path, three_seeds(_with_mauve(full_records())))
    assert list(results)[10:] == MAUVE_CHECKS
    # FMLM* 1 step's seeds spread: entropies 5.0 / 5.2 / 5.4 against ELF 1 step's 4.9 (+-0.01) give
    # |H_a - H_b| - 0.49 = -0.39, -0.20, +0.02, and MAUVE 0.5 / 0.6 / 0.7 against ELF 4 steps' 0.4 gives
    # differences 0.1 - 0.3 (t half-width 0.25): both intervals straddle zero; everything else passes
    unresolved = {"entropy: FMLM* 1 step vs ELF 1 step", "MAUVE: FMLM* 1 step vs ELF 4 steps"}
    assert {k: c.result for k, c in results.items()} == {k: UNRESOLVED if k in unresolved else PASS for k in results}
    assert "t over 3 seeds + bootstrap" in results["FMLM* 1 step beats ELF 1 step"].difference
    assert "MAUVE 0.6000 ± 0.1000" in results["MAUVE: FMLM* 1 step vs ELF 1 step"].left
    beat1 = results["FMLM* 1 step beats ELF 1 step"]
    assert "110.00 ± 10.00" in beat1.left and "400.00" in beat1.right
    assert "32 steps" in results["FMLM* 4 steps within 3x of ELF many steps"].right


def test_each_check_fails_on_crafted_numbers(tmp_path):
    recs = _replace(full_records(), "teacher", 1, gen_ppl=60.0, entropy=4.0)      # teacher 1 step beats FMLM*
    recs = _replace(recs, "flow-map", 4, gen_ppl=121.0, entropy=6.0)              # > 3 x 40, entropy off
    recs = _replace(recs, "untrained", 32, gen_ppl=30.0)                          # untrained "beats" ELF
    results = _results(tmp_path, three_seeds(recs), {"teacher_first_iterate_dist": 0.5, "student_dist": 0.6,
                                                     "teacher_first_iterate_dists": [0.5, 0.4, 0.6],
                                                     "student_dists": [0.6, 0.55, 0.65]})
    for check in ("FMLM* 1 step beats ELF 1 step", "entropy: FMLM* 1 step vs ELF 1 step",
                  "FMLM* 4 steps within 3x of ELF many steps", "entropy: FMLM* 4 steps vs ELF many steps",
                  "ELF beats the untrained network", "ELF* one forward is closer to s* than the teacher's F(0)"):
        assert results[check].result == FAIL, check
    assert results["FMLM* 1 step beats ELF 4 steps"].result == PASS


def test_missing_records_say_not_measured(tmp_path):
    results = _results(tmp_path, [record("teacher", 32, 40.0, 5.3)], fixed_point=None)
    assert all(c.result == NOT_MEASURED for c in results.values())
    assert "FMLM* 1 step: not measured" in results["FMLM* 1 step beats ELF 1 step"].left
    text = comparisons_markdown(list(results.values()))
    assert "0 PASS, 0 FAIL, 0 unresolved, 17 not measured" in text and "difference [95% interval]" in text


def test_mauve_checks_fail_where_gen_ppl_is_won_by_repetition(tmp_path):
    # FMLM* at 4 steps repeats itself: a gen PPL below everything, MAUVE near zero
    recs = _replace(_with_mauve(full_records()), "flow-map", 4, gen_ppl=5.0, mauve=0.01)
    results = _results(tmp_path, three_seeds(recs))
    assert results["FMLM* 4 steps within 3x of ELF many steps"].result == PASS
    assert results["FMLM* beats FMLM at 4 steps"].result == PASS
    assert results["MAUVE: FMLM* 4 steps vs ELF many steps"].result == FAIL
    assert results["MAUVE: FMLM* vs FMLM at 4 steps"].result == FAIL
    assert results["MAUVE: FMLM* 1 step vs ELF 1 step"].result == PASS


def test_mauve_checks_are_not_measured_without_mauve(tmp_path):
    results = _results(tmp_path, three_seeds(full_records()))  # the teacher's and FMLM's records carry no MAUVE
    assert [results[c].result for c in MAUVE_CHECKS if c.startswith("MAUVE")] == [NOT_MEASURED] * 6
    assert results["FMLM* beats FMLM at 1 step"].result == PASS
    assert results["FMLM* beats FMLM at 2 steps"].result == NOT_MEASURED  # no FMLM record at 2 steps


def test_many_step_teacher_needs_enough_steps(tmp_path):
    recs = [r for r in full_records() if not (r["model"] == "teacher" and r["steps"] == 32)]
    results = _results(tmp_path, three_seeds(recs))
    assert results["FMLM* 4 steps within 3x of ELF many steps"].result == NOT_MEASURED
    assert results["FMLM* 1 step beats ELF 4 steps"].result == PASS


def test_several_headline_settings_are_all_checked(tmp_path):
    recs = three_seeds(full_records() + [record("teacher", 1, 50.0, 5.1, sampler="euler", w=3.0)])
    run = write_run(tmp_path / "run", recs)
    results = load_results(run)
    beat1 = [c for c in compare(summarize(results), None, SeedSamples(run, results))
             if c.check == "FMLM* 1 step beats ELF 1 step"]
    assert sorted(c.result for c in beat1) == [FAIL, PASS]


def test_the_fixed_point_check_bootstraps_its_rows_or_has_no_interval(tmp_path):
    per_row = FP_GOOD
    check = "ELF* one forward is closer to s* than the teacher's F(0)"
    with_rows = _results(tmp_path / "a", three_seeds(full_records()), per_row)[check]
    assert with_rows.result == PASS and "paired bootstrap over rows" in with_rows.difference
    assert with_rows.difference.startswith("-0.4 [")  # 0.1 - 0.5
    averages = _results(tmp_path / "b", three_seeds(full_records()), FP_AVERAGES)[check]
    assert averages.result == f"{UNRESOLVED} (no interval)" and "one value, no interval" in averages.difference


def test_one_seed_runs_are_unresolved_with_their_intervals(tmp_path):
    results = _results(tmp_path, full_records())  # every headline but FMLM* 1 step on one seed
    beat = results["FMLM* 1 step beats ELF 1 step"]
    assert beat.result == f"{UNRESOLVED} (1 seed < {MIN_SEEDS})" and "bootstrap" in beat.difference
