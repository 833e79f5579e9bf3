"""Build fake run folders (the contract of experiments/owt_fmlm_star.py) for the report tests."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

LABELS = {"teacher": "ELF", "teacher-nosc": "ELF (no SC)", "fixed-point": "ELF*", "flow-map": "FMLM*",
          "flow-map-nosc": "FMLM", "untrained": "untrained network", "reference": "held-out real text"}


def record(model: str, steps: int, gen_ppl: float, entropy: float, *, seed: int = 0, sampler: str | None = None,
           w: float | None = None, gamma: float | None = None, churn: float | None = None,
           sc_mode: str | None = None, fp_iterations: int | None = None, fp_solver: str | None = None,
           sweep: str | None = None, nfe: int | None = None, wall_s_per_sample: float = 0.1,
           n_samples: int = 8) -> dict[str, Any]:
    """One results.jsonl record with every contract key."""
    sampler = sampler or {"reference": "data", "flow-map": "ctm", "flow-map-nosc": "ctm"}.get(model, "churn")
    rid = f"{model}_{sampler}_{steps}_w{w}_g{gamma}_sc{sc_mode}_n{fp_iterations}_{sweep}_s{seed}"
    return {"id": rid, "model": model, "label": LABELS[model], "sampler": sampler, "steps": steps, "w": w,
            "gamma": gamma, "churn": churn, "sc_mode": sc_mode, "fp_iterations": fp_iterations,
            "fp_solver": fp_solver, "seed": seed, "n_samples": n_samples, "gen_ppl": gen_ppl, "entropy": entropy,
            "nfe": steps + 1 if nfe is None else nfe, "wall_s": wall_s_per_sample * n_samples,
            "wall_s_per_sample": wall_s_per_sample, "sweep": sweep, "samples_file": f"eval/{rid}.jsonl"}


def with_distribution(rec: dict[str, Any], mauve: float | None, distinct_2: float = 0.5, rep4: float = 0.05,
                      single_token_share: float = 0.0) -> dict[str, Any]:
    """``rec`` with the distribution metrics a current run records (``mauve=None``: not measured, with a note)."""
    out = dict(rec, distinct_1=distinct_2 / 2, distinct_2=distinct_2, distinct_3=min(1.0, distinct_2 * 1.5),
               rep4=rep4, empty_share=0.0, single_token_share=single_token_share, mauve=mauve)
    if mauve is None:
        out["mauve_note"] = "not measured: no held-out reference texts were given to the scoring"
    else:
        out.update(mauve_n=rec["n_samples"], mauve_n_reference=8, mauve_num_buckets=2,
                   mauve_features="fake-lm mean-pooled last hidden state",
                   mauve_against="holdout" if rec["model"] == "reference" else "reference")
    return out


def full_records() -> list[dict[str, Any]]:
    """A complete run: headline settings, three seeds for FMLM* 1 step, w / gamma / sc sweeps; MAUVE and
    distinct-n on FMLM*'s headlines, the held-out text and the w sweep (the other records lack them, as an
    older run's would)."""
    recs = [with_distribution(record("flow-map", 1, ppl, ent, seed=s, w=5.0, gamma=1.0), mauve)
            for s, (ppl, ent, mauve) in enumerate([(100.0, 5.0, 0.5), (110.0, 5.2, 0.6), (120.0, 5.4, 0.7)])]
    recs += [with_distribution(record("flow-map", 2, 95.5, 5.3, w=5.0, gamma=0.75), 0.65),
             with_distribution(record("flow-map", 4, 80.0, 5.35, w=5.0, gamma=1.0), 0.75),
             record("flow-map-nosc", 1, 170.0, 5.1, w=5.0, gamma=1.0),
             record("flow-map-nosc", 4, 115.0, 5.2, w=5.0, gamma=1.0)]
    teacher = dict(w=3.0, churn=1.5, sc_mode="warm")
    recs += [record("teacher", 1, 400.0, 4.9, **teacher), record("teacher", 4, 150.0, 5.2, **teacher),
             record("teacher", 32, 40.0, 5.3, **teacher),
             record("fixed-point", 32, 45.0, 5.3, w=3.0, churn=1.5),
             record("untrained", 32, 3000.0, 7.5, churn=1.5),
             with_distribution(record("reference", 0, 20.0, 5.6, nfe=0), 0.95, distinct_2=0.8, rep4=0.01)]
    # MAUVE picks w = 3 although w = 5 has the lowest gen PPL
    recs += [with_distribution(record("flow-map", 1, ppl, ent, w=w, gamma=1.0, sweep="w"), mauve)
             for w, ppl, ent, mauve in [(1.0, 150.0, 5.5, 0.6), (3.0, 120.0, 5.3, 0.8), (5.0, 100.0, 5.0, 0.4)]]
    recs += [record("flow-map", 4, ppl, ent, w=5.0, gamma=g, sweep="gamma")
             for g, ppl, ent in [(0.5, 85.0, 5.3), (1.0, 80.0, 5.35)]]
    recs += [record("teacher", 32, 60.0, 5.25, w=3.0, churn=1.5, sc_mode="none", sweep="sc")]
    recs += [record("teacher", 32, 70.0 - 5 * n, 5.3, w=3.0, churn=1.5, sc_mode="cold", fp_iterations=n,
                    fp_solver="picard", sweep="sc", nfe=32 * n) for n in (8, 1, 4, 2)]
    return recs


SAMPLE_SPREAD = 0.001
"""A record's two samples sit at log PPL (and entropy) +- this around the record's value (their statistic is it)."""


def _nll_sum(gen_ppl: Any, n_tokens: int, shift: float) -> float | None:
    """``n_tokens (log gen_ppl + shift)``; None (no per-sample value) for a non-finite or non-positive gen PPL."""
    try:
        value = float(gen_ppl)
    except (TypeError, ValueError):
        return None
    return n_tokens * (math.log(value) + shift) if math.isfinite(value) and value > 0 else None


def _shifted(value: Any, shift: float) -> Any:
    return value + shift if isinstance(value, (int, float)) and math.isfinite(value) else value


def write_run(root: Path, records: list[dict[str, Any]] | None, *, experiment: bool = True, timing: bool = True,
              fixed_point: dict | None = None, metrics: bool = True, samples: bool = True) -> Path:
    """Write a run folder under ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    if experiment:
        (root / "experiment.json").write_text(json.dumps(
            {"name": "fake-run", "preset": "tiny", "eval": {"evaluator": "smollm2-135m"}}))
    if records is not None:
        (root / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        if samples:
            (root / "eval").mkdir(exist_ok=True)
            for r in records:
                if "samples_file" not in r:
                    continue
                rows = [{"index": i, "text": f"sample {i} of {r['id']} " * 3, "n_tokens": 12,
                         "nll_sum": _nll_sum(r.get("gen_ppl"), 12, SAMPLE_SPREAD * (1 - 2 * i)),
                         "ppl": r.get("gen_ppl"), "entropy": _shifted(r.get("entropy"), SAMPLE_SPREAD * (1 - 2 * i))}
                        for i in range(2)]
                (root / r["samples_file"]).write_text("".join(json.dumps(x) + "\n" for x in rows))
    if timing:
        (root / "timing.json").write_text(json.dumps({"stages": {"teacher": 120.0, "fixed-point": 60.0},
                                                      "total_s": 200.0}))
    if fixed_point is not None:
        (root / "fixed_point.json").write_text(json.dumps(fixed_point))
    if metrics:
        for stage, scale in (("teacher", 2.0), ("fixed-point", 1.0)):
            folder = root / "stages" / stage
            folder.mkdir(parents=True, exist_ok=True)
            rows = [{"step": s, "loss": scale / (1 + s), "lr": 1e-3, "tokens_per_s": 1e4, "elapsed_s": s}
                    for s in range(0, 50, 5)]
            (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    return root


def markdown_rows(text: str) -> list[dict[str, str]]:
    """Rows of the first markdown table in ``text`` as dicts keyed by the header cells."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    cells = [[c.strip() for c in _cells(line.strip())] for line in lines]
    header, body = cells[0], cells[2:]
    return [dict(zip(header, row)) for row in body]


def _cells(line: str) -> list[str]:
    """The cells of one table line ``| a | b |``, split at the bars that no backslash escapes."""
    cells, cell, escaped = [], "", False
    for ch in line:
        if ch == "|" and not escaped:
            cells.append(cell)
            cell = ""
            continue
        cell += ch
        escaped = ch == "\\" and not escaped
    cells.append(cell)
    return cells[1:-1]


def report_in_fresh_python(run: Path):
    """Build ``run``'s report in a fresh interpreter that then fails (non-zero exit, the offending modules on
    stderr) if torch or an ``fmlm`` module the reports may not import was loaded; prints the report path."""
    import subprocess
    import sys

    from tests.test_layering import REPORTS_MAY_IMPORT

    ok = {"fmlm", "fmlm.experiment", *REPORTS_MAY_IMPORT}
    code = (
        "import sys, fmlm.reports; from pathlib import Path\n"
        f"path = fmlm.reports.build_report(Path({str(run)!r}))\n"
        f"ok = {sorted(ok)!r}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or (m.split('.')[0] == 'fmlm' "
        "and m not in ok and not m.startswith('fmlm.reports')))\n"
        "print(path); assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
