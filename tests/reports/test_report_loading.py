"""load_results and the other run-folder readers."""

from __future__ import annotations

import json
import math

import pytest
from tests.reports.fake_run import full_records, record, write_run

from fmlm.reports.loading import RESULT_COLUMNS, RunFolderError, load_results, load_stage_metrics


def test_load_results_reads_every_record(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    frame = load_results(run)
    assert len(frame) == len(full_records())
    assert list(frame.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    star = frame[(frame["model"] == "flow-map") & (frame["steps"] == 1) & frame["sweep"].isna()]
    assert sorted(star["gen_ppl"]) == [100.0, 110.0, 120.0]
    assert sorted(star["seed"]) == [0, 1, 2]


def test_nan_inf_and_null_numbers(tmp_path):
    recs = [record("teacher", 4, float("nan"), 5.0), record("teacher", 8, float("inf"), 5.0)]
    recs.append({**record("teacher", 16, 1.0, 5.0), "gen_ppl": None, "entropy": None})
    run = write_run(tmp_path / "run", recs)
    frame = load_results(run).set_index("steps")
    assert math.isnan(frame.loc[4, "gen_ppl"])
    assert frame.loc[8, "gen_ppl"] == math.inf
    assert math.isnan(frame.loc[16, "gen_ppl"]) and math.isnan(frame.loc[16, "entropy"])


def test_optional_keys_may_be_absent_and_extra_keys_are_kept(tmp_path):
    minimal = {"id": "a", "model": "teacher", "sampler": "euler", "steps": 4, "seed": 0, "gen_ppl": 9.0,
               "entropy": 5.0, "note": "extra"}
    run = write_run(tmp_path / "run", [minimal])
    frame = load_results(run)
    assert frame.loc[0, "label"] == "ELF"
    assert math.isnan(frame.loc[0, "w"])
    assert frame.loc[0, "note"] == "extra"


@pytest.mark.parametrize("key", ["gen_ppl", "steps", "model"])
def test_missing_required_key_names_line_and_key(tmp_path, key):
    recs = full_records()[:2]
    del recs[1][key]
    run = write_run(tmp_path / "run", recs)
    with pytest.raises(ValueError, match=rf"results.jsonl:2: missing key '{key}'"):
        load_results(run)


def test_wrong_type_is_rejected(tmp_path):
    run = write_run(tmp_path / "run", [{**record("teacher", 4, 9.0, 5.0), "steps": "4"}])
    with pytest.raises(ValueError, match="steps: expected an integer"):
        load_results(run)


def test_malformed_line_names_file_and_line(tmp_path):
    run = write_run(tmp_path / "run", full_records()[:3])
    with open(run / "results.jsonl", "a") as handle:
        handle.write('{"id": "trunc\n')  # a complete line that is not JSON: refused (a cut last line is not)
    with pytest.raises(ValueError, match=r"results.jsonl:4: invalid JSON"):
        load_results(run)


def test_not_a_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match="not a run folder"):
        load_results(tmp_path)
    with pytest.raises(RunFolderError, match="not a directory"):
        load_results(tmp_path / "absent")


def test_run_folder_without_results_is_empty(tmp_path):
    frame = load_results(write_run(tmp_path / "run", None))
    assert frame.empty and list(frame.columns) == list(RESULT_COLUMNS)


def test_stage_metrics_report_bad_lines_in_training_order(tmp_path):
    run = write_run(tmp_path / "run", None)
    with open(run / "stages" / "teacher" / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 99, "loss": 0.1}) + "\n{\"step\": 10")
    metrics = load_stage_metrics(run)
    assert list(metrics) == ["teacher", "fixed-point"]
    frame, bad = metrics["teacher"]
    assert bad == [12] and len(frame) == 11


def test_non_finite_numbers_as_the_experiment_writes_them(tmp_path):
    # fmlm.measure writes a non-finite gen PPL as the string str(float) since JSON has no literal for it
    recs = [{**record("teacher", 4, 1.0, 5.0), "gen_ppl": "inf"}, {**record("teacher", 8, 1.0, 5.0), "gen_ppl": "nan"}]
    frame = load_results(write_run(tmp_path / "run", recs)).set_index("steps")
    assert frame.loc[4, "gen_ppl"] == math.inf and math.isnan(frame.loc[8, "gen_ppl"])
    bad = write_run(tmp_path / "bad", [{**record("teacher", 4, 1.0, 5.0), "gen_ppl": "big"}])
    with pytest.raises(ValueError, match="gen_ppl: expected a number, got 'big'"):
        load_results(bad)


def test_invalid_utf8_names_the_file(tmp_path):
    run = write_run(tmp_path / "run", full_records()[:1])
    with open(run / "results.jsonl", "ab") as handle:
        handle.write(b"\xff\xfe\n")
    with pytest.raises(ValueError, match=r"results.jsonl: not UTF-8 text"):
        load_results(run)


def test_unreadable_stage_metrics_file_is_a_note(tmp_path):
    run = write_run(tmp_path / "run", None)
    path = run / "stages" / "teacher" / "metrics.jsonl"
    path.unlink()
    path.mkdir()
    with pytest.raises(ValueError, match="metrics.jsonl: cannot read"):
        load_stage_metrics(run)
    notes: list[str] = []
    assert list(load_stage_metrics(run, notes)) == ["fixed-point"]
    assert len(notes) == 1 and notes[0].startswith("training curve left out:") and "teacher" in notes[0]


def test_grid_separates_settings(tmp_path):
    from fmlm.reports.aggregate import summarize

    recs = [{**record("teacher", 4, 10.0, 5.0, seed=0), "grid": "quantile"},
            {**record("teacher", 4, 30.0, 5.0, seed=1), "grid": "uniform"}]
    summary = summarize(load_results(write_run(tmp_path / "run", recs)))
    assert sorted(summary["gen_ppl_mean"]) == [10.0, 30.0]


def test_a_cut_last_results_line_is_left_out_with_a_note(tmp_path):
    """A crash mid-append leaves half a line: the report leaves it out and says so; nothing is rewritten."""
    from fmlm.reports import build_report
    from fmlm.reports.loading import load_results

    good = {"id": "a", "model": "teacher", "sampler": "sde", "steps": 2, "seed": 0, "gen_ppl": 10.0, "entropy": 2.0}
    path = tmp_path / "results.jsonl"
    text = json.dumps(good) + "\n" + json.dumps({**good, "id": "b"})[:25]
    path.write_text(text)
    notes: list[str] = []
    assert list(load_results(tmp_path, notes)["id"]) == ["a"]
    assert notes and "line 2 was cut short" in notes[0]
    report = build_report(tmp_path, tmp_path / "report")
    assert "line 2 was cut short" in report.read_text() and path.read_text() == text
    path.write_text(json.dumps(good) + "\n{broken\n" + json.dumps(good) + "\n")  # a bad line inside: refused
    with pytest.raises(ValueError, match="results.jsonl:2: invalid JSON"):
        load_results(tmp_path)
