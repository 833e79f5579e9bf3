import math

import numpy as np
import pytest

from fmlm.intervals import (FAIL, PASS, UNRESOLVED, Interval, bootstrap_interval, compare, log_ppl,
                                    mean_difference, t_interval, verdict)


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


def test_a_row_statistic_gives_the_corpus_log_ppl_not_a_mean_of_sample_values():
    # (nll_sum, n_tokens) rows: corpus log PPL = (10 + 30) / (10 + 10) = 2.0, while the mean of the per-sample
    # log PPLs (1.0 and 3.0) is also 2.0, so the sample sizes differ on the right: (6 + 2) / (2 + 6) = 1.0,
    # where the mean of per-sample values 3.0 and 1/3 would be 1.667
    left, right = [[[10.0, 10.0], [30.0, 10.0]]], [[[6.0, 2.0], [2.0, 6.0]]]
    iv = compare(left, right, statistic=log_ppl, n_boot=200)
    assert iv.estimate == pytest.approx(1.0, abs=1e-12)  # exact ratios of small integers
    assert iv.method == "bootstrap"
    # resamples of 2 rows: left takes 1.0, 2.0 or 3.0 and right 1/3, 1.0 or 3.0, so every draw is in [-2, 2.667]
    assert -2.0 - 1e-12 <= iv.low <= iv.estimate <= iv.high <= 8 / 3 + 1e-12


def test_a_seed_without_its_samples_is_one_row_that_gives_back_its_value():
    # (log gen_ppl, 1): the statistic returns log gen_ppl itself; 3 seeds give the t interval of the log ratios
    left = [[[math.log(100.0), 1.0]], [[math.log(110.0), 1.0]], [[math.log(120.0), 1.0]]]
    right = [[[math.log(400.0), 1.0]]] * 3
    iv = compare(left, right, statistic=log_ppl)
    logs = [math.log(v / 400.0) for v in (100.0, 110.0, 120.0)]
    lo, hi = t_interval(logs)
    assert iv.method == "t over 3 seeds" and iv.estimate == pytest.approx(sum(logs) / 3, abs=1e-12)
    assert (iv.low, iv.high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))  # same formula
    assert verdict(iv) == PASS


def test_the_bootstrap_is_the_percentiles_of_hand_drawn_resamples():
    # the same seeded index draws, done by hand for one seed: left resampled first, then right
    a, b = np.array([1.0, 2.0, 4.0]), np.array([0.0, 1.0])
    rng = np.random.default_rng(7)
    ia, ib = rng.integers(0, 3, (400, 3)), rng.integers(0, 2, (400, 2))
    draws = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    lo, hi = bootstrap_interval([a], [b], mean_difference, n_boot=400, seed=7)
    assert (lo, hi) == (np.quantile(draws, 0.025), np.quantile(draws, 0.975))  # identical arithmetic


def test_a_ratio_statistic_interval_covers_the_true_ratio():
    # 200 experiments, 3 seeds x 40 rows a side, nll ~ tokens * N(2.0, 0.5) with tokens in 5..30 on both
    # sides: the true log PPL difference is 0; the union interval must cover it in >= 90% (sd of a
    # 95% coverage estimate over 200 trials: 1.5%; 0.90 is 3.3 sd below). Seeded, so the same everywhere.
    rng = np.random.default_rng(3)

    def side():
        tokens = rng.integers(5, 31, (40,)).astype(float)
        return np.stack([tokens * rng.normal(2.0, 0.5, 40), tokens], axis=1)

    covered = 0
    for k in range(200):
        iv = compare([side() for _ in range(3)], [side() for _ in range(3)], statistic=log_ppl, n_boot=300, seed=k)
        covered += iv.low <= 0.0 <= iv.high
    assert covered / 200 >= 0.90


def test_too_few_seeds_stay_unresolved_and_non_finite_values_fail():
    rng = np.random.default_rng(0)
    iv = compare([rng.normal(0.0, 1.0, 200)], [rng.normal(3.0, 1.0, 200)], n_boot=300)  # one seed, 21 se apart
    assert verdict(iv) == PASS and verdict(iv, min_seeds=3) == f"{UNRESOLVED} (1 seed < 3)"
    bad = compare([[math.nan, 1.0]], [[0.0, 1.0]])
    assert bad.method == "non-finite value" and verdict(bad).startswith(FAIL)


def test_rows_of_different_widths_are_refused():
    with pytest.raises(ValueError, match="one width"):
        compare([[[1.0, 2.0]], [[1.0, 2.0, 3.0]]], [[[1.0, 2.0]], [[1.0, 2.0]]], statistic=log_ppl)
