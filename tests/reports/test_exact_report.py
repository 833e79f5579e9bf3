"""The exact testbed's seeds report from a hand-made run folder of two training seeds (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmlm.reports.exact import ROWS, build_exact_report, seed_folders


def _record(model, sampler, steps, sc_mode, sweep, excess, bigram):
    return {"id": f"{model}_{sampler}_{steps}_{sweep}", "model": model, "sampler": sampler, "steps": steps,
            "sc_mode": sc_mode, "sweep": sweep, "seed": 0, "excess_nll": excess, "bigram_kl": bigram,
            "topic_kl": 0.01, "entropy": 2.0, "distinct_2": 0.5, "rep4": 0.0, "floor_excess_nll": 0.0,
            "floor_bigram_kl": 0.3, "floor_topic_kl": 0.01, "entropy_rate": 3.3, "entropy_rate_se": 0.002,
            "bigram_alpha": 0.5, "gen_ppl": 30.0}


def _write_seed(root: Path, seed: int, fm_star: float, fm: float, picard: float, first: float) -> None:
    folder = root / "seeds" / f"seed{seed}"
    folder.mkdir(parents=True)
    values = {"flow-map": fm_star, "flow-map-nosc": fm}
    records = [_record(*key, values.get(key[0], 0.02), 0.4) for key in ROWS]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    by_t = [{"t": 0.5, "exact_error": 0.7, "first": first, "picard": picard, "anderson": picard, "picard_residual": 1e-6,
             "elf_star": first, "nosc": 0.3, "elf_star_to_s_star": 0.01, "first_to_s_star": 0.02,
             "contraction": 0.5}]
    compression = [{"model": "flow-map", "reference": "fixed-point", "steps": 1, "latent_error": 0.1,
                    "token_agreement": 0.9}]
    (folder / "exact_probes.json").write_text(json.dumps({"by_t": by_t, "compression": compression}))


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "experiment.json").write_text(json.dumps({"language": {"vocab": 64}, "data": {"row_len": 32}}))
    _write_seed(tmp_path, 0, fm_star=0.10, fm=0.30, picard=0.20, first=0.21)
    _write_seed(tmp_path, 1, fm_star=0.12, fm=0.31, picard=0.22, first=0.20)
    return tmp_path


def test_report_aggregates_seeds_and_states_verdicts(run_dir):
    assert list(seed_folders(run_dir)) == [0, 1]
    text = build_exact_report(run_dir).read_text()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| (")}
    # FMLM* is 0.2 below FMLM on both seeds: the t interval over 2 seeds, d = -0.195 +- 12.7 * 0.005
    assert lines["(c) 1 step(s): FMLM* excess_nll below FMLM's"].endswith("| PASS |")
    # s* - F(0) is -0.01 and +0.02 on the two seeds: the interval straddles zero
    assert lines["(a) t = 0.5: s* (Picard) closer to D* than F(0)"].endswith("| unresolved |")
    assert "teacher 32 steps: excess NLL < 0.05 nats/token" in text and "| PASS |" in text
    assert "held-out true rows" in text and "FMLM* | ELF* ODE | 1 | 0.100 ± 0.000 | 0.900 ± 0.000" in text


def test_report_refuses_a_folder_without_seeds(tmp_path):
    (tmp_path / "experiment.json").write_text("{}")
    with pytest.raises(ValueError, match="no training seed"):
        build_exact_report(tmp_path)


def test_a_committed_exact_seed_folder_builds_its_standard_report(tmp_path):
    # the sweeps there chose by the exact score; the sweep table names that rule (it once raised KeyError)
    from fmlm.reports import build_report

    seed0 = Path(__file__).resolve().parents[2] / "reports" / "exact" / "seeds" / "seed0"
    report = build_report(seed0, tmp_path / "report")
    sweeps = (report.parent / "sweep_table.md").read_text()
    assert "by the lowest abs(excess NLL) + bigram KL under the exact law" in sweeps
