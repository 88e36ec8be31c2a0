"""Every interval the study reports contains its point estimate, also at the edges (issue 28).

The reference is scipy (binomtest's Wilson and Clopper-Pearson intervals); the property runs over
every k in 0..n for n up to 400, where a hand-written Wilson formula excluded k / n by 1e-17 in 81
cases with k = 0 or k = n below n = 200.
"""
import numpy as np
import pytest
from scipy import stats as sps

from htsc_core import stats


@pytest.mark.parametrize("interval", [stats.wilson_interval, stats.exact_interval])
def test_every_proportion_interval_contains_its_estimate(interval):
    for n in range(1, 401):
        k = np.arange(n + 1)
        lo, hi = interval(k, n)
        ok = (0.0 <= lo) & (lo <= k / n) & (k / n <= hi) & (hi <= 1.0)
        assert ok.all(), f"n={n}: k={k[~ok][:3]} excluded from {lo[~ok][:3]}, {hi[~ok][:3]}"
    assert stats.wilson_interval(0, 3)[0] == 0.0 and stats.wilson_interval(60, 60)[1] == 1.0


GRID = [(k, n) for n in (1, 2, 3, 4, 6, 12, 37, 60, 199, 400) for k in sorted({0, 1, n // 3, n // 2, n - 1, n})]


@pytest.mark.parametrize("method,fn", [("wilson", stats.wilson_interval), ("exact", stats.exact_interval)])
def test_intervals_equal_scipys_binomtest(method, fn):
    for k, n in GRID + [(3063, 3783)]:
        ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method=method)
        assert fn(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9), (k, n)
        lo, hi = fn(np.array([k]), np.array([n]))  # the array form gives the same numbers
        assert (float(lo[0]), float(hi[0])) == fn(k, n)
    ref = sps.binomtest(7, 9).proportion_ci(confidence_level=0.8, method="wilson")
    assert stats.wilson_interval(7, 9, level=0.8) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_interval_input_errors():
    for bad in ((1, 0), (-1, 3), (4, 3), (1.5, 3)):
        with pytest.raises(ValueError, match="stats.py"):
            stats.wilson_interval(*bad)


def test_exact_interval_agrees_with_the_exact_test_at_four_of_four():
    # 4 of 4 against chance 0.5: the exact two-sided p is 2 / 16 = 0.125 (one-sided 0.0625), so the exact
    # interval must reach below 0.5; Wilson's does not (the disagreement issue 23 found)
    assert sps.binomtest(4, 4, 0.5, alternative="greater").pvalue == pytest.approx(1 / 16)
    assert stats.exact_interval(4, 4)[0] < 0.5 < stats.wilson_interval(4, 4)[0]


def _acc(c):
    return float(np.mean(c))


@pytest.mark.parametrize("correct", [np.ones(7), np.zeros(7), np.ones(1), np.zeros(1),
                                     np.r_[np.ones(59), np.zeros(1)]])
def test_bootstrap_edges_contain_the_estimate(correct):
    est, lo, hi = stats.bootstrap_ci(_acc, correct)
    assert lo <= est <= hi
    if correct.min() == correct.max():  # all right or all wrong: every resample is the same
        assert lo == est == hi


@pytest.mark.parametrize("a,b", [(np.ones(5), np.ones(5)), (np.zeros(5), np.ones(5)), (np.ones(1), np.zeros(1)),
                                 (np.r_[1, 0, 1, 0], np.r_[1, 0, 1, 0])])
def test_paired_difference_edges_contain_the_estimate(a, b):
    est, lo, hi = stats.paired_difference(np.mean, (a,), (b,))
    assert lo <= est <= hi
    rec = stats.compare_accuracy(a, b)
    assert rec["ci"][0] <= rec["estimate"] <= rec["ci"][1]
    for (lo_, hi_), acc in ((rec["ci_a"], rec["accuracy_a"]), (rec["ci_b"], rec["accuracy_b"])):
        assert lo_ <= acc <= hi_
    if np.array_equal(a, b):  # identical methods: a zero-width interval at 0, never a verdict
        assert (est, lo, hi) == (0.0, 0.0, 0.0) and rec["verdict"] == "not resolved"


def test_ratio_interval_contains_a_median_ratio_the_bootstrap_misses():
    # a skewed sample where the median of the resampled ratios sits away from the ratio of medians
    a = np.array([1.0, 1.0, 1.0, 10.0, 10.0])
    b = np.array([1.0, 10.0, 10.0, 10.0, 10.0])
    est, lo, hi = stats.ratio_ci(a, b, n_boot=200)
    assert lo <= est <= hi
    est, lo, hi = stats.ratio_ci(np.ones(5), np.ones(5))
    assert (est, lo, hi) == (1.0, 1.0, 1.0)


def test_enclose_widens_only_when_needed_and_leaves_nan_visible():
    assert stats.enclose(0.0, 4.87e-17, 0.56) == (0.0, 0.56)
    assert stats.enclose(0.3, 0.1, 0.5) == (0.1, 0.5)
    assert stats.enclose(1.0, 0.5, 1.0 - 1e-16) == (0.5, 1.0)
    lo, hi = stats.enclose(float("nan"), 0.1, 0.5)
    assert (lo, hi) == (0.1, 0.5)
