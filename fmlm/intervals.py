"""Differences with 95% intervals, and the verdict they support: the one mechanism every comparison uses
(the reports' checks, the exact testbed's, and the sweeps' choice rule; torch-free, numpy and scipy only).

A comparison has two sides measured on the same ``n`` seeds (training seeds on the exact testbed,
sampling seeds on real text). Seed ``i`` gives each side a set of samples (a one-element set when
only a seed-level number exists, e.g. MAUVE): values of shape ``(n_i,)``, or rows of several values,
shape ``(n_i, k)``. A ``statistic`` reduces a side's samples to one number, by default their mean;
it acts on a stack of resamples, ``statistic(x)`` with ``x`` of shape ``(B, n_i[, k])`` returning
``(B,)``, e.g. the corpus log gen PPL ``sum(nll) / sum(tokens)`` over ``(nll_sum, n_tokens)`` rows
(``log_ppl``), which is not a mean of per-sample values. A ``contrast`` of the two sides' statistics
turns them into one number, by default the difference ``d_i = stat(left_i) - stat(right_i)``; a
ratio rule such as "a within 10% of b" is the contrast ``a - 1.1 b`` against zero. Contrasts act
elementwise on arrays (numpy broadcasting), so the bootstrap is vectorised.

- estimate: ``d = (1/n) sum_i d_i``;
- over seeds (``n >= 2``): Student's t, ``d +- t_{0.975, n-1} s_d / sqrt(n)`` with ``s_d`` the sample
  standard deviation of the ``d_i`` (the seed-to-seed spread, which already holds each seed's
  sampling noise);
- within seeds (any side with more than one sample): a percentile bootstrap of ``d``, resampling the
  samples (rows) of each side of each seed with replacement (``N_BOOT`` index draws, seeded);
- the interval is the union of the two that exist: with 2 or 3 seeds the t interval rests on 1-2
  degrees of freedom, and the bootstrap keeps it from being narrower than the sampling noise alone.
  One seed with one value each has no interval (``low = high = d``, method "no interval").

Verdicts: a claim ``d < threshold`` (``claim="below"``) is PASS when the whole interval lies below
the threshold, FAIL when it lies at or above it, and UNRESOLVED when it straddles it; the same for
``"above"``. A non-finite value fails. A comparison without an interval is UNRESOLVED, and so is one
on fewer seeds than the caller's ``min_seeds`` (the bootstrap within one seed sees the sampling noise
of that seed's samples but not a seed that goes wrong as a whole).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

LEVEL = 0.95
"""Two-sided coverage of every interval the reports print."""
N_BOOT = 2000
"""Bootstrap draws: the 2.5% and 97.5% percentiles then move by ~1% of the interval's width between seeds."""

PASS, FAIL, UNRESOLVED = "PASS", "FAIL", "unresolved"

Contrast = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``contrast(stat_left, stat_right)``, elementwise on arrays of statistics."""
Statistic = Callable[[np.ndarray], np.ndarray]
"""``statistic(x)``: ``x`` of shape ``(B, n[, k])`` (B stacked sets of n samples) -> ``(B,)``."""


def mean_difference(mean_left: np.ndarray, mean_right: np.ndarray) -> np.ndarray:
    """``mean_left - mean_right``: the default contrast."""
    return mean_left - mean_right


def mean(x: np.ndarray) -> np.ndarray:
    """``(1/n) sum_j x_j`` over the sample axis (axis 1): the default statistic, for samples of shape ``(B, n)``."""
    return x.mean(axis=1)


def log_ppl(x: np.ndarray) -> np.ndarray:
    """The corpus log gen PPL ``sum_j nll_j / sum_j tokens_j`` of ``(nll_sum, n_tokens)`` rows, ``x`` of shape
    ``(B, n, 2)``. A record without its samples is the one row ``(log gen_ppl, 1)``, which gives back its value."""
    return x[..., 0].sum(axis=1) / x[..., 1].sum(axis=1)


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval, and how the interval was obtained (e.g. "t over 3 seeds")."""

    estimate: float
    low: float
    high: float
    n_seeds: int
    method: str

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.estimate, self.low, self.high))

    def text(self, digits: int = 3) -> str:
        """``-0.012 [-0.020, -0.004] (t over 3 seeds + bootstrap)``."""
        f = lambda v: f"{v:.{digits}g}"
        if self.method == "no interval":
            return f"{f(self.estimate)} (one value, no interval)"
        return f"{f(self.estimate)} [{f(self.low)}, {f(self.high)}] ({self.method})"


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """``mean +- t_{(1+level)/2, n-1} s / sqrt(n)`` over ``n >= 2`` values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        raise ValueError(f"values: a t interval needs at least 2 values, got {v.size}")
    half = stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def bootstrap_interval(left: Sequence[np.ndarray], right: Sequence[np.ndarray], contrast: Contrast,
                       level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0,
                       statistic: Statistic = mean) -> tuple[float, float]:
    """Percentile interval of ``mean_i contrast(stat(left_i*), stat(right_i*))``, each side of each seed resampled
    (its rows drawn with replacement: one ``(n_boot, n)`` index matrix per side and seed)."""
    rng = np.random.default_rng(seed)

    def stats_of(x: np.ndarray) -> np.ndarray:  # (n_boot,) statistics of resamples of x
        return statistic(x[rng.integers(0, len(x), (n_boot, len(x)))])

    draws = np.mean([contrast(stats_of(a), stats_of(c)) for a, c in zip(left, right)], axis=0)
    alpha = (1 - level) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def _as_seeds(side: Sequence[ArrayLike], name: str) -> list[np.ndarray]:
    seeds = [np.atleast_1d(np.asarray(s, dtype=np.float64)) for s in side]
    if not seeds or any(len(s) == 0 for s in seeds):
        raise ValueError(f"{name}: every seed needs at least one value, got sizes {[len(s) for s in seeds]}")
    if len({s.shape[1:] for s in seeds}) > 1 or any(s.ndim > 2 for s in seeds):
        raise ValueError(f"{name}: every seed's samples must be values or rows of one width, got shapes "
                         f"{[s.shape for s in seeds]}")
    return seeds


def compare(left: Sequence[ArrayLike], right: Sequence[ArrayLike], contrast: Contrast = mean_difference,
            level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0, statistic: Statistic = mean) -> Interval:
    """The contrast of ``left`` against ``right`` over their seeds, with its interval (module docstring)."""
    a, b = _as_seeds(left, "left"), _as_seeds(right, "right")
    if len(a) != len(b):
        raise ValueError(f"left and right must have the same seeds, got {len(a)} and {len(b)}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        per_seed = [float(contrast(statistic(x[None])[0], statistic(y[None])[0])) for x, y in zip(a, b)]
    estimate = float(np.mean(per_seed))
    lows, highs, methods = [], [], []
    if not all(math.isfinite(v) for v in per_seed):
        return Interval(estimate, math.nan, math.nan, len(per_seed), "non-finite value")
    if len(per_seed) >= 2:
        lo, hi = t_interval(per_seed, level)
        lows.append(lo), highs.append(hi), methods.append(f"t over {len(per_seed)} seeds")
    if any(len(x) > 1 for x in a + b):
        lo, hi = bootstrap_interval(a, b, contrast, level, n_boot, seed, statistic)
        lows.append(lo), highs.append(hi), methods.append("bootstrap")
    if not methods:
        return Interval(estimate, estimate, estimate, len(per_seed), "no interval")
    return Interval(estimate, min(lows), max(highs), len(per_seed), " + ".join(methods))


def verdict(interval: Interval, threshold: float = 0.0, claim: Literal["below", "above"] = "below",
            min_seeds: int = 1) -> str:
    """PASS / FAIL / unresolved for the claim ``estimate < threshold`` (or ``>``) given its interval; an
    interval over fewer than ``min_seeds`` seeds is unresolved whatever it shows."""
    if claim not in ("below", "above"):
        raise ValueError(f"claim must be 'below' or 'above', got {claim!r}")
    if not interval.finite:
        return f"{FAIL} (non-finite value)"
    if interval.method == "no interval":
        return f"{UNRESOLVED} (no interval)"
    if interval.n_seeds < min_seeds:
        return f"{UNRESOLVED} ({interval.n_seeds} seed{'s' * (interval.n_seeds != 1)} < {min_seeds})"
    inside, outside = (interval.high < threshold, interval.low >= threshold) if claim == "below" else \
        (interval.low > threshold, interval.high <= threshold)
    return PASS if inside else FAIL if outside else UNRESOLVED
