import math

import numpy as np
import pytest

from fmlm.reports.intervals import FAIL, PASS, UNRESOLVED, Interval, compare, t_interval, verdict


def test_t_interval_matches_the_hand_computed_one():
    # [1, 2, 3]: mean 2, s = 1, t_{0.975, 2} = 4.302653, half-width 4.302653 / sqrt(3) = 2.484138
    lo, hi = t_interval([1.0, 2.0, 3.0])
    assert lo == pytest.approx(2 - 2.484138, abs=1e-6) and hi == pytest.approx(2 + 2.484138, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([1.0])


def test_one_value_per_side_has_no_interval_and_no_verdict():
    iv = compare([1.0], [2.0])
    assert (iv.estimate, iv.low, iv.high, iv.method) == (-1.0, -1.0, -1.0, "no interval")
    assert verdict(iv).startswith(UNRESOLVED)


def test_seed_values_give_the_t_interval_of_their_differences():
    iv = compare([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])  # differences 1, 2, 3
    assert iv.method == "t over 3 seeds" and iv.low == pytest.approx(2 - 2.484138, abs=1e-6)
    assert verdict(iv, claim="above") == UNRESOLVED  # the interval straddles 0


def test_verdicts_follow_the_interval_against_the_threshold():
    iv = Interval(-2.0, -3.0, -1.0, 3, "t over 3 seeds")
    assert verdict(iv) == PASS and verdict(iv, claim="above") == FAIL
    assert verdict(iv, threshold=-1.5) == UNRESOLVED and verdict(iv, threshold=-3.5) == FAIL
    assert verdict(Interval(math.nan, 0.0, 1.0, 3, "t")).startswith(FAIL)
    with pytest.raises(ValueError, match="claim"):
        verdict(iv, claim="less")


def test_a_clear_sample_difference_resolves_and_a_null_one_does_not():
    rng = np.random.default_rng(0)
    left = [rng.normal(0.0, 1.0, 200) for _ in range(3)]
    shifted = [rng.normal(1.0, 1.0, 200) for _ in range(3)]  # 1 sd apart: 14 standard errors of a 200-sample mean
    same = [rng.normal(0.0, 1.0, 200) for _ in range(3)]
    assert verdict(compare(left, shifted, n_boot=300)) == PASS
    assert verdict(compare(left, same, n_boot=300)) == UNRESOLVED
    assert compare(left, shifted, n_boot=300).method == "t over 3 seeds + bootstrap"


def test_a_ratio_rule_is_a_contrast_against_zero():
    within = lambda a, b: a - 1.1 * b  # "a within 10% of b"
    iv = compare([[1.00, 1.02], [1.01, 1.03]], [[1.0, 1.0], [1.0, 1.0]], contrast=within, n_boot=300)
    assert verdict(iv) == PASS and iv.estimate == pytest.approx(1.015 - 1.1)


def test_intervals_cover_a_zero_difference_at_their_stated_level():
    # 200 null experiments (3 seeds x 30 samples a side, N(0, 1) both sides): the union of the t and
    # bootstrap intervals must contain 0 in at least 95% of them up to binomial noise (sd 1.5% at 200
    # trials; 0.90 is 3.3 sd below 0.95). Seeded, so the count is the same on every machine.
    rng = np.random.default_rng(1)
    covered = 0
    for k in range(200):
        a = [rng.normal(size=30) for _ in range(3)]
        b = [rng.normal(size=30) for _ in range(3)]
        iv = compare(a, b, n_boot=500, seed=k)
        covered += iv.low <= 0.0 <= iv.high
    assert covered / 200 >= 0.90


def test_bad_seeds_are_refused():
    with pytest.raises(ValueError, match="same seeds"):
        compare([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one value"):
        compare([[]], [1.0])
