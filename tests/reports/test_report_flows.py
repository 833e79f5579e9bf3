"""Flow maps against the deterministic flows they distil, and ODE against SDE."""

from __future__ import annotations

from fmlm.reports.aggregate import summarize
from fmlm.reports.build import build_report
from fmlm.reports.flows import NOT_MEASURED, flows_table
from fmlm.reports.loading import load_results
from tests.reports.fake_run import full_records, markdown_rows, record, write_run

ODE = [
    record("fixed-point", 4, 160.0, 5.0, sampler="euler", w=5.0, sc_mode="none", sweep="ode"),
    record("fixed-point", 32, 100.0, 5.1, sampler="euler", w=5.0, sc_mode="none", sweep="ode"),
    record("teacher-nosc", 32, 230.0, 5.2, sampler="euler", sc_mode="none", sweep="ode"),
    record("teacher", 32, 120.0, 5.2, sampler="euler", w=3.0, sc_mode="warm", sweep="ode"),
]


def _section(text: str, title: str) -> str:
    return text.split(f"### {title}", 1)[1]


def _summary(tmp_path, records):
    return summarize(load_results(write_run(tmp_path / "run", records)))


def test_flow_maps_are_set_against_the_ode_they_distil(tmp_path):
    text = flows_table(_summary(tmp_path, full_records() + ODE))
    rows = markdown_rows(_section(text, "Flow maps vs the ODE they distil"))
    star = {r["steps k"]: r for r in rows if r["flow map (source ODE)"].startswith("FMLM*")}
    assert list(star) == ["1", "2", "4"]  # the source's most-steps row is the reference, not a row
    assert star["4"]["flow map at k"].startswith("80.00 / 5.35")
    assert star["4"]["source ODE at k"].startswith("160.00 / 5.00 [euler, w=5, sc=none]")
    assert star["4"]["source ODE at most steps"].startswith("100.00 / 5.10")
    assert star["4"]["ratio: flow map at k / ODE at most steps"] == "0.80"
    assert star["2"]["source ODE at k"] == NOT_MEASURED
    plain = {r["steps k"]: r for r in rows if r["flow map (source ODE)"].startswith("FMLM (")}
    assert plain["1"]["ratio: flow map at k / ODE at most steps"] == f"{170.0 / 230.0:.2f}"


def test_each_ode_is_set_against_the_same_models_sde_headline(tmp_path):
    text = flows_table(_summary(tmp_path, full_records() + ODE))
    rows = {r["model"]: r for r in markdown_rows(_section(text, "ODE vs SDE of the same model"))}
    assert rows["ELF"]["ratio: ODE / SDE gen PPL"] == "3.00"  # 120 / 40
    assert rows["ELF*"]["ratio: ODE / SDE gen PPL"] == "2.22"  # 100 / 45
    assert "ELF (no SC)" not in rows  # no SDE headline for it in this run


def test_without_ode_records_the_table_says_not_measured(tmp_path):
    text = flows_table(_summary(tmp_path, full_records()))
    rows = markdown_rows(_section(text, "Flow maps vs the ODE they distil"))
    assert all(r["source ODE at most steps"] == NOT_MEASURED and r["ratio: flow map at k / ODE at most steps"] == "-"
               for r in rows)
    assert flows_table(_summary(tmp_path / "empty", [record("reference", 0, 20.0, 5.6, nfe=0)])).endswith(
        f"{NOT_MEASURED}.\n")


def test_report_includes_the_flows_table(tmp_path):
    report = build_report(write_run(tmp_path / "run", full_records() + ODE))
    assert (report.parent / "flows_table.md").is_file()
    assert "Flow maps and the deterministic flows they distil" in report.read_text()
