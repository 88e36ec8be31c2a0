"""TSN sampling indices (hand-computed) and crop/flip geometry."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from htsc_core.data import sampling as S
from htsc_core.data import transforms as T


# ----------------------------------------------------------------------------- sampling
def test_test_indices_hand_computed():
    # 25 frames, L = 5 -> 21 starts; S = 4 -> tick 5.25; floor(2.625 + 5.25 s) = 2, 7, 13, 18
    idx = S.sample_indices(25, 4, 5, "test")
    np.testing.assert_array_equal(idx[:, 0], [2, 7, 13, 18])
    np.testing.assert_array_equal(idx[1], [7, 8, 9, 10, 11])
    np.testing.assert_array_equal(S.centre_frames(idx), [4, 9, 15, 20])
    np.testing.assert_array_equal(S.flow_pair_indices(idx, 25)[3], [18, 19, 20, 21])


def test_train_indices_one_random_offset_per_segment():
    # 25 frames, L = 5 -> 21 starts, K = 3 -> segments [0, 7), [7, 14), [14, 21)
    idx = S.sample_indices(25, 3, 5, "train", np.random.default_rng(5))
    offsets = np.random.default_rng(5).integers(0, 7, size=3)
    np.testing.assert_array_equal(idx[:, 0], np.array([0, 7, 14]) + offsets)
    np.testing.assert_array_equal(idx - idx[:, :1], np.tile(np.arange(5), (3, 1)))
    rng = np.random.default_rng(0)
    starts = np.stack([S.train_starts(25, 3, 5, rng) for _ in range(400)])  # (400, 3)
    for k in range(3):
        assert set(starts[:, k].tolist()) == set(range(7 * k, 7 * k + 7))  # covers its segment, stays inside
    assert idx.max() <= 24


def test_same_generator_seed_same_indices():
    a = S.sample_indices(100, 3, 11, "train", np.random.default_rng(7))
    b = S.sample_indices(100, 3, 11, "train", np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["train", "test"])
def test_short_videos_repeat_last_frame(mode):
    rng = np.random.default_rng(0)
    idx = S.sample_indices(3, 2, 5, mode, rng)  # 3 frames < L = 5: one start, last frame repeated
    np.testing.assert_array_equal(idx, [[0, 1, 2, 2, 2], [0, 1, 2, 2, 2]])
    np.testing.assert_array_equal(S.flow_pair_indices(idx, 3), [[0, 1, 1, 1]] * 2)
    one = S.sample_indices(1, 3, 11, mode, rng)
    assert one.shape == (3, 11) and not one.any()
    few = S.sample_indices(6, 3, 5, mode, rng)  # 2 starts < 3 segments
    assert few.shape == (3, 5) and few.max() <= 5 and (np.diff(few[:, 0]) >= 0).all()


def test_sampling_rejects_bad_input():
    with pytest.raises(ValueError):
        S.sample_indices(0, 3, 5, "test")
    with pytest.raises(ValueError):
        S.sample_indices(10, 3, 5, "train")  # no rng
    with pytest.raises(ValueError):
        S.sample_indices(10, 3, 5, "eval")


# ----------------------------------------------------------------------------- crops
def frames(n=2, h=40, w=60, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def test_five_and_ten_crop_positions():
    boxes = T.five_crop_boxes(40, 60, 32)
    assert boxes == [(0, 0, 32, 32), (0, 28, 32, 32), (8, 0, 32, 32), (8, 28, 32, 32), (4, 14, 32, 32)]
    specs = T.test_crop_specs(40, 60, 32, 10)
    assert [b for b, _ in specs] == boxes + boxes and [f for _, f in specs] == [False] * 5 + [True] * 5
    assert T.test_crop_specs(40, 60, 32, 1) == [((4, 14, 32, 32), False)]
    x = frames()
    lr = T.crop_resize(x, boxes[3], 32)
    np.testing.assert_array_equal(lr, x[:, 8:40, 28:60])  # lower-right corner, no resize
    with pytest.raises(ValueError):
        T.test_crop_specs(40, 60, 32, 3)
    with pytest.raises(ValueError):
        T.five_crop_boxes(20, 60, 32)


def test_flip_equals_fliplr():
    x = frames()
    box = (4, 14, 32, 32)
    a, b = T.crop_resize(x, box, 32), T.crop_resize(x, box, 32, flip=True)
    for i in range(len(x)):
        np.testing.assert_array_equal(b[i], np.fliplr(a[i]))


def test_resize_matches_torch_bilinear():
    x = frames(1, 64, 64)
    got = T.crop_resize(x, (0, 0, 64, 64), 32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2).float(), size=(32, 32),
                                          mode="bilinear", align_corners=False)
    assert np.abs(got.astype(float) - ref.permute(0, 2, 3, 1).numpy()).max() <= 1.0


def test_resize_many_channels_matches_per_plane():
    x = frames(1, 30, 30, c=10)
    got = T.resize_frames(x, 20, 16)
    for c in range(10):
        np.testing.assert_array_equal(got[0, :, :, c], cv2.resize(x[0, :, :, c], (16, 20)))


def test_multiscale_crop_boxes():
    rng = np.random.default_rng(0)
    base = 80  # frames 80 x 120
    allowed = [int(base * s) for s in T.TRAIN_SCALES]  # 80, 70, 60, 52
    seen_pos, seen_sizes = set(), set()
    for _ in range(500):
        y0, x0, ch, cw = T.multiscale_crop_box(80, 120, 64, rng)
        assert ch in allowed and cw in allowed and abs(allowed.index(ch) - allowed.index(cw)) <= 1
        assert y0 + ch <= 80 and x0 + cw <= 120
        assert (y0, x0) in [(0, 0), (0, 120 - cw), (80 - ch, 0), (80 - ch, 120 - cw),
                            ((80 - ch) // 2, (120 - cw) // 2)]
        seen_pos.add((y0 == 0, x0 == 0))
        seen_sizes.add((ch, cw))
    assert len(seen_sizes) == 10  # 4 + 3 + 3 pairs with |i - j| <= 1
    out = T.crop_resize(frames(3, 80, 120), (0, 0, 52, 60), 64)
    assert out.shape == (3, 64, 64, 3)


def test_tensor_conversion_and_flow_flip():
    x = frames(2, 8, 8)
    t = T.rgb_to_tensor(x)
    assert t.shape == (2, 3, 8, 8) and torch.allclose(t[1, 2], torch.from_numpy(x[1, :, :, 2]).float() / 255)
    flow = np.full((2, 4, 4, 4), 138, np.uint8)  # x0, y0, x1, y1 all +10 after subtracting 128
    ft = T.flow_to_tensor(flow, np.array([False, True]))
    assert ft.shape == (2, 4, 4, 4)
    assert (ft[0] == 10).all()
    assert (ft[1, 0::2] == -10).all() and (ft[1, 1::2] == 10).all()
    small = T.ensure_min_side(frames(1, 20, 40), 32)
    assert small.shape == (1, 32, 64, 3)
