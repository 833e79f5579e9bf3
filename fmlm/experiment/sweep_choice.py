"""The hyperparameter sweeps and the rule that chooses their values (torch-free: the run and the reports
both use it, so the value a headline is sampled at and the value the report names are the same).

A sweep samples one model at several values of one sampler knob on the validation seeds
(``evaluation.validation_seeds``), never on a headline seed. The sweeps run in the order of
``SWEEPS``, each at the values chosen by the ones before it (FMLM*'s gamma sweep runs at its chosen
w), and the headline settings then use the chosen values (``fmlm.experiment.plan``).

Choice rule, fixed before any run was seen: on the exact testbed (records that carry ``excess_nll`` and
``bigram_kl``, ``fmlm.evaluation.exact``) the lowest mean ``|excess_nll| + bigram_kl`` (precision plus
coverage under the true law; the absolute value since 2026-12-08, when the exact denoiser itself, sampled
with churn 1.5, scored excess NLL -0.49: samples more probable than true rows are sharpened, not better);
otherwise the highest mean MAUVE over the validation seeds when every
point of the sweep has a finite MAUVE, else the lowest finite mean gen PPL. "Lowest gen PPL at a
healthy entropy" is not the rule: gen PPL rewards repetition, and MAUVE, when measured, does not. A
tie goes to the smaller value, so the choice does not depend on the order of the points.

Noise: the best point replaces the preset's value only when it is resolved better than the preset's
point (``fmlm.intervals``: its 95% interval of ``MAUVE_best - MAUVE_preset`` lies above 0, or that of
``log PPL_best - log PPL_preset`` or of the exact score's difference below 0). MAUVE and the exact score are one number per seed (a t interval over the
validation seeds; one seed has no interval); gen PPL has its samples' ``(nll_sum, n_tokens)`` rows
(a bootstrap within each seed, and t over seeds). Otherwise the sweep keeps the preset's value, and
says so (``Choice.kept``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np

from fmlm.files import read_jsonl
from fmlm.intervals import PASS, Interval, compare, log_ppl, verdict


@dataclass(frozen=True)
class Sweep:
    """One model, one swept sampler knob (the record field and the ``SamplerConfig`` field of that name)."""

    model: str
    knob: str  # "w", "gamma" or "churn"; also the record's ``sweep`` tag


SWEEPS: tuple[Sweep, ...] = (
    Sweep("flow-map", "w"),
    Sweep("flow-map", "gamma"),
    Sweep("flow-map-nosc", "gamma"),  # FMLM's network has no guidance bank, so it has no w
    Sweep("teacher", "churn"),  # the SDE churn; every SDE headline setting uses the teacher's choice
)
"""Every sweep, in the order they are sampled and chosen."""

SWEEP_TAGS: tuple[str, ...] = tuple(dict.fromkeys(s.knob for s in SWEEPS))
"""The ``sweep`` tags of the hyperparameter sweeps in ``results.jsonl``."""


@dataclass(frozen=True)
class Point:
    """One swept value with its mean MAUVE (None: not measured on every seed) and mean gen PPL, and per seed
    (sorted) its MAUVE and its samples' ``(nll_sum, n_tokens)`` rows (empty: the interval is not known)."""

    value: float
    mauve: float | None
    gen_ppl: float | None
    mauve_seeds: tuple[float, ...] = ()
    ppl_rows: tuple[np.ndarray, ...] = field(default=(), compare=False)
    exact: float | None = None  # mean abs(excess NLL) + bigram KL (the exact testbed), None elsewhere
    exact_seeds: tuple[float, ...] = ()


class Choice(NamedTuple):
    """A sweep's value and the metric that chose it; ``best``: the best point's value; ``interval``: best minus
    preset on that metric (log gen PPL for gen PPL); ``kept``: the preset's value kept (best not resolved better)."""

    value: float
    metric: str
    best: float
    interval: Interval | None = None
    kept: bool = False


def preset_knob(evaluation: Any, knob: str) -> float:
    """The preset's value of a sweep's knob, from the evaluation settings (an ``EvalConfig``, or its dict as
    ``experiment.json`` holds it): ``flow_map_w``; ``ctm_gamma`` at ``sweep_steps`` (1.0 if not listed);
    ``churn``."""
    get = evaluation.get if isinstance(evaluation, dict) else (lambda k: getattr(evaluation, k))
    if knob == "w":
        return float(get("flow_map_w"))
    if knob == "gamma":
        return float(dict(zip(get("flow_map_steps"), get("ctm_gamma"))).get(get("sweep_steps"), 1.0))
    if knob == "churn":
        return float(get("churn"))
    raise ValueError(f"knob: expected 'w', 'gamma' or 'churn', got {knob!r}")


def _finite(x: Any) -> float | None:
    """``x`` as a finite float, else None (records hold non-finite values as strings)."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _best(points: list[Point]) -> tuple[Point, str] | None:
    if all(p.exact is not None for p in points):
        return min(points, key=lambda p: (p.exact, p.value)), "exact"
    if all(p.mauve is not None for p in points):
        return max(points, key=lambda p: (p.mauve, -p.value)), "mauve"
    scored = [p for p in points if p.gen_ppl is not None]
    return (min(scored, key=lambda p: (p.gen_ppl, p.value)), "gen_ppl") if scored else None


def difference(best: Point, preset: Point, metric: str) -> Interval:
    """``MAUVE_best - MAUVE_preset`` or ``log PPL_best - log PPL_preset`` with its 95% interval, seeds paired in order
    (a point without per-seed numbers: its mean, one value, no interval)."""
    if metric in ("mauve", "exact"):
        a, b = ((best.mauve_seeds or (best.mauve,), preset.mauve_seeds or (preset.mauve,)) if metric == "mauve" else
                (best.exact_seeds or (best.exact,), preset.exact_seeds or (preset.exact,)))
        n = min(len(a), len(b))
        return compare([[v] for v in a[:n]], [[v] for v in b[:n]])
    rows = lambda p: p.ppl_rows or (np.asarray([[math.log(p.gen_ppl), 1.0]]),)
    a, b = rows(best), rows(preset)
    n = min(len(a), len(b))
    return compare(list(a[:n]), list(b[:n]), statistic=log_ppl)


def choose(points: Iterable[Point], preset: float | None = None) -> Choice | None:
    """The lowest exact score when every point has one (metric ``"exact"``), else
    the point with the highest MAUVE when every point has one (metric ``"mauve"``), else the one with the
    lowest gen PPL (``"gen_ppl"``); None when no point has a finite gen PPL either. With ``preset`` (the
    preset's value, one of the points): the preset's value unless the best point is resolved better than it."""
    points = list(points)
    found = _best(points) if points else None
    if found is None:
        return None
    best, metric = found
    base = next((p for p in points if p.value == preset), None)
    if base is None or base is best or (metric == "gen_ppl" and base.gen_ppl is None):
        return Choice(best.value, metric, best.value)
    interval = difference(best, base, metric)
    resolved = verdict(interval, 0.0, "above" if metric == "mauve" else "below") == PASS
    return Choice(best.value if resolved else base.value, metric, best.value, interval, not resolved)


def ppl_rows(record: dict[str, Any], run_dir: Path | None) -> np.ndarray:
    """A record's ``(nll_sum, n_tokens)`` sample rows from its samples file under ``run_dir``; the one row
    ``(log gen_ppl, 1)`` when the file or its keys are absent (``fmlm.intervals.log_ppl`` gives it back)."""
    name = record.get("samples_file")
    path = None if run_dir is None or not name else Path(run_dir) / name
    if path is not None and path.is_file():
        pairs = [(_finite(r.get("nll_sum")), _finite(r.get("n_tokens"))) for _, r in read_jsonl(path, strict=False)[0]]
        if pairs and all(n is not None and t is not None and t > 0 for n, t in pairs):
            return np.asarray(pairs, dtype=np.float64)
    ppl = _finite(record.get("gen_ppl"))
    return np.asarray([[math.log(ppl) if ppl is not None and ppl > 0 else math.nan, 1.0]])


def sweep_points(records: Iterable[dict[str, Any]], sweep: Sweep, seeds: Iterable[int],
                 order: Iterable[float] = (), run_dir: Path | str | None = None) -> list[Point]:
    """The points of ``sweep`` in ``records`` (results.jsonl records) on ``seeds``: per value the mean MAUVE
    over the seeds (None unless every record of the value has a finite one) and the mean finite gen PPL, and
    per seed its MAUVE and its samples' rows (``ppl_rows``, read under ``run_dir``). Points follow ``order``
    (the values as planned), then any other value in record order; a value of ``order`` with no record is
    left out."""
    seeds = set(seeds)
    by_value: dict[float, list[dict[str, Any]]] = {float(v): [] for v in order}
    for r in records:
        if r.get("model") == sweep.model and r.get("sweep") == sweep.knob and r.get("seed") in seeds:
            by_value.setdefault(float(r[sweep.knob]), []).append(r)
    points = []
    for value, rs in by_value.items():
        if not rs:
            continue
        rs = sorted(rs, key=lambda r: r.get("seed", 0))
        mauve = [_finite(r.get("mauve")) for r in rs]
        ppl = [p for p in (_finite(r.get("gen_ppl")) for r in rs) if p is not None]
        exact = [_finite(r.get("excess_nll")) for r in rs]
        cover = [_finite(r.get("bigram_kl")) for r in rs]
        scores = () if None in exact + cover else tuple(abs(e) + c for e, c in zip(exact, cover))
        points.append(Point(value, None if None in mauve else sum(mauve) / len(mauve),
                            sum(ppl) / len(ppl) if ppl else None,
                            () if None in mauve else tuple(mauve),
                            tuple(ppl_rows(r, None if run_dir is None else Path(run_dir)) for r in rs),
                            sum(scores) / len(scores) if scores else None, scores))
    return points


__all__ = ["Choice", "Point", "SWEEPS", "SWEEP_TAGS", "Sweep", "choose", "difference", "ppl_rows", "preset_knob",
           "sweep_points"]
