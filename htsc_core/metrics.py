"""Evaluation metrics: video-level top-1, mean class accuracy, confusion, mAP (paper section 4,
docs/DESIGN.md section 7).

UCF101 / HMDB51 are scored by top-1 accuracy (Tab. 3-4); THUMOS14 by mean
average precision (mAP). ``per_family_accuracy`` splits the synthetic set's
accuracy by class family (appearance / motion / cue, docs/DESIGN.md section 5).

All functions take numpy arrays (or anything ``np.asarray`` accepts, e.g. CPU
torch tensors): ``scores`` (n, M) of any monotone kind (logits or softmax
probabilities), ``labels`` (n,) integer class indices, or (n, M) multi-hot
where stated.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def softmax_np(x, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _scores(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 1:
        raise ValueError(f"metrics.py: scores must be (n, M); got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("metrics.py: scores contain NaN or inf")
    return s


def _int_labels(labels, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"metrics.py: labels must be (n,) = ({n},) class indices; got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("metrics.py: labels must be integer class indices")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"metrics.py: labels out of range [0, {num_classes}): min {y.min()}, max {y.max()}")
    return y.astype(np.int64)


def multi_hot(labels, n: int, num_classes: int) -> np.ndarray:
    """(n, M) bool positives: one-hot of (n,) class indices, or (n, M) 0/1 multi-hot labels checked and kept.

    The one conversion of labels to per-class positives (metrics, AWL's Eq. 11-12 in fusion.py).
    """
    y = np.asarray(labels)
    if y.ndim == 1:  # class indices -> one-hot
        idx = _int_labels(y, n, num_classes)
        out = np.zeros((n, num_classes), dtype=bool)
        out[np.arange(n), idx] = True
        return out
    if y.shape != (n, num_classes):
        raise ValueError(f"metrics.py: multi-hot labels must be (n, M) = ({n}, {num_classes}); got {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("metrics.py: multi-hot labels must contain only 0 and 1")
    return y.astype(bool)


_as_multi_hot = multi_hot  # for functions whose argument is named multi_hot


def correct(scores, labels) -> np.ndarray:
    """(n,) bool: whether each video's arg-max class is correct.

    ``labels`` (n,) class indices, or (n, M) multi-hot: a hit when the arg-max class
    is any of the video's positive classes. Per video, for paired intervals (htsc_core/stats.py).
    """
    s = _scores(scores)
    n, m = s.shape
    pred = s.argmax(axis=1)
    y = np.asarray(labels)
    if y.ndim == 2:
        return multi_hot(y, n, m)[np.arange(n), pred]
    return pred == _int_labels(y, n, m)


def top1(scores, labels) -> float:
    """Fraction of videos whose arg-max class is correct (:func:`correct`)."""
    if len(np.asarray(scores)) == 0:
        raise ValueError("metrics.py: top1 of zero videos")
    return float(correct(scores, labels).mean())


def confusion(pred, labels, num_classes: int) -> np.ndarray:
    """Confusion matrix (M, M) int64: rows = true class, columns = predicted class."""
    p = np.asarray(pred)
    if p.ndim != 1:
        raise ValueError(f"metrics.py: pred must be (n,) class indices; got shape {p.shape}")
    p = _int_labels(p, p.shape[0], num_classes)
    y = _int_labels(labels, p.shape[0], num_classes)
    return np.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_class_accuracy(scores, labels, num_classes: int) -> float:
    """Mean over classes of per-class recall (diagonal / row sum of the confusion matrix).

    Classes with no test video are excluded from the mean (their recall is undefined).
    """
    s = _scores(scores)
    if s.shape[1] != num_classes:
        raise ValueError(f"metrics.py: scores have {s.shape[1]} classes, num_classes={num_classes}")
    cm = confusion(s.argmax(axis=1), labels, num_classes)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        raise ValueError("metrics.py: mean_class_accuracy of zero videos")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def average_precisions(scores, positives) -> np.ndarray:
    """Non-interpolated average precision of every class (column) over n videos: (..., n, M) -> (..., M), NaN for
    a class with no positive; leading axes (bootstrap resamples) are independent sets of videos.

    AP = sum over distinct score thresholds t (descending) of (R_t - R_{t-1}) * P_t,
    i.e. the mean of the precision at the rank of each positive when scores are all
    distinct. Tied scores form one threshold (the whole tie block is taken
    together), as in scikit-learn's ``average_precision_score``, so the result does
    not depend on the order of tied videos. Equivalently, every positive counts the precision at the end of its
    tie block, which is how the columns are computed together (one sort; the bootstrap of a THUMOS14 mAP calls
    this thousands of times).
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positives).astype(bool)
    if s.shape != pos.shape or s.ndim < 2:
        raise ValueError(f"metrics.py: scores {s.shape} and positives {pos.shape} differ or are not (..., n, M)")
    n = s.shape[-2]
    order = np.argsort(-s, axis=-2, kind="stable")
    s, pos = np.take_along_axis(s, order, -2), np.take_along_axis(pos, order, -2)
    tp = np.cumsum(pos, axis=-2)
    rank = np.arange(n)[:, None]
    # the last row of every block of equal scores (a distinct threshold), then for every row its block's last row
    last = np.ones((*s.shape[:-2], 1, s.shape[-1]), dtype=bool)
    block_end = np.where(np.concatenate([s[..., 1:, :] != s[..., :-1, :], last], axis=-2), rank, n)
    end = np.flip(np.minimum.accumulate(np.flip(block_end, -2), axis=-2), -2)
    precision_at_end = np.take_along_axis(tp, end, -2) / (end + 1)
    n_pos = pos.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pos > 0, (precision_at_end * pos).sum(axis=-2) / n_pos, np.nan)


def average_precision(scores, positives) -> float:
    """Non-interpolated average precision of one class over n videos (:func:`average_precisions`, one column).
    Raises if there is no positive."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(positives).astype(bool).ravel()
    if s.shape != pos.shape:
        raise ValueError(f"metrics.py: scores {s.shape} and positives {pos.shape} differ in length")
    if not pos.any():
        raise ValueError("metrics.py: average precision is undefined for a class with no positives")
    return float(average_precisions(s[:, None], pos[:, None])[0])


def mean_average_precision(scores, multi_hot) -> float:
    """mAP over classes (THUMOS14 metric, Tab. 3). ``multi_hot`` (n, M) 0/1, or (n,) indices.

    Classes with no positive video are excluded from the mean (their AP is undefined),
    as in the THUMOS14 classification evaluation, where every class has positives.
    """
    s = _scores(scores)
    n, m = s.shape
    y = _as_multi_hot(multi_hot, n, m)
    present = y.any(axis=0)
    if not present.any():
        raise ValueError("metrics.py: no class has a positive video; mAP is undefined")
    return float(np.mean(average_precisions(s[:, present], y[:, present])))


def mean_average_precisions(scores, multi_hot) -> np.ndarray:
    """:func:`mean_average_precision` of many sets of videos at once: scores and 0/1 ``multi_hot`` (B, n, M) ->
    (B,), each the mean over the classes with a positive in that set (the bootstrap's resamples, stats.py)."""
    aps = average_precisions(scores, multi_hot)
    present = ~np.isnan(aps)
    if not present.any(axis=-1).all():
        raise ValueError("metrics.py: no class has a positive video; mAP is undefined")
    return np.where(present, aps, 0.0).sum(axis=-1) / present.sum(axis=-1)


def per_family_accuracy(scores, labels, class_names: Sequence[str],
                        families: Mapping[str, str]) -> dict[str, float]:
    """Top-1 accuracy over the videos of each class family (synthetic set, docs/DESIGN.md section 5).

    ``families`` maps class name -> family ("appearance" | "motion" | "cue"), as
    returned by ``registry.class_families(cfg)``. A video belongs to its true
    class's family; the prediction may be any class. Families without videos are
    left out of the result.
    """
    s = _scores(scores)
    n, m = s.shape
    if len(class_names) != m:
        raise ValueError(f"metrics.py: {len(class_names)} class names for {m} score columns")
    missing = [c for c in class_names if c not in families]
    if missing:
        raise ValueError(f"metrics.py: classes without a family: {missing}")
    y = _int_labels(labels, n, m)
    fam_of_video = np.array([families[class_names[i]] for i in y], dtype=object)
    hits = s.argmax(axis=1) == y
    out: dict[str, float] = {}
    for fam in sorted(set(families[c] for c in class_names)):
        sel = fam_of_video == fam
        if sel.any():
            out[fam] = float(hits[sel].mean())
    return out
