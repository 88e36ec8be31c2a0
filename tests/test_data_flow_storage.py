"""Stored TV-L1 flow (htsc_core/data/flow_storage.py): denseflow quantisation, JPEG round trip, files."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from htsc_core.data import flow_storage as storage

STEP = 40.0 / 255.0  # one quantisation level at bound 20


def smooth_flow(h=32, w=32, seed=0, amp=8.0):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(h // 8, w // 8, 2)).astype(np.float32)
    f = cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC)
    return (amp * f / np.abs(f).max()).astype(np.float32)


def test_quantise_hand_values():
    # round((clip(f, -20, 20) + 20) * 255 / 40), values worked out by hand
    f = np.array([[[-30.0, -20.0], [0.0, 1.0], [-0.1, 20.0], [25.0, 10.0]]], dtype=np.float32)
    q = storage.quantise_flow(f)
    assert q.dtype == np.uint8
    # 0 -> 127.5 rounds half to even -> 128; 1 -> 133.875 -> 134; -0.1 -> 126.8625 -> 127; 10 -> 191.25 -> 191
    np.testing.assert_array_equal(q, [[[0, 0], [128, 134], [127, 255], [255, 191]]])
    # bound is a parameter: bound 10 maps 5 -> (15 * 255 / 20) = 191.25 -> 191
    assert storage.quantise_flow(np.array([[[5.0, -10.0]]]), bound=10)[0, 0].tolist() == [191, 0]


def test_encode_matches_formula_and_opencv_decoder():
    flow = smooth_flow()
    xb, yb = storage.encode_flow_jpeg(flow)
    assert xb[:2] == b"\xff\xd8" and yb[:2] == b"\xff\xd8"  # JPEG SOI marker
    x = cv2.imdecode(np.frombuffer(xb, np.uint8), cv2.IMREAD_UNCHANGED)
    assert x.ndim == 2 and x.dtype == np.uint8  # grayscale, one channel
    ref = np.rint((np.clip(flow[..., 0], -20, 20) + 20) * 255 / 40)
    assert np.abs(x.astype(float) - ref).max() <= 3  # quality 95 JPEG error in levels


def test_round_trip_smooth_flow_within_quantisation_step():
    flow = smooth_flow(seed=1)
    back = storage.decode_flow_jpeg(*storage.encode_flow_jpeg(flow))
    assert back.shape == flow.shape and back.dtype == np.float32
    err = np.abs(back - flow)
    assert err.mean() < STEP  # half a step of rounding plus a little JPEG error, on average
    assert err.max() < 3 * STEP


def test_round_trip_clips_at_bound():
    flow = np.full((16, 16, 2), 35.0, np.float32)
    flow[..., 1] = -50.0
    back = storage.decode_flow_jpeg(*storage.encode_flow_jpeg(flow))
    np.testing.assert_allclose(back[..., 0], 20.0, atol=STEP)
    np.testing.assert_allclose(back[..., 1], -20.0, atol=STEP)


def test_write_read_stack_order_and_complete(tmp_path):
    flows = np.stack([smooth_flow(seed=s) for s in range(3)])  # (3, 32, 32, 2)
    flows[1, ..., 0] = 10.0  # x of pair 1 is constant: its JPEG decodes to the exact level
    vid = "ClassA/v_ClassA_g01_c01"
    assert not storage.is_complete(tmp_path, vid)
    written = storage.write_flow_video(tmp_path, vid, flows)
    d = tmp_path / vid
    assert storage.is_complete(tmp_path, vid)
    names = sorted(p.name for p in d.iterdir())
    assert names == [".complete", "x_00000.jpg", "x_00001.jpg", "x_00002.jpg",
                     "y_00000.jpg", "y_00001.jpg", "y_00002.jpg"]
    assert written == sum((d / n).stat().st_size for n in names if n.endswith(".jpg"))
    assert storage.read_complete_info(tmp_path, vid)["pairs"] == 3
    stack = storage.read_flow_stack(tmp_path, vid, [1, 2])
    assert stack.shape == (4, 32, 32) and stack.dtype == np.uint8
    assert (stack[0] == 191).all()  # x1: round(30 * 6.375) = 191
    y1 = cv2.imread(str(d / "y_00001.jpg"), cv2.IMREAD_GRAYSCALE)
    x2 = cv2.imread(str(d / "x_00002.jpg"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(stack[1], y1)
    np.testing.assert_array_equal(stack[2], x2)
    full = storage.read_flow_video(tmp_path, vid)
    assert full.shape == flows.shape
    assert np.abs(full - flows).mean() < STEP


def test_read_stack_resize(tmp_path):
    flows = np.stack([smooth_flow(32, 48)])
    storage.write_flow_video(tmp_path, "v", flows)
    assert storage.read_flow_stack(tmp_path, "v", [0], size=16).shape == (2, 16, 24)  # short side
    assert storage.read_flow_stack(tmp_path, "v", [0], size=(20, 10)).shape == (2, 20, 10)
    assert storage.read_flow_stack(tmp_path, "v", [0], size=0).shape == (2, 32, 48)


def test_missing_file_error_names_file_and_command(tmp_path):
    storage.write_flow_video(tmp_path, "v", np.zeros((2, 8, 8, 2), np.float32))
    with pytest.raises(FileNotFoundError, match=r"y_00005\.jpg|x_00005\.jpg") as err:
        storage.read_flow_stack(tmp_path, "v", [0, 5])
    assert "htsc flow extract" in str(err.value)
    (tmp_path / "v" / "x_00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="x_00001.jpg"):
        storage.read_flow_stack(tmp_path, "v", [1])


def test_rewrite_removes_marker_until_done(tmp_path, monkeypatch):
    storage.write_flow_video(tmp_path, "v", np.zeros((2, 8, 8, 2), np.float32))
    assert storage.is_complete(tmp_path, "v")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(storage, "write_flow_pairs", boom)
    with pytest.raises(OSError):
        storage.write_flow_video(tmp_path, "v", np.zeros((2, 8, 8, 2), np.float32))
    assert not storage.is_complete(tmp_path, "v")  # a half-rewritten video is not "done"


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3)), np.zeros((4, 4, 2), np.uint8),
                                 np.full((4, 4, 2), np.nan)])
def test_encode_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        storage.encode_flow_jpeg(bad)


def test_bad_video_id_and_bound():
    with pytest.raises(ValueError):
        storage.video_dir("/tmp", "../escape")
    with pytest.raises(ValueError):
        storage.quantise_flow(np.zeros((2, 2, 2)), bound=0)
