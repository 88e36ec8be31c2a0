"""htsc_core.stats against scipy.stats and hand-computed values."""
import json
from math import comb

import numpy as np
import pytest
from scipy import stats as sps

from htsc_core import metrics, replicates, stats


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (81, 100), (3063, 3783), (1, 2)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k, n, level):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    lo, hi = stats.wilson_interval(k, n, level)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError, match="n > 0"):
        stats.wilson_interval(0, 0)
    with pytest.raises(ValueError, match="k <= n"):
        stats.wilson_interval(5, 4)


def test_bootstrap_mean_close_to_scipy_percentile():
    rng = np.random.default_rng(1)
    correct = (rng.random(800) < 0.7).astype(float)
    est, lo, hi = stats.bootstrap_ci(np.mean, correct, n_boot=4000)
    ref = sps.bootstrap((correct,), np.mean, n_resamples=4000, method="percentile", confidence_level=0.95,
                        random_state=np.random.default_rng(2)).confidence_interval
    assert est == pytest.approx(correct.mean())
    assert lo == pytest.approx(ref.low, abs=0.006) and hi == pytest.approx(ref.high, abs=0.006)
    assert lo < est < hi


def test_bootstrap_top1_on_scores_matches_scipy_paired():
    rng = np.random.default_rng(3)
    n, m = 400, 6
    labels = rng.integers(0, m, n)
    scores = rng.normal(size=(n, m))
    scores[np.arange(n), labels] += 1.0
    est, lo, hi = stats.bootstrap_ci(metrics.top1, scores, labels, n_boot=2000)
    # scipy resamples 1-D data: bootstrap the row indices and score the rows they pick
    ref = sps.bootstrap((np.arange(n),), lambda i: metrics.top1(scores[i], labels[i]), vectorized=False,
                        n_resamples=2000, method="percentile",
                        random_state=np.random.default_rng(4)).confidence_interval
    assert est == pytest.approx(metrics.top1(scores, labels))
    assert lo == pytest.approx(ref.low, abs=0.015) and hi == pytest.approx(ref.high, abs=0.015)


def test_bootstrap_map_on_multi_hot():
    rng = np.random.default_rng(5)
    n, m = 300, 4
    y = (rng.random((n, m)) < 0.3).astype(int)
    y[np.arange(m), np.arange(m)] = 1  # every class has a positive
    scores = rng.normal(size=(n, m)) + 1.5 * y
    est, lo, hi = stats.bootstrap_ci(metrics.mean_average_precision, scores, y, n_boot=300)
    assert est == pytest.approx(metrics.mean_average_precision(scores, y))
    assert lo < est < hi and 0 < lo and hi <= 1


def test_fixed_seed_gives_identical_intervals_and_other_seed_differs():
    x = (np.random.default_rng(0).random(500) < 0.6).astype(float)
    a = stats.bootstrap_ci(np.mean, x, seed=7)
    assert a == stats.bootstrap_ci(np.mean, x, seed=7)
    assert a != stats.bootstrap_ci(np.mean, x, seed=8)
    d = stats.paired_difference(np.mean, (x,), (x[::-1],), seed=7)
    assert d == stats.paired_difference(np.mean, (x,), (x[::-1],), seed=7)


def test_paired_difference_uses_same_videos():
    """A = B + 0.1 on every video: the paired interval is exactly 0.1 wide zero (unpaired would not be)."""
    x = np.random.default_rng(0).random(200)
    est, lo, hi = stats.paired_difference(np.mean, (x + 0.1,), (x,))
    assert est == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)


def test_paired_difference_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="same videos"):
        stats.paired_difference(np.mean, (np.ones(5),), (np.ones(6),))


def test_mcnemar_matches_hand_binomial():
    # 8 videos only A gets right, 2 only B gets right, 30 concordant
    a = np.r_[np.ones(8), np.zeros(2), np.ones(20), np.zeros(10)].astype(bool)
    b = np.r_[np.zeros(8), np.ones(2), np.ones(20), np.zeros(10)].astype(bool)
    # two-sided exact: 2 * P(X <= 2), X ~ Bin(10, 1/2)
    hand = 2 * sum(comb(10, i) for i in range(3)) / 2 ** 10
    assert stats.mcnemar_exact(a, b) == pytest.approx(hand, abs=1e-12)
    assert stats.mcnemar_exact(b, a) == pytest.approx(hand, abs=1e-12)
    assert stats.mcnemar_exact(a, a) == 1.0


@pytest.mark.parametrize("lo,hi,kind,margin,expected", [
    (-0.01, 0.01, "greater", 0.0, "not resolved"),   # straddles 0
    (0.0, 0.0, "greater", 0.0, "not resolved"),      # exact tie
    (0.0, 0.0, "at_least", 0.0, "not resolved"),     # exact tie is not "holds" for >=
    (-0.01, 0.02, "at_least", 0.0, "not resolved"),
    (0.01, 0.03, "greater", 0.0, "holds"),
    (-0.03, -0.01, "greater", 0.0, "reversed"),
    (-0.03, -0.01, "less", 0.0, "holds"),
    (0.01, 0.03, "less", 0.0, "reversed"),
    (-0.01, 0.02, "at_least", 0.02, "holds"),        # within the allowed margin
    (-0.05, -0.03, "at_least", 0.02, "reversed"),
    (-0.02, 0.01, "at_most", 0.02, "holds"),
    (0.97, 1.02, "within", 0.05, "holds"),
    (1.10, 1.20, "within", 0.05, "reversed"),
    (0.90, 1.02, "within", 0.05, "not resolved"),
])
def test_verdict_edges(lo, hi, kind, margin, expected):
    assert stats.verdict(lo, hi, kind, margin) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        stats.verdict(0, 1, "bigger")
    with pytest.raises(ValueError, match="lo="):
        stats.verdict(1, 0, "greater")
    with pytest.raises(ValueError, match="margin > 0"):
        stats.verdict(0.9, 1.1, "within")


def test_compare_accuracy_tie_win_loss():
    rng = np.random.default_rng(0)
    a = rng.random(600) < 0.7
    tie = stats.compare_accuracy(a, a.copy())
    assert tie["verdict"] == "not resolved" and tie["estimate"] == 0 and tie["p"] == 1.0
    better = a | (rng.random(600) < 0.5)   # B right wherever A is, and on about half of the rest
    win = stats.compare_accuracy(better, a, claim="B > A")
    assert win["verdict"] == "holds" and win["ci"][0] > 0 and win["p"] < 1e-6
    loss = stats.compare_accuracy(a, better)
    assert loss["verdict"] == "reversed" and loss["ci"][1] < 0
    for rec in (tie, win, loss):
        assert set(stats.RECORD_KEYS) <= set(rec) and rec["n"] == 600
        assert rec["ci"][0] <= rec["estimate"] <= rec["ci"][1]
    assert win["accuracy_a"] == pytest.approx(better.mean())


def test_compare_metric_for_map():
    rng = np.random.default_rng(1)
    n, m = 200, 3
    y = (rng.random((n, m)) < 0.4).astype(int)
    y[:m, :m] = np.eye(m, dtype=int)
    good = rng.normal(size=(n, m)) + 2.0 * y
    rec = stats.compare_metric(metrics.mean_average_precision, (good, y), (good[::-1].copy(), y), n_boot=200)
    assert rec["verdict"] == "holds" and rec["p"] is None
    assert rec["value_a"] == pytest.approx(metrics.mean_average_precision(good, y))


def test_ratio_ci():
    rng = np.random.default_rng(0)
    a = 2.0 + 0.05 * rng.standard_normal(7)
    b = 1.0 + 0.02 * rng.standard_normal(7)
    est, lo, hi = stats.ratio_ci(a, b)
    assert est == pytest.approx(np.median(a) / np.median(b))
    assert 1.8 < lo <= est <= hi < 2.2
    assert stats.verdict(lo, hi, "within", 0.05) == "reversed"
    same = stats.ratio_ci(a, a[::-1].copy(), stat="mean")
    assert stats.verdict(same[1], same[2], "within", 0.1) == "holds"
    with pytest.raises(ValueError, match="at least 5"):
        stats.ratio_ci(a[:4], b)


def test_seeds_summary():
    s = replicates.seeds_summary([0.5, 0.7, 0.6])
    assert s == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "n": 3}
    assert replicates.seeds_summary([0.4])["std"] == 0.0


def test_record_claim_appends_and_replaces(tmp_path):
    path = tmp_path / "metrics" / "claims.json"
    r1 = stats.claim_record("A > B", "d", "holds", 0.02, (0.01, 0.03), p=0.01, n=100)
    r2 = stats.claim_record("C >= D", "d", "not resolved", 0.0, (-0.01, 0.01), n=100)
    stats.record_claim(path, r1)
    stats.record_claim(path, r2)
    stats.record_claim(path, {**r1, "verdict": "reversed"})
    data = json.loads(path.read_text())
    assert [c["claim"] for c in data] == ["C >= D", "A > B"]
    assert data[1]["verdict"] == "reversed"
    with pytest.raises(ValueError, match="lacks"):
        stats.record_claim(path, {"claim": "x"})
    with pytest.raises(ValueError, match="verdict"):
        stats.claim_record("x", "d", "maybe", 0, (0, 0))


@pytest.mark.parametrize("multi_label", [True, False])
def test_a_batched_metric_gives_the_resample_by_resample_intervals(multi_label):
    """analysis.metric's fast path (all resamples in one sort, ``metric.batched``) against the same metric called
    once per resample (a plain function has no ``batched``): the same intervals, classes missing from a resample
    left out of its mAP in both."""
    from htsc_core.analysis import metric

    rng = np.random.default_rng(3)
    n, m = 12, 5
    scores_a, scores_b = np.round(rng.random((n, m)), 1), np.round(rng.random((n, m)), 1)  # ties
    if multi_label:
        labels = rng.random((n, m)) < 0.25
        labels[np.arange(n), rng.integers(0, m, n)] = True  # every video has a class; some classes are rare
        labels = labels.astype(int)
    else:
        labels = rng.integers(0, m, n)

    def one_at_a_time(scores, y):
        return metric(scores, y)

    assert hasattr(metric, "batched") and not hasattr(one_at_a_time, "batched")
    fast = stats.bootstrap_ci(metric, scores_a, labels, n_boot=300, seed=5)
    slow = stats.bootstrap_ci(one_at_a_time, scores_a, labels, n_boot=300, seed=5)
    assert fast == pytest.approx(slow, rel=1e-12)
    fast = stats.paired_difference(metric, (scores_a, labels), (scores_b, labels), n_boot=300, seed=5)
    slow = stats.paired_difference(one_at_a_time, (scores_a, labels), (scores_b, labels), n_boot=300, seed=5)
    assert fast == pytest.approx(slow, rel=1e-12, abs=1e-15)
    assert slow[1] < slow[2]  # a real interval, not a degenerate one that any two paths share
