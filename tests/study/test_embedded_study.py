"""The embedded study's machinery on the tiny paper-path set-up: trials in groups, validation seeds only,
EMA and raw weights, a winner per group, and the table built from the trial folders."""

from __future__ import annotations

import json

import pytest

from fmlm.config import ConfigError, apply_overrides
from fmlm.study.embedded import run_study
from fmlm.reports.study import study_table, write_study_table
from tests.pipeline.conftest import tiny_paper_config

GROUPS = (
    ("noise scale lam", (("lam-2", ("flow.lam=2.0",)), ("lam-4", ("flow.lam=4.0",)))),
    ("decoder share", (("decoder-0.4", ("teacher.decoder.prob=0.4",)),)),
)


def test_study_runs_groups_on_validation_seeds_and_tables_them(tmp_path, text_folder, tiny_gpt2):
    base = apply_overrides(tiny_paper_config(tmp_path, text_folder, tiny_gpt2), ["evaluation.validation_seeds=[7]"])
    out = tmp_path / "study"
    study = run_study(out, base, GROUPS, device="cpu", progress=False)
    names = [t["name"] for t in study["trials"]]
    winner = study["groups"][0]["winner"]
    assert names == ["lam-2", "lam-4", f"{winner}+decoder-0.4"]
    assert study["groups"][1]["entrants"] == [winner, f"{winner}+decoder-0.4"]
    for trial in study["trials"]:
        folder = out / trial["folder"]
        records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
        sampled = [r for r in records if r["sampler"] == "sde"]
        assert {r["model"] for r in sampled} == {"teacher", "teacher-raw"}
        assert {r["seed"] for r in sampled} == {7}  # validation seed only, never a headline seed (0)
        assert {r["model"] for r in records if r["sampler"] == "decode"} == {"teacher", "teacher-raw"}
        assert not (folder / "stages" / "fixed-point").exists()  # stage 1 only
        assert trial["mauve"] == max(r["mauve"] for r in sampled)
        cfg = json.loads((folder / "experiment.json").read_text())
        assert cfg["flow"]["lam"] == (4.0 if "lam-4" in trial["name"] else 2.0)
    table = study_table(out)
    assert table.count("| lam-2 ") == 2 and "decoder-0.4" in table and "Winner:" in table
    assert write_study_table(out).read_text() == table


def test_study_refuses_a_bad_override_before_training(tmp_path, text_folder, tiny_gpt2):
    base = tiny_paper_config(tmp_path, text_folder, tiny_gpt2)
    bad = (("g", (("x", ("flow.lamb=3",)),)),)
    with pytest.raises(ConfigError, match="flow.lamb"):
        run_study(tmp_path / "study", base, bad, device="cpu", progress=False)
    assert not (tmp_path / "study").exists()
