"""TSN RGB difference (Wang et al. 2016, sec. 3.2): windows, hand-computed differences, the dataset modality."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from htsc_core.config import from_params
from htsc_core.data import sampling, transforms
from htsc_core.data.dataset import VideoDataset
from htsc_core.data.ucf101 import parse_ucf101
from htsc_core.data.video import read_frames, write_video

H, W, T = 40, 64, 12


# ----------------------------------------------------------------------------- pure functions
def test_rgb_difference_hand_computed():
    # 3 frames of 1 x 2 pixels; differences by hand: I1 - I0 and I2 - I1, channel order (R, G, B) per difference
    f = np.zeros((3, 1, 2, 3), np.uint8)
    f[0, 0, 0] = (10, 20, 30)
    f[1, 0, 0] = (15, 10, 30)
    f[2, 0, 0] = (0, 255, 31)
    f[0, 0, 1] = (255, 0, 7)
    f[1, 0, 1] = (0, 255, 7)
    f[2, 0, 1] = (0, 255, 9)
    d = transforms.rgb_difference(f)
    assert d.shape == (6, 1, 2) and d.dtype == torch.float32
    expected = torch.tensor([
        [[5, -255]], [[-10, 255]], [[0, 0]],       # I1 - I0: R, G, B (no uint8 wrap-around)
        [[-15, 0]], [[245, 0]], [[1, 2]],          # I2 - I1: R, G, B
    ], dtype=torch.float32)
    torch.testing.assert_close(d, expected)


def test_rgb_difference_tsn_shape_and_tensor_input():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (2, 4, 5, 8, 8, 3), dtype=np.uint8)  # (B, V, D=5, H, W, 3)
    d = transforms.rgb_difference(f)
    assert d.shape == (2, 4, 12, 8, 8)  # TSN: 5 frames -> 4 differences x 3 channels
    ref = f[:, :, 1:].astype(np.int16) - f[:, :, :-1].astype(np.int16)  # (B, V, 4, H, W, 3)
    ref = ref.transpose(0, 1, 2, 5, 3, 4).reshape(2, 4, 12, 8, 8)
    np.testing.assert_array_equal(d.numpy(), ref)
    t = torch.from_numpy(f).float().movedim(-1, -3)  # (..., D, 3, H, W) pixel units, as the benchmark has them
    torch.testing.assert_close(transforms.rgb_difference(t), d)
    with pytest.raises(ValueError, match="at least 2 frames"):
        transforms.rgb_difference(f[:, :, :1])
    with pytest.raises(ValueError, match="H, W, 3"):
        transforms.rgb_difference(f[..., :2])


def test_diff_window_indices_hand_computed():
    stacks = np.array([[0, 1, 2, 3, 4], [6, 7, 8, 9, 10], [9, 10, 11, 11, 11]])  # centres 2, 8, 11
    np.testing.assert_array_equal(sampling.diff_window_indices(stacks, 5, 12),
                                  [[0, 1, 2, 3, 4], [6, 7, 8, 9, 10], [9, 10, 11, 11, 11]])
    np.testing.assert_array_equal(sampling.diff_window_indices(stacks, 3, 12), [[1, 2, 3], [7, 8, 9], [10, 11, 11]])
    np.testing.assert_array_equal(sampling.diff_window_indices(stacks, 2, 12), [[1, 2], [7, 8], [10, 11]])
    # D > L: clipped at the start of the video (frame 0 repeats, zero difference)
    np.testing.assert_array_equal(sampling.diff_window_indices(stacks[:1], 7, 12), [[0, 0, 1, 2, 3, 4, 5]])
    with pytest.raises(ValueError, match="at least 2"):
        sampling.diff_window_indices(stacks, 1, 12)


# ----------------------------------------------------------------------------- dataset modality
def clip_frames(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    base = rng.integers(0, 200, 3)
    return np.stack([np.stack([(xx * 4 + t * 9 + base[0]) % 256, (yy * 6 + t * 3 + base[1]) % 256,
                               np.full_like(xx, base[2] + 4 * t)], -1) for t in range(T)]).astype(np.uint8)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    (root / "lists").mkdir()
    (root / "lists/classInd.txt").write_text("1 Alpha\n2 Beta\n")
    lines = []
    for c, cls in enumerate(["Alpha", "Beta"]):
        name = f"{cls}/v_{cls}_g08_c01.mp4"
        write_video(root / "videos" / name, clip_frames(c))
        lines.append(f"{name} {c + 1}")
    (root / "lists/trainlist01.txt").write_text("\n".join(lines) + "\n")
    return root, parse_ucf101(root / "videos", root / "lists", 1, "train")[0]


def make_cfg(root, **kw):
    base = dict(profile="smoke", dataset="ucf101", data_root=str(root), frame_size=40, image_size=32,
                num_segments=2, test_segments=3, test_crops=1, stack_length=5, rgbdiff_length=5, batch_size=2,
                num_workers=0)
    return from_params({**base, **kw})


def test_test_item_matches_decoded_frames(records):
    root, recs = records
    # native 40 x 64, centre crop (4, 16); T = 12, L = 5 -> 8 starts, S = 3: starts 1, 4, 6; centres 3, 6, 8;
    # D = 5 windows 1..5, 4..8, 6..10
    ds = VideoDataset(recs, make_cfg(root, frame_size=0), "test", ("rgb", "rgbdiff"))
    item = ds[0]
    assert item["rgbdiff"].shape == (3, 12, 32, 32) and item["rgbdiff"].dtype == torch.float32
    for v, start in enumerate((1, 4, 6)):
        f = read_frames(recs[0].path, range(start, start + 5))[:, 4:36, 16:48].astype(np.int16)
        ref = (f[1:] - f[:-1]).transpose(0, 3, 1, 2).reshape(12, 32, 32)  # (I_{i+1} - I_i) R, G, B per difference
        np.testing.assert_array_equal(item["rgbdiff"][v].numpy(), ref)
    # the centre difference pair brackets the RGB frame: I_c - I_{c-1} = rgb * 255 - I_{c-1}
    prev = read_frames(recs[0].path, [2])[0, 4:36, 16:48].astype(np.float32).transpose(2, 0, 1)
    torch.testing.assert_close(item["rgbdiff"][0, 3:6], item["rgb"][0] * 255 - torch.from_numpy(prev))


@pytest.mark.parametrize("D", [5, 3])
def test_train_item_shares_crop_and_flip_with_stack(records, D):
    # With L = 5 the window of D frames is stack[2 - D//2 : 2 - D//2 + D]: under a random crop, scale and flip
    # the differences must equal those of the (identically augmented) stack frames.
    root, recs = records
    ds = VideoDataset(recs, make_cfg(root, rgbdiff_length=D), "train", ("stack", "rgbdiff"))
    for seed in range(6):  # several draws: flipped and unflipped crops
        torch.manual_seed(seed)
        item = ds[seed % 2]
        st = item["stack"] * 255  # (V, L, 3, s, s), uint8 values
        lo = 2 - D // 2
        ref = (st[:, lo + 1:lo + D] - st[:, lo:lo + D - 1]).flatten(1, 2)
        assert item["rgbdiff"].shape == (2, 3 * (D - 1), 32, 32)
        torch.testing.assert_close(item["rgbdiff"], ref, atol=1e-3, rtol=0)


def test_ten_crop_flips_mirror_the_differences(records):
    root, recs = records
    ds = VideoDataset(recs, make_cfg(root, test_crops=10), "test", ("rgbdiff",))
    d = ds[1]["rgbdiff"].view(3, 10, 12, 32, 32)
    torch.testing.assert_close(d[:, 5:], d[:, :5].flip(-1))  # mirrored frames, mirrored differences: no sign change
    assert ds.frames_per_item() == 3 * 5


def test_rgbdiff_length_validated():
    with pytest.raises(ValueError, match="rgbdiff_length"):
        from_params(profile="smoke", rgbdiff_length=1)


# ----------------------------------------------------------------------------- the training stage
def test_rgbdiff_stage_trains_a_step_from_the_spatial_stream(tmp_path):
    """`htsc train rgbdiff` on a tiny UCF101-shaped tree: cross-modality init from the spatial checkpoint
    (TSN: conv1 = mean of the RGB filters repeated over 3(D-1) channels), one epoch of 2 steps, a loadable best.pt."""
    import json
    import warnings

    from dataset_trees import ucf101_smoke_config
    from htsc_core.train.stages import build_stream, train

    cfg = ucf101_smoke_config(tmp_path, max_steps_per_epoch=2)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tree's truncated video is screened out with a warning
        train(cfg, "spatial", resume=False)
        spatial = build_stream(cfg, "spatial", 3, load_trained=True)
        init = build_stream(cfg, "rgbdiff", 3)
        assert init.in_channels == 12  # D = 5: 4 differences x RGB
        w = spatial.conv1.weight.detach()
        torch.testing.assert_close(init.conv1.weight.detach(), w.mean(1, keepdim=True).expand(-1, 12, -1, -1))
        torch.testing.assert_close(init.body[3].weight, spatial.body[3].weight)  # later layers copied
        out = train(cfg, "rgbdiff", resume=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["stage"] == "rgbdiff" and np.isfinite(log[0]["train_loss"])
    assert 0 < log[0]["train_count"] <= 2 * cfg.batch_size  # at most two steps of the smoke batch
    trained = build_stream(cfg, "rgbdiff", 3, load_trained=True)
    assert not torch.equal(trained.conv1.weight, init.conv1.weight)  # the step moved the weights
    x = torch.zeros(2, 12, 32, 32)
    assert trained.eval()(x).shape == (2, 3)
    from htsc_core.train.scores import extract_scores, load_scores

    extract_scores(cfg, "rgbdiff", "test", device="cpu")  # the test protocol, as for the other streams
    s = load_scores(cfg, "test", "rgbdiff")
    assert s["scores"].shape == (3, 3) and s["features"].shape == (3, cfg.test_segments, trained.feature_dim)
    np.testing.assert_allclose(s["scores"].sum(1), 1.0, rtol=1e-5)  # softmax probabilities, averaged over views


# ----------------------------------------------------------------------------- table rows
def test_baseline_scores_align_and_fuse_1_to_1p5(tmp_path):
    """rgb_diff / tsn_rgb_diff rows from the saved rgbdiff test scores, in the HTSC pass's video order."""
    from htsc_core.train.scores import scores_path
    from htsc_core.tables import baseline_scores, correct
    from htsc_core.utils import atomic_save_npz

    cfg = from_params(profile="smoke", runs_dir=str(tmp_path))
    rng = np.random.default_rng(0)
    ids = np.array([f"v{i}" for i in range(6)])
    labels = np.array([0, 1, 2, 0, 1, 2])
    spatial = rng.dirichlet(np.ones(3), 6)
    rd = rng.dirichlet(np.ones(3), 6)
    test = {"spatial": spatial, "labels": labels, "video_ids": ids}
    assert baseline_scores(cfg, test) == {}  # no stream scored yet: no rows
    perm = np.array([3, 5, 0, 1, 4, 2])  # the stream saved its videos in another order
    atomic_save_npz(scores_path(cfg, "test", "rgbdiff"), scores=rd[perm], labels=labels[perm], video_ids=ids[perm],
                    features=np.zeros((6, 2, 4)))
    rows = baseline_scores(cfg, test)
    assert sorted(rows) == ["rgb_diff", "tsn_rgb_diff"]
    np.testing.assert_allclose(rows["rgb_diff"], rd)
    for i in range(6):  # TSN / two-stream late fusion, RGB : motion = 1 : 1.5, video by video
        np.testing.assert_allclose(rows["tsn_rgb_diff"][i], [spatial[i, c] + 1.5 * rd[i, c] for c in range(3)])
    expect = [int(np.argmax(spatial[i] + 1.5 * rd[i])) == labels[i] for i in range(6)]
    np.testing.assert_array_equal(correct(rows["tsn_rgb_diff"], labels), expect)
    multi = np.eye(3)[labels]
    np.testing.assert_array_equal(correct(rows["tsn_rgb_diff"], multi), expect)
    atomic_save_npz(scores_path(cfg, "test", "rgbdiff"), scores=rd[perm], labels=(labels[perm] + 1) % 3,
                    video_ids=ids[perm], features=np.zeros((6, 2, 4)))
    with pytest.raises(ValueError, match="labels differ"):
        baseline_scores(cfg, test)


# ----------------------------------------------------------------------------- Table 5 pipeline
def test_table5_tsn_rgb_diff_pipeline_matches_a_direct_computation():
    from htsc_core.bench.common import StepTimer
    from htsc_core.bench.table5_networks import build_networks
    from htsc_core.bench.table5_pipelines import make_clips, run_tsn_rgb_diff
    from htsc_core.fusion import hts_fusion

    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    clips = make_clips(2, 2, 5, 32, seed=1)  # (B, S, L=5, 32, 32, 3)
    nets = build_networks(5, 5, 1 / 16, 1 / 16, False, 8, 2, seed=0, rgbdiff_length=3)
    timer = StepTimer(cpu)
    scores = run_tsn_rgb_diff(clips, nets, timer, cpu, 3)
    assert {"input", "rgb_difference", "spatial_cnn", "rgbdiff_cnn", "fusion"} <= set(timer.times)
    # by hand: D = 3 frames centred on the stack centre (1, 2, 3); differences in pixel units, RGB per difference
    f = clips.reshape(4, 5, 32, 32, 3).astype(np.float32)
    diff = np.concatenate([f[:, 2] - f[:, 1], f[:, 3] - f[:, 2]], axis=-1).transpose(0, 3, 1, 2)  # (4, 6, 32, 32)
    with torch.inference_mode():
        s = torch.softmax(nets["spatial"](torch.from_numpy(f[:, 2] / 255).permute(0, 3, 1, 2)), 1)
        d = torch.softmax(nets["rgbdiff"](torch.from_numpy(np.ascontiguousarray(diff))), 1)
    want = hts_fusion(s.view(2, 2, -1).mean(1).numpy(), d.view(2, 2, -1).mean(1).numpy())
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-6)
