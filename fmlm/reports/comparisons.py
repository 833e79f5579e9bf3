"""The checks the project reports as measured, each stated as PASS / FAIL with its numbers.

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

Comparisons use means over seeds. A non-finite number never passes. Where
several headline settings exist for one model and step count, every pair is
checked and listed (none is picked as "best").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fmlm.experiment.run_folder import MODEL_LABELS
from fmlm.reports.aggregate import headline
from fmlm.reports.formatting import NOT_MEASURED, fmt_num, fmt_setting, fmt_stat, steps_text

ENTROPY_REL_TOL = 0.10
"""Entropy may differ from the teacher's by at most 10% (relative), else the text is degenerate or noisy."""
FEW_STEP_PPL_FACTOR = 3.0
"""FMLM* at 4 steps must reach a gen PPL within 3x of the teacher's many-step sampler."""
FEW_STEP_MAUVE_FACTOR = 0.5
"""FMLM* at 4 steps must reach at least half the teacher's many-step MAUVE."""
MANY_STEP_MIN = 5
"""The teacher's many-step reference is its headline with the most steps, and it must have at least this many."""

PASS, FAIL = "PASS", "FAIL"


@dataclass(frozen=True)
class Comparison:
    """One reported check: what is compared, the numbers, the rule and the outcome."""

    check: str
    left: str
    right: str
    criterion: str
    result: str


def judge(holds: bool, *values: float) -> str:
    """``PASS`` if every value is finite and ``holds``; ``FAIL`` otherwise (noting non-finite values)."""
    if not all(math.isfinite(v) for v in values):
        return f"{FAIL} (non-finite value)"
    return PASS if holds else FAIL


def lower(a: float, b: float) -> str:
    """PASS when ``a < b``."""
    return judge(a < b, a, b)


def within_factor(a: float, b: float, factor: float) -> str:
    """PASS when ``a <= factor * b``."""
    return judge(a <= factor * b, a, b)


def entropy_close(a: float, b: float, rel_tol: float = ENTROPY_REL_TOL) -> str:
    """PASS when ``|a - b| <= rel_tol * |b|``."""
    return judge(abs(a - b) <= rel_tol * abs(b), a, b)


def higher(a: float, b: float) -> str:
    """PASS when ``a > b``."""
    return judge(a > b, a, b)


def at_least_factor(a: float, b: float, factor: float) -> str:
    """PASS when ``a >= factor * b``."""
    return judge(a >= factor * b, a, b)


def closer(a: float, b: float, ref: float) -> str:
    """PASS when ``a`` is closer to ``ref`` than ``b`` is."""
    return judge(abs(a - ref) < abs(b - ref), a, b, ref)


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


def _pairwise(check: str, left: pd.DataFrame, right: pd.DataFrame, left_name: str, right_name: str,
              stat: str, criterion: str, rule) -> list[Comparison]:
    """Apply ``rule(left_mean, right_mean)`` to every pair of rows; 'not measured' if a side is empty."""
    if left.empty or right.empty:
        return [Comparison(check, _describe(left.iloc[0], stat) if not left.empty else _missing(left_name),
                           _describe(right.iloc[0], stat) if not right.empty else _missing(right_name),
                           criterion, NOT_MEASURED)]
    def result(a: pd.Series, b: pd.Series) -> str:
        values = (a.get(f"{stat}_mean", math.nan), b.get(f"{stat}_mean", math.nan))
        if stat == "mauve" and not all(isinstance(v, float) and math.isfinite(v) for v in values):
            return NOT_MEASURED  # an optional metric the record lacks, not a failure
        return rule(*values)

    return [Comparison(check, _describe(a, stat), _describe(b, stat), criterion, result(a, b))
            for _, a in left.iterrows() for _, b in right.iterrows()]


def teacher_many_steps(summary: pd.DataFrame) -> pd.DataFrame:
    """The teacher's headline rows at its largest step count (if that is >= ``MANY_STEP_MIN``)."""
    rows = headline(summary, "teacher")
    if rows.empty or rows["steps"].max() < MANY_STEP_MIN:
        return rows.iloc[0:0]
    return rows[rows["steps"] == rows["steps"].max()]


def compare(summary: pd.DataFrame, fixed_point: dict[str, Any] | None) -> list[Comparison]:
    """Every check in the module docstring, in order."""
    out: list[Comparison] = []
    star1 = headline(summary, "flow-map", 1)
    star4 = headline(summary, "flow-map", 4)
    many = teacher_many_steps(summary)
    many_name = f"ELF at its many-step setting (>= {MANY_STEP_MIN} steps)"
    ent_rule = f"abs(H_FMLM* - H_ELF) <= {ENTROPY_REL_TOL:.0%} of H_ELF"
    for steps in (1, 4):
        teacher = headline(summary, "teacher", steps)
        out += _pairwise(f"FMLM* 1 step beats ELF {steps} step{'s' * (steps > 1)}", star1, teacher,
                         "FMLM* 1 step", f"ELF {steps} steps", "gen_ppl", "gen PPL(FMLM*) < gen PPL(ELF)", lower)
        out += _pairwise(f"entropy: FMLM* 1 step vs ELF {steps} step{'s' * (steps > 1)}", star1, teacher,
                         "FMLM* 1 step", f"ELF {steps} steps", "entropy", ent_rule, entropy_close)
    out += _pairwise("FMLM* 4 steps within 3x of ELF many steps", star4, many, "FMLM* 4 steps", many_name,
                     "gen_ppl", f"gen PPL(FMLM*) <= {FEW_STEP_PPL_FACTOR:g} x gen PPL(ELF)",
                     lambda a, b: within_factor(a, b, FEW_STEP_PPL_FACTOR))
    out += _pairwise("entropy: FMLM* 4 steps vs ELF many steps", star4, many, "FMLM* 4 steps", many_name,
                     "entropy", ent_rule, entropy_close)
    untrained = headline(summary, "untrained")
    out += _pairwise("ELF beats the untrained network", many, untrained, many_name,
                     "untrained network", "gen_ppl", "gen PPL(ELF) < gen PPL(untrained)", lower)
    reference = headline(summary, "reference")
    if not reference.empty:
        ref = reference.iloc[0]
        out += _pairwise("entropy: ELF closer to real text than the untrained network", many, untrained, many_name,
                         "untrained network", "entropy",
                         f"abs(H_ELF - H_text) < abs(H_untrained - H_text), H_text = {ref['entropy_mean']:.3g}",
                         lambda a, b: closer(a, b, ref["entropy_mean"]))
        out += _pairwise("gen PPL: ELF closer to real text than the untrained network", many, untrained, many_name,
                         "untrained network", "gen_ppl",
                         f"abs(log PPL_ELF - log PPL_text) < abs(log PPL_untrained - log PPL_text), "
                         f"PPL_text = {ref['gen_ppl_mean']:.4g}",
                         lambda a, b: closer(math.log(a), math.log(b), math.log(ref["gen_ppl_mean"]))
                         if a > 0 and b > 0 else judge(False, a, b))
    out.append(_fixed_point_check(fixed_point))
    return out + _mauve_checks(summary, star1, star4, many, many_name)


def _mauve_checks(summary: pd.DataFrame, star1: pd.DataFrame, star4: pd.DataFrame, many: pd.DataFrame,
                  many_name: str) -> list[Comparison]:
    """The distributional checks: FMLM* vs the teacher on MAUVE, FMLM* vs FMLM on gen PPL and MAUVE."""
    out: list[Comparison] = []
    for steps in (1, 4):
        teacher = headline(summary, "teacher", steps)
        out += _pairwise(f"MAUVE: FMLM* 1 step vs ELF {steps} step{'s' * (steps > 1)}", star1, teacher,
                         "FMLM* 1 step", f"ELF {steps} steps", "mauve", "MAUVE(FMLM*) > MAUVE(ELF)", higher)
    out += _pairwise("MAUVE: FMLM* 4 steps vs ELF many steps", star4, many, "FMLM* 4 steps", many_name, "mauve",
                     f"MAUVE(FMLM*) >= {FEW_STEP_MAUVE_FACTOR:g} x MAUVE(ELF)",
                     lambda a, b: at_least_factor(a, b, FEW_STEP_MAUVE_FACTOR))
    for steps in (1, 2, 4):
        star, plain = headline(summary, "flow-map", steps), headline(summary, "flow-map-nosc", steps)
        name = f"{steps} step{'s' * (steps > 1)}"
        out += _pairwise(f"FMLM* beats FMLM at {name}", star, plain, f"FMLM* {name}", f"FMLM {name}",
                         "gen_ppl", "gen PPL(FMLM*) < gen PPL(FMLM)", lower)
        out += _pairwise(f"MAUVE: FMLM* vs FMLM at {name}", star, plain, f"FMLM* {name}", f"FMLM {name}",
                         "mauve", "MAUVE(FMLM*) > MAUVE(FMLM)", higher)
    return out


def _fixed_point_check(fixed_point: dict[str, Any] | None) -> Comparison:
    check = "ELF* one forward is closer to s* than the teacher's F(0)"
    criterion = "student_dist < teacher_first_iterate_dist"
    if fixed_point is None:
        return Comparison(check, _missing("ELF* distance (fixed_point.json)"),
                          _missing("teacher F(0) distance"), criterion, NOT_MEASURED)
    student, teacher = fixed_point["student_dist"], fixed_point["teacher_first_iterate_dist"]
    rows = f" over {fixed_point['n_rows']} rows" if "n_rows" in fixed_point else ""
    return Comparison(check, f"ELF* distance to s*: {fmt_num(student, 4)}{rows}",
                      f"teacher F(0) distance to s*: {fmt_num(teacher, 4)}{rows}", criterion, lower(student, teacher))


def comparisons_markdown(comparisons: list[Comparison]) -> str:
    """The checks as a markdown table plus a one-line tally."""
    frame = pd.DataFrame([c.__dict__ for c in comparisons], columns=["check", "left", "right", "criterion", "result"])
    tally = {k: sum(c.result.startswith(k) for c in comparisons) for k in (PASS, FAIL, NOT_MEASURED)}
    head = (f"Fixed thresholds (never tuned): entropy within {ENTROPY_REL_TOL:.0%}, FMLM* 4 steps within "
            f"{FEW_STEP_PPL_FACTOR:g}x of the teacher's many-step gen PPL (its headline with the most steps, "
            f">= {MANY_STEP_MIN}) and at least {FEW_STEP_MAUVE_FACTOR:g}x its MAUVE. Means over seeds; a "
            "non-finite value fails; a record without MAUVE leaves a MAUVE check not measured. "
            f"Tally: {tally[PASS]} PASS, {tally[FAIL]} FAIL, {tally[NOT_MEASURED]} not measured.")
    return head + "\n\n" + frame.to_markdown(index=False, disable_numparse=True) + "\n"
