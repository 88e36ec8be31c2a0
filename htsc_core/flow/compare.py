"""``htsc flow compare``: paired intervals between two flow evaluations (docs/SYNTHETIC.md section 7).

Each side is a JSON that ``htsc flow eval`` or ``htsc flow moving`` wrote plus the method to read from it
(``FILE:METHOD``). The two must cover the same videos in the same order (``eval`` records their ids;
``moving`` reads the first N of a split): the difference of the per-video means, A - B, gets a paired
bootstrap interval (:func:`htsc_core.stats.paired_difference`, videos resampled), beside the number of
videos where A is lower. Videos where either side has no value (a region the video lacks) are left out.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from htsc_core.stats import paired_difference


def _load(spec: str) -> tuple[dict[str, list], list | None, str]:
    """``FILE:METHOD`` -> (per-video lists by key, video ids or None, label)."""
    path, sep, method = spec.rpartition(":")
    if not sep or not path or not method:
        raise ValueError(f"flow compare: {spec!r}; expected FILE:METHOD (e.g. flow_eval.json:motionnet)")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"flow compare: cannot read {path}: {exc}") from exc
    rows = data.get("rows") or []
    if rows and "part" in rows[0]:  # htsc flow moving: one row per (method, part)
        per_video = {f"epe_{r['part']}": r["per_video"] for r in rows if r["method"] == method}
    else:
        per_video = next((r["per_video"] for r in rows if r.get("method") == method), None)
    if not per_video:
        have = sorted({r.get("method") for r in rows})
        raise ValueError(f"flow compare: {path} has no method {method!r} (it has {have})")
    return per_video, data.get("videos"), f"{Path(path).name}:{method}"


def compare(spec_a: str, spec_b: str, keys: Sequence[str] | None = None, n_boot: int = 2000,
            seed: int = 0) -> list[dict]:
    """Rows {key, a, b, diff, lo, hi, a_lower, videos}: per-video means of A and B over the videos both have."""
    a, vids_a, label_a = _load(spec_a)
    b, vids_b, label_b = _load(spec_b)
    if vids_a is not None and vids_b is not None and list(vids_a) != list(vids_b):
        raise ValueError(f"flow compare: {label_a} and {label_b} scored different videos; pairing needs the same")
    keys = list(keys) if keys else [k for k in a if k in b and k.startswith("epe")]
    rows = []
    for key in keys:
        if key not in a or key not in b:
            raise ValueError(f"flow compare: key {key!r} is not in both ({sorted(a)} / {sorted(b)})")
        if len(a[key]) != len(b[key]):
            raise ValueError(f"flow compare: {key}: {len(a[key])} videos in {label_a}, {len(b[key])} in {label_b}")
        both = [(x, y) for x, y in zip(a[key], b[key]) if x is not None and y is not None]
        if len(both) < 2:
            rows.append({"key": key, "videos": len(both), "a": None, "b": None, "diff": None, "lo": None,
                         "hi": None, "a_lower": None})
            continue
        xa, xb = (np.array(v, dtype=np.float64) for v in zip(*both))
        diff, lo, hi = paired_difference(np.mean, (xa,), (xb,), n_boot=n_boot, seed=seed)
        rows.append({"key": key, "videos": len(both), "a": float(xa.mean()), "b": float(xb.mean()), "diff": diff,
                     "lo": lo, "hi": hi, "a_lower": int((xa < xb).sum())})
    return rows


def format_compare(rows: Sequence[dict], label_a: str, label_b: str) -> str:
    lines = [f"A = {label_a}, B = {label_b}; per-video means, A - B with a paired bootstrap 95 % interval",
             f"{'key':<22} {'A':>7} {'B':>7} {'A - B':>8} {'interval':>19} {'A lower':>9}"]
    for r in rows:
        if r["diff"] is None:
            lines.append(f"{r['key']:<22} {'-':>7} {'-':>7} {'-':>8} {'(fewer than 2 videos)':>19}")
            continue
        lines.append(f"{r['key']:<22} {r['a']:>7.3f} {r['b']:>7.3f} {r['diff']:>+8.3f} "
                     f"[{r['lo']:+.3f}, {r['hi']:+.3f}] {r['a_lower']:>4}/{r['videos']}")
    return "\n".join(lines)
