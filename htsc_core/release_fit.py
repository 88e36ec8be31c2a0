"""Real UCF101 evidence, part 2: fitting fusion weights on some videos and scoring the others.

AWL (Eq. 10-15) needs held-out scores to fit on, and the release has test scores only, so weights
are cross-fitted (:func:`cross_fit`): for each test group g, fit on the other six groups and score g.
UCF101 groups hold clips cut from the same long video, so leaving whole groups out keeps the fit and
the scored videos apart, as the paper's train/test split does. Beyond the paper, one global weight
(:func:`fit_global_weight`) or a per-class weight taking interior values (:func:`fit_class_weights_grid`)
is chosen on :data:`WEIGHT_GRID` by accuracy on the fitting folds.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from htsc_core import fusion

WEIGHT_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))  # weight of the first stream, beyond the paper


def cross_fit(groups, fit: Callable[[np.ndarray], Any], score: Callable[[Any, np.ndarray], np.ndarray],
              num_classes: int) -> tuple[np.ndarray, list[dict]]:
    """Leave-one-group-out: for each group g, ``params = fit(train_idx)`` on the other groups'
    videos, ``score(params, test_idx)`` -> (n_g, M) scores of g's videos.

    Returns the (n, M) cross-fitted scores (every video scored by a fit that never saw its
    group) and one record {group, train_groups, n_train, n_test, params} per fold.
    """
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        raise ValueError(f"release.py: cross-fitting needs at least 2 groups; got {names}")
    out = np.full((groups.shape[0], num_classes), np.nan)
    folds = []
    for g in names:
        test_idx = np.flatnonzero(groups == g)
        train_idx = np.flatnonzero(groups != g)
        params = fit(train_idx)
        out[test_idx] = score(params, test_idx)
        folds.append({"group": g, "train_groups": sorted(set(groups[train_idx].tolist())),
                      "n_train": int(train_idx.size), "n_test": int(test_idx.size), "params": params})
    if np.isnan(out).any():
        raise RuntimeError("release.py: cross-fitting left videos unscored")
    return out, folds


def fit_class_weights_grid(a, b, labels, grid: Sequence[float] = WEIGHT_GRID, sweeps: int = 2,
                           start: float | None = None) -> np.ndarray:
    """Beyond the paper: per-class weight w_c of stream ``a`` (1 - w_c of ``b``) on a grid, by accuracy.

    Fused score of class c: w_c a_c + (1 - w_c) b_c; prediction = arg max (as Eq. 14-15, but the
    weights are chosen to maximise top-1 on the given videos instead of by the LP of Eq. 10-13,
    so they may take interior values). Start from the best single weight for all classes
    (``start`` if given), then coordinate ascent: each class in turn takes the grid value that
    maximises the number of correct videos with the others fixed; a class moves only on a
    strict gain, ties keep the value nearest the current one. Returns w (M,).
    """
    a, b = fusion._pair(a, b)
    y = np.asarray(labels, dtype=np.int64)
    n, m = a.shape
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or grid.min() < 0 or grid.max() > 1:
        raise ValueError(f"release.py: weight grid must be values in [0, 1]; got {grid}")
    rows = np.arange(n)
    if start is None:
        hits = [np.sum((g * a + (1 - g) * b).argmax(1) == y) for g in grid]
        start = float(grid[int(np.argmax(hits))])
    w = np.full(m, float(start))
    fused = w * a + (1 - w) * b  # (n, M)
    correct_now = fused.argmax(1) == y
    for _ in range(sweeps):
        moved = False
        for c in range(m):
            others = fused.copy()
            others[:, c] = -np.inf
            best_other = others.argmax(1)  # (n,) arg max over the other classes
            top_other = others[rows, best_other]
            cand = grid[:, None] * a[None, :, c] + (1 - grid[:, None]) * b[None, :, c]  # (G, n)
            # np.argmax takes the first maximum: class c wins a tie only against a later class
            wins = (cand > top_other) | ((cand == top_other) & (c < best_other))
            hits = np.where(wins, y == c, best_other == y).sum(axis=1)  # (G,)
            current = int(correct_now.sum())
            best = int(hits.max())
            if best > current:
                options = np.flatnonzero(hits == best)
                k = options[np.argmin(np.abs(grid[options] - w[c]))]
                w[c] = grid[k]
                fused[:, c] = cand[k]
                correct_now = np.where(wins[k], y == c, best_other == y)
                moved = True
        if not moved:
            break
    return w


def _weights_fused(w, a, b) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    return w * a + (1 - w) * b


def fit_global_weight(a, b, labels, grid: Sequence[float] = WEIGHT_GRID) -> float:
    """Beyond the paper: one weight w of stream ``a`` for all classes, the grid value with the best top-1
    (ties: the first, i.e. smallest, weight)."""
    a, b = fusion._pair(a, b)
    hits = [np.sum((g * a + (1 - g) * b).argmax(1) == np.asarray(labels)) for g in grid]
    return float(grid[int(np.argmax(hits))])
