"""``htsc flow-swap``: per-family accuracy and paired exact tests of the temporal CNN on several flows."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from htsc_core.config import from_params
from htsc_core.data.registry import class_families, load_split
from htsc_core import flow_swap as swap
from htsc_core.cli import main


def test_parse_arm_and_its_errors():
    assert swap.parse_arm("mn=runs/a:b:flow_motionnet") == ("mn", "runs/a:b", "flow_motionnet")
    for bad in ("runs/a:flow", "mn=runs/a", "=runs:flow", "mn=:flow"):
        with pytest.raises(ValueError, match="LABEL=RUNS_DIR:FLOW_DIR"):
            swap.parse_arm(bad)


def test_family_accuracy_and_mcnemar_by_hand(smoke_set_source, monkeypatch):
    cfg = from_params({"profile": "smoke", "data_root": str(smoke_set_source)})
    records, classes = load_split(cfg, "test")
    labels = np.array([r.label for r in records])
    fams = class_families(cfg)
    motion = np.array([fams[classes[y]] == "motion" for y in labels])
    n, n_motion = len(labels), int(motion.sum())
    assert n_motion >= 3
    # arm "a": right on every video; arm "b": wrong on the first 3 motion videos only
    wrong_b = np.flatnonzero(motion)[:3]

    def scores_for(runs):
        pred = labels.copy()
        if runs == "rb":
            pred[wrong_b] = (labels[wrong_b] + 1) % len(classes)
        return {"scores": np.eye(len(classes), dtype=np.float32)[pred], "labels": labels,
                "video_ids": np.array([r.video_id for r in records])}

    streams = {}

    def fake_scores(c, subset, stream):
        streams[c.runs_dir] = (stream, c.flow_dir)
        return scores_for(c.runs_dir)

    monkeypatch.setattr(swap, "_arm_scores", fake_scores)
    rep = swap.swap_report(cfg, [("a", "ra", "flow_tvl1"), ("b", "rb", "flow_motionnet"), ("h", "rh", "hidden")])
    # the CNN on stored flow reads the arm's folder; "hidden" scores the end-to-end stream of its runs folder
    assert streams == {"ra": ("tvl1", "flow_tvl1"), "rb": ("tvl1", "flow_motionnet"), "rh": ("temporal", "flow_tvl1")}
    assert rep["spatial_init"] is False
    acc = {(r["arm"], r["family"]): r["accuracy"] for r in rep["rows"]}
    assert acc[("a", "motion")] == 1.0 and acc[("b", "all")] == pytest.approx((n - 3) / n)
    assert acc[("b", "motion")] == pytest.approx((n_motion - 3) / n_motion)
    assert acc[("b", "appearance")] == 1.0
    row = next(p for p in rep["paired"] if p["family"] == "motion" and p["arm"] == "b")
    assert (row["arm_only_right"], row["versus_only_right"]) == (0, 3)
    assert row["mcnemar_p"] == pytest.approx(binomtest(0, 3, 0.5).pvalue)  # 0.25
    assert row["difference"] == pytest.approx(-3 / n_motion)


def test_swap_names_a_missing_run_and_a_missing_flow_folder(smoke_set_source, tmp_path, capsys):
    args = ["flow-swap", "--data-root", str(smoke_set_source), "--profile", "smoke"]
    assert main(args + ["--arm", f"x={tmp_path / 'none'}:flow_tvl1"]) == 2
    assert "best.pt is missing" in capsys.readouterr().err
    (tmp_path / "r" / "tvl1").mkdir(parents=True)
    (tmp_path / "r" / "tvl1" / "best.pt").write_bytes(b"")
    assert main(args + ["--arm", f"x={tmp_path / 'r'}:flow_nowhere"]) == 2
    assert "no flow folder" in capsys.readouterr().err
    (tmp_path / "s" / "spatial").mkdir(parents=True)
    (tmp_path / "s" / "spatial" / "best.pt").write_bytes(b"")
    assert main(args + ["--arm", f"x={tmp_path / 'r'}:flow_tvl1", "--arm", f"y={tmp_path / 's'}:flow_tvl1"]) == 2
    assert "start differently" in capsys.readouterr().err
