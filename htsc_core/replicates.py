"""Intervals over replicates, beside :mod:`htsc_core.stats`: across training seeds (the mean of per-seed estimates
with an interval that adds the reseed spread to each seed's own, issue 23) and across a dataset's splits (the mean of
per-split paired differences, bootstrapped over video names so that a video tested in two splits is drawn in both at
once, with exact McNemar on every split's discordant videos; issue 39)."""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import numpy as np
from scipy import stats as _sps

from htsc_core.stats import (_bool_vector, _check_level, _percentiles, _resamples, claim_record, enclose, mcnemar_exact,
                             verdict)


def pooled_paired_difference(correct_a: Sequence[Any], correct_b: Sequence[Any], clusters: Sequence[Any],
                             n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean over S strata (e.g. a dataset's three splits) of the paired difference acc_s(A) - acc_s(B):
    (estimate, lo, hi), each stratum weighing the same (the mean over splits that papers report).

    ``correct_a[s]``, ``correct_b[s]`` are stratum s's per-video 0/1 correctness, ``clusters[s]`` its videos'
    names. The percentile bootstrap resamples the names of the union with replacement: a video that is in
    several strata (HMDB51's splits share some test videos) is drawn, or left out, in all of them at once,
    so the interval does not treat it as independent repeats. With one stratum of distinct names it is
    :func:`paired_difference` of the correctness with the same resamples.
    """
    if not (len(correct_a) == len(correct_b) == len(clusters)) or not correct_a:
        raise ValueError("stats.py: pooled_paired_difference needs one (A, B, names) triple per stratum")
    _check_level(level)
    index: dict[Any, int] = {}
    diffs, members = [], []
    for s, (a, b, c) in enumerate(zip(correct_a, correct_b, clusters)):
        a = _bool_vector(a, f"correct_a[{s}]").astype(np.float64)
        b = _bool_vector(b, f"correct_b[{s}]").astype(np.float64)
        c = list(c)
        if not (a.size == b.size == len(c)) or a.size == 0:
            raise ValueError(f"stats.py: stratum {s}: {a.size} and {b.size} videos, {len(c)} names")
        if len(set(c)) != len(c):
            raise ValueError(f"stats.py: stratum {s} lists a video twice")
        diffs.append(a - b)
        members.append(np.array([index.setdefault(v, len(index)) for v in c]))
    estimate = float(np.mean([d.mean() for d in diffs]))
    values = np.empty(max(n_boot, 0))
    for r, idx in enumerate(_resamples(len(index), n_boot, seed)):
        w = np.bincount(idx, minlength=len(index)).astype(np.float64)
        per = [float(w[m] @ d) / max(float(w[m].sum()), 1.0) for m, d in zip(members, diffs)]
        values[r] = np.mean(per)
    lo, hi = enclose(estimate, *_percentiles(values, level))
    return estimate, lo, hi

def compare_accuracy_pooled(correct_a: Sequence[Any], correct_b: Sequence[Any], clusters: Sequence[Any],
                            kind: str = "greater", claim: str = "", detail: str = "", n_boot: int = 2000,
                            level: float = 0.95, seed: int = 0) -> dict:
    """One claim over S strata (splits): estimate and interval from :func:`pooled_paired_difference`, the
    verdict from that interval, and p = the exact McNemar test on the discordant videos of all strata
    together (under H0 each of them favours A or B with probability 1/2, so the count favouring A is
    Binomial(all discordant, 1/2); it counts a video tested in two strata twice, as two scorings).
    ``n`` is the number of scored videos over the strata; ``per_stratum`` the S differences."""
    if kind == "within":
        raise ValueError("stats.py: compare_accuracy_pooled compares differences")
    est, lo, hi = pooled_paired_difference(correct_a, correct_b, clusters, n_boot=n_boot, level=level, seed=seed)
    a = np.concatenate([np.asarray(x, dtype=bool) for x in correct_a])
    b = np.concatenate([np.asarray(x, dtype=bool) for x in correct_b])
    per = [float(np.mean(np.asarray(x, dtype=float)) - np.mean(np.asarray(y, dtype=float)))
           for x, y in zip(correct_a, correct_b)]
    n_unique = len({v for c in clusters for v in c})
    return claim_record(claim, detail or f"mean difference {est:+.4f} [{lo:+.4f}, {hi:+.4f}] over {len(per)} strata",
                        verdict(lo, hi, kind), est, (lo, hi), p=mcnemar_exact(a, b), n=int(a.size), kind=kind,
                        margin=0.0, per_stratum=per, n_unique=n_unique,
                        accuracy_a=float(np.mean([np.mean(np.asarray(x, dtype=float)) for x in correct_a])),
                        accuracy_b=float(np.mean([np.mean(np.asarray(x, dtype=float)) for x in correct_b])))

def seeds_summary(values) -> dict:
    """Mean, sample standard deviation (ddof=1; 0 for a single seed) and count of per-seed results."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("stats.py: seeds_summary of no values")
    if not np.all(np.isfinite(v)):
        raise ValueError("stats.py: seeds_summary: values contain NaN or inf")
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}

def seed_aware_interval(estimates, half_widths, level: float = 0.95) -> tuple[float, float, float, float]:
    """Interval of a claim's estimate over S >= 2 training seeds that were all scored on ONE test set.

    The mean over seeds m has two sources of error:
      - what a reseed changes: the sample variance s_b^2 of the per-seed estimates, divided by S;
      - test-set sampling: the seeds share the test videos, so this part does not average out over
        seeds; its standard error se_w is taken from the per-seed within-run intervals
        (mean half-width / z_{level}).
    SE^2 = s_b^2 / S + se_w^2, and m +- t_{df} * SE with Welch-Satterthwaite degrees of freedom,
    df = (S - 1) * SE^4 / (s_b^2 / S)^2 (the within-run part taken as known): with 3 seeds that
    disagree, t is large (4.3 at df = 2); with seeds that agree, the interval tends to the within-run one.
    Returns (mean, lo, hi, df); df is inf when the seeds agree exactly.
    """
    _check_level(level)
    e = np.asarray(estimates, dtype=np.float64).ravel()
    w = np.asarray(half_widths, dtype=np.float64).ravel()
    if e.size < 2 or e.size != w.size:
        raise ValueError(f"stats.py: seed_aware_interval needs >= 2 seeds with one half-width each; got "
                         f"{e.size} estimates and {w.size} half-widths")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(w))) or np.any(w < 0):
        raise ValueError("stats.py: seed_aware_interval: estimates and half-widths must be finite, widths >= 0")
    s = e.size
    between = float(e.var(ddof=1)) / s
    within = (float(w.mean()) / float(_sps.norm.ppf(0.5 + level / 2))) ** 2
    se2 = between + within
    df = math.inf if between == 0 else (s - 1) * se2 ** 2 / between ** 2
    q = float(_sps.norm.ppf(0.5 + level / 2)) if math.isinf(df) else float(_sps.t.ppf(0.5 + level / 2, df))
    m = float(e.mean())
    return m, m - q * math.sqrt(se2), m + q * math.sqrt(se2), df
