"""Two small groups (exact_tests.permutation_difference), the AWL stream-assignment claim built on it, and which
claims a design can decide at all (exact_tests.decidability), issue 38."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from htsc_core import exact_tests, stats
from htsc_core.analysis import AWL_ASSIGNMENT, awl_assignment


def _scipy_p(x, y, alternative):
    res = sps.permutation_test((x, y), lambda a, b: np.mean(a) - np.mean(b), permutation_type="independent",
                               alternative=alternative, n_resamples=np.inf)
    return res.pvalue


@pytest.mark.parametrize("x,y", [([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]),
                                 ([0.9, 0.7, 0.4, 0.8], [0.1, 0.5, 0.2, 0.6]),
                                 ([1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]),
                                 ([0.3, 0.2, 0.9], [0.5, 0.1, 0.4, 0.8, 0.7])])
def test_p_values_are_scipys_exact_permutation_test(x, y):
    t = exact_tests.permutation_difference(x, y)
    assert t["p"] == pytest.approx(_scipy_p(x, y, "greater"))
    if len(x) == len(y):  # scipy's two-sided p is 2 x the smaller one-sided p, the same for equal groups
        assert t["p_two_sided"] == pytest.approx(_scipy_p(x, y, "two-sided"))
    v, obs = np.r_[x, y], np.mean(x) - np.mean(y)
    splits = itertools.combinations(range(len(v)), len(x))
    diffs = [np.mean(v[list(c)]) - np.mean(np.delete(v, list(c))) for c in splits]
    assert t["p_two_sided"] == pytest.approx(np.mean(np.abs(diffs) >= abs(obs) - 1e-12))  # |difference| counted
    assert t["relabellings"] == math.comb(len(x) + len(y), len(x))
    assert t["estimate"] == pytest.approx(np.mean(x) - np.mean(y))


def test_complete_separation_of_four_and_four_is_one_in_seventy():
    t = exact_tests.permutation_difference([1, 1, 1, 1], [0, 0, 0, 0])
    assert t["p"] == pytest.approx(1 / 70) and t["p_two_sided"] == pytest.approx(2 / 70)
    assert t["min_p"] == pytest.approx(2 / 70)
    assert t["ci"] == pytest.approx([1.0, 1.0])  # constant groups: only a shift of exactly 1 is not rejected


def _brute_force_set(x, y, grid):
    """The shifts d not rejected at two-sided 5%, by enumerating the relabellings at every d of a fine grid."""
    v = np.r_[x, y]
    kept = []
    for d in grid:
        w = np.r_[np.asarray(x) - d, y]
        obs = np.mean(w[:len(x)]) - np.mean(w[len(x):])
        count = total = 0
        for c in itertools.combinations(range(len(v)), len(x)):
            m = np.zeros(len(v), bool)
            m[list(c)] = True
            count += abs(w[m].mean() - w[~m].mean()) >= abs(obs) - 1e-12
            total += 1
        if count / total > 0.05:
            kept.append(d)
    return min(kept), max(kept)


def test_interval_inverts_the_test_on_a_fine_grid():
    x, y = [0.9, 0.7, 0.4, 0.8], [0.1, 0.5, 0.2, 0.6]
    lo, hi = exact_tests.permutation_difference(x, y)["ci"]
    glo, ghi = _brute_force_set(x, y, np.linspace(-1.0, 1.5, 1001))
    assert lo == pytest.approx(glo, abs=0.003) and hi == pytest.approx(ghi, abs=0.003)
    assert lo <= np.mean(x) - np.mean(y) <= hi


def test_too_many_relabellings_or_an_empty_group_is_an_error():
    with pytest.raises(ValueError, match="relabellings"):
        exact_tests.permutation_difference(np.arange(20.0), np.arange(20.0))
    with pytest.raises(ValueError, match="non-empty"):
        exact_tests.permutation_difference([], [1.0])


def _rows(w_motion, w_appearance):
    return ([{"class": f"m{i}", "family": "motion", "w_temporal": w} for i, w in enumerate(w_motion)]
            + [{"class": f"a{i}", "family": "appearance", "w_temporal": w} for i, w in enumerate(w_appearance)]
            + [{"class": "c0", "family": "cue", "w_temporal": 1.0}])


def test_awl_assignment_decides_four_and_four_classes():
    rec = awl_assignment(_rows([1, 1, 1, 1], [0, 0, 0, 0]))
    assert rec["claim"] == AWL_ASSIGNMENT and rec["verdict"] == "holds" and rec["n"] == 8
    assert rec["p"] == pytest.approx(1 / 70) and rec["groups"] == [4, 4]
    assert exact_tests.decidability(rec) is None  # 2/70 < 0.05: the design can decide it
    mixed = awl_assignment(_rows([1, 1, 1, 0], [0, 0, 0, 1]))  # p two-sided = 0.486 (scipy): no verdict
    assert mixed["verdict"] == "not resolved"
    assert mixed["p_two_sided"] == pytest.approx(_scipy_p([1, 1, 1, 0], [0, 0, 0, 1], "two-sided"))
    assert awl_assignment([{"class": "c", "family": "cue", "w_temporal": 1.0}]) is None


def test_three_and_three_classes_cannot_be_decided():
    rec = awl_assignment(_rows([1, 1, 1], [0, 0, 0]))
    assert rec["verdict"] == "not resolved"  # complete separation, yet 2/20 = 0.1
    why = exact_tests.decidability(rec)
    assert why["min_p"] == pytest.approx(0.1) and why["items_to_decide"] == 8  # 4 + 4: 2/70


def test_four_of_four_against_a_coin_flip_is_undecidable_six_would_decide():
    rec = {"claim": "c", "n": 4, "reference": 0.5, "interval": "clopper-pearson", "ci": [0.1, 0.5]}
    why = exact_tests.decidability(rec)
    assert why["min_p"] == pytest.approx(sps.binomtest(4, 4, 0.5).pvalue)  # 0.125
    assert why["items_to_decide"] == 6  # 2 x 0.5^6 = 0.031; 5 items: 0.0625
    assert sps.binomtest(6, 6, 0.5).pvalue < 0.05 <= sps.binomtest(5, 5, 0.5).pvalue
    seeded = {"claim": "c", "n": 4, "reference": 0.5, "interval": "seed-aware", "ci": [0.1, 0.5],
              "per_seed": {"interval": "clopper-pearson"}}
    assert exact_tests.decidability(seeded)["items_to_decide"] == 6
    assert exact_tests.decidability({**rec, "n": 12}) is None


def test_paired_designs_below_their_minimum():
    mcnemar = {"claim": "c", "n": 5, "accuracy_a": 1.0, "p": 0.0625, "ci": [0, 1]}
    assert exact_tests.decidability(mcnemar)["items_to_decide"] == 6
    assert exact_tests.decidability(mcnemar)["min_p"] == pytest.approx(sps.binomtest(5, 5, 0.5).pvalue)
    assert exact_tests.decidability({**mcnemar, "n": 6}) is None
    proportion = {"claim": "c", "n": 8, "value_a": 0.4, "p": None, "ci": [0, 1]}
    assert exact_tests.decidability(proportion)["items_to_decide"] == 10
    timing = {"claim": "c", "n": 3, "measure": "timing", "ci": [None, None]}
    assert exact_tests.decidability(timing)["items_to_decide"] == stats.MIN_TIMINGS
    assert exact_tests.decidability({**timing, "n": 5, "ci": [0.9, 1.1]}) is None
    flagged = exact_tests.flag_decidability(timing)
    assert flagged["undecidable"] and flagged["decidability"]["min_p"] is None
    assert exact_tests.flag_decidability({**timing, "n": 5, "ci": [0.9, 1.1]})["undecidable"] is False
