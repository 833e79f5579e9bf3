"""PASS / FAIL logic of the measured comparisons, on crafted numbers (both outcomes)."""

from __future__ import annotations

import math

import pytest

from fmlm.reports.comparisons import (FAIL, NOT_MEASURED, PASS, compare, comparisons_markdown, entropy_close, lower,
                                 within_factor)
from fmlm.reports.aggregate import summarize
from fmlm.reports.loading import load_results
from tests.reports.fake_run import full_records, record, with_distribution, write_run

FP_GOOD = {"teacher_first_iterate_dist": 0.5, "student_dist": 0.1, "n_rows": 64}


def _results(tmp_path, records, fixed_point=FP_GOOD):
    summary = summarize(load_results(write_run(tmp_path / "run", records)))
    return {c.check: c for c in compare(summary, fixed_point)}


def _replace(records, model, steps, **values):
    out = []
    for r in records:
        if r["model"] == model and r["steps"] == steps and r["sweep"] is None:
            r = {**r, **values}
        out.append(r)
    return out


@pytest.mark.parametrize("rule, args, expected", [
    (lower, (1.0, 2.0), PASS), (lower, (2.0, 2.0), FAIL), (lower, (3.0, 2.0), FAIL),
    (within_factor, (120.0, 40.0, 3.0), PASS), (within_factor, (120.1, 40.0, 3.0), FAIL),
    (entropy_close, (5.5, 5.0), PASS), (entropy_close, (5.51, 5.0), FAIL), (entropy_close, (4.49, 5.0), FAIL),
    (lower, (math.nan, 2.0), f"{FAIL} (non-finite value)"), (lower, (1.0, math.inf), f"{FAIL} (non-finite value)"),
])
def test_rules(rule, args, expected):
    assert rule(*args) == expected


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
    results = _results(tmp_path, _with_mauve(full_records()))
    assert list(results)[10:] == MAUVE_CHECKS
    assert [c.result for c in results.values()] == [PASS] * 19
    assert "MAUVE 0.6000 ± 0.1000" in results["MAUVE: FMLM* 1 step vs ELF 1 step"].left
    beat1 = results["FMLM* 1 step beats ELF 1 step"]
    assert "110.00 ± 10.00" in beat1.left and "400.00" in beat1.right
    assert "32 steps" in results["FMLM* 4 steps within 3x of ELF many steps"].right


def test_each_check_fails_on_crafted_numbers(tmp_path):
    recs = _replace(full_records(), "teacher", 1, gen_ppl=90.0, entropy=4.0)      # teacher 1 step beats FMLM*
    recs = _replace(recs, "flow-map", 4, gen_ppl=121.0, entropy=6.0)              # > 3 x 40, entropy off
    recs = _replace(recs, "untrained", 32, gen_ppl=30.0)                          # untrained "beats" ELF
    results = _results(tmp_path, recs, {"teacher_first_iterate_dist": 0.5, "student_dist": 0.6})
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
    assert "0 PASS, 0 FAIL, 17 not measured" in text


def test_mauve_checks_fail_where_gen_ppl_is_won_by_repetition(tmp_path):
    # FMLM* at 4 steps repeats itself: a gen PPL below everything, MAUVE near zero
    recs = _replace(_with_mauve(full_records()), "flow-map", 4, gen_ppl=5.0, mauve=0.01)
    results = _results(tmp_path, recs)
    assert results["FMLM* 4 steps within 3x of ELF many steps"].result == PASS
    assert results["FMLM* beats FMLM at 4 steps"].result == PASS
    assert results["MAUVE: FMLM* 4 steps vs ELF many steps"].result == FAIL
    assert results["MAUVE: FMLM* vs FMLM at 4 steps"].result == FAIL
    assert results["MAUVE: FMLM* 1 step vs ELF 4 steps"].result == PASS


def test_mauve_checks_are_not_measured_without_mauve(tmp_path):
    results = _results(tmp_path, full_records())  # the teacher's and FMLM's records carry no MAUVE
    assert [results[c].result for c in MAUVE_CHECKS if c.startswith("MAUVE")] == [NOT_MEASURED] * 6
    assert results["FMLM* beats FMLM at 1 step"].result == PASS
    assert results["FMLM* beats FMLM at 2 steps"].result == NOT_MEASURED  # no FMLM record at 2 steps


def test_many_step_teacher_needs_enough_steps(tmp_path):
    recs = [r for r in full_records() if not (r["model"] == "teacher" and r["steps"] == 32)]
    results = _results(tmp_path, recs)
    assert results["FMLM* 4 steps within 3x of ELF many steps"].result == NOT_MEASURED
    assert results["FMLM* 1 step beats ELF 4 steps"].result == PASS


def test_several_headline_settings_are_all_checked(tmp_path):
    recs = full_records() + [record("teacher", 1, 50.0, 5.1, sampler="euler", w=3.0)]
    summary = summarize(load_results(write_run(tmp_path / "run", recs)))
    beat1 = [c for c in compare(summary, None) if c.check == "FMLM* 1 step beats ELF 1 step"]
    assert sorted(c.result for c in beat1) == [FAIL, PASS]


def test_closer_rule_both_outcomes():
    from fmlm.reports.comparisons import closer

    assert closer(4.0, 0.5, 4.2) == "PASS"
    assert closer(0.5, 4.0, 4.2) == "FAIL"
    assert closer(float("nan"), 4.0, 4.2).startswith("FAIL")
