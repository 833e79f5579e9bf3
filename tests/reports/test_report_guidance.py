"""The guidance-response table and its file."""

from __future__ import annotations

import json

import pytest

from fmlm.reports.build import build_report
from fmlm.reports.guidance import NOT_MEASURED, guidance_table
from fmlm.reports.loading import load_guidance
from tests.reports.fake_run import full_records, markdown_rows, write_run

GUIDANCE = {"w": 5.0, "n_rows": 4, "by_t": [{"t": 0.1, "response": 0.003, "target": 0.032, "ratio": 0.09375},
                                             {"t": 0.9, "response": 0.0, "target": 0.0, "ratio": None}]}


def test_table_shows_measured_ratios(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    (run / "guidance.json").write_text(json.dumps(GUIDANCE))
    rows = markdown_rows(guidance_table(load_guidance(run)))
    assert [r["t"] for r in rows] == ["0.10", "0.90"]
    assert rows[0]["ratio"] == "0.094" and rows[1]["ratio"] == "nan"
    assert "guidance_table.md" in build_report(run).read_text()


def test_absent_file_is_not_measured_and_malformed_file_is_refused(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    assert load_guidance(run) is None and NOT_MEASURED in guidance_table(None)
    (run / "guidance.json").write_text(json.dumps({"w": 5.0, "by_t": [{"t": 0.1, "response": "big"}]}))
    with pytest.raises(ValueError, match="by_t\\[0\\]"):
        load_guidance(run)
    report = build_report(run).read_text()  # the report still builds and says why the table is missing
    assert "guidance.json is unreadable" in report
