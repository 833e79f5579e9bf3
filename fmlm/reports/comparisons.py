"""The checks the project reports as measured, each a difference with its 95% interval and a verdict:
PASS, FAIL or unresolved.

Thresholds are fixed here, before any run is seen, and never tuned:

- FMLM* at 1 step has a lower gen PPL than the teacher (ELF) at 1 and at 4 steps;
- FMLM* at 4 steps has a gen PPL within ``FEW_STEP_PPL_FACTOR`` x the teacher's many-step gen PPL;
- in each of those comparisons FMLM*'s entropy is within ``ENTROPY_REL_TOL`` of the teacher's;
- the teacher (many steps) has a lower gen PPL than the untrained network, and its entropy and
  log gen PPL are closer to the held-out real text's than the untrained network's are (an untrained
  network can emit one repeated token, which scores a low gen PPL at a near-zero entropy);
- ELF*'s one-forward distance to s* is smaller than the teacher's first-iterate F(0) distance;
- on MAUVE (gen PPL rewards repetition; MAUVE compares with held-out text and does not): FMLM* has a
  higher MAUVE than the teacher at 1 and at 4 steps (from 1 step), at least ``FEW_STEP_MAUVE_FACTOR`` x the
  teacher's many-step MAUVE (from 4 steps), and FMLM* beats FMLM at 1, 2 and 4 steps on both gen PPL and
  MAUVE. A record without MAUVE (a run measured before it was recorded) makes a MAUVE check "not measured".

Each rule is a contrast of the two sides against zero (``Rule``): ``log PPL_a - log PPL_b < 0``,
``log PPL_a - log PPL_b - log 3 < 0``, ``|H_a - H_b| - 0.1 |H_b| < 0``, ``MAUVE_a - MAUVE_b > 0``, ...,
judged by ``fmlm.intervals`` on the per-seed samples (``seed_samples``): PASS / FAIL when the 95%
interval lies wholly on one side, unresolved when it straddles zero or rests on fewer than
``MIN_SEEDS`` sampling seeds a side. A non-finite number never passes. Where several headline
settings exist for one model and step count, every pair is checked and listed (none is picked as "best").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS
from fmlm.reports.aggregate import headline
from fmlm.reports.formatting import NOT_MEASURED, fmt_num, fmt_setting, fmt_stat, steps_text
from fmlm.intervals import FAIL, PASS, UNRESOLVED, Contrast, Interval, verdict
from fmlm.intervals import compare as compare_sides
from fmlm.reports.seed_samples import STATISTICS, SeedSamples, paired

ENTROPY_REL_TOL = 0.10
"""Entropy may differ from the teacher's by at most 10% (relative), else the text is degenerate or noisy."""
FEW_STEP_PPL_FACTOR = 3.0
"""FMLM* at 4 steps must reach a gen PPL within 3x of the teacher's many-step sampler."""
FEW_STEP_MAUVE_FACTOR = 0.5
"""FMLM* at 4 steps must reach at least half the teacher's many-step MAUVE."""
MANY_STEP_MIN = 5
"""The teacher's many-step reference is its headline with the most steps, and it must have at least this many."""

MIN_SEEDS = 3
"""A sampled comparison is resolved only on at least this many sampling seeds a side (the headline's count)."""

@dataclass(frozen=True)
class Comparison:
    """One reported check: what is compared, the rule, the difference with its 95% interval, and the outcome."""

    check: str
    left: str
    right: str
    criterion: str
    difference: str
    result: str


@dataclass(frozen=True)
class Rule:
    """A check as a contrast of the two sides' statistics against zero: PASS when its 95% interval lies wholly
    ``claim`` ("below" / "above") zero, FAIL when wholly on the other side, unresolved when it straddles it."""

    criterion: str
    contrast: Contrast
    claim: str = "below"


def lower_ppl() -> Rule:
    """``log PPL_a - log PPL_b < 0``."""
    return Rule("log gen PPL(a) - log gen PPL(b) < 0", lambda a, b: a - b)


def within_factor(factor: float = FEW_STEP_PPL_FACTOR) -> Rule:
    """``log PPL_a - log PPL_b - log factor < 0`` (gen PPL within ``factor`` x)."""
    return Rule(f"log gen PPL(a) - log gen PPL(b) - log {factor:g} < 0", lambda a, b: a - b - math.log(factor))


def entropy_close(rel_tol: float = ENTROPY_REL_TOL) -> Rule:
    """``|H_a - H_b| - rel_tol |H_b| < 0``."""
    return Rule(f"abs(H(a) - H(b)) - {rel_tol:g} abs(H(b)) < 0", lambda a, b: np.abs(a - b) - rel_tol * np.abs(b))


def higher(name: str = "MAUVE") -> Rule:
    """``a - b > 0``."""
    return Rule(f"{name}(a) - {name}(b) > 0", lambda a, b: a - b, "above")


def at_least_factor(factor: float = FEW_STEP_MAUVE_FACTOR) -> Rule:
    """``a - factor b > 0``."""
    return Rule(f"MAUVE(a) - {factor:g} MAUVE(b) > 0", lambda a, b: a - factor * b, "above")


def closer(ref: float, name: str) -> Rule:
    """``|a - ref| - |b - ref| < 0``: ``a`` closer to the reference value than ``b`` (``ref`` a constant)."""
    return Rule(f"abs({name}(a) - {name}_text) - abs({name}(b) - {name}_text) < 0, {name}_text = {ref:.4g}",
                lambda a, b: np.abs(a - ref) - np.abs(b - ref))


def judge(rule: Rule, left: Sequence[np.ndarray], right: Sequence[np.ndarray], stat: str,
          min_seeds: int = MIN_SEEDS) -> tuple[str, str]:
    """``(difference text, verdict)`` of ``rule`` on paired per-seed samples (``fmlm.intervals``)."""
    interval = compare_sides(left, right, rule.contrast, statistic=STATISTICS[stat])
    return interval.text(), verdict(interval, 0.0, rule.claim, min_seeds=min_seeds)


STAT_NAMES = {"gen_ppl": "gen PPL", "entropy": "entropy", "mauve": "MAUVE"}


def _describe(row: pd.Series, stat: str) -> str:
    label = MODEL_LABELS.get(row["model"], row["label"])
    setting = fmt_setting(row)
    knobs = row["sampler"] if setting == "-" else f"{row['sampler']}, {setting}"
    name = STAT_NAMES[stat]
    seeds = f", n={row['n_records']}" if row["n_records"] > 1 else ""
    digits = 4 if stat == "mauve" else 2
    return f"{label} {steps_text(row['steps'])} [{knobs}]: {name} {fmt_stat(row, stat, digits)}{seeds}"


def _missing(what: str) -> str:
    return f"{what}: {NOT_MEASURED}"


def _pairwise(samples: SeedSamples, check: str, left: pd.DataFrame, right: pd.DataFrame, left_name: str,
              right_name: str, stat: str, rule: Rule) -> list[Comparison]:
    """Judge ``rule`` on every pair of rows; 'not measured' if a side is empty."""
    criterion = rule.criterion.replace("(a)", f"({left_name.split(' ')[0]})").replace(
        "(b)", f"({right_name.split(' ')[0]})")
    if left.empty or right.empty:
        return [Comparison(check, _describe(left.iloc[0], stat) if not left.empty else _missing(left_name),
                           _describe(right.iloc[0], stat) if not right.empty else _missing(right_name),
                           criterion, "-", NOT_MEASURED)]

    def result(a: pd.Series, b: pd.Series) -> tuple[str, str]:
        if stat == "mauve" and not all(math.isfinite(float(r.get("mauve_mean", math.nan))) for r in (a, b)):
            return "-", NOT_MEASURED  # an optional metric the record lacks, not a failure
        return judge(rule, *paired(samples.side(a, stat), samples.side(b, stat)), stat)

    return [Comparison(check, _describe(a, stat), _describe(b, stat), criterion, *result(a, b))
            for _, a in left.iterrows() for _, b in right.iterrows()]


def teacher_many_steps(summary: pd.DataFrame) -> pd.DataFrame:
    """The teacher's headline rows at its largest step count (if that is >= ``MANY_STEP_MIN``)."""
    rows = headline(summary, "teacher")
    if rows.empty or rows["steps"].max() < MANY_STEP_MIN:
        return rows.iloc[0:0]
    return rows[rows["steps"] == rows["steps"].max()]


def compare(summary: pd.DataFrame, fixed_point: dict[str, Any] | None, samples: SeedSamples) -> list[Comparison]:
    """Every check in the module docstring, in order; ``samples``: the per-seed samples of the records."""
    out: list[Comparison] = []
    star1 = headline(summary, "flow-map", 1)
    star4 = headline(summary, "flow-map", 4)
    many = teacher_many_steps(summary)
    many_name = f"ELF at its many-step setting (>= {MANY_STEP_MIN} steps)"
    for steps in (1, 4):
        teacher = headline(summary, "teacher", steps)
        out += _pairwise(samples, f"FMLM* 1 step beats ELF {steps} step{'s' * (steps > 1)}", star1, teacher,
                         "FMLM* 1 step", f"ELF {steps} steps", "gen_ppl", lower_ppl())
        out += _pairwise(samples, f"entropy: FMLM* 1 step vs ELF {steps} step{'s' * (steps > 1)}", star1, teacher,
                         "FMLM* 1 step", f"ELF {steps} steps", "entropy", entropy_close())
    out += _pairwise(samples, "FMLM* 4 steps within 3x of ELF many steps", star4, many, "FMLM* 4 steps", many_name,
                     "gen_ppl", within_factor())
    out += _pairwise(samples, "entropy: FMLM* 4 steps vs ELF many steps", star4, many, "FMLM* 4 steps", many_name,
                     "entropy", entropy_close())
    untrained = headline(summary, "untrained")
    out += _pairwise(samples, "ELF beats the untrained network", many, untrained, many_name,
                     "untrained network", "gen_ppl", lower_ppl())
    reference = headline(summary, "reference")
    if not reference.empty:
        ref = reference.iloc[0]
        out += _pairwise(samples, "entropy: ELF closer to real text than the untrained network", many, untrained,
                         many_name, "untrained network", "entropy", closer(float(ref["entropy_mean"]), "H"))
        log_text = math.log(ref["gen_ppl_mean"]) if ref["gen_ppl_mean"] > 0 else math.nan
        out += _pairwise(samples, "gen PPL: ELF closer to real text than the untrained network", many, untrained,
                         many_name, "untrained network", "gen_ppl", closer(log_text, "log gen PPL"))
    out.append(_fixed_point_check(fixed_point))
    return out + _mauve_checks(samples, summary, star1, star4, many, many_name)


def _mauve_checks(samples: SeedSamples, summary: pd.DataFrame, star1: pd.DataFrame, star4: pd.DataFrame,
                  many: pd.DataFrame, many_name: str) -> list[Comparison]:
    """The distributional checks: FMLM* vs the teacher on MAUVE, FMLM* vs FMLM on gen PPL and MAUVE."""
    out: list[Comparison] = []
    for steps in (1, 4):
        teacher = headline(summary, "teacher", steps)
        out += _pairwise(samples, f"MAUVE: FMLM* 1 step vs ELF {steps} step{'s' * (steps > 1)}", star1, teacher,
                         "FMLM* 1 step", f"ELF {steps} steps", "mauve", higher())
    out += _pairwise(samples, "MAUVE: FMLM* 4 steps vs ELF many steps", star4, many, "FMLM* 4 steps", many_name,
                     "mauve", at_least_factor())
    for steps in (1, 2, 4):
        star, plain = headline(summary, "flow-map", steps), headline(summary, "flow-map-nosc", steps)
        name = f"{steps} step{'s' * (steps > 1)}"
        out += _pairwise(samples, f"FMLM* beats FMLM at {name}", star, plain, f"FMLM* {name}", f"FMLM {name}",
                         "gen_ppl", lower_ppl())
        out += _pairwise(samples, f"MAUVE: FMLM* vs FMLM at {name}", star, plain, f"FMLM* {name}", f"FMLM {name}",
                         "mauve", higher())
    return out


def _fixed_point_check(fixed_point: dict[str, Any] | None) -> Comparison:
    """Per-row distances (``student_dists``, ``teacher_first_iterate_dists``) give a paired bootstrap over the
    rows (one probe, no sampling seeds); a file with the two averages only has no interval."""
    check = "ELF* one forward is closer to s* than the teacher's F(0)"
    criterion = "student_dist - teacher_first_iterate_dist < 0"
    if fixed_point is None:
        return Comparison(check, _missing("ELF* distance (fixed_point.json)"),
                          _missing("teacher F(0) distance"), criterion, "-", NOT_MEASURED)
    student, teacher = fixed_point["student_dist"], fixed_point["teacher_first_iterate_dist"]
    rows = f" over {fixed_point['n_rows']} rows" if "n_rows" in fixed_point else ""
    per_row = [fixed_point.get(k) for k in ("student_dists", "teacher_first_iterate_dists")]
    if all(isinstance(v, list) and v for v in per_row) and len(per_row[0]) == len(per_row[1]):
        diffs = np.asarray(per_row[0], dtype=np.float64) - np.asarray(per_row[1], dtype=np.float64)
        interval = compare_sides([diffs], [[0.0]])
        interval = Interval(student - teacher, interval.low - interval.estimate + student - teacher,
                            interval.high - interval.estimate + student - teacher, 1, "paired bootstrap over rows")
    else:
        interval = Interval(student - teacher, student - teacher, student - teacher, 1, "no interval")
    return Comparison(check, f"ELF* distance to s*: {fmt_num(student, 4)}{rows}",
                      f"teacher F(0) distance to s*: {fmt_num(teacher, 4)}{rows}", criterion, interval.text(),
                      verdict(interval))


def comparisons_markdown(comparisons: list[Comparison]) -> str:
    """The checks as a markdown table plus a one-line tally."""
    columns = {"check": "check", "left": "left", "right": "right", "criterion": "criterion",
               "difference": "difference [95% interval]", "result": "result"}
    frame = pd.DataFrame([c.__dict__ for c in comparisons], columns=list(columns)).rename(columns=columns)
    tally = {k: sum(c.result.startswith(k) for c in comparisons) for k in (PASS, FAIL, UNRESOLVED, NOT_MEASURED)}
    head = (f"Fixed thresholds (never tuned): entropy within {ENTROPY_REL_TOL:.0%}, FMLM* 4 steps within "
            f"{FEW_STEP_PPL_FACTOR:g}x of the teacher's many-step gen PPL (its headline with the most steps, "
            f">= {MANY_STEP_MIN}) and at least {FEW_STEP_MAUVE_FACTOR:g}x its MAUVE. Each rule is a contrast "
            "(a difference; gen PPL on the log scale) against zero, shown with its 95% interval: the union of a t "
            "interval over the sampling seeds and a bootstrap over the samples within each seed (MAUVE, one "
            "number per seed: t only). PASS / FAIL when the interval lies wholly on one side of zero; "
            f"unresolved when it straddles zero, has no interval, or rests on fewer than {MIN_SEEDS} seeds a side "
            "(the fixed-point probe: a paired bootstrap over its rows). A non-finite value fails; a record without "
            "MAUVE leaves a MAUVE check not measured. "
            f"Tally: {tally[PASS]} PASS, {tally[FAIL]} FAIL, {tally[UNRESOLVED]} unresolved, "
            f"{tally[NOT_MEASURED]} not measured.")
    return head + "\n\n" + frame.to_markdown(index=False, disable_numparse=True) + "\n"
