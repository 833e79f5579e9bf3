"""build_report end to end, the plots, the command line and the no-torch guarantee."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fmlm.reports import build_report
from fmlm.reports.__main__ import main
from fmlm.reports.aggregate import summarize
from fmlm.reports.build import PLOTS, TABLES
from fmlm.reports.plots import ppl_vs_entropy
from tests.reports.fake_run import full_records, record, report_in_fresh_python, write_run

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FP = {"teacher_first_iterate_dist": 0.5, "student_dist": 0.1, "n_rows": 64}


def _run_python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_full_run_writes_every_table_and_plot(tmp_path):
    run = write_run(tmp_path / "run", full_records(), fixed_point=FP)
    report = build_report(run)
    out = run / "report"
    assert report == out / "report.md"
    for name in (*TABLES, *PLOTS):
        assert (out / name).is_file(), name
        assert f"({name})" in report.read_text(), name
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    text = report.read_text()
    assert "preset `tiny`" in text and "evaluator `smollm2-135m`" in text and "seeds: [0, 1, 2]" in text
    assert "110.00 ± 10.00 / 5.20 ± 0.20 (n=3)" in text and "0 PASS, 0 FAIL, 12 unresolved, 7 not measured" in text  # one seed a side
    assert "- no results for ELF (no SC) (teacher-nosc)" in text
    assert not list(out.glob(".*.tmp"))


def test_only_the_teacher_finished(tmp_path):
    run = write_run(tmp_path / "run", [record("teacher", 32, 40.0, 5.3, sc_mode="warm")], timing=False,
                    metrics=False)
    report = build_report(run, tmp_path / "out")
    text = report.read_text()
    for line in ("- no results for FMLM* (flow-map)", "- timing.json is missing",
                 "- fixed_point.json is missing (optional)", "- no training curves",
                 "ppl_vs_entropy.png: not written (no records with sweep in ['w', 'gamma', 'churn'])",
                 "training_curves.png: not written"):
        assert line in text, line
    assert "not measured" in (tmp_path / "out" / "main_table.md").read_text()
    assert (tmp_path / "out" / "ppl_vs_steps.png").is_file()
    assert not (tmp_path / "out" / "ppl_vs_entropy.png").exists()


def test_unreadable_optional_file_is_a_note_not_an_error(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    (run / "timing.json").write_text("{not json")
    text = build_report(run).read_text()
    assert "timing.json is unreadable and was skipped" in text


def test_stale_plot_is_removed(tmp_path):
    run = write_run(tmp_path / "run", [record("teacher", 32, 40.0, 5.3)])
    stale = run / "report" / "ppl_vs_entropy.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG_MAGIC)
    build_report(run)
    assert not stale.exists()


def test_sweep_plot_lists_points_it_cannot_draw(tmp_path):
    from fmlm.reports.loading import load_results

    recs = [record("flow-map", 1, p, 5.0, w=w, sweep="w") for w, p in ((1.0, 90.0), (3.0, float("inf")))]
    summary = summarize(load_results(write_run(tmp_path / "run", recs)))
    notes = ppl_vs_entropy(summary, tmp_path / "sweep.png")
    assert notes == ["sweep.png: FMLM* w=3.0 not drawn (gen PPL inf, entropy 5.00)"]
    assert (tmp_path / "sweep.png").read_bytes().startswith(PNG_MAGIC)


def test_cli_bad_folder_exits_2_with_one_line(tmp_path):
    proc = _run_python("-m", "fmlm.reports", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a run folder" in proc.stderr
    assert proc.stdout == ""


def test_cli_malformed_results_exits_2(tmp_path, capsys):
    run = write_run(tmp_path / "run", full_records()[:2])
    with open(run / "results.jsonl", "a") as handle:
        handle.write("{broken\n")
    assert main([str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.jsonl:3: invalid JSON" in err


def test_cli_prints_the_report_path(tmp_path, capsys):
    run = write_run(tmp_path / "run", [record("teacher", 32, 40.0, 5.3)], metrics=False)
    assert main([str(run), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "o" / "report.md")


def test_reports_never_imports_torch(tmp_path):
    run = write_run(tmp_path / "run", full_records(), fixed_point=FP)
    proc = report_in_fresh_python(run)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("report.md")


def test_null_stage_time_prints_nan(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    (run / "timing.json").write_text('{"stages": {"train teacher": null, "evaluate": 7.0}, "total_s": null}')
    text = build_report(run).read_text()
    assert "| train teacher | nan       | nan     |" in text


def test_out_below_a_file_is_one_clear_error(tmp_path, capsys):
    run = write_run(tmp_path / "run", full_records())
    (tmp_path / "file").write_text("x")
    assert main([str(run), "--out", str(tmp_path / "file" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out_dir: cannot create" in err


def test_mixed_sample_counts_are_noted(tmp_path):
    recs = [record("teacher", 32, 40.0, 5.3, seed=0), {**record("teacher", 32, 50.0, 5.3, seed=1), "n_samples": 64}]
    text = build_report(write_run(tmp_path / "run", recs)).read_text()
    assert "averages records of different sample counts" in text


def test_fmlm_report_is_the_same_command(tmp_path, capsys):
    from fmlm.cli import main as fmlm_main

    run = write_run(tmp_path / "run", [record("teacher", 32, 40.0, 5.3)], metrics=False)
    (tmp_path / "empty").mkdir()
    for argv, code in (([str(run), "--out", str(tmp_path / "o")], 0), ([str(tmp_path / "empty")], 2)):
        results = []
        for command in (main, lambda a: fmlm_main(["report", *a])):
            exit_code = command(argv)
            captured = capsys.readouterr()
            results.append((exit_code, captured.out, captured.err))
        assert results[0] == results[1] and results[0][0] == code, results
