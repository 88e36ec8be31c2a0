"""Each training stage's arithmetic rate, and where a study's notebook time went (issue 40, item 1).

After ``htsc reproduce`` the run record (``metrics/reproduce.json``) gets, from the run's own files:

- ``stage_rates``: per trained stage, its epochs and seconds (the sum of ``seconds`` in
  ``<runs_dir>/<stage>/log.jsonl``: each epoch's training and validation), the FLOPs ``htsc plan`` counts for the
  videos those epochs trained and validated on (:mod:`htsc_core.plan`, per video), and the achieved GFLOP/s =
  FLOPs / seconds. The plan's FLOPs count convolutions and matrix products only (2 per multiply-add); elementwise
  work (MotionNet's losses) is time without counted FLOPs, so a low rate there says "bound by something other than
  the matrix units", which is the point.
- ``time_split``: the notebooks' seconds as training (the stages' logs), TV-L1 flow extraction (its summary's
  ``seconds``), the Table 5 benchmark (notebook 08) and the rest (scoring, features, AWL, tables, figures, start-up).
"""
from __future__ import annotations

import json
from pathlib import Path

from htsc_core.config import Config
from htsc_core.flow.extract import SUMMARY_NAME
from htsc_core.plan import make_plan
from htsc_core.train.streams import flow_root, run_dir

BENCH_NOTEBOOK = "08_table5.ipynb"


def _log(cfg: Config, stage: str) -> list[dict]:
    path = run_dir(cfg, stage) / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stage_rates(cfg: Config, plan: dict | None = None) -> list[dict]:
    """One row per stage with a training log: epochs, seconds, the plan's FLOPs for the videos those epochs saw
    (each epoch's ``train_count`` and ``val_count``: capped runs, such as the paper-profile dry run, count what they
    ran), GFLOP/s."""
    plan = plan or make_plan(cfg)
    rows = []
    for stage, s in plan["stages"].items():
        log = [r for r in _log(cfg, stage) if r.get("stage") == stage]
        if not log:
            continue
        seconds = sum(float(r.get("seconds", 0.0)) for r in log)
        per_train_video = s["flops_per_step"] / max(s["batch_size"], 1)  # a step's forward, loss and backward
        val = s["validation"]
        per_val_video = val["flops_per_epoch"] / max(val["videos"], 1)
        flops = sum(per_train_video * float(r.get("train_count", 0.0)) + per_val_video * float(r.get("val_count", 0.0))
                    for r in log)
        rows.append({"stage": stage, "epochs": len(log), "seconds": round(seconds, 1),
                     "plan_tflop": round(flops / 1e12, 3),
                     "gflop_per_s": round(flops / seconds / 1e9, 1) if seconds > 0 else None,
                     "precision": log[-1].get("precision")})
    return rows


def time_split(cfg: Config, seconds_per_notebook: dict[str, float], rates: list[dict]) -> dict:
    """The notebooks' seconds split into training, TV-L1 extraction, the Table 5 benchmark and the rest."""
    total = float(sum(seconds_per_notebook.values()))
    training = float(sum(r["seconds"] for r in rates))
    summary = Path(flow_root(cfg)) / SUMMARY_NAME
    extraction = float(json.loads(summary.read_text()).get("seconds", 0.0)) if summary.exists() else 0.0
    bench = float(seconds_per_notebook.get(BENCH_NOTEBOOK, 0.0))
    return {"notebooks": round(total, 1), "training": round(training, 1), "flow_extraction": round(extraction, 1),
            "table5_benchmark": round(bench, 1),
            "rest": round(total - training - extraction - bench, 1)}


def format_rates(rows: list[dict]) -> str:
    lines = [f"{'stage':>12s} {'epochs':>6s} {'seconds':>8s} {'TFLOP':>8s} {'GFLOP/s':>8s}"]
    lines += [f"{r['stage']:>12s} {r['epochs']:>6d} {r['seconds']:>8.1f} {r['plan_tflop']:>8.2f} "
              f"{r['gflop_per_s'] if r['gflop_per_s'] is not None else '':>8}" for r in rows]
    return "\n".join(lines)
