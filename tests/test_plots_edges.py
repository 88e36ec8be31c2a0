"""Every plot function survives edge rows (issue 28): a method at 0 and at 1, an interval of zero width,
an interval that misses its value by rounding, a missing value (NaN or ""), a single row or class.

Before the fix, a Wilson interval of (4.87e-17, 0.561) around an accuracy of 0 made ``method_bars``
draw a negative error bar, and matplotlib stopped notebooks 06 and 07 with "'yerr' must not contain
negative values".
"""
import math

import matplotlib
import numpy as np
import pytest

from htsc_core import plots

matplotlib.use("Agg")

EDGE_ROWS = [
    {"method": "at_zero", "ours": 0.0, "ci_low": 4.87e-17, "ci_high": 0.561, "paper_ucf101": 0.809},
    {"method": "at_one", "ours": 1.0, "ci_low": 0.44, "ci_high": 1.0 - 1e-16, "paper_ucf101": ""},
    {"method": "zero_width", "ours": 0.5, "ci_low": 0.5, "ci_high": 0.5, "paper_ucf101": None},
    {"method": "missing", "ours": "", "ci_low": "", "ci_high": "", "paper_ucf101": 0.94},
    {"method": "nan", "ours": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "paper_ucf101": 0.9},
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


def _drew(fig, path):
    assert fig is not None and path.exists() and path.stat().st_size > 0


def test_error_bars_are_never_negative():
    err = plots._error_bars(np.array([0.0, 1.0, 0.5, np.nan]), [4.87e-17, 0.4, 0.5, ""], [0.56, 1 - 1e-16, 0.5, None])
    assert err.shape == (2, 4) and (err >= 0).all() and np.isfinite(err).all()
    assert err[:, 2].tolist() == [0.0, 0.0]  # zero width stays zero
    assert err[1, 0] == pytest.approx(0.56)


@pytest.mark.parametrize("rows", [EDGE_ROWS, EDGE_ROWS[:1], EDGE_ROWS[3:4], []])
@pytest.mark.parametrize("paper", [None, "paper_ucf101"])
def test_method_bars_edges(tmp_path, rows, paper):
    path = tmp_path / "bars.png"
    _drew(plots.method_bars(rows, "ours", paper, title="edges", path=path), path)


def test_method_bars_without_intervals_and_log(tmp_path):
    rows = [{"method": "a", "ours": 0.0}, {"method": "b", "ours": 1.0}]
    path = tmp_path / "bars.png"
    _drew(plots.method_bars(rows, "ours", log=True, path=path), path)


def test_table5_fps_edges(tmp_path):
    rows = [{"method": "two_stream", "ours_fps": 1.2, "paper_fps": 99.7, "device": "cpu", "resolution": 224},
            {"method": "tclsta", "ours_fps": "", "paper_fps": 89.5},
            {"method": "zero", "ours_fps": 0.0, "paper_fps": ""}]
    for subset in (rows, rows[:1], []):
        path = tmp_path / f"t5_{len(subset)}.png"
        _drew(plots.table5_fps(subset, path=path), path)


def test_release_fusion_edges(tmp_path):
    rows = [{"method": "a", "top1": 0.0, "ci_low": 4.87e-17, "ci_high": 0.3, "published": 0.9},
            {"method": "b", "top1": 1.0, "ci_low": 0.9, "ci_high": 1.0 - 1e-16, "published": ""},
            {"method": "c", "top1": float("nan"), "ci_low": "", "ci_high": ""}]
    path = tmp_path / "rel.png"
    _drew(plots.release_fusion(rows, {"a": np.array([0.0, 1.0, np.nan])}, reference=0.4, path=path), path)
    _drew(plots.release_fusion(rows[:1], {}, path=path), path)


def test_awl_confusion_and_frames_edges(tmp_path):
    p = tmp_path / "x.png"
    _drew(plots.awl_weights([{"class": "only", "w_spatial": 1.0, "family": None}], path=p), p)
    _drew(plots.awl_weights([{"class": "a", "w_spatial": 0.0}, {"class": "b", "w_spatial": float("nan")}], path=p), p)
    _drew(plots.confusion([[0]], ["only"], path=p), p)  # one class, no video: a row of zeros, not 0/0
    _drew(plots.confusion([[3, 0], [0, 0]], ["a", "b"], path=p), p)
    frames = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    _drew(plots.sample_frames({"a": frames[0]}, ["a", "absent"], path=p), p)
    _drew(plots.weighted_frames(frames, np.array([1.0]), np.array([float("nan")]), "one segment", path=p), p)


def test_coefficient_figures_edges(tmp_path):
    p = tmp_path / "c.png"
    uniform = np.full((2, 3), 1 / 3)
    _drew(plots.coefficient_heatmaps(uniform, uniform, ["a", "b"], path=p), p)  # zero spread around 1/K
    nan = np.full((1, 3), np.nan)
    _drew(plots.coefficient_heatmaps(nan, uniform[:1], ["a"], path=p), p)
    one_hot = np.array([[1.0, 0.0, 0.0]])
    _drew(plots.coefficient_heatmaps(one_hot, one_hot, ["a"], path=p), p)
    cue = {"c_s_rest": [0.2], "c_s_cue": [0.6], "c_o_rest": [], "c_o_cue": []}
    _drew(plots.cue_attention(cue, 1 / 3, path=p), p)


def test_curves_and_flow_figures_edges(tmp_path):
    p = tmp_path / "f.png"
    _drew(plots.training_curves({"one epoch": [{"epoch": 1, "train_loss": 0.0}], "empty": []}, path=p), p)
    _drew(plots.training_curves({"nan": [{"epoch": 1, "train_loss": float("nan"), "train_accuracy": 1.0,
                                          "val_loss": float("nan"), "val_accuracy": 0.0}]}, path=p), p)
    zero = np.zeros((1, 8, 8, 2), dtype=np.float32)
    frames = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    _drew(plots.flow_grid(frames, {"zero": zero, "nan": np.full_like(zero, np.nan)}, path=p), p)
    _drew(plots.flow_scales(frames[0], {"flow2": zero[0]}, path=p), p)
    rows = [{"scale": 2, "size": 32, "factor": a, "total": v} for a, v in ((0.5, 2.0), (1.0, 1.0), (None, 0.5))]
    rows.append({"scale": 3, "size": 16, "factor": 0.5, "total": 1.0})  # a scale without the truth's point
    _drew(plots.loss_landscape(rows, path=p), p)
    _drew(plots.loss_landscape([], path=p), p)
    assert math.isnan(plots._num("")) and plots._num("0.5") == 0.5
