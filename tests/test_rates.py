"""Each stage's rate on record (htsc_core/rates.py, issue 40 item 1): seconds from the stage's log, FLOPs from the plan,
and the notebooks' time split; checked against hand-computed values on a made-up run."""
from __future__ import annotations

import json

import pytest

from htsc_core import rates
from htsc_core.config import from_params
from htsc_core.flow.extract import SUMMARY_NAME


def test_stage_rates_and_time_split_from_a_runs_logs(tmp_path):
    cfg = from_params(profile="smoke", data_root=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"))
    # a step of 4 videos costs 1 TFLOP; a validation pass over 10 videos 0.5 TFLOP
    plan = {"stages": {"spatial": {"flops_per_step": 1e12, "batch_size": 4,
                                   "validation": {"flops_per_epoch": 0.5e12, "videos": 10}},
                       "motion": {"flops_per_step": 9e12, "batch_size": 4,
                                  "validation": {"flops_per_epoch": 0.0, "videos": 10}}}}
    log = tmp_path / "runs" / "spatial" / "log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("\n".join(json.dumps({"stage": "spatial", "epoch": e, "seconds": s, "precision": "fp32",
                                         "train_count": 8, "val_count": 10}) for e, s in ((1, 10.0), (2, 15.0))) + "\n")
    rows = rates.stage_rates(cfg, plan)  # motion has no log: no row
    assert [r["stage"] for r in rows] == ["spatial"]
    # 2 epochs x (8 videos x 0.25 TFLOP + 10 videos x 0.05 TFLOP) = 5 TFLOP in 25 s = 200 GFLOP/s
    assert rows[0] == {"stage": "spatial", "epochs": 2, "seconds": 25.0, "plan_tflop": 5.0, "gflop_per_s": 200.0,
                       "precision": "fp32"}
    flow = tmp_path / "data" / cfg.flow_dir
    flow.mkdir(parents=True)
    (flow / SUMMARY_NAME).write_text(json.dumps({"seconds": 30.0}))
    split = rates.time_split(cfg, {"01_spatial.ipynb": 40.0, "03_temporal.ipynb": 50.0, "08_table5.ipynb": 20.0}, rows)
    assert split == pytest.approx({"notebooks": 110.0, "training": 25.0, "flow_extraction": 30.0,
                                   "table5_benchmark": 20.0, "rest": 35.0})
    assert "200.0" in rates.format_rates(rows)
