"""Intervals, paired comparisons and verdicts: the study's one statistics module.

Every number the study reports about a test set comes with a 95% interval, and
every comparison claim of the paper ("A > B", "A >= B", "A within x% of B") is
decided by a paired analysis on the same test videos:

- a single proportion (top-1 accuracy): Wilson score interval (``wilson_interval``);
- any per-video metric (top-1, mean class accuracy, mAP on multi-hot labels):
  percentile bootstrap over videos with a fixed seed (``bootstrap_ci``);
- a difference A - B on the same videos: paired bootstrap, i.e. the SAME
  resampled videos for both (``paired_difference``), plus, for top-1, the exact
  McNemar test on the discordant videos (``mcnemar_exact``);
- timing claims: repeated, interleaved measurements (at least 5 per pipeline),
  bootstrap interval of the ratio of means or medians (``ratio_ci``);
- a difference over several strata (a dataset's splits): the mean of the per-stratum paired differences
  with a bootstrap over video names (``pooled_paired_difference``) and the exact McNemar test on the
  discordant videos of all strata together (``compare_accuracy_pooled``);
- a claim over several training seeds scored on one test set: ``seed_aware_interval`` adds what a
  reseed changes (the spread of the per-seed estimates) to the test-set sampling of each run;
- a difference of means between two small groups (AWL's per-class weights of two families of classes):
  exact permutation test over every relabelling, with the interval that inverts it (``permutation_difference``);
- ``verdict`` turns an interval into "holds" / "reversed" / "not resolved";
- ``decidability``: whether a claim's design can reach p < 0.05 at all (4 of 4 classes against 0.5 cannot), and
  how many items would let it.

A claim record (``claim_record``) has the keys claim, detail, verdict, estimate,
ci [lo, hi] (two-sided, ``level``), p (None where no test applies), n, strict;
``record_claim`` adds or replaces one in a ``claims.json`` atomically.

One-sided claims are judged with the two-sided interval: "A > B" holds when the
whole 95% interval of A - B lies above 0 (a one-sided test at 2.5%).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as _sps
from htsc_core.utils import atomic_write_json

VERDICTS = ("holds", "reversed", "not resolved")
KINDS = ("greater", "less", "at_least", "at_most", "within")
RECORD_KEYS = ("claim", "detail", "verdict", "estimate", "ci", "p", "n", "strict")
MIN_TIMINGS = 5
MIN_EXACT_N = 10  # below this many items a claim about one proportion also needs the exact test at 5%
MIN_BOOTSTRAP_ITEMS = 10  # fewest paired items a bootstrap verdict is drawn from (below: McNemar decides, or nothing)
ALPHA = 0.05


# ---------------------------------------------------------------------------------------------
# Single proportions and bootstrap intervals


def wilson_interval(k, n, level: float = 0.95):
    """Wilson score interval for a proportion k / n (no continuity correction): (lo, hi).

    The values of ``scipy.stats.binomtest(k, n).proportion_ci(level, method="wilson")`` (Newcombe 1998,
    with scipy's rule that lo is exactly 0 at k = 0 and hi exactly 1 at k = n; tests/test_intervals_edges.py
    checks the equality), computed for scalars or arrays at once: scipy's call costs about 1 ms, and
    the property test evaluates every k of every n up to 400. :func:`enclose` guarantees lo <= k/n <= hi.
    """
    k, n, scalar = _counts(k, n, "wilson_interval")
    _check_level(level)
    z = float(_sps.norm.ppf(0.5 + level / 2))
    p = k / n
    denom = 2 * (n + z * z)
    centre = (2 * n * p + z * z) / denom
    delta = z / denom * np.sqrt(4 * n * p * (1 - p) + z * z)
    lo = np.where(k == 0, 0.0, centre - delta)
    hi = np.where(k == n, 1.0, centre + delta)
    return _pair(p, lo, hi, scalar)


def exact_interval(k, n, level: float = 0.95):
    """Clopper-Pearson (exact) interval for k / n: (lo, hi), for scalars or arrays.

    The beta quantiles Beta(a/2; k, n-k+1) and Beta(1-a/2; k+1, n-k) (``scipy.stats.beta.ppf``), the
    closed form of ``binomtest(k, n).proportion_ci(method="exact")`` (checked equal in the tests). Its
    coverage is never below the nominal level, so at small n it agrees with the exact binomial test
    where Wilson's interval may not (4 of 4 against chance 0.5: Wilson excludes 0.5, the exact
    two-sided p is 0.125). The study's claims about one proportion use it.
    """
    k, n, scalar = _counts(k, n, "exact_interval")
    _check_level(level)
    alpha = 1 - level
    with np.errstate(invalid="ignore"):
        lo = np.where(k == 0, 0.0, _sps.beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1))
        hi = np.where(k == n, 1.0, _sps.beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)))
    return _pair(k / n, lo, hi, scalar)


def _counts(k, n, what: str) -> tuple[np.ndarray, np.ndarray, bool]:
    scalar = np.ndim(k) == 0 and np.ndim(n) == 0
    k_arr, n_arr = np.asarray(k), np.asarray(n)
    if not (np.issubdtype(k_arr.dtype, np.integer) or np.all(np.mod(k_arr, 1) == 0)):
        raise ValueError(f"stats.py: {what} needs whole counts; got k={k}")
    k_arr, n_arr = np.broadcast_arrays(k_arr.astype(np.int64), n_arr.astype(np.int64))
    if np.any(n_arr <= 0):
        raise ValueError(f"stats.py: {what} needs n > 0; got n={n}")
    if np.any((k_arr < 0) | (k_arr > n_arr)):
        raise ValueError(f"stats.py: {what} needs 0 <= k <= n; got k={k}, n={n}")
    return k_arr, n_arr, scalar


def _pair(p, lo, hi, scalar: bool):
    """(lo, hi) clipped to [0, 1] and widened to contain p (:func:`enclose`); floats for scalar input."""
    lo = np.minimum(np.clip(lo, 0.0, 1.0), p)
    hi = np.maximum(np.clip(hi, 0.0, 1.0), p)
    return (float(lo), float(hi)) if scalar else (lo, hi)


def enclose(estimate: float, lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) widened, if needed, to contain ``estimate``: every interval the study reports contains
    its point estimate (a percentile bootstrap of a median or a ratio can miss it by a resample's
    rounding, and a figure's error bar would then be negative). Returned as plain floats."""
    estimate, lo, hi = float(estimate), float(lo), float(hi)
    if not all(math.isfinite(v) for v in (estimate, lo, hi)):
        return lo, hi  # NaN/inf stay visible as such; callers decide what a missing value means
    return min(lo, estimate), max(hi, estimate)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"stats.py: level={level} must be in (0, 1)")


def _rows(arrays: Sequence[Any], what: str) -> tuple[list[np.ndarray], int]:
    """Per-video arrays (first axis = videos) of one common length n >= 1."""
    arrs = [np.asarray(a) for a in arrays]
    if not arrs:
        raise ValueError(f"stats.py: {what} needs at least one per-video array")
    if any(a.ndim == 0 for a in arrs):
        raise ValueError(f"stats.py: {what}: per-video arrays must have a first (video) axis")
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise ValueError(f"stats.py: {what}: arrays differ in number of rows: {[a.shape[0] for a in arrs]}")
    if n == 0:
        raise ValueError(f"stats.py: {what} of zero videos")
    return arrs, n


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _resamples(n: int, n_boot: int, seed: int):
    """The bootstrap's row indices: n_boot draws of n videos with replacement, fixed by ``seed``."""
    if n_boot < 1:
        raise ValueError(f"stats.py: n_boot={n_boot} must be >= 1")
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n, size=n)


RESAMPLED_ELEMENTS = 1 << 22  # a batched metric gets this many array elements a call (32 MB of float64)


def _resampled_values(metric: Callable[..., float], arrays: Sequence[np.ndarray], resamples: np.ndarray) -> np.ndarray:
    """``metric`` on each row of ``resamples`` (video indices, (n_boot, n): :func:`_resamples`). A metric with a
    ``batched`` attribute (arrays with a leading resample axis -> one value per resample; analysis.metric's mAP)
    takes them in chunks of :data:`RESAMPLED_ELEMENTS`: one sort per chunk, not per resample."""
    batched = getattr(metric, "batched", None)
    if batched is None:
        return np.array([float(metric(*(a[idx] for a in arrays))) for idx in resamples], dtype=float)
    chunk = max(1, RESAMPLED_ELEMENTS // max(1, sum(a.size for a in arrays)))
    return np.concatenate([np.asarray(batched(*(a[resamples[i:i + chunk]] for a in arrays)), dtype=float)
                           for i in range(0, len(resamples), chunk)])


def bootstrap_ci(metric: Callable[..., float], *arrays, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap over videos: (estimate, lo, hi).

    ``arrays`` are per-video arrays sharing their first axis (e.g. ``scores`` (n, M) and
    ``labels`` (n,) or multi-hot (n, M)); each resample draws n rows with replacement,
    the same rows from every array, and evaluates ``metric(*resampled)``. The estimate
    is ``metric(*arrays)`` on all videos; (lo, hi) are the (1 - level)/2 and (1 + level)/2
    percentiles of the resampled values. A fixed ``seed`` gives identical intervals.
    """
    arrs, n = _rows(arrays, "bootstrap_ci")
    _check_level(level)
    estimate = float(metric(*arrs))
    values = _resampled_values(metric, arrs, np.stack(list(_resamples(n, n_boot, seed))))
    lo, hi = enclose(estimate, *_percentiles(values, level))
    return estimate, lo, hi


def paired_difference(metric: Callable[..., float], arrays_a: Sequence[Any], arrays_b: Sequence[Any],
                      n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                      metric_b: Callable[..., float] | None = None) -> tuple[float, float, float]:
    """Paired bootstrap of metric(A) - metric(B) on the same videos: (estimate, lo, hi).

    ``arrays_a`` and ``arrays_b`` are the per-video inputs of the two methods (e.g.
    ``(scores_a, labels)`` and ``(scores_b, labels)``); every resample draws one set of
    video indices and applies it to both, so the video-to-video variation shared by A and
    B cancels. ``metric_b`` (default ``metric``) scores B when the two need different
    metrics.
    """
    metric_b = metric if metric_b is None else metric_b
    a, n = _rows(arrays_a, "paired_difference (A)")
    b, n_b = _rows(arrays_b, "paired_difference (B)")
    if n != n_b:
        raise ValueError(f"stats.py: paired_difference: A has {n} videos, B has {n_b}; pairing needs the same videos")
    _check_level(level)
    estimate = float(metric(*a)) - float(metric_b(*b))
    resamples = np.stack(list(_resamples(n, n_boot, seed)))  # the same videos for A and B: paired
    values = _resampled_values(metric, a, resamples) - _resampled_values(metric_b, b, resamples)
    lo, hi = enclose(estimate, *_percentiles(values, level))
    return estimate, lo, hi


# ---------------------------------------------------------------------------------------------
# Tests


def _bool_vector(x, name: str) -> np.ndarray:
    v = np.asarray(x)
    if v.ndim != 1:
        raise ValueError(f"stats.py: {name} must be a (n,) vector of per-video correctness; got shape {v.shape}")
    if v.size and not np.all((v == 0) | (v == 1)):
        raise ValueError(f"stats.py: {name} must hold only 0/1 or booleans")
    return v.astype(bool)


def mcnemar_exact(correct_a, correct_b) -> float:
    """Two-sided exact McNemar test of equal accuracy of A and B on the same videos.

    Only discordant videos count: b = A right and B wrong, c = A wrong and B right;
    under H0 b ~ Binomial(b + c, 1/2) and p = ``scipy.stats.binomtest(b, b + c).pvalue``.
    With no discordant video the methods agree everywhere and p = 1.
    """
    a = _bool_vector(correct_a, "correct_a")
    b_ = _bool_vector(correct_b, "correct_b")
    if a.shape != b_.shape:
        raise ValueError(f"stats.py: mcnemar_exact: {a.shape[0]} and {b_.shape[0]} videos; "
                         "pairing needs the same videos")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    if b + c == 0:
        return 1.0
    return float(_sps.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def ratio_ci(times_a, times_b, stat: str = "median", n_boot: int = 2000, level: float = 0.95,
             seed: int = 0) -> tuple[float, float, float]:
    """Interval of stat(times_a) / stat(times_b) from repeated timings: (estimate, lo, hi).

    Each pipeline needs at least 5 measurements, taken interleaved (A, B, A, B, ...) so
    drifts in machine load hit both. The two samples are resampled independently
    (percentile bootstrap); ``stat`` is "median" (robust to the odd slow run) or "mean".
    For throughput claims pass fps (or seconds) consistently for both pipelines.
    """
    fn = {"median": np.median, "mean": np.mean}.get(stat)
    if fn is None:
        raise ValueError(f"stats.py: stat={stat!r}; expected 'median' or 'mean'")
    a = np.asarray(times_a, dtype=np.float64).ravel()
    b = np.asarray(times_b, dtype=np.float64).ravel()
    for name, t in (("times_a", a), ("times_b", b)):
        if t.size < MIN_TIMINGS:
            raise ValueError(f"stats.py: ratio_ci needs at least {MIN_TIMINGS} repeated measurements; "
                             f"{name} has {t.size}")
        if not np.all(np.isfinite(t)) or np.any(t <= 0):
            raise ValueError(f"stats.py: ratio_ci: {name} must be finite and positive")
    _check_level(level)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = rng.integers(0, b.size, size=(n_boot, b.size))
    values = fn(a[ia], axis=1) / fn(b[ib], axis=1)
    estimate = float(fn(a) / fn(b))
    lo, hi = enclose(estimate, *_percentiles(values, level))
    return estimate, lo, hi


# ---------------------------------------------------------------------------------------------
# Verdicts and claim records


def verdict(lo: float, hi: float, kind: str, margin: float = 0.0) -> str:
    """"holds", "reversed" or "not resolved" for a claim about A vs B from an interval.

    kind (lo, hi is the interval of A - B, or of A / B for "within"):
      - "greater"  A > B:              holds if lo > 0,        reversed if hi < 0
      - "less"     A < B:              holds if hi < 0,        reversed if lo > 0
      - "at_least" A >= B - margin:    holds if lo > -margin,  reversed if hi < -margin
      - "at_most"  A <= B + margin:    holds if hi < margin,   reversed if lo > margin
      - "within"   A / B in [1 - margin, 1 + margin]: holds if the interval lies inside,
                   reversed if it lies entirely outside, else not resolved.
    Every comparison is strict, so an interval touching the boundary (e.g. an exact tie,
    lo = hi = 0, or one straddling 0) is "not resolved".
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"stats.py: verdict needs a finite interval; got [{lo}, {hi}]")
    if lo > hi:
        raise ValueError(f"stats.py: verdict: lo={lo} > hi={hi}")
    if margin < 0:
        raise ValueError(f"stats.py: margin={margin} must be >= 0")
    if kind == "greater":
        holds, reversed_ = lo > 0, hi < 0
    elif kind == "less":
        holds, reversed_ = hi < 0, lo > 0
    elif kind == "at_least":
        holds, reversed_ = lo > -margin, hi < -margin
    elif kind == "at_most":
        holds, reversed_ = hi < margin, lo > margin
    elif kind == "within":
        if margin <= 0:
            raise ValueError("stats.py: kind 'within' needs margin > 0 (the allowed relative deviation x)")
        holds = lo > 1 - margin and hi < 1 + margin
        reversed_ = hi < 1 - margin or lo > 1 + margin
    else:
        raise ValueError(f"stats.py: kind={kind!r}; expected one of {KINDS}")
    return "holds" if holds else ("reversed" if reversed_ else "not resolved")


def claim_record(claim: str, detail: str, verdict: str, estimate: float, ci: Sequence[float],
                 p: float | None = None, n: int | None = None, strict: bool = False, **extra: Any) -> dict:
    """A claim record with the keys every ``claims.json`` uses, plus any ``extra`` fields.

    ``ci`` is the two-sided interval [lo, hi] of ``estimate``; ``p`` the p-value of a test
    where one applies (else None); ``strict`` marks invariants that must hold (a failed
    strict claim is an error, not a finding).
    """
    if verdict not in VERDICTS:
        raise ValueError(f"stats.py: verdict={verdict!r}; expected one of {VERDICTS}")
    lo, hi = (float(v) for v in ci)
    clash = set(extra) & set(RECORD_KEYS)
    if clash:
        raise ValueError(f"stats.py: extra fields {sorted(clash)} clash with the record's keys")
    return {"claim": str(claim), "detail": str(detail), "verdict": verdict, "estimate": float(estimate),
            "ci": [lo, hi], "p": None if p is None else float(p), "n": None if n is None else int(n),
            "strict": bool(strict), **extra}


def record_claim(path: str | Path, record: dict) -> Path:
    """Add ``record`` to the JSON list in ``path`` (created if missing), replacing any record
    with the same ``claim``; written atomically (temp file + rename)."""
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"stats.py: claim record lacks {missing}")
    path = Path(path)
    existing = []
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"stats.py: {path} is not valid JSON ({exc}); fix or delete it") from exc
        if not isinstance(existing, list):
            raise ValueError(f"stats.py: {path} must hold a JSON list of claim records")
    existing = [c for c in existing if c.get("claim") != record["claim"]] + [record]
    return atomic_write_json(path, existing)


def compare_accuracy(correct_a, correct_b, kind: str = "greater", margin: float = 0.0, claim: str = "",
                     detail: str = "", n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                     strict: bool = False) -> dict:
    """Paired comparison of top-1 accuracy of A and B from per-video correctness (n,) 0/1.

    Returns a claim record: estimate = acc(A) - acc(B), ci = its paired-bootstrap interval,
    p = exact McNemar, verdict from ``verdict(lo, hi, kind, margin)`` (kind "greater",
    "less", "at_least" or "at_most"), n videos, plus accuracy_a / accuracy_b with their
    Wilson intervals (ci_a, ci_b).
    """
    if kind == "within":
        raise ValueError("stats.py: compare_accuracy compares differences; use ratio_ci + verdict for 'within'")
    a = _bool_vector(correct_a, "correct_a").astype(np.float64)
    b = _bool_vector(correct_b, "correct_b").astype(np.float64)
    est, lo, hi = paired_difference(np.mean, (a,), (b,), n_boot=n_boot, level=level, seed=seed)
    n = a.size
    return claim_record(claim, detail or f"difference {est:+.4f} [{lo:+.4f}, {hi:+.4f}] on {n} videos",
                        verdict(lo, hi, kind, margin), est, (lo, hi), p=mcnemar_exact(a, b), n=n, strict=strict,
                        kind=kind, margin=float(margin), accuracy_a=float(a.mean()), accuracy_b=float(b.mean()),
                        ci_a=list(wilson_interval(int(a.sum()), n, level)),
                        ci_b=list(wilson_interval(int(b.sum()), n, level)))


def compare_metric(metric: Callable[..., float], arrays_a: Sequence[Any], arrays_b: Sequence[Any],
                   kind: str = "greater", margin: float = 0.0, claim: str = "", detail: str = "",
                   n_boot: int = 2000, level: float = 0.95, seed: int = 0, strict: bool = False) -> dict:
    """Paired comparison of any per-video metric (mAP, mean class accuracy): a claim record.

    estimate = metric(A) - metric(B), ci = paired bootstrap over videos, p = None (no exact
    test for a general metric), value_a / value_b with their own bootstrap intervals.
    """
    if kind == "within":
        raise ValueError("stats.py: compare_metric compares differences; use ratio_ci + verdict for 'within'")
    est, lo, hi = paired_difference(metric, arrays_a, arrays_b, n_boot=n_boot, level=level, seed=seed)
    va, la, ha = bootstrap_ci(metric, *arrays_a, n_boot=n_boot, level=level, seed=seed)
    vb, lb, hb = bootstrap_ci(metric, *arrays_b, n_boot=n_boot, level=level, seed=seed)
    n = int(np.asarray(arrays_a[0]).shape[0])
    return claim_record(claim, detail or f"difference {est:+.4f} [{lo:+.4f}, {hi:+.4f}] on {n} videos",
                        verdict(lo, hi, kind, margin), est, (lo, hi), p=None, n=n, strict=strict, kind=kind,
                        margin=float(margin), value_a=va, value_b=vb, ci_a=[la, ha], ci_b=[lb, hb])


