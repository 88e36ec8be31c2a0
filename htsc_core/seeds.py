"""Across training seeds, and across precisions: the seed table (``tables/seeds.csv``), the seed-aware verdicts
(``claims.json``) and their check against a run in the other precision (``other_precision.json``).

``htsc reproduce --seeds N`` trains the whole study N times (seed, seed+1, ...) on the same data and scores
every run on the same test videos. One trained model's interval says how much the test videos could move
its number; it says nothing about what a reseed changes, and the spatial stream alone moved 12 points
across three seeds (docs/SYNTHETIC.md). So after the runs:

- ``seeds_table`` writes each Table 3/4, per-family and flow-error value's mean, sample std and per-seed values;
- ``seed_aware_tables`` rewrites Tables 3 and 4, the per-family table and figures 06 / 07 with the mean over seeds,
  the seed-aware interval the claims use and each seed's value (the main seed's own tables stay beside them as
  ``<table>_seed<k>.csv``, as its claims stay in ``claims_seed<k>.json``);
- ``seed_aware_claims`` restates every accuracy and flow claim of the main run from all seeds' records:
  the mean of the per-seed estimates with :func:`htsc_core.replicates.seed_aware_interval` (reseed spread plus
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
import io
import json
from pathlib import Path

from htsc_core import exact_tests, replicates, stats
from htsc_core.analysis import AWL_ASSIGNMENT, AWL_SUPERSEDED, awl_assignment
from htsc_core.utils import atomic_write_json, atomic_write_text

TABLES = ("table4", "table3", "per_family", "flow")
SEED_AWARE_TABLES = ("table4", "table3", "per_family")  # rewritten over the seeds (flow's errors: seeds.csv)
FLOW_COLUMNS = ("epe", "epe_moving", "epe_background", "epe_border")  # flow.csv's errors (not its timing column)
NOT_VALUES = ("method", "interval", "seeds")


def _read_table(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {r["method"]: r for r in csv.DictReader(fh)}


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _is_seed_aware_table(path: Path) -> bool:
    if not path.exists():
        return False
    _, rows = _read_rows(path)
    return any(r.get("interval") == "seed-aware" for r in rows)


def own_table_path(results_dir: Path, table: str, seed: int, main: bool) -> Path:
    """Where one seed's own ``table`` is: ``tables/<table>.csv`` of an extra seed's folder; for the main seed the
    same file until :func:`seed_aware_tables` rewrote it over the seeds, ``tables/<table>_seed<k>.csv`` after."""
    path = Path(results_dir) / "tables" / f"{table}.csv"
    if main and table in SEED_AWARE_TABLES and _is_seed_aware_table(path):
        return path.with_name(f"{table}_seed{seed}.csv")
    return path


def _value_columns(table: str, row: dict) -> list[str]:
    if table == "flow":
        return [c for c in FLOW_COLUMNS if c in row]
    if table != "per_family":
        return ["ours"]
    return [c for c in row if c not in NOT_VALUES and not c.startswith(("ci_", "n_")) and not c.endswith("_n")
            and "_ci_" not in c and "_seed" not in c]


def seeds_table(seed_dirs: list[Path], seeds: list[int] | None = None) -> Path:
    """``<seed_dirs[0]>/tables/seeds.csv``: table, method, column, n_seeds, mean, std (sample), values."""
    seeds = list(range(len(seed_dirs))) if seeds is None else seeds
    rows = []
    for table in TABLES:
        per_seed = [_read_table(own_table_path(d, table, s, k == 0)) for k, (d, s) in enumerate(zip(seed_dirs, seeds))]
        if not per_seed[0]:
            continue
        for method, first in per_seed[0].items():
            for col in _value_columns(table, first):
                vals = [float(t[method][col]) for t in per_seed if method in t and t[method].get(col) not in ("", None)]
                if vals:
                    summary = replicates.seeds_summary(vals)
                    rows.append(f"{table},{method},{col},{summary['n']},{summary['mean']:.4f},{summary['std']:.4f},"
                                + " ".join(f"{v:.4f}" for v in vals))
    lines = ["table,method,column,n_seeds,mean,std,values", *rows]
    return atomic_write_text(Path(seed_dirs[0]) / "tables" / "seeds.csv", "\n".join(lines) + "\n")


def _claims(results_dir: Path) -> dict[str, dict]:
    path = Path(results_dir) / "metrics" / "claims.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no claims from this seed's run; run its notebooks first")
    return {c["claim"]: c for c in json.loads(path.read_text())}


def own_claims(results_dir: Path, seed: int, main: bool) -> dict[str, dict]:
    """One seed's own claim records: its ``claims.json``; for the main seed, once :func:`seed_aware_claims`
    restated that file over the seeds, ``claims_seed<k>.json`` beside it (so the restatement can run again)."""
    claims = _claims(results_dir)
    own = Path(results_dir) / "metrics" / f"claims_seed{seed}.json"
    if main and own.exists() and any(c.get("interval") == "seed-aware" for c in claims.values()):
        return {c["claim"]: c for c in json.loads(own.read_text())}
    return claims


def restate_from_metrics(claims: dict[str, dict], results_dir: Path) -> dict[str, dict]:
    """A seed's records with the claims that derive from its stored metrics stated by today's code: the AWL
    stream-assignment claim from ``metrics/05_awl.json`` (:func:`htsc_core.analysis.awl_assignment`, what
    notebook 05 records), in the place of the two 4-class claims it replaces. Unchanged without that file."""
    path = Path(results_dir) / "metrics" / "05_awl.json"
    if not path.exists():
        return claims
    rec = awl_assignment(json.loads(path.read_text())["metrics"]["rows"])
    if rec is None:
        return claims
    out: dict[str, dict] = {}
    for name, c in claims.items():
        if name in AWL_SUPERSEDED or name == AWL_ASSIGNMENT:
            out.setdefault(AWL_ASSIGNMENT, rec)
            continue
        out[name] = c
    out.setdefault(AWL_ASSIGNMENT, rec)
    return out


def _keeps_own_rule(rec: dict) -> bool:
    return rec.get("measure") == "timing" or rec.get("strict") or None in rec["ci"]


def seed_aware_record(records: list[dict], seeds: list[int]) -> dict:
    """One claim restated over its per-seed records (same claim, same kind, one per seed, main seed first)."""
    first = records[0]
    estimates = [r["estimate"] for r in records]
    half_widths = [(r["ci"][1] - r["ci"][0]) / 2 for r in records]
    mean, lo, hi, df = replicates.seed_aware_interval(estimates, half_widths)
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
    run's own records stay in ``claims_seed<seed>.json`` beside it (and are read from there when the
    restatement runs again, ``htsc reproduce --aggregate-only``). Each seed's claims that derive from its
    stored metrics are stated first (:func:`restate_from_metrics`; an extra seed's ``claims.json`` is updated).
    A claim missing from some seed's run (a notebook that failed or was skipped) keeps the main run's record
    with ``seeds`` = 1. Every record says whether its design can decide it (:func:`exact_tests.flag_decidability`)."""
    if len(seed_dirs) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"seed_aware_claims needs >= 2 seeds, one results folder each; got {seeds}, {seed_dirs}")
    main_dir = Path(seed_dirs[0])
    per_seed = []
    for k, (d, seed) in enumerate(zip(seed_dirs, seeds)):
        own = restate_from_metrics(own_claims(d, seed, main=k == 0), d)
        own = {name: exact_tests.flag_decidability(c) for name, c in own.items()}
        target = main_dir / "metrics" / f"claims_seed{seed}.json" if k == 0 else Path(d) / "metrics" / "claims.json"
        atomic_write_json(target, list(own.values()))
        per_seed.append(own)
    out = []
    for claim, first in per_seed[0].items():
        records = [p.get(claim) for p in per_seed]
        if _keeps_own_rule(first) or any(r is None or None in r["ci"] for r in records):
            out.append({**first, "seeds": 1})
        else:
            out.append(seed_aware_record(records, seeds))
    return atomic_write_json(main_dir / "metrics" / "claims.json", [exact_tests.flag_decidability(c) for c in out])


def _cell(value: float) -> str:
    return f"{value:.4f}"


def _seed_aware_value(values: list[float], lows: list[float], highs: list[float]) -> tuple[float, float, float]:
    """Mean over seeds of a top-1 (or mAP) with :func:`replicates.seed_aware_interval` from each seed's own interval,
    clipped to [0, 1] (a proportion); the interval always contains the mean."""
    mean, lo, hi, _ = replicates.seed_aware_interval(values, [(h - lo_) / 2 for lo_, h in zip(lows, highs)])
    return mean, min(max(lo, 0.0), mean), max(min(hi, 1.0), mean)


def _aggregate_method_rows(columns: list[str], per_seed: list[dict[str, dict]], seeds: list[int]) -> tuple[
        list[str], list[dict]]:
    """Table 3 / 4 over the seeds: ``ours`` the mean, ``ci_low`` / ``ci_high`` the seed-aware interval,
    ``interval`` "seed-aware", ``seeds`` N, and ``ours_seed<k>`` each seed's value."""
    seed_cols = [f"ours_seed{s}" for s in seeds]
    head = [c for c in columns if c not in ("interval", "seeds") and not c.startswith("ours_seed")]
    at = head.index(next(c for c in ("n_test", "ci_high", "ours") if c in head)) + 1
    out_cols = head[:at] + ["interval", "seeds", *seed_cols] + head[at:]
    rows = []
    for method, first in per_seed[0].items():
        row = {c: first.get(c, "") for c in out_cols}
        vals = [t.get(method, {}).get("ours", "") for t in per_seed]
        if all(v not in ("", None) for v in vals):
            v = [float(x) for x in vals]
            mean, lo, hi = _seed_aware_value(v, [float(t[method]["ci_low"]) for t in per_seed],
                                             [float(t[method]["ci_high"]) for t in per_seed])
            row.update(ours=_cell(mean), ci_low=_cell(lo), ci_high=_cell(hi), interval="seed-aware",
                       seeds=len(v), **{c: _cell(x) for c, x in zip(seed_cols, v)})
        else:
            row.update(ours="", ci_low="", ci_high="", interval="", seeds="", **{c: "" for c in seed_cols})
        rows.append(row)
    return out_cols, rows


def _aggregate_family_rows(columns: list[str], per_seed: list[dict[str, dict]], seeds: list[int]) -> tuple[
        list[str], list[dict]]:
    """The per-family table over the seeds: per family the mean, the seed-aware interval, n and each seed's value."""
    families = [c for c in columns if c not in NOT_VALUES and not c.endswith(("_ci_low", "_ci_high", "_n"))
                and "_seed" not in c]
    out_cols = ["method", "interval", "seeds"]
    for f in families:
        out_cols += [f, f"{f}_ci_low", f"{f}_ci_high", f"{f}_n", *(f"{f}_seed{s}" for s in seeds)]
    rows = []
    for method, first in per_seed[0].items():
        if not all(method in t for t in per_seed):
            continue
        row = {"method": method, "interval": "seed-aware", "seeds": len(per_seed)}
        for f in families:
            cells = [t[method] for t in per_seed]
            if any(c.get(f) in ("", None) for c in cells):
                row.update({f: "", f"{f}_ci_low": "", f"{f}_ci_high": "", f"{f}_n": first.get(f"{f}_n", "")})
                continue
            v = [float(c[f]) for c in cells]
            mean, lo, hi = _seed_aware_value(v, [float(c[f"{f}_ci_low"]) for c in cells],
                                             [float(c[f"{f}_ci_high"]) for c in cells])
            row.update({f: _cell(mean), f"{f}_ci_low": _cell(lo), f"{f}_ci_high": _cell(hi),
                        f"{f}_n": first.get(f"{f}_n", ""), **{f"{f}_seed{s}": _cell(x) for s, x in zip(seeds, v)}})
        rows.append(row)
    return out_cols, rows


def _write_rows(path: Path, columns: list[str], rows: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def seed_aware_tables(seed_dirs: list[Path], seeds: list[int]) -> list[Path]:
    """Rewrite ``tables/table4.csv``, ``table3.csv`` and ``per_family.csv`` of the main folder over the seeds (mean,
    seed-aware interval, each seed's value; ``interval`` and ``seeds`` say which) and redraw figures
    ``06_table4.png`` and ``07_table3.png`` from them, each seed's value a point on its bar. The main seed's own
    tables are kept as ``<table>_seed<k>.csv``. Tables a seed lacks are left as they are."""
    main_dir, written = Path(seed_dirs[0]), []
    for table in SEED_AWARE_TABLES:
        paths = [own_table_path(d, table, s, k == 0) for k, (d, s) in enumerate(zip(seed_dirs, seeds))]
        if not all(p.exists() for p in paths):
            continue
        columns, first_rows = _read_rows(paths[0])
        own = main_dir / "tables" / f"{table}_seed{seeds[0]}.csv"
        if paths[0] != own:
            _write_rows(own, columns, first_rows)
        per_seed = [_read_table(p) for p in paths]
        aggregate = _aggregate_family_rows if table == "per_family" else _aggregate_method_rows
        out_cols, rows = aggregate(columns, per_seed, seeds)
        written.append(_write_rows(main_dir / "tables" / f"{table}.csv", out_cols, rows))
        if table in FIGURES and (main_dir / "figures").is_dir() and any(r["ours"] != "" for r in rows):
            _figure(main_dir, table, rows, seeds)
    return written


FIGURES = {"table4": "06_table4", "table3": "07_table3"}


def _figure(main_dir: Path, table: str, rows: list[dict], seeds: list[int]) -> Path:
    """Figure 06 / 07 from the seed-aware table: the mean with its seed-aware interval, each seed a point, the
    paper's UCF101 value beside it (as notebooks 06 and 07 draw the one-seed table)."""
    from htsc_core import plots

    measured = [r for r in rows if r["ours"] != ""]
    metric = "top1"
    meta = main_dir / "metrics" / "06_table4.json"
    if meta.exists():
        metric = json.loads(meta.read_text())["metrics"].get("metric", metric)
    title = (f"Table 4 ({metric}, {measured[0]['n_test']} test videos" if table == "table4" else "Table 3 (")
    title += f"{', ' if table == 'table4' else ''}mean of {len(seeds)} seeds)"
    points = [[float(r[f"ours_seed{s}"]) for s in seeds] for r in measured]
    return plots.method_bars(measured, "ours", "paper_ucf101", title=title, ylabel=metric if table == "table4" else "",
                             path=main_dir / "figures" / f"{FIGURES[table]}.png", points=points)


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
    # the claims that derive from a run's stored metrics, stated by today's code for both runs (the AWL assignment
    # claim from each run's 05_awl.json), so a run made before a claim changed is compared on the same question
    mine = restate_from_metrics(_claims(results_dir), results_dir)
    theirs = restate_from_metrics(_claims(other_dir), other_dir)
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
