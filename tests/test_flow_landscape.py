"""The loss landscape around the true flow (htsc_core/flow/landscape.py) on a generated smoke set."""
from __future__ import annotations

import shutil

import pytest
import torch

from htsc_core.config import from_params
from htsc_core.flow.landscape import FACTORS, best_factor, loss_landscape
from htsc_core.models.motionnet import build_motionnet


def test_landscape_rows_truth_beats_zero_flow_and_motionnet_is_scored(tmp_path, smoke_set):
    root = smoke_set
    cfg = from_params({"profile": "smoke", "data_root": str(root), "runs_dir": str(tmp_path / "runs")})
    torch.manual_seed(0)
    ckpt = tmp_path / "motion.pt"
    torch.save({"model": build_motionnet(cfg).state_dict()}, ckpt)  # the trainer's checkpoint format
    rows = loss_landscape(cfg, checkpoint=ckpt, max_videos=4)
    at = {(r["scale"], r["factor"]): r for r in rows}
    assert set(at) == {(s, a) for s in (1, 2, 3, 4) for a in (*map(float, FACTORS), None)}
    # objects move 1-4 px/frame: at the input size the true flow reconstructs far better than zero flow
    assert at[(1, 1.0)]["total"] < at[(1, 0.0)]["total"]
    assert best_factor(rows, 1) > 0.5
    # zero flow: every flow difference is 0, so each smoothness term is (eps^2)^0.3 per channel and pixel;
    # 2 directions x 2(L-1) = 8 channels (smoke L = 5), divided by the pixels it sums over
    assert at[(1, 0.0)]["smoothness"] == pytest.approx(2 * 8 * (1e-6) ** 0.3, rel=1e-5)
    assert at[(1, None)]["stacks"] == at[(1, 1.0)]["stacks"] > 0
    shutil.rmtree(root / "flow_gt")
    with pytest.raises(ValueError, match="ground-truth flow"):
        loss_landscape(cfg)
