"""htsc_core.flow.moving (the moving object's error by place and speed) and flow.compare, against hand values."""
from __future__ import annotations

import json

import numpy as np
import pytest

from htsc_core.flow import compare as cp
from htsc_core.flow import moving as mv


def square_truth(size=40, lo=15, hi=25, u=2.0, pairs=2):
    """Zero background, a (hi - lo)^2 square moving u px/frame right, in every pair."""
    gt = np.zeros((pairs, size, size, 2), dtype=np.float32)
    gt[:, lo:hi, lo:hi, 0] = u
    return gt


def test_part_masks_hand_counts():
    masks = mv.part_masks(square_truth(), edge=2)
    # the 10 x 10 square lies inside the 4 px border band of a 40 px frame: moving = 100 per pair
    assert int(masks["moving"][0].sum()) == 100
    assert int(masks["core"][0].sum()) == 36  # eroded by 2 px on each side: 6 x 6
    assert int(masks["edge"][0].sum()) == 64
    assert not (masks["core"] & masks["edge"]).any()
    assert int(masks["speed_1.5-2.5"][0].sum()) == 100  # relative speed 2 px/frame
    assert int(masks["speed_0.5-1.5"].sum()) == 0 and int(masks["speed_2.5-inf"].sum()) == 0
    assert int(masks["near"][0].sum()) == 14 * 14 - 100  # the 2 px ring of background around it
    # relative speed is measured against the pair's median (the camera's): a pan moves no bin
    panned = square_truth() + np.array([1.0, -0.5], dtype=np.float32)
    np.testing.assert_array_equal(mv.part_masks(panned)["core"], masks["core"])


def test_part_masks_a_frame_edge_is_not_a_motion_boundary():
    gt = square_truth(lo=0, hi=20)  # the object touches the frame's top-left corner
    masks = mv.part_masks(gt, edge=2)
    # interior starts at 4 px; the object's core is [4, 18) x [4, 18): only its inner sides are edge
    assert int(masks["core"][0].sum()) == 14 * 14
    assert int(masks["edge"][0].sum()) == 16 * 16 - 14 * 14


def test_truth_at_flow2_hand_values():
    gt = np.zeros((1, 16, 16, 2), dtype=np.float32)
    gt[:, :, 8:, 0] = 4.0  # a step on an even column: exact at the cells, blurred by bilinear upsampling
    up = mv.truth_at_flow2(gt)
    # output column 7 sits at input-grid x = (7 + 0.5) / 2 - 0.5 = 3.25: 0.25 of cell 4's value
    np.testing.assert_allclose(up[0, 5, 6:10, 0], [0.0, 1.0, 3.0, 4.0], atol=1e-6)
    np.testing.assert_allclose(mv.truth_at_flow2(np.full((1, 8, 8, 2), 1.5, np.float32)), 1.5, atol=1e-6)


def test_moving_breakdown_refuses_test_and_a_missing_checkpoint(smoke_set_source):
    from htsc_core.config import from_params

    cfg = from_params({"profile": "smoke", "data_root": str(smoke_set_source)})
    with pytest.raises(ValueError, match="validation"):
        mv.moving_breakdown(cfg, ["tvl1"], subset="test")
    with pytest.raises(ValueError, match="checkpoint"):
        mv.moving_breakdown(cfg, ["motionnet"])


def test_cli_moving_then_compare(smoke_set_source, tmp_path, capsys):
    from htsc_core.cli import main

    out = tmp_path / "moving.json"
    assert main(["flow", "moving", "--data-root", str(smoke_set_source), "--profile", "smoke", "--max-videos", "2",
                 "--methods", "tvl1,zero", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = {(r["method"], r["part"]): r for r in data["rows"]}
    assert len(data["videos"]) == 2 and set(rows) == {(m, p) for m in ("tvl1", "zero", *mv.FLOORS) for p in mv.PARTS}
    # core and edge partition the moving pixels: their pixel-weighted mean is the moving EPE
    for m in ("tvl1", "zero", "median"):
        core, edge, moving = rows[m, "core"], rows[m, "edge"], rows[m, "moving"]
        assert core["pixels"] + edge["pixels"] == moving["pixels"] > 0
        pooled = (core["epe"] * core["pixels"] + edge["epe"] * edge["pixels"]) / moving["pixels"]
        assert pooled == pytest.approx(moving["epe"], rel=1e-9)
    # TV-L1 follows the object better than zero flow
    assert rows["tvl1", "moving"]["epe"] < rows["zero", "moving"]["epe"]
    capsys.readouterr()
    assert main(["flow", "compare", f"{out}:tvl1", f"{out}:zero", "--keys", "epe_moving"]) == 0
    text = capsys.readouterr().out
    assert "epe_moving" in text and "2/2" in text


def write_eval(path, method, values, videos=("a", "b", "c", "d")):
    path.write_text(json.dumps({"rows": [{"method": method, "per_video": {"epe": values}}], "videos": list(videos)}))
    return f"{path}:{method}"


def test_compare_hand_values_and_errors(tmp_path):
    a = write_eval(tmp_path / "a.json", "motionnet", [1.0, 2.0, None, 4.0])
    b = write_eval(tmp_path / "b.json", "tvl1", [0.5, 2.5, 3.0, 3.0])
    (row,) = cp.compare(a, b)
    # the video without a value on one side is left out: A = (1 + 2 + 4) / 3, B = (0.5 + 2.5 + 3) / 3
    assert row["videos"] == 3 and row["a_lower"] == 1
    assert row["diff"] == pytest.approx(7 / 3 - 2.0)
    assert row["lo"] <= row["diff"] <= row["hi"]
    other = write_eval(tmp_path / "c.json", "tvl1", [1, 1, 1, 1], videos=("a", "b", "c", "e"))
    with pytest.raises(ValueError, match="different videos"):
        cp.compare(a, other)
    with pytest.raises(ValueError, match="no method 'dis'"):
        cp.compare(a, f"{tmp_path / 'b.json'}:dis")
    with pytest.raises(ValueError, match="FILE:METHOD"):
        cp.compare(a, str(tmp_path / "b.json"))
