"""The exact testbed's report: every training seed's run folder, aggregated with 95% intervals over seeds.

Reads ``<run>/experiment.json``, ``<run>/timing.json`` and, per seed, ``seeds/seed<k>/results.jsonl``,
``eval/<id>.jsonl`` (per-sample NLL) and ``exact_probes.json``; writes ``<run>/report/exact.md``.
Every comparison is a ``fmlm.intervals.compare`` over the training seeds (per-sample values
where the records keep them, so a bootstrap within seeds widens the t interval when sampling noise
dominates) and a verdict: PASS / FAIL when the interval lies on one side, unresolved when it straddles.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fmlm.experiment.run_folder import (EXACT_PROBES_FILE, EXPERIMENT_FILE, MODEL_LABELS, REPORT_DIR, RESULTS_FILE,
                                        SEEDS_DIR, TIMING_FILE)
from fmlm.files import read_json_dict, read_jsonl, write_text_atomic
from fmlm.intervals import compare, verdict

METRICS = (("excess_nll", "excess NLL"), ("bigram_kl", "bigram KL"), ("topic_kl", "topic KL"),
           ("entropy", "entropy"), ("distinct_2", "distinct-2"), ("rep4", "rep-4"))
"""(record key, column name) of the sample tables; each is shown beside its true-sample floor."""

ROWS = (
    ("reference", "data", 0, None, None), ("teacher", "sde", 32, "warm", None), ("teacher", "sde", 4, "warm", None),
    ("teacher", "sde", 1, "warm", None), ("teacher-nosc", "sde", 32, "none", None),
    ("teacher-nosc", "sde", 4, "none", None), ("teacher-nosc", "sde", 1, "none", None),
    ("fixed-point", "sde", 32, "none", None), ("fixed-point", "euler", 32, "none", "ode"),
    ("teacher-nosc", "euler", 32, "none", "ode"),
    ("flow-map", "ctm", 1, None, None), ("flow-map", "ctm", 2, None, None), ("flow-map", "ctm", 4, None, None),
    ("flow-map-nosc", "ctm", 1, None, None), ("flow-map-nosc", "ctm", 2, None, None),
    ("flow-map-nosc", "ctm", 4, None, None), ("untrained", "sde", 32, "warm", None),
    ("exact", "sde", 32, "none", None), ("exact", "sde", 4, "none", None), ("exact", "sde", 1, "none", None),
    ("exact", "euler", 32, "none", "ode"),
)
"""The settings of the sample table: (model, sampler, steps, sc_mode, sweep)."""


def seed_folders(run_dir: Path) -> dict[int, Path]:
    """Training seed -> its run folder, for every ``seeds/seed<k>`` folder that has results."""
    root = Path(run_dir) / SEEDS_DIR
    found = {int(p.name[4:]): p for p in root.glob("seed*") if p.name[4:].isdigit() and (p / RESULTS_FILE).is_file()}
    return dict(sorted(found.items()))


def _record(records: list[dict], model: str, sampler: str, steps: int, sc_mode: str | None,
            sweep: str | None, seed: int = 0) -> dict | None:
    """The record of one setting at headline sampling seed ``seed`` (the reference: its one record)."""
    for r in records:
        if r.get("model") != model:
            continue
        if model == "reference":
            return r
        if (r.get("sampler"), r.get("steps"), r.get("sweep"), r.get("seed")) != (sampler, steps, sweep, seed):
            continue
        if sc_mode is None or r.get("sc_mode") == sc_mode:
            return r
    return None


def _per_sample_excess(folder: Path, record: dict) -> np.ndarray:
    """Per-sample ``nll_per_token - H_L`` from the record's eval file (the record's mean if it has none)."""
    path = folder / str(record.get("samples_file", ""))
    if record.get("samples_file") and path.is_file():
        rows, _ = read_jsonl(path, strict=False)
        values = [r.get("nll_per_token") for _, r in rows]
        if values and all(isinstance(v, (int, float)) for v in values):
            return np.asarray(values, dtype=np.float64) - float(record["entropy_rate"])
    return np.asarray([float(record["excess_nll"])])


def _value(record: dict | None, key: str) -> float:
    try:
        return float(record[key]) if record is not None else math.nan
    except (TypeError, ValueError, KeyError):
        return math.nan


def _spread(values: list[float]) -> str:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def _label(model: str, sampler: str, steps: int, sc_mode: str | None, sweep: str | None) -> str:
    name = MODEL_LABELS.get(model, model)
    if model == "reference":
        return "held-out true rows"
    extra = " ODE" if sweep == "ode" else ""
    return f"{name} {sampler}{extra} {steps}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _claim(name: str, left, right, contrast=None, threshold: float = 0.0, claim: str = "below") -> list[str]:
    kwargs = {} if contrast is None else {"contrast": contrast}
    if any(np.isnan(np.asarray(x, dtype=np.float64)).any() for x in (*left, *right)):
        return [name, "not measured", "n/a"]
    interval = compare(left, right, **kwargs)
    return [name, interval.text(), verdict(interval, threshold, claim)]


def build_exact_report(run_dir: str | Path) -> Path:
    """Write ``<run>/report/exact.md`` (module docstring); returns its path."""
    run_dir = Path(run_dir)
    exp = read_json_dict(run_dir / EXPERIMENT_FILE)
    folders = seed_folders(run_dir)
    if not folders:
        raise ValueError(f"{run_dir} holds no training seed with results (no {SEEDS_DIR}/seed<k>/{RESULTS_FILE})")
    records = {k: [r for _, r in read_jsonl(f / RESULTS_FILE, strict=False)[0]] for k, f in folders.items()}
    probes = {k: read_json_dict(f / EXACT_PROBES_FILE) for k, f in folders.items() if (f / EXACT_PROBES_FILE).is_file()}
    pick = {key: {k: _record(rs, *key) for k, rs in records.items()} for key in ROWS}
    any_rec = next(r for rs in records.values() for r in rs if "entropy_rate" in r)
    lines = [f"# The exact testbed: {len(folders)} training seeds ({', '.join(map(str, folders))})", ""]
    lines += [f"Language: `{exp.get('language')}`; rows of {exp.get('data', {}).get('row_len')} tokens. "
              f"Per-token entropy H_L = {float(any_rec['entropy_rate']):.4f} ± {float(any_rec['entropy_rate_se']):.4f} "
              "nats (Monte Carlo over exact rows, ± one standard error). Bigram KL: add-"
              f"{any_rec.get('bigram_alpha')} smoothing of the samples' counts. Every cell is the mean ± sd over "
              "training seeds; `floor` is the same metric of true samples of the same size.", ""]
    timing = run_dir / TIMING_FILE
    if timing.is_file():
        t = read_json_dict(timing)
        lines += [f"Wall time: {float(t.get('total_s', 0)) / 60:.1f} min ({', '.join(f'{k} {v / 60:.1f}' for k, v in t.get('stages', {}).items())})", ""]
    lines += ["## Samples under the exact law", ""]
    header = ["setting"] + [h for _, h in METRICS] + [f"floor {h}" for _, h in METRICS[:3]]
    body = []
    for key, by_seed in pick.items():
        if all(r is None for r in by_seed.values()):
            continue
        cells = [_spread([_value(r, m) for r in by_seed.values()]) for m, _ in METRICS]
        floors = [_spread([_value(r, f"floor_{m}") for r in by_seed.values()]) for m, _ in METRICS[:3]]
        body.append([_label(*key)] + cells + floors)
    lines += _table(header, body) + [""]
    if probes:
        lines += _probe_tables(probes)
    lines += ["## The questions, each with a 95% interval over training seeds", ""]
    lines += _table(["claim", "difference [95% interval]", "verdict"], _questions(folders, pick, probes)) + [""]
    out = run_dir / REPORT_DIR / "exact.md"
    write_text_atomic(out, "\n".join(lines) + "\n")
    return out


def _probe_tables(probes: dict[int, dict]) -> list[str]:
    lines = ["## Exact probes: distance to E[x0 | z_t] (rms over tokens and channels, w = 1)", ""]
    keys = ("exact_error", "first", "picard", "anderson", "elf_star", "nosc", "elf_star_to_s_star",
            "first_to_s_star", "picard_residual", "contraction")
    names = ("D* to x0", "F(0)", "s* Picard", "s* Anderson", "ELF* one pass", "no-SC teacher", "ELF* to s*",
             "F(0) to s*", "Picard residual", "contraction")
    times = [d["t"] for d in next(iter(probes.values()))["by_t"]]
    body = [[f"{t:g}"] + [_spread([p["by_t"][i][k] for p in probes.values()]) for k in keys]
            for i, t in enumerate(times)]
    lines += _table(["t"] + list(names), body) + [""]
    lines += ["Picard residual: mean row norm of F(s) - s after the last Picard step; contraction: geometric mean of "
              "the last five ratios of successive residuals (about 1 where the residual has reached float32 "
              "rounding, not a contraction factor there).", ""]
    lines += ["## The two compressions, from the same noise", ""]
    comp = next(iter(probes.values()))["compression"]
    body = [[MODEL_LABELS.get(c["model"], c["model"]), MODEL_LABELS.get(c["reference"], c["reference"]) + " ODE",
             str(c["steps"]), _spread([p["compression"][i]["latent_error"] for p in probes.values()]),
             _spread([p["compression"][i]["token_agreement"] for p in probes.values()])] for i, c in enumerate(comp)]
    return lines + _table(["flow map", "against", "steps", "latent rms", "token agreement"], body) + [""]


def _questions(folders: dict[int, Path], pick: dict, probes: dict[int, dict]) -> list[list[str]]:
    seeds = list(folders)

    def excess(key) -> list[np.ndarray]:
        return [(_per_sample_excess(folders[k], pick[key][k]) if pick[key][k] is not None else np.array([np.nan]))
                for k in seeds]

    def scalar(key, metric) -> list[list[float]]:
        return [[_value(pick[key][k], metric)] for k in seeds]

    teacher32 = ("teacher", "sde", 32, "warm", None)
    exact32 = ("exact", "sde", 32, "none", None)
    rows = [
        _claim("teacher 32 steps: excess NLL < 0.05 nats/token", excess(teacher32),
               [[0.0] for _ in seeds], threshold=0.05),
        _claim("teacher 32 steps: bigram KL < 2 x true-sample floor", scalar(teacher32, "bigram_kl"),
               scalar(teacher32, "floor_bigram_kl"), contrast=lambda a, b: a - 2 * b),
        # the network's share of the excess: the exact denoiser through the teacher's sampler (same grid, churn
        # and noise streams; D* has no slot, so no warm start)
        _claim("the network's share: teacher 32 steps within 0.05 nats of D* through the same sampler",
               excess(teacher32), excess(exact32), threshold=0.05),
    ]
    if probes and len(probes) == len(seeds):
        for i, d in enumerate(probes[seeds[0]]["by_t"]):
            t = d["t"]
            rows.append(_claim(f"(a) t = {t:g}: s* (Picard) closer to D* than F(0)",
                               [[probes[k]["by_t"][i]["picard"]] for k in seeds],
                               [[probes[k]["by_t"][i]["first"]] for k in seeds]))
        for i, d in enumerate(probes[seeds[0]]["by_t"]):
            t = d["t"]
            rows.append(_claim(f"(b) t = {t:g}: ELF*'s one pass closer to s* than F(0) is",
                               [[probes[k]["by_t"][i]["elf_star_to_s_star"]] for k in seeds],
                               [[probes[k]["by_t"][i]["first_to_s_star"]] for k in seeds]))
    rows.append(_claim("(b) samples: ELF* 32 steps excess NLL - teacher 32 steps (SC) < 0.02",
                       excess(("fixed-point", "sde", 32, "none", None)), excess(teacher32), threshold=0.02))
    for n in (1, 2, 4):
        for metric in ("excess_nll", "bigram_kl"):
            star, plain = ("flow-map", "ctm", n, None, None), ("flow-map-nosc", "ctm", n, None, None)
            left, right = (excess(star), excess(plain)) if metric == "excess_nll" else \
                (scalar(star, metric), scalar(plain, metric))
            rows.append(_claim(f"(c) {n} step(s): FMLM* {metric} below FMLM's", left, right))
    rows.append(_claim("(d) FMLM* 4 steps excess NLL within 10% of the teacher's 32 steps (a - 1.1 b < 0)",
                       excess(("flow-map", "ctm", 4, None, None)), excess(teacher32), contrast=lambda a, b: a - 1.1 * b))
    for n in (1, 4):
        for metric in ("excess_nll", "bigram_kl"):
            sc, nosc = ("teacher", "sde", n, "warm", None), ("teacher-nosc", "sde", n, "none", None)
            left, right = (excess(sc), excess(nosc)) if metric == "excess_nll" else \
                (scalar(sc, metric), scalar(nosc, metric))
            rows.append(_claim(f"(e) {n} step(s): self-conditioned teacher {metric} below the no-SC teacher's",
                               left, right))
    return rows


__all__ = ["build_exact_report", "seed_folders"]
