"""MAUVE / distinct-n / rep-4 in the reports: the schema, the diversity and sweep tables, samples.md, the plot."""

from __future__ import annotations

import re

import json
import math
from pathlib import Path

import pytest

from fmlm.reports import build_report
from fmlm.reports.aggregate import summarize
from fmlm.reports.formatting import missing
from fmlm.reports.gallery import N_SHOWN, escape_cell
from fmlm.reports.loading import load_results
from fmlm.reports.plots import mauve_vs_steps
from fmlm.reports.sweeps import choose, sweep_table
from fmlm.reports.tables import diversity_table
from tests.reports.fake_run import full_records, markdown_rows, record, with_distribution, write_run

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "reports" / "embedded"


def _summary(tmp_path, records):
    results = load_results(write_run(tmp_path / "run", records))
    return results, summarize(results)


# --- the schema: new keys optional, old folders load ---

def test_new_keys_load_and_old_records_lack_them(tmp_path):
    new = with_distribution(record("flow-map", 1, 100.0, 5.0, w=5.0, gamma=1.0), 0.42, rep4="nan")
    old = record("teacher", 32, 40.0, 5.3, sc_mode="warm")
    frame = load_results(write_run(tmp_path / "run", [new, old]))
    row_new, row_old = frame.iloc[0], frame.iloc[1]
    assert row_new["mauve"] == 0.42 and row_new["mauve_n"] == 8 and math.isnan(row_new["rep4"])
    assert row_new["mauve_features"] == "fake-lm mean-pooled last hidden state"
    assert math.isnan(row_old["mauve"]) and math.isnan(row_old["distinct_2"])
    assert missing(row_old["mauve_features"]) and missing(row_old["mauve_n"])


def test_a_mistyped_new_key_names_the_line(tmp_path):
    bad = dict(record("flow-map", 1, 100.0, 5.0), mauve="high")
    with pytest.raises(ValueError, match=r"results.jsonl:1: mauve: expected a number, got 'high'"):
        load_results(write_run(tmp_path / "run", [bad]))


# --- the diversity table ---

def test_diversity_table_shows_mauve_beside_gen_ppl(tmp_path):
    _, summary = _summary(tmp_path, full_records())
    text = diversity_table(summary)
    rows = markdown_rows(text[text.index("| model"):])
    star1 = next(r for r in rows if r["model"] == "FMLM* (flow-map)" and r["steps"] == "1" and r["sweep"] == "-")
    assert star1["MAUVE"] == "0.600 ± 0.100" and star1["gen PPL"] == "110.00 ± 10.00"
    assert star1["rep-4"] == "0.050 ± 0.000"
    assert star1["MAUVE samples / reference / buckets"] == "8 / 8 / 2"
    nosc = next(r for r in rows if r["model"] == "FMLM (flow-map-nosc)" and r["steps"] == "1")
    assert nosc["MAUVE"] == nosc["distinct-2"] == "not measured"
    ref = next(r for r in rows if r["model"] == "held-out real text (reference)")
    assert ref["MAUVE"] == "0.950" and ref["distinct-2"] == "0.800"
    for claim in ("gen PPL** (lower = text the evaluator finds likely) rewards repetition",
                  "rewards random tokens", "DIFFERENT held-out slice", "depends on the feature choice"):
        assert claim in text, claim
    assert "MAUVE features: `fake-lm mean-pooled last hidden state`" in text


def test_a_run_without_the_metrics_says_not_measured(tmp_path):
    _, summary = _summary(tmp_path, [record("teacher", 32, 40.0, 5.3, sc_mode="warm")])
    text = diversity_table(summary)
    assert "No record of this run folder carries MAUVE or distinct-n" in text
    assert markdown_rows(text[text.index("| model"):])[0]["MAUVE"] == "not measured"


# --- the sweep table: the chosen value and the seeds ---

def test_the_sweep_chooses_by_mauve_not_by_gen_ppl(tmp_path):
    results, summary = _summary(tmp_path, full_records())
    text = sweep_table(results, summary)
    assert "**Chosen w = 3** (by the highest MAUVE)" in text  # w = 5 has the lowest gen PPL (100)
    assert "**Chosen gamma = 1** (by the lowest gen PPL; MAUVE is not measured at every point)" in text
    assert "The headline FMLM* at 1 step uses w = 5, NOT the chosen value" in text  # recorded before the choice
    assert text.count("Sampled on the headline seed [0], as recorded") == 2


def test_validation_seed_records_decide_and_headline_seed_ones_are_left_out(tmp_path):
    heads = [with_distribution(record("flow-map", 4, 80.0, 5.3, w=5.0, gamma=1.0, seed=s), 0.7) for s in (0, 1)]
    sweep = [with_distribution(record("flow-map", 4, ppl, 5.3, w=w, gamma=1.0, sweep="w", seed=seed), mauve)
             for seed, w, ppl, mauve in [(1000, 1.0, 90.0, 0.5), (1000, 3.0, 95.0, 0.9),
                                         (0, 1.0, 50.0, 0.99), (0, 3.0, 60.0, 0.1)]]
    results, summary = _summary(tmp_path, heads + sweep)
    text = sweep_table(results, summary)
    assert "**Chosen w = 3** (by the highest MAUVE)" in text  # seed 0 alone would choose w = 1
    assert "Sampled on the validation seed [1000], disjoint from the headline seeds" in text
    assert "Records of this sweep on the headline seeds [0] are left out of the choice." in text
    rows = markdown_rows(text[text.index("| w"):])
    assert [r["seeds"] for r in rows] == ["[1000]", "[1000]"]


def test_choose_falls_back_to_gen_ppl_when_a_point_lacks_mauve(tmp_path):
    recs = [with_distribution(record("flow-map", 4, 90.0, 5.3, w=1.0, sweep="w"), 0.9),
            record("flow-map", 4, 70.0, 5.3, w=3.0, sweep="w")]
    _, summary = _summary(tmp_path, recs)
    assert choose(summary, "w")[:2] == (3.0, "gen_ppl")


def test_a_difference_within_the_seed_spread_is_said(tmp_path):
    sweep = [record("flow-map", 4, ppl, 5.3, w=w, sweep="w", seed=seed)
             for w, seed, ppl in [(1.0, 1000, 100.0), (1.0, 1001, 140.0), (3.0, 1000, 110.0), (3.0, 1001, 120.0)]]
    results, summary = _summary(tmp_path, sweep)
    assert "the sweep does not separate these values" in sweep_table(results, summary)


def test_the_preset_value_is_kept_when_the_best_point_is_within_its_noise(tmp_path):
    # gen PPL 95 (w = 1) against the preset's 100 (w = 5), one validation seed, samples at log PPL +-0.001:
    # the bootstrap resolves the 5% difference, so w = 1 is chosen; the same with MAUVE on one seed (no
    # interval) keeps w = 5, and the table says so
    sweep = [record("flow-map", 4, ppl, 5.3, w=w, sweep="w", seed=1000) for w, ppl in [(1.0, 95.0), (5.0, 100.0)]]
    run = write_run(tmp_path / "run", sweep)
    experiment = {"evaluation": {"flow_map_w": 5.0, "flow_map_steps": [1, 4], "ctm_gamma": [1.0, 1.0],
                                 "sweep_steps": 4, "churn": 1.5}}
    results = load_results(run)
    text = sweep_table(results, summarize(results), run, experiment)
    assert "**Chosen w = 1** (by the lowest gen PPL" in text and "resolved better than the preset's 5" in text
    rows = markdown_rows(text[text.index("| w"):])
    assert rows[0]["gen PPL [95% interval]"].startswith("95 [")  # the point's own bootstrap interval
    with_mauve = [with_distribution(r, m) for r, m in zip(sweep, (0.5, 0.4))]
    run = write_run(tmp_path / "run2", with_mauve)
    results = load_results(run)
    text = sweep_table(results, summarize(results), run, experiment)
    assert "**Chosen w = 5, the preset's value, kept**: the best point by the highest MAUVE, w = 1" in text
    assert "one value, no interval" in text


# --- samples.md ---

def test_samples_md_puts_samples_beside_held_out_text(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    build_report(run)
    text = (run / "report" / "samples.md").read_text()
    results = load_results(run)
    summary = summarize(results)
    n_heads = int((summary["sweep"].isna() & (summary["model"] != "reference")).sum())
    assert text.count("\n### ") == n_heads
    section = text[text.index("### FMLM* (flow-map), ctm, 1 step"):]
    assert "seed 0, `eval/flow-map_ctm_1_w5.0_g1.0_scNone_nNone_None_s0.jsonl`" in section.splitlines()[0]
    rows = markdown_rows(section[section.index("| #"):])
    assert [r["#"] for r in rows] == [str(i) for i in range(N_SHOWN)]
    reference = [json.loads(x) for x in (run / results.loc[results["model"] == "reference", "samples_file"].iloc[0])
                 .read_text().splitlines()]
    assert [r["held-out text"] for r in rows[:2]] == [escape_cell(x["text"]).strip() for x in reference]
    own = [json.loads(x) for x in (run / "eval/flow-map_ctm_1_w5.0_g1.0_scNone_nNone_None_s0.jsonl").read_text()
           .splitlines()]
    assert [r["sample"] for r in rows[:2]] == [escape_cell(x["text"]).strip() for x in own]
    assert rows[0]["PPL"] == f"{own[0]['ppl']:.2f}" and rows[0]["held-out entropy"] == f"{reference[0]['entropy']:.2f}"
    assert rows[2]["sample"] == "(no sample)"  # the fake files hold two samples
    assert "([samples.md](samples.md))" in (run / "report" / "report.md").read_text()


def test_samples_md_uses_the_lowest_seed_when_seed_0_is_absent(tmp_path):
    run = write_run(tmp_path / "run", [record("teacher", 32, 40.0, 5.3, sc_mode="warm", seed=s) for s in (2, 1)])
    build_report(run)
    assert "seed 1 (no record on seed 0)" in (run / "report" / "samples.md").read_text()


def test_texts_are_escaped_for_a_table_cell(tmp_path):
    text = "a | b\n*c* `d` <e> [f](g) \\ h_i ~j~ &"
    assert escape_cell(text) == r"a \| b<br>\*c\* \`d\` &lt;e&gt; \[f\](g) \\ h\_i \~j\~ &amp;"
    rec = record("teacher", 32, 40.0, 5.3, sc_mode="warm")
    run = write_run(tmp_path / "run", [rec])
    (run / rec["samples_file"]).write_text(json.dumps({"text": text, "ppl": 3.0, "entropy": 1.0}) + "\n")
    build_report(run)
    md = (run / "report" / "samples.md").read_text()
    rows = markdown_rows(md[md.index("| #"):])
    assert len(rows[0]) == 7 and rows[0]["sample"] == escape_cell(text) and rows[0]["PPL"] == "3.00"


def test_no_samples_file_no_samples_md_and_a_note(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    build_report(run)
    assert (run / "report" / "samples.md").is_file()
    for path in (run / "eval").iterdir():
        path.unlink()
    report = build_report(run).read_text()
    assert not (run / "report" / "samples.md").exists()  # the stale one is gone
    assert "samples.md: not written (no headline record has a readable samples file)" in report


# --- the MAUVE plot ---

def test_mauve_plot_is_drawn_or_a_note_says_why(tmp_path):
    _, summary = _summary(tmp_path, full_records())
    assert mauve_vs_steps(summary, tmp_path / "mauve.png") == [] and (tmp_path / "mauve.png").is_file()
    _, old = _summary(tmp_path / "old", [record("teacher", 32, 40.0, 5.3, sc_mode="warm")])
    notes = mauve_vs_steps(old, tmp_path / "none.png")
    assert notes and notes[0].startswith("none.png: not written (no record carries MAUVE")
    assert not (tmp_path / "none.png").exists()


def test_the_committed_embedded_run_builds_with_samples_and_mauve(tmp_path):
    report = build_report(EMBEDDED, tmp_path / "out").read_text()
    out = tmp_path / "out"
    assert (out / "samples.md").is_file() and (out / "mauve_vs_steps.png").is_file()
    assert "mauve_vs_steps.png: not written" not in report
    assert "Sampled on the validation seed [1000]" in (out / "sweep_table.md").read_text()
    comparisons = (out / "comparisons.md").read_text()
    assert "MAUVE: FMLM* vs FMLM at 4 steps" in comparisons and "0 not measured" in comparisons
    # three sampling seeds: the tally adds up to the table, and every verdict row carries its 95% interval
    tally = re.search(r"Tally: (\d+) PASS, (\d+) FAIL, (\d+) unresolved, (\d+) not measured", comparisons)
    rows = [line for line in comparisons.splitlines()
            if line.startswith("|") and line.split("|")[-2].strip().startswith(("PASS", "FAIL", "unresolved"))]
    assert tally and sum(map(int, tally.groups()[:3])) == len(rows) > 0
    assert all("[" in row for row in rows)