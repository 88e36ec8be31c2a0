"""Tests for AWL (paper section 3.3, Eq. 10-15) and the late-fusion baselines."""
from __future__ import annotations

import numpy as np
import pytest

from htsc_core.fusion import (awl_objective, awl_predict, awl_scores, equal_fusion, fit_awl, hts_fusion,
                              late_fusion, summarise_awl)
from htsc_core.metrics import softmax_np

M, N, C, LOWER = 5, 40, 5e-3, 1e-6


def _scores(seed: int, n: int = N, m: int = M):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.arange(m), rng.integers(0, m, n - m)]  # every class present
    s = softmax_np(rng.normal(size=(n, m)) * 2)
    o = softmax_np(rng.normal(size=(n, m)) * 2)
    return s, o, labels


def _objective_loop(s, o, pos, a, w1, c=C):
    """Eq. 11-13 written literally: sum over videos of W_a S_b A_a, positives minus c * negatives."""
    r = n_ = 0.0
    for b in range(s.shape[0]):
        val = w1 * s[b, a] + (1 - w1) * o[b, a]
        if pos[b, a]:
            r += val
        else:
            n_ += val
    return r - c * n_


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lp_matches_brute_force_grid(seed):
    s, o, labels = _scores(seed)
    pos = np.eye(M, dtype=bool)[labels]
    W = fit_awl(s, o, labels, c=C, lower=LOWER)
    assert W.shape == (M, 2)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert (W >= LOWER).all()
    grid = np.linspace(LOWER, 1 - LOWER, 2001)
    for a in range(M):
        best = max(_objective_loop(s, o, pos, a, w1) for w1 in grid)
        got = _objective_loop(s, o, pos, a, W[a, 0])
        assert got == pytest.approx(best, rel=1e-9, abs=1e-12)
        # linear objective over a segment: the optimum is a vertex (per-class stream selection)
        assert min(abs(W[a, 0] - LOWER), abs(W[a, 0] - (1 - LOWER))) < 1e-12


def test_objective_coefficients_match_loop():
    s, o, labels = _scores(4)
    pos = np.eye(M, dtype=bool)[labels]
    g = awl_objective(s, o, labels, c=C)
    for a in range(M):
        assert g[a, 0] == pytest.approx(_objective_loop(s, o, pos, a, 1.0), rel=1e-12)
        assert g[a, 1] == pytest.approx(_objective_loop(s, o, pos, a, 0.0), rel=1e-12)


def test_perfect_spatial_class_gets_spatial_weight():
    s, o, labels = _scores(5)
    # class 0: spatial score 1 on its own videos, 0 on every other video; temporal stays noisy
    own = labels == 0
    s[own] = np.eye(M)[0]
    s[~own, 0] = 0.0
    s[~own] /= s[~own].sum(axis=1, keepdims=True)
    W = fit_awl(s, o, labels)
    assert W[0, 0] == pytest.approx(1 - 1e-6, abs=1e-12)
    assert W[0, 1] == pytest.approx(1e-6, abs=1e-12)
    # and the symmetric case picks the temporal stream
    W2 = fit_awl(o, s, labels)
    assert W2[0, 1] == pytest.approx(1 - 1e-6, abs=1e-12)


def test_all_tie_returns_equal_weights():
    s, _, labels = _scores(6)
    W = fit_awl(s, s.copy(), labels)
    np.testing.assert_array_equal(W, np.full((M, 2), 0.5))
    rows = summarise_awl(W, [f"c{i}" for i in range(M)])
    assert {r["stream"] for r in rows} == {"equal"}


def test_multi_hot_labels():
    s, o, labels = _scores(7)
    one_hot = np.eye(M, dtype=int)[labels]
    np.testing.assert_array_equal(fit_awl(s, o, one_hot), fit_awl(s, o, labels))
    mh = one_hot.copy()
    rows = np.arange(0, N, 3)
    mh[rows, (labels[rows] + 1) % M] = 1  # some videos carry a second class
    W = fit_awl(s, o, mh)
    g = awl_objective(s, o, mh)
    for a in range(M):
        pos = mh.astype(bool)
        assert g[a, 0] == pytest.approx(_objective_loop(s, o, pos, a, 1.0), rel=1e-12)
        assert W[a, 0] == pytest.approx(1 - 1e-6 if g[a, 0] > g[a, 1] else 1e-6, abs=1e-12)


def test_from_logits_flag_and_probability_check():
    rng = np.random.default_rng(8)
    ls, lo = rng.normal(size=(N, M)), rng.normal(size=(N, M))
    labels = rng.integers(0, M, N)
    np.testing.assert_array_equal(fit_awl(ls, lo, labels, from_logits=True),
                                  fit_awl(softmax_np(ls), softmax_np(lo), labels))
    with pytest.raises(ValueError, match="from_logits"):
        fit_awl(ls * 10, lo * 10, labels)


def test_awl_scores_hand_example():
    W = np.array([[0.9, 0.1], [0.2, 0.8]])
    s = np.array([[0.6, 0.4]])
    o = np.array([[0.1, 0.9]])
    fused = awl_scores(W, s, o)
    np.testing.assert_allclose(fused, [[0.9 * 0.6 + 0.1 * 0.1, 0.2 * 0.4 + 0.8 * 0.9]])  # [0.55, 0.80]
    assert fused.argmax(1)[0] == 1
    np.testing.assert_array_equal(awl_predict(W, s, o), fused)


def test_baseline_fusions():
    s = np.array([[0.7, 0.3]])
    o = np.array([[0.2, 0.8]])
    np.testing.assert_allclose(hts_fusion(s, o), [[0.7 + 0.3, 0.3 + 1.2]])
    np.testing.assert_allclose(late_fusion(s, o, w_o=2.0), [[1.1, 1.9]])
    np.testing.assert_allclose(equal_fusion(s, o), [[0.45, 0.55]])


def test_summarise_awl_rows():
    W = np.array([[1 - 1e-6, 1e-6], [1e-6, 1 - 1e-6]])
    rows = summarise_awl(W, ["ball", "spin"], {"ball": "appearance", "spin": "motion"})
    assert rows[0]["class"] == "ball" and rows[0]["family"] == "appearance" and rows[0]["stream"] == "spatial"
    assert rows[1]["stream"] == "temporal" and rows[1]["w_temporal"] == pytest.approx(1 - 1e-6)
    assert summarise_awl(W, ["a", "b"])[0]["family"] is None


def test_validation_errors():
    s, o, labels = _scores(9)
    with pytest.raises(ValueError, match="differ in shape"):
        fit_awl(s, o[:, :3], labels)
    with pytest.raises(ValueError, match="out of range"):
        fit_awl(s, o, labels + M)
    with pytest.raises(ValueError, match="lower"):
        fit_awl(s, o, labels, lower=0.5)
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        awl_scores(np.ones((M, 3)), s, o)
