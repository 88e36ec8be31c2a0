"""Two small groups and what a design can decide (issue 38), beside :mod:`htsc_core.stats`: the exact permutation
test of a difference in means between two small groups (the AWL stream-assignment claim over 4 + 4 classes), the
smallest p-value each claim's design can reach, and the flag ``undecidable`` on claim records whose design cannot
reach p < 0.05, with how many items would decide them."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _sps

from htsc_core.stats import ALPHA, MIN_TIMINGS, MIN_EXACT_N, MIN_BOOTSTRAP_ITEMS, _check_level, enclose



def _relabellings(n_x: int, n_y: int) -> np.ndarray:
    """Every way to choose which n_x of the n_x + n_y items form the first group: a (C, n_x + n_y) boolean mask."""
    from itertools import combinations

    n = n_x + n_y
    combos = list(combinations(range(n), n_x))
    mask = np.zeros((len(combos), n), dtype=bool)
    for i, c in enumerate(combos):
        mask[i, list(c)] = True
    return mask


def _permutation_p(values: np.ndarray, mask: np.ndarray, observed: float) -> tuple[float, float]:
    n_x, n_y = int(mask[0].sum()), int((~mask[0]).sum())
    stats_ = (mask @ values) / n_x - ((~mask) @ values) / n_y
    tol = 1e-12 * max(1.0, float(np.max(np.abs(values))))
    greater = float(np.mean(stats_ >= observed - tol))
    two_sided = float(np.mean(np.abs(stats_) >= abs(observed) - tol))
    return greater, two_sided


def permutation_difference(x, y, level: float = 0.95, max_relabellings: int = 200_000) -> dict:
    """Exact permutation test of mean(x) - mean(y) for two small groups, and the interval that inverts it.

    Every relabelling of the n_x + n_y items into groups of n_x and n_y is enumerated (C(n_x + n_y, n_x) of
    them: 70 at 4 + 4); under H0 (the values do not depend on the group) each is equally likely. Returns
    ``estimate``, ``p`` (one-sided, H1 mean(x) > mean(y): the share of relabellings whose difference is at
    least the observed one), ``p_two_sided`` (|difference| at least the observed one), ``min_p`` (the
    smallest two-sided p any outcome of this design can reach: complete separation), ``relabellings`` and
    ``ci``: the set of shifts d for which x - d against y is not rejected at two-sided ``1 - level``, as its
    hull [lo, hi]. The set is exact: the test's outcome changes only where a relabelling's difference
    equals the observed one in absolute value, a linear equation in d, so the candidate ends are those
    roots. Groups whose values are constant give a point (every class of each family with the same weight).
    Agrees with ``scipy.stats.permutation_test`` (exact) in the tests.
    """
    _check_level(level)
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 1 or y.size < 1:
        raise ValueError(f"stats.py: permutation_difference needs both groups non-empty; got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("stats.py: permutation_difference: values must be finite")
    if math.comb(x.size + y.size, x.size) > max_relabellings:
        raise ValueError(f"stats.py: permutation_difference enumerates C({x.size + y.size}, {x.size}) = "
                         f"{math.comb(x.size + y.size, x.size)} relabellings, more than {max_relabellings}")
    mask = _relabellings(x.size, y.size)
    in_x = np.r_[np.ones(x.size, bool), np.zeros(y.size, bool)]
    estimate = float(x.mean() - y.mean())
    greater, two = _permutation_p(np.r_[x, y], mask, estimate)
    alpha = 1 - level

    def accepted(d: float) -> bool:
        return _permutation_p(np.r_[x - d, y], mask, estimate - d)[1] > alpha

    # a relabelling's difference at shift d is a - b d (b: the share of x's items it moves, signed); roots of
    # a - b d = +-(estimate - d) are where the two-sided p can change
    a = (mask @ np.r_[x, y]) / x.size - ((~mask) @ np.r_[x, y]) / y.size
    b = (mask & in_x).sum(1) / x.size - ((~mask) & in_x).sum(1) / y.size
    roots = [estimate]
    for sign in (1.0, -1.0):
        denom = b - sign
        ok = np.abs(denom) > 1e-12
        roots += list((a[ok] - sign * estimate) / denom[ok])
    roots = np.unique(np.round(np.asarray(roots, dtype=np.float64), 12))
    candidates = np.unique(np.r_[roots, (roots[1:] + roots[:-1]) / 2])
    kept = [float(d) for d in candidates if accepted(float(d))]
    lo, hi = (min(kept), max(kept)) if kept else (estimate, estimate)
    lo, hi = enclose(estimate, lo, hi)
    min_p = min_permutation_p(x.size, y.size)
    return {"estimate": estimate, "p": greater, "p_two_sided": two, "min_p": min_p, "ci": [lo, hi],
            "relabellings": int(mask.shape[0]), "n_x": int(x.size), "n_y": int(y.size)}


def min_permutation_p(n_x: int, n_y: int) -> float:
    """The smallest two-sided p of the exact permutation test of two groups: complete separation, counted in
    both directions when the groups are the same size (2 / 70 at 4 + 4; 2 / 20 = 0.1 at 3 + 3)."""
    total = math.comb(n_x + n_y, n_x)
    return min(1.0, (2 if n_x == n_y else 1) / total)


def min_binomial_p(n: int, reference: float) -> float:
    """The smallest two-sided exact binomial p over every outcome k of n items against ``reference``
    (reached at k = 0 or k = n): 0.125 at 4 items against 0.5."""
    return float(min(_sps.binomtest(0, n, reference).pvalue, _sps.binomtest(n, n, reference).pvalue))


def min_mcnemar_p(n: int) -> float:
    """The smallest two-sided exact McNemar p over n paired items: all discordant one way, 2 x 0.5^n."""
    return min(1.0, 2 * 0.5 ** n) if n > 0 else 1.0


def _items_needed(min_p, start: int, limit: int = 10_000) -> int:
    n = max(1, start)
    while n < limit and min_p(n) >= ALPHA:
        n += 1
    return n


def decidability(rec: dict) -> dict | None:
    """None when a claim's design can decide it; else why it cannot, the smallest p it can reach (``min_p``,
    None where no test applies) and how many items would decide it (``items_to_decide``).

    The designs: a proportion against a reference below :data:`MIN_EXACT_N` items (its verdict needs the
    two-sided exact binomial p < 0.05), a paired top-1 comparison below :data:`MIN_BOOTSTRAP_ITEMS` videos
    (exact McNemar p < 0.05), a paired bootstrap of another metric below :data:`MIN_BOOTSTRAP_ITEMS` items
    (no verdict at all), a timing ratio with fewer than :data:`MIN_TIMINGS` measurements (no interval) and a
    two-group permutation test (its smallest p, :func:`min_permutation_p`). A seed-aware record is judged by
    its per-seed design: below these sizes its verdict needs every seed's own test (docs/DESIGN.md section 7).
    """
    n = rec.get("n")
    design = (rec.get("per_seed") or {}).get("interval") or rec.get("interval")
    if n is None:
        return None
    if rec.get("test") == "permutation":
        nx, ny = int(rec["groups"][0]), int(rec["groups"][1])
        if min_permutation_p(nx, ny) < ALPHA:
            return None
        k = _items_needed(lambda m: min_permutation_p(m, m), max(nx, ny))
        return {"why": f"exact permutation test of {nx} + {ny} items: no outcome reaches p < {ALPHA}",
                "min_p": min_permutation_p(nx, ny), "items_to_decide": 2 * k}
    if design == "clopper-pearson" and n < MIN_EXACT_N:
        ref = float(rec["reference"])
        if min_binomial_p(n, ref) < ALPHA:
            return None
        return {"why": f"exact binomial test of {n} items against {ref:g}: no outcome reaches p < {ALPHA}",
                "min_p": min_binomial_p(n, ref), "items_to_decide": _items_needed(lambda m: min_binomial_p(m, ref), n)}
    if rec.get("measure") == "timing":
        if None in (rec.get("ci") or [None]):
            return {"why": f"fewer than {MIN_TIMINGS} measurements: no interval", "min_p": None,
                    "items_to_decide": MIN_TIMINGS}
        return None
    if "accuracy_a" in rec and n < MIN_BOOTSTRAP_ITEMS:
        if min_mcnemar_p(n) < ALPHA:
            return None
        return {"why": f"exact McNemar test of {n} paired videos: no outcome reaches p < {ALPHA}",
                "min_p": min_mcnemar_p(n), "items_to_decide": _items_needed(min_mcnemar_p, n)}
    if "value_a" in rec and n < MIN_BOOTSTRAP_ITEMS:
        return {"why": f"a paired bootstrap of {n} items decides nothing (fewer than {MIN_BOOTSTRAP_ITEMS})",
                "min_p": None, "items_to_decide": MIN_BOOTSTRAP_ITEMS}
    return None


def flag_decidability(rec: dict) -> dict:
    """``rec`` with ``undecidable`` (True/False) and, when True, ``decidability`` (:func:`decidability`)."""
    why = decidability(rec)
    out = {k: v for k, v in rec.items() if k != "decidability"}
    out["undecidable"] = why is not None
    if why is not None:
        out["decidability"] = why
    return out
