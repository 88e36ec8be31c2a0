"""Across training seeds, and across precisions: the seed table (``tables/seeds.csv``), the seed-aware verdicts
(``claims.json``) and their check against a run in the other precision (``other_precision.json``).

``htsc reproduce --seeds N`` trains the whole study N times (seed, seed+1, ...) on the same data and scores
every run on the same test videos. One trained model's interval says how much the test videos could move
its number; it says nothing about what a reseed changes, and the spatial stream alone moved 12 points
across three seeds (docs/SYNTHETIC.md). So after the runs:

- ``seeds_table`` writes each Table 3/4, per-family and flow-error value's mean, sample std and per-seed values;
- ``seed_aware_claims`` restates every accuracy and flow claim of the main run from all seeds' records:
  the mean of the per-seed estimates with :func:`htsc_core.stats.seed_aware_interval` (reseed spread plus
  test-set sampling), the verdict from that interval, and ``seeds`` = how many runs it covers. Claims
  over fewer than :data:`htsc_core.stats.MIN_EXACT_N` items keep a verdict only when every seed reached
  it with its own exact test; timing claims (``measure`` "timing": repeated measurements of one build,
  not of a training) and strict invariants keep their own rule and the main run's record.

Precision is one more source of variation: a CPU with native bf16 trains under bf16 autocast, one without
in fp32, and the same seed moves (docs/SYNTHETIC.md section 11). ``other_precision_check`` (``htsc
precision-check``) sets each claim of this run beside the same claim of a run made in the other precision and
lists the verdicts that run does not share.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from htsc_core import stats
from htsc_core.utils import atomic_write_json, atomic_write_text

TABLES = ("table4", "table3", "per_family", "flow")
FLOW_COLUMNS = ("epe", "epe_moving", "epe_background", "epe_border")  # flow.csv's errors (not its timing column)


def _read_table(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {r["method"]: r for r in csv.DictReader(fh)}


def _value_columns(table: str, row: dict) -> list[str]:
    if table == "flow":
        return [c for c in FLOW_COLUMNS if c in row]
    if table != "per_family":
        return ["ours"]
    return [c for c in row if c != "method" and not c.startswith(("ci_", "n_")) and not c.endswith("_n")
            and "_ci_" not in c]


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


def recorded_precision(results_dir: Path) -> dict:
    """The precision meta (``precision.precision_metadata``) a run's metrics files recorded; {} if none did."""
    for path in sorted((Path(results_dir) / "metrics").glob("0*.json")):
        meta = json.loads(path.read_text()).get("meta", {})
        if "precision" in meta:
            return meta
    return {}


def _run_record(results_dir: Path) -> dict:
    path = Path(results_dir) / "metrics" / "reproduce.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    meta = recorded_precision(results_dir)
    return {"results": str(results_dir), "git_commit": record.get("git_commit"), "seeds": record.get("seeds"),
            **{k: meta.get(k) for k in ("precision", "cpu_model", "bf16_native_cpu", "fp32_forced")}}


def other_precision_check(results_dir: Path, other_dir: Path) -> Path:
    """``<results_dir>/metrics/other_precision.json``: each claim of this run (seed-aware where it has seeds)
    beside the same claim of ``other_dir``'s run, which must have run the networks in the other precision.

    Per claim: both verdicts, both estimates, whether the other run's estimate lies inside this run's interval
    (``other_inside``) and whether the verdicts agree (``same_verdict``). A claim "survives" the other precision
    when the verdicts agree; the summary lists those that do not. Claims only one run states are listed apart.
    """
    this, other = _run_record(results_dir), _run_record(other_dir)
    if not this["precision"] or not other["precision"]:
        missing = results_dir if not this["precision"] else other_dir
        raise ValueError(f"{missing}/metrics: no metrics file records the precision its networks ran in")
    if this["precision"] == other["precision"]:
        raise ValueError(f"{other_dir}: ran in {other['precision']} like {results_dir}; the check needs a run in "
                         f"the other precision (HTSC_FP32=1 on a CPU with native bf16, or a CPU without it)")
    mine, theirs = _claims(results_dir), _claims(other_dir)
    rows = []
    for claim, rec in mine.items():
        o = theirs.get(claim)
        if o is None:
            continue
        lo, hi = rec["ci"]
        inside = None if None in (lo, hi, o["estimate"]) else bool(lo <= o["estimate"] <= hi)
        rows.append({"claim": claim, "seeds": rec.get("seeds", 1), "verdict": rec["verdict"],
                     "estimate": rec["estimate"], "ci": rec["ci"], "other_verdict": o["verdict"],
                     "other_estimate": o["estimate"], "other_ci": o["ci"], "other_inside": inside,
                     "same_verdict": rec["verdict"] == o["verdict"]})
    differ = [r["claim"] for r in rows if not r["same_verdict"]]
    payload = {"meta": recorded_precision(results_dir), "this": this, "other": other, "claims": rows,
               "only_here": sorted(set(mine) - set(theirs)), "only_there": sorted(set(theirs) - set(mine)),
               "summary": {"compared": len(rows), "same_verdict": len(rows) - len(differ), "differ": differ,
                           "other_outside_interval": [r["claim"] for r in rows if r["other_inside"] is False]}}
    return atomic_write_json(Path(results_dir) / "metrics" / "other_precision.json", payload)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--other", type=Path, required=True,
                   help="results folder of a run in the other precision (its metrics/claims.json and the "
                        "precision its metrics files recorded)")
    p.add_argument("--results", type=Path, default=Path("results/synthetic"),
                   help="this run's results folder (default results/synthetic)")


def command(args: argparse.Namespace) -> int:
    out = other_precision_check(args.results, args.other)
    summary = json.loads(out.read_text())["summary"]
    print(f"{out}: {summary['same_verdict']} of {summary['compared']} claims keep their verdict in the other "
          f"precision" + (f"; differ: {'; '.join(summary['differ'])}" if summary["differ"] else ""))
    return 0
