"""Grouping of repeats over seeds, mean / std and number formatting."""

from __future__ import annotations

import math

import pytest
from tests.reports.fake_run import full_records, record, write_run

from fmlm.reports.aggregate import headline, mean_std, summarize
from fmlm.reports.formatting import fmt_num, fmt_ppl_entropy
from fmlm.reports.loading import load_results


def test_mean_and_sample_std_over_seeds(tmp_path):
    summary = summarize(load_results(write_run(tmp_path / "run", full_records())))
    row = headline(summary, "flow-map", 1).iloc[0]
    assert row["n_records"] == 3 and row["seeds"] == (0, 1, 2)
    assert row["gen_ppl_mean"] == pytest.approx(110.0)
    assert row["gen_ppl_std"] == pytest.approx(10.0)  # sample std (ddof = 1) of 100, 110, 120
    assert row["entropy_mean"] == pytest.approx(5.2)
    assert row["entropy_std"] == pytest.approx(0.2)
    assert fmt_ppl_entropy(row) == "110.00 ± 10.00 / 5.20 ± 0.20 (n=3)"


def test_headline_and_sweep_point_are_kept_apart(tmp_path):
    summary = summarize(load_results(write_run(tmp_path / "run", full_records())))
    same = summary[(summary["model"] == "flow-map") & (summary["steps"] == 1) & (summary["w"] == 5.0)]
    assert sorted(str(s) for s in same["sweep"]) == ["None", "w"]
    assert len(summary) == len(full_records()) - 2  # only the three FMLM* 1-step seeds merge


def test_one_record_has_no_std(tmp_path):
    summary = summarize(load_results(write_run(tmp_path / "run", [record("teacher", 4, 50.0, 5.0)])))
    row = summary.iloc[0]
    assert row["n_records"] == 1 and math.isnan(row["gen_ppl_std"])
    assert fmt_ppl_entropy(row) == "50.00 / 5.00"


def test_non_finite_values_are_not_skipped():
    mean, std = mean_std([100.0, math.nan])
    assert math.isnan(mean) and math.isnan(std)
    mean, _ = mean_std([100.0, math.inf])
    assert mean == math.inf


@pytest.mark.parametrize("value, text", [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"),
                                         (93.456, "93.46"), (None, "-")])
def test_fmt_num(value, text):
    assert fmt_num(value) == text
