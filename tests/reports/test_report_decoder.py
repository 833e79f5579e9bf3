"""The reconstruction table: held-out latents through each model's decoder."""

from __future__ import annotations

import pytest

from fmlm.experiment.run_folder import DECODE_SWEEP
from fmlm.reports.build import build_report
from fmlm.reports.decoder import decoder_table
from fmlm.reports.formatting import NOT_MEASURED
from fmlm.reports.loading import load_results
from tests.reports.fake_run import full_records, markdown_rows, record, write_run


def decoded(model: str, accuracy, gen_ppl: float, entropy: float) -> dict:
    rec = record(model, 0, gen_ppl, entropy, sampler="decode", sweep=DECODE_SWEEP, nfe=1)
    rec["token_accuracy"] = accuracy
    return rec


def test_table_lists_the_reference_then_each_decoder(tmp_path):
    noised = {**decoded("flow-map", 0.635, 487.7, 3.685), "token_accuracy_t0.9": 0.5121, "token_accuracy_t0.7": 0.2006}
    recs = full_records() + [decoded("teacher", 0.6094, 521.14, 3.679), noised]
    run = write_run(tmp_path / "run", recs)
    rows = markdown_rows(decoder_table(load_results(run)))
    assert [r["decoder"] for r in rows] == ["held-out real text (no decoder)", "ELF", "FMLM*"]
    assert [r["token accuracy"] for r in rows] == ["-", "0.609", "0.635"]
    assert [r["token acc t = 0.9"] for r in rows] == ["-", "-", "0.512"]  # ELF's record predates the field
    assert [r["token acc t = 0.7"] for r in rows] == ["-", "-", "0.201"]
    assert [r["gen PPL"] for r in rows] == ["20.00", "521.14", "487.70"]
    report = build_report(run).read_text()
    assert "decoder_table.md" in report and "521.14" in report
    # decode records are not samples: the headline tables and comparisons leave them out
    assert "521.14" not in (run / "report" / "main_table.md").read_text()


def test_no_decode_records_is_not_measured_and_bad_accuracy_is_refused(tmp_path):
    run = write_run(tmp_path / "run", full_records())
    assert NOT_MEASURED in decoder_table(load_results(run))
    bad = write_run(tmp_path / "bad", full_records() + [decoded("teacher", "most", 521.0, 3.7)])
    with pytest.raises(ValueError, match="token_accuracy"):
        load_results(bad)
