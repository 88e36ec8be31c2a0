"""Across training seeds: the seed table (``tables/seeds.csv``) and the seed-aware verdicts (``claims.json``).

``htsc reproduce --seeds N`` trains the whole study N times (seed, seed+1, ...) on the same data and scores
every run on the same test videos. One trained model's interval says how much the test videos could move
its number; it says nothing about what a reseed changes, and the spatial stream alone moved 12 points
across three seeds (docs/SYNTHETIC.md). So after the runs:

- ``seeds_table`` writes each Table 3/4 and per-family value's mean, sample std and per-seed values;
- ``seed_aware_claims`` restates every accuracy and flow claim of the main run from all seeds' records:
  the mean of the per-seed estimates with :func:`htsc_core.stats.seed_aware_interval` (reseed spread plus
  test-set sampling), the verdict from that interval, and ``seeds`` = how many runs it covers. Claims
  over fewer than :data:`htsc_core.stats.MIN_EXACT_N` items keep a verdict only when every seed reached
  it with its own exact test; timing claims (``measure`` "timing": repeated measurements of one build,
  not of a training) and strict invariants keep their own rule and the main run's record.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from htsc_core import stats
from htsc_core.utils import atomic_write_json, atomic_write_text

TABLES = ("table4", "table3", "per_family")


def _read_table(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {r["method"]: r for r in csv.DictReader(fh)}


def _value_columns(table: str, row: dict) -> list[str]:
    if table != "per_family":
        return ["ours"]
    return [c for c in row if c != "method" and not c.startswith(("ci_", "n_")) and "_ci_" not in c]


def seeds_table(seed_dirs: list[Path]) -> Path:
    """``<seed_dirs[0]>/tables/seeds.csv``: table, method, column, n_seeds, mean, std (sample), values."""
    rows = []
    for table in TABLES:
        per_seed = [_read_table(Path(d) / "tables" / f"{table}.csv") for d in seed_dirs]
        if not per_seed[0]:
            continue
        for method, first in per_seed[0].items():
            for col in _value_columns(table, first):
                vals = [float(t[method][col]) for t in per_seed if method in t and t[method].get(col) not in ("", None)]
                if vals:
                    summary = stats.seeds_summary(vals)
                    rows.append(f"{table},{method},{col},{summary['n']},{summary['mean']:.4f},{summary['std']:.4f},"
                                + " ".join(f"{v:.4f}" for v in vals))
    lines = ["table,method,column,n_seeds,mean,std,values", *rows]
    return atomic_write_text(Path(seed_dirs[0]) / "tables" / "seeds.csv", "\n".join(lines) + "\n")


def _claims(results_dir: Path) -> dict[str, dict]:
    path = Path(results_dir) / "metrics" / "claims.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no claims from this seed's run; run its notebooks first")
    return {c["claim"]: c for c in json.loads(path.read_text())}


def _keeps_own_rule(rec: dict) -> bool:
    return rec.get("measure") == "timing" or rec.get("strict") or None in rec["ci"]


def seed_aware_record(records: list[dict], seeds: list[int]) -> dict:
    """One claim restated over its per-seed records (same claim, same kind, one per seed, main seed first)."""
    first = records[0]
    estimates = [r["estimate"] for r in records]
    half_widths = [(r["ci"][1] - r["ci"][0]) / 2 for r in records]
    mean, lo, hi, df = stats.seed_aware_interval(estimates, half_widths)
    verdict = stats.verdict(lo, hi, first["kind"], first.get("margin") or 0.0)
    per_seed = [r["verdict"] for r in records]
    detail = (f"mean over {len(records)} seeds {mean:+.3f} (per seed "
              + ", ".join(f"{e:+.3f}" for e in estimates) + f"); seed {seeds[0]}: {first['detail']}")
    n = first.get("n")
    if n is not None and n < stats.MIN_EXACT_N and verdict != "not resolved" and any(v != verdict for v in per_seed):
        verdict, detail = "not resolved", detail + (f" (n < {stats.MIN_EXACT_N} and not every seed's exact test "
                                                    f"reached it: no verdict)")
    ps = [r.get("p") for r in records]
    return {**first, "detail": detail, "verdict": verdict, "estimate": mean, "ci": [lo, hi],
            "p": max(ps) if None not in ps else None, "seeds": len(records), "df": df if df != float("inf") else None,
            "interval": "seed-aware", "per_seed": {"seeds": seeds, "estimates": estimates, "ci": [r["ci"] for r in
                                                                                                  records],
                                                   "verdicts": per_seed, "interval": first.get("interval")}}


def seed_aware_claims(seed_dirs: list[Path], seeds: list[int]) -> Path:
    """Rewrite ``<seed_dirs[0]>/metrics/claims.json`` with every claim restated over the seeds; the main
    run's own records stay in ``claims_seed<seed>.json`` beside it. A claim missing from some seed's run
    (a notebook that failed or was skipped) keeps the main run's record with ``seeds`` = 1."""
    if len(seed_dirs) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"seed_aware_claims needs >= 2 seeds, one results folder each; got {seeds}, {seed_dirs}")
    main_dir = Path(seed_dirs[0])
    per_seed = [_claims(d) for d in seed_dirs]
    atomic_write_json(main_dir / "metrics" / f"claims_seed{seeds[0]}.json", list(per_seed[0].values()))
    out = []
    for claim, first in per_seed[0].items():
        records = [p.get(claim) for p in per_seed]
        if _keeps_own_rule(first) or any(r is None or None in r["ci"] for r in records):
            out.append({**first, "seeds": 1})
        else:
            out.append(seed_aware_record(records, seeds))
    return atomic_write_json(main_dir / "metrics" / "claims.json", out)
