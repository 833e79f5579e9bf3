"""The hyperparameter sweeps and the rule that chooses their values (torch-free: the run and the reports
both use it, so the value a headline is sampled at and the value the report names are the same).

A sweep samples one model at several values of one sampler knob on the validation seeds
(``evaluation.validation_seeds``), never on a headline seed. The sweeps run in the order of
``SWEEPS``, each at the values chosen by the ones before it (FMLM*'s gamma sweep runs at its chosen
w), and the headline settings then use the chosen values (``fmlm.experiment.plan``).

Choice rule, fixed before any run was seen: on the exact testbed (records that carry ``excess_nll`` and
``bigram_kl``, ``fmlm.evaluation.exact``) the lowest mean ``excess_nll + bigram_kl`` (precision plus
coverage under the true law); otherwise the highest mean MAUVE over the validation seeds when every
point of the sweep has a finite MAUVE, else the lowest finite mean gen PPL. "Lowest gen PPL at a
healthy entropy" is not the rule: gen PPL rewards repetition, and MAUVE, when measured, does not. A
tie goes to the smaller value, so the choice does not depend on the order of the points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable


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
    """One swept value with its mean MAUVE (None: not measured on every seed) and mean gen PPL."""

    value: float
    mauve: float | None
    gen_ppl: float | None
    exact: float | None = None  # mean excess NLL + bigram KL (the exact testbed), None elsewhere


def _finite(x: Any) -> float | None:
    """``x`` as a finite float, else None (records hold non-finite values as strings)."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def choose(points: Iterable[Point]) -> tuple[float, str] | None:
    """``(value, metric)``: the lowest exact score when every point has one (metric ``"exact"``), else
    the point with the highest MAUVE when every point has one (metric ``"mauve"``),
    else the one with the lowest gen PPL (``"gen_ppl"``); None when no point has a finite gen PPL either."""
    points = list(points)
    if not points:
        return None
    if all(p.exact is not None for p in points):
        return min(points, key=lambda p: (p.exact, p.value)).value, "exact"
    if all(p.mauve is not None for p in points):
        return max(points, key=lambda p: (p.mauve, -p.value)).value, "mauve"
    scored = [p for p in points if p.gen_ppl is not None]
    if not scored:
        return None
    return min(scored, key=lambda p: (p.gen_ppl, p.value)).value, "gen_ppl"


def sweep_points(records: Iterable[dict[str, Any]], sweep: Sweep, seeds: Iterable[int],
                 order: Iterable[float] = ()) -> list[Point]:
    """The points of ``sweep`` in ``records`` (results.jsonl records) on ``seeds``: per value the mean MAUVE
    over the seeds (None unless every record of the value has a finite one) and the mean finite gen PPL.
    Points follow ``order`` (the values as planned), then any other value in record order; a value of
    ``order`` with no record is left out."""
    seeds = set(seeds)
    by_value: dict[float, list[dict[str, Any]]] = {float(v): [] for v in order}
    for r in records:
        if r.get("model") == sweep.model and r.get("sweep") == sweep.knob and r.get("seed") in seeds:
            by_value.setdefault(float(r[sweep.knob]), []).append(r)
    points = []
    for value, rs in by_value.items():
        if not rs:
            continue
        mauve = [_finite(r.get("mauve")) for r in rs]
        ppl = [p for p in (_finite(r.get("gen_ppl")) for r in rs) if p is not None]
        exact = [_finite(r.get("excess_nll")) for r in rs]
        cover = [_finite(r.get("bigram_kl")) for r in rs]
        both = None if None in exact + cover else (sum(exact) + sum(cover)) / len(rs)
        points.append(Point(value, None if None in mauve else sum(mauve) / len(mauve),
                            sum(ppl) / len(ppl) if ppl else None, both))
    return points


__all__ = ["Point", "SWEEPS", "SWEEP_TAGS", "Sweep", "choose", "sweep_points"]
