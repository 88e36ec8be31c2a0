"""Tests for htsc_core/metrics.py against hand-computed values and an independent AP."""
from __future__ import annotations

import numpy as np
import pytest

from htsc_core.metrics import (average_precision, average_precisions, confusion, mean_average_precision,
                               mean_class_accuracy, per_family_accuracy, softmax_np, top1)

# 6 videos, 3 classes; predictions: 0, 1, 1, 2, 2, 0
SCORES = np.array([
    [0.9, 0.05, 0.05],
    [0.2, 0.7, 0.1],
    [0.1, 0.6, 0.3],
    [0.3, 0.1, 0.6],
    [0.0, 0.1, 0.9],
    [0.5, 0.4, 0.1],
])
LABELS = np.array([0, 0, 1, 2, 2, 2])


def test_softmax_np():
    x = np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]])
    np.testing.assert_allclose(softmax_np(x), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(softmax_np(x, axis=0)[:, 0], [np.exp(-1000.0), 1.0])


def test_top1_hand_computed():
    # hits: v0 yes, v1 no, v2 yes, v3 yes, v4 yes, v5 no -> 4/6
    assert top1(SCORES, LABELS) == pytest.approx(4 / 6)


def test_top1_multi_hot():
    mh = np.zeros((6, 3), int)
    mh[np.arange(6), LABELS] = 1
    mh[1, 1] = 1  # video 1 is also class 1 -> its arg-max (1) becomes a hit
    assert top1(SCORES, mh) == pytest.approx(5 / 6)


def test_confusion_and_mean_class_accuracy():
    cm = confusion(SCORES.argmax(1), LABELS, 3)
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(cm, expected)
    # recalls: 1/2, 1/1, 2/3
    assert mean_class_accuracy(SCORES, LABELS, 3) == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)


def test_mean_class_accuracy_skips_absent_classes():
    scores = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0]])
    labels = np.array([0, 1, 1])  # classes 2, 3 have no videos
    assert mean_class_accuracy(scores, labels, 4) == pytest.approx((1.0 + 0.5) / 2)


def test_average_precision_hand_computed():
    # ranking by score: +, -, +, -, +  -> precisions at positives 1/1, 2/3, 3/5
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    pos = np.array([1, 0, 1, 0, 1])
    assert average_precision(s, pos) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # a tie between one positive and one negative at the top counts as one threshold:
    # threshold 0.9 -> P = 1/2, R = 1/2; threshold 0.1 -> P = 2/3, R = 1  => AP = 1/4 + 1/3
    assert average_precision([0.9, 0.9, 0.1], [0, 1, 1]) == pytest.approx(0.25 + 1 / 3)
    assert average_precision([0.9, 0.9, 0.1], [1, 0, 1]) == pytest.approx(0.25 + 1 / 3)


def _ap_reference(scores, pos):
    """Independent AP: sort descending, cumulative precision at each positive, mean (no ties)."""
    ranked = [p for _, p in sorted(zip(scores, pos), key=lambda t: -t[0])]
    hits, precs = 0, []
    for k, p in enumerate(ranked, start=1):
        if p:
            hits += 1
            precs.append(hits / k)
    return sum(precs) / len(precs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_independent_reference(seed):
    rng = np.random.default_rng(seed)
    n, m = 30, 6
    scores = rng.random((n, m))  # continuous -> no ties
    mh = (rng.random((n, m)) < 0.3).astype(int)
    mh[:, 5] = 0  # a class without positives is excluded
    ref = np.mean([_ap_reference(scores[:, a], mh[:, a]) for a in range(5)])
    assert mean_average_precision(scores, mh) == pytest.approx(ref, rel=1e-12)


def _ap_by_thresholds(scores, pos):
    """Independent AP with ties: at every distinct score t (descending), precision and recall of "score >= t"."""
    pos = np.asarray(pos, dtype=bool)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        taken = scores >= t
        recall = (pos & taken).sum() / pos.sum()
        ap += (recall - prev_recall) * (pos & taken).sum() / taken.sum()
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_column_at_once_matches_thresholds_with_ties(seed):
    rng = np.random.default_rng(seed)
    n, m = 40, 7
    scores = np.round(rng.random((n, m)), 1)  # one decimal: many ties, within and across positives and negatives
    mh = rng.random((n, m)) < 0.3
    mh[:, 6] = False  # no positive: NaN, and left out of the mAP
    mh[0, 0] = True
    aps = average_precisions(scores, mh)
    ref = [_ap_by_thresholds(scores[:, a], mh[:, a]) for a in range(6)]
    assert aps[:6] == pytest.approx(ref, rel=1e-12) and np.isnan(aps[6])
    assert mean_average_precision(scores, mh.astype(int)) == pytest.approx(np.mean(ref), rel=1e-12)
    # the result does not depend on the order of the videos (tie blocks are taken whole)
    perm = rng.permutation(n)
    assert average_precisions(scores[perm], mh[perm])[:6] == pytest.approx(aps[:6], rel=1e-12)


def test_map_with_index_labels_and_perfect_scores():
    assert mean_average_precision(SCORES, LABELS) < 1.0
    onehot = np.eye(3)[LABELS]
    assert mean_average_precision(onehot + 0.01, LABELS) == pytest.approx(1.0)


def test_per_family_accuracy():
    names = ["ball", "spin", "ballspin"]
    fams = {"ball": "appearance", "spin": "motion", "ballspin": "joint"}
    out = per_family_accuracy(SCORES, LABELS, names, fams)
    assert out == {"appearance": pytest.approx(0.5), "motion": pytest.approx(1.0), "joint": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="without a family"):
        per_family_accuracy(SCORES, LABELS, names, {"ball": "appearance"})


def test_validation_errors():
    with pytest.raises(ValueError, match=r"\(n, M\)"):
        top1(np.zeros(3), [0, 1, 2])
    with pytest.raises(ValueError, match="out of range"):
        top1(SCORES, np.array([0, 1, 2, 3, 0, 0]))
    with pytest.raises(ValueError, match="no positives"):
        average_precision([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="NaN"):
        top1(np.array([[np.nan, 0.0]]), [0])
