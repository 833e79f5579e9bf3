"""The released models' table (fmlm.reports.released): records scored the paper's way beside the quoted
numbers, only for run folders that hold such records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fmlm.reports.build import build_report
from fmlm.reports.loading import load_results
from fmlm.reports.released import QUOTED_COLUMN, released_table
from tests.reports.fake_run import full_records, markdown_rows, record, report_in_fresh_python, write_run

EXPERIMENT = {"preset": "released", "evaluator": "gpt2-large", "n": 1024, "length": 1024, "seed": 0,
              "models": {"flow-map": {"folder": "models/fmlm-star", "sha256": "ab" * 32, "file": "fmlm_star.ckpt"}}}


def paper(model: str, steps: int, ppl: float, entropy: float, *, seed: int = 0, n_scored: int = 1024,
          kept: tuple = (None, None), project: tuple = (None, None), **settings) -> dict:
    """A record as experiments/reproduce_released.py writes it."""
    rec = record(model, steps, ppl, entropy, seed=seed, n_samples=1024, **settings)
    rec.update(scoring="paper", n_scored=n_scored,
               gen_ppl_keep_empty=ppl if kept[0] is None else kept[0],
               entropy_keep_empty=entropy if kept[1] is None else kept[1],
               gen_ppl_project=ppl * 1.1 if project[0] is None else project[0],
               entropy_project=entropy + 0.01 if project[1] is None else project[1])
    return rec


def released_records() -> list[dict]:
    fm = dict(sampler="ctm", w=5.0)
    return [paper("teacher", 32, 40.5, 5.30, w=3.0, churn=1.5, sc_mode="warm", sampler="sde"),
            paper("flow-map", 1, 114.25, 5.36, n_scored=1021, kept=(114.25, 5.341), project=(98.5, 5.41),
                  gamma=1.0, **fm),
            paper("flow-map", 2, 96.0, 5.44, gamma=0.75, **fm),
            paper("flow-map", 4, 76.0, 5.40, gamma=1.0, **fm),
            paper("fixed-point", 32, 45.0, 5.28, w=3.0, sc_mode="none", sampler="euler")]


def write_released(root: Path, records: list[dict]) -> Path:
    run = write_run(root, records, metrics=False)
    (run / "experiment.json").write_text(json.dumps(EXPERIMENT))
    return run


def test_one_row_per_model_and_steps_beside_the_quoted_numbers(tmp_path):
    run = write_released(tmp_path / "run", released_records())
    body = released_table(load_results(run), EXPERIMENT)
    rows = markdown_rows(body)
    assert [(r["model"], r["steps"]) for r in rows] == [
        ("FMLM* (flow-map)", "1"), ("FMLM* (flow-map)", "2"), ("FMLM* (flow-map)", "4"),
        ("ELF (teacher)", "32"), ("ELF* (fixed-point)", "32")]
    one = rows[0]
    assert one["ours: paper scoring"] == "114.25 / 5.36"
    assert one["ours: blank samples kept"] == "114.25 / 5.34"
    assert one["ours: project framing"] == "98.50 / 5.41"
    assert one["scored"] == "1021 of 1024" and one["setting"] == "w=5, gamma=1" and one["NFE"] == "2"
    assert [r[QUOTED_COLUMN] for r in rows] == ["112.52 / 5.37", "94.74 / 5.45", "75.22 / 5.41", "-", "-"]
    assert "1024 samples of 1024 tokens per setting, evaluator `gpt2-large`" in body
    assert "quoted from the paper" in body


def test_seeds_are_averaged_and_non_finite_numbers_shown(tmp_path):
    recs = [paper("flow-map", 1, 100.0, 5.0, seed=0, n_scored=1000, gamma=1.0, w=5.0, sampler="ctm"),
            paper("flow-map", 1, 120.0, 5.2, seed=1, n_scored=1010, gamma=1.0, w=5.0, sampler="ctm",
                  project=("inf", None))]
    recs[1]["gen_ppl_keep_empty"] = None
    rows = markdown_rows(released_table(load_results(write_released(tmp_path / "run", recs))))
    assert len(rows) == 1
    row = rows[0]
    assert row["seeds"] == "0, 1" and row["scored"] == "2010 of 2048"
    assert row["ours: paper scoring"] == "110.00 ± 14.14 / 5.10 ± 0.14"
    assert row["ours: project framing"].startswith("inf ± nan / ")
    assert row["ours: blank samples kept"].startswith("nan ± nan / ")


def test_only_records_scored_the_papers_way_are_listed(tmp_path):
    recs = full_records() + [paper("flow-map", 1, 114.25, 5.36, gamma=1.0, w=5.0, sampler="ctm", seed=7)]
    rows = markdown_rows(released_table(load_results(write_run(tmp_path / "run", recs))))
    assert [(r["model"], r["steps"], r["seeds"]) for r in rows] == [("FMLM* (flow-map)", "1", "7")]
    assert released_table(load_results(write_run(tmp_path / "plain", full_records()))) is None
    assert released_table(pd.DataFrame()) is None


def test_the_report_has_the_table_only_for_released_runs(tmp_path):
    run = write_released(tmp_path / "run", released_records())
    text = build_report(run).read_text()
    table = (run / "report" / "released_table.md").read_text()
    assert table.startswith("# Released models") and "112.52 / 5.37" in table
    assert "([released_table.md](released_table.md))" in text and text.index("released_table.md") < text.index(
        "main_table.md")
    # an ordinary run: no table, no section, and a stale table from an earlier report is removed
    plain = write_run(tmp_path / "plain", full_records())
    (plain / "report").mkdir()
    (plain / "report" / "released_table.md").write_text("stale")
    text = build_report(plain).read_text()
    assert not (plain / "report" / "released_table.md").exists() and "released_table" not in text


def test_a_released_report_imports_neither_torch_nor_fmlm(tmp_path):
    run = write_released(tmp_path / "run", released_records())
    proc = report_in_fresh_python(run)
    assert (run / "report" / "released_table.md").is_file()
    assert proc.returncode == 0, proc.stderr
