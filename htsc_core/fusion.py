"""Score fusion of the two streams: adaptive weighted learning (AWL), paper section 3.3, Eq. 10-15.

AWL learns, for every class a, fusion weights W_a = [w_1a, w_2a] (spatial,
temporal) on held-out (validation) softmax scores by a linear program:

    max_{W_a}  R_a - c N_a                                               Eq. 10
    R_a = sum over videos b of class a      of W_a S_b A_a               Eq. 11
    N_a = sum over videos b of other classes of W_a S_b A_a              Eq. 12
        = W_a ( sum_{b in a} S_b A_a - c sum_{b not in a} S_b A_a )      Eq. 13
    s.t. w_1a + w_2a = 1, w_ka > 0 (here w_ka >= ``lower``)

where S_b = [s_b1; s_b2] (2 x M) stacks the two streams' softmax scores of video
b and A_a selects column a; c = 5e-3 (section 4.2.2). At test time the fused
score of class a is W_a S_t A_a and the prediction is its arg max (Eq. 14-15).

Note (docs/DESIGN.md section 2, AWL): the objective is linear in W_a and the feasible
set is a 1-D simplex (a segment), so every optimum lies on a vertex: W_a is
(1 - lower, lower) or (lower, 1 - lower), i.e. AWL selects one stream per class.
Only when both streams give the same objective (within 1e-12, relative) is every
feasible point optimal; then we return (0.5, 0.5), deterministically, instead of
whatever vertex HiGHS returns.

Baselines: ``late_fusion`` (weighted sum), ``hts_fusion`` (spatial + 1.5 x
temporal, the Hidden Two-Stream / TSN protocol), ``equal_fusion`` (average).
All fusion functions are plain arithmetic on the scores they are given; callers
pass softmax probabilities (``metrics.softmax_np`` converts logits).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linprog

from htsc_core.metrics import multi_hot, softmax_np

# The late-fusion weight of the temporal stream in the Hidden Two-Stream protocol (Zhu et al. 2018, after
# TSN): spatial + 1.5 x temporal. The one home of this number: models.htsc, release, plots and tables use it.
TEMPORAL_WEIGHT = 1.5
TIE_RTOL = 1e-12  # |g_s - g_o| <= TIE_RTOL * max(1, |g_s|, |g_o|) counts as a tie -> (0.5, 0.5)


def _pair(scores_s, scores_o) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores_s, dtype=np.float64)
    o = np.asarray(scores_o, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"fusion.py: scores must be (n, M); spatial scores have shape {s.shape}")
    if s.shape != o.shape:
        raise ValueError(f"fusion.py: spatial scores {s.shape} and temporal scores {o.shape} differ in shape")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(o))):
        raise ValueError("fusion.py: scores contain NaN or inf")
    return s, o


def _positives(labels, n: int, m: int) -> np.ndarray:
    """(n, M) bool: video b is a positive of class a (one-hot of indices, or multi-hot as given)."""
    return multi_hot(labels, n, m)


def awl_objective(scores_s, scores_o, labels, c: float = 5e-3) -> np.ndarray:
    """Objective coefficients G (M, 2) of Eq. 13: R_a - c N_a = W_a . G[a].

    G[a, k] = sum_{b positive for a} S_k[b, a] - c * sum_{b not positive for a} S_k[b, a],
    k = 0 spatial, 1 temporal. With multi-hot labels, "videos of other classes" (Eq. 12)
    are the videos not labelled a (the paper is single-label; THUMOS14 is multi-label).
    """
    s, o = _pair(scores_s, scores_o)
    n, m = s.shape
    pos = _positives(labels, n, m)
    if c < 0:
        raise ValueError(f"fusion.py: c={c} must be >= 0 (Eq. 10 penalises negatives)")
    g = np.empty((m, 2))
    for k, sc in enumerate((s, o)):
        g[:, k] = np.where(pos, sc, 0.0).sum(axis=0) - c * np.where(pos, 0.0, sc).sum(axis=0)
    return g


def fit_awl(scores_s, scores_o, labels, c: float = 5e-3, lower: float = 1e-6,
            from_logits: bool = False) -> np.ndarray:
    """Per-class fusion weights W (M, 2) = [w_spatial, w_temporal] by the LP of Eq. 10-13.

    Args:
        scores_s, scores_o: (n, M) validation scores of the spatial and temporal streams,
            softmax probabilities (Eq. 14: "the SoftMax layer output"), or logits with
            ``from_logits=True`` (softmax is applied here).
        labels: (n,) class indices, or (n, M) multi-hot.
        c: weight of the negatives' scores (section 4.2.2: 5e-3).
        lower: lower bound on each weight; the paper asks w > 0, a strict bound an LP
            cannot express, so w >= lower (docs/DESIGN.md section 2, AWL).

    Each row is solved with ``scipy.optimize.linprog(method="highs")``. The objective is
    linear over the segment w_1 + w_2 = 1, lower <= w, so each W_a is a vertex
    (per-class stream selection); on a tie (|G_a1 - G_a2| <= 1e-12 relative) every
    feasible point is optimal and W_a = (0.5, 0.5) is returned, deterministically.
    A class with no validation positive is decided by its negatives alone (the
    stream that scores them lower wins).
    """
    if not 0.0 <= lower < 0.5:
        raise ValueError(f"fusion.py: lower={lower} must be in [0, 0.5)")
    s, o = _pair(scores_s, scores_o)
    if from_logits:
        s, o = softmax_np(s, axis=1), softmax_np(o, axis=1)
    elif min(s.min(initial=0.0), o.min(initial=0.0)) < -1e-6 or max(s.max(initial=0.0), o.max(initial=0.0)) > 1 + 1e-6:
        raise ValueError("fusion.py: AWL expects softmax probabilities in [0, 1] (Eq. 14); "
                         "pass from_logits=True to apply softmax to logits")
    g = awl_objective(s, o, labels, c=c)
    m = g.shape[0]
    w = np.empty((m, 2))
    for a in range(m):
        if abs(g[a, 0] - g[a, 1]) <= TIE_RTOL * max(1.0, abs(g[a, 0]), abs(g[a, 1])):
            # Every feasible W_a is optimal; pick the midpoint rather than HiGHS's arbitrary vertex.
            w[a] = (0.5, 0.5)
            continue
        res = linprog(-g[a], A_eq=np.ones((1, 2)), b_eq=np.ones(1), bounds=[(lower, 1.0)] * 2, method="highs")
        if res.status != 0:
            raise RuntimeError(f"fusion.py: AWL linear program for class {a} failed: {res.message}")
        w1 = float(np.clip(res.x[0], lower, 1.0 - lower))  # remove solver round-off outside the bounds
        w[a] = (w1, 1.0 - w1)
    return w


def awl_scores(W, scores_s, scores_o) -> np.ndarray:
    """Fused scores (n, M), Eq. 14-15: class a scores w_1a s_a + w_2a o_a; prediction = arg max."""
    s, o = _pair(scores_s, scores_o)
    w = np.asarray(W, dtype=np.float64)
    if w.shape != (s.shape[1], 2):
        raise ValueError(f"fusion.py: W must be (M, 2) = ({s.shape[1]}, 2); got {w.shape}")
    return w[:, 0] * s + w[:, 1] * o


# Name used in docs/CONTRACTS.md ("awl_predict(W, s, o) -> fused scores (n, M)").
awl_predict = awl_scores


def late_fusion(scores_s, scores_o, w_s: float = 1.0, w_o: float = 1.0) -> np.ndarray:
    """Weighted sum w_s * s + w_o * o of the two streams' scores (n, M)."""
    s, o = _pair(scores_s, scores_o)
    return w_s * s + w_o * o


def hts_fusion(scores_s, scores_o) -> np.ndarray:
    """Hidden Two-Stream protocol: spatial + 1.5 x temporal (Zhu et al. 2018, after TSN)."""
    return late_fusion(scores_s, scores_o, w_s=1.0, w_o=TEMPORAL_WEIGHT)


def equal_fusion(scores_s, scores_o) -> np.ndarray:
    """Average of the two streams' scores (equal weights)."""
    return late_fusion(scores_s, scores_o, w_s=0.5, w_o=0.5)


def summarise_awl(W, class_names: Sequence[str], families: Mapping[str, str] | None = None) -> list[dict]:
    """Rows {class, w_spatial, w_temporal, family, stream} for the notebook's AWL table.

    ``stream`` is "spatial", "temporal" or "equal" (the tie case); ``family`` is
    None when ``families`` (class name -> family) is not given.
    """
    w = np.asarray(W, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != 2 or w.shape[0] != len(class_names):
        raise ValueError(f"fusion.py: W {w.shape} does not match {len(class_names)} class names (need (M, 2))")
    if families is not None:
        missing = [name for name in class_names if name not in families]
        if missing:
            raise ValueError(f"fusion.py: classes without a family: {missing}")
    rows = []
    for name, (ws, wo) in zip(class_names, w):
        stream = "equal" if np.isclose(ws, wo, rtol=0, atol=1e-9) else ("spatial" if ws > wo else "temporal")
        rows.append({"class": name, "w_spatial": float(ws), "w_temporal": float(wo),
                     "family": None if families is None else families[name], "stream": stream})
    return rows
