"""Main, side, cost and self-conditioning tables."""

from __future__ import annotations

import pytest

from fmlm.reports.aggregate import summarize
from fmlm.reports.loading import load_results
from fmlm.reports.paper import PAPER_GEN_PPL_ENTROPY
from fmlm.reports.tables import NOT_MEASURED, cost_table, main_table, sc_table, side_table
from tests.reports.fake_run import full_records, markdown_rows, record, write_run

MEASURED = ("measured: FMLM (flow-map-nosc)", "measured: FMLM* (flow-map)")
QUOTED = ("paper (quoted): FMLM", "paper (quoted): FMLM*")


@pytest.fixture
def summary(tmp_path):
    return summarize(load_results(write_run(tmp_path / "run", full_records())))


def test_main_table_holds_measured_numbers(summary):
    rows = {r["steps"]: r for r in markdown_rows(main_table(summary))}
    assert list(rows) == ["1", "2", "4"]
    assert rows["1"][MEASURED[1]] == "110.00 ± 10.00 / 5.20 ± 0.20 (n=3)"
    assert rows["2"][MEASURED[1]] == "95.50 / 5.30"
    assert rows["4"][MEASURED[0]] == "115.00 / 5.20"
    assert rows["2"][MEASURED[0]] == NOT_MEASURED


def test_quoted_block_is_labelled_and_holds_the_papers_numbers(summary):
    text = main_table(summary)
    assert "quoted from the paper" in text and "OpenWebText" in text and "GPT-2 Large" in text
    rows = {r["steps"]: r for r in markdown_rows(text)}
    for model, col in zip(("flow-map-nosc", "flow-map"), QUOTED):
        for steps, (ppl, ent) in PAPER_GEN_PPL_ENTROPY[model].items():
            assert rows[str(steps)][col] == f"{ppl:.2f} / {ent:.2f}"
    measured_cells = " ".join(rows[s][c] for s in rows for c in MEASURED)
    assert "112.52" not in measured_cells and "168.30" not in measured_cells


def test_extra_measured_steps_get_a_row_without_quoted_numbers(tmp_path):
    run = write_run(tmp_path / "run", [record("flow-map", 8, 70.0, 5.4, w=5.0, gamma=1.0)])
    rows = {r["steps"]: r for r in markdown_rows(main_table(summarize(load_results(run))))}
    assert rows["8"][MEASURED[1]] == "70.00 / 5.40" and rows["8"][QUOTED[1]] == "-"


def test_side_table_has_teachers_at_their_own_steps_and_the_reference(summary):
    rows = markdown_rows(side_table(summary))
    by = {(r["model"], r["steps"]): r["gen PPL / entropy"] for r in rows}
    assert by[("ELF (teacher)", "32")] == "40.00 / 5.30"
    assert by[("ELF* (fixed-point)", "32")] == "45.00 / 5.30"
    assert by[("held-out real text (reference)", "0")] == "20.00 / 5.60"
    assert by[("ELF (no SC) (teacher-nosc)", "-")] == NOT_MEASURED


def test_cost_table_has_one_row_per_setting(summary):
    rows = markdown_rows(cost_table(summary))
    assert len(rows) == len(summary)
    cold8 = [r for r in rows if r["setting"].endswith("N=8 picard")]
    assert len(cold8) == 1 and cold8[0]["NFE / sample"] == "256" and cold8[0]["wall ms / sample"] == "100.00"
    star1 = [r for r in rows if r["model"] == "FMLM* (flow-map)" and r["steps"] == "1" and r["sweep"] == "-"]
    assert star1[0]["gen PPL"] == "110.00 ± 10.00" and star1[0]["n"] == "3"


def test_sc_table_orders_warm_none_cold(summary):
    rows = markdown_rows(sc_table(summary))
    assert [(r["sc mode"], r["N iterations"]) for r in rows] == [
        ("warm", "-"), ("none", "-"), ("cold", "1"), ("cold", "2"), ("cold", "4"), ("cold", "8")]
    assert rows[0]["source"] == "headline" and rows[0]["gen PPL"] == "40.00"
    assert rows[5]["gen PPL"] == "30.00" and rows[5]["NFE / sample"] == "256"


def test_sc_table_says_when_the_sweep_is_missing(tmp_path):
    run = write_run(tmp_path / "run", [record("teacher", 32, 40.0, 5.3, sc_mode="warm")])
    text = sc_table(summarize(load_results(run)))
    assert f"is {NOT_MEASURED}" in text and markdown_rows(text)[0]["sc mode"] == "warm"


def test_non_finite_numbers_are_printed_as_such(tmp_path):
    recs = [record("flow-map", 1, float("inf"), 5.0), record("flow-map", 2, float("nan"), 5.0)]
    rows = {r["steps"]: r for r in markdown_rows(main_table(summarize(load_results(write_run(tmp_path / "r", recs)))))}
    assert rows["1"][MEASURED[1]] == "inf / 5.00" and rows["2"][MEASURED[1]] == "nan / 5.00"
