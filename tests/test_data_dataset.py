"""VideoDataset items (shapes, content, crops, flow flip), skipping bad videos, loaders with 0 and 2 workers."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from htsc_core.config import from_params
from htsc_core.data.dataset import VideoDataset, collate_skip_none, make_loader
from htsc_core.data.records import VideoRecord
from htsc_core.data.ucf101 import parse_ucf101
from htsc_core.data.video import read_frames, write_video

H, W, T = 40, 64, 12


def clip_frames(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    base = rng.integers(0, 200, 3)
    return np.stack([np.stack([(xx * 4 + t * 9 + base[0]) % 256, (yy * 6 + base[1]) % 256,
                               np.full_like(xx, base[2] + 4 * t)], -1) for t in range(T)]).astype(np.uint8)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ucf")
    (root / "lists").mkdir()
    (root / "lists/classInd.txt").write_text("1 Alpha\n2 Beta\n")
    lines = []
    for c, cls in enumerate(["Alpha", "Beta"]):
        for g in range(8, 11):
            name = f"{cls}/v_{cls}_g{g:02d}_c01.mp4"
            write_video(root / "videos" / name, clip_frames(10 * c + g))
            lines.append(f"{name} {c + 1}")
    (root / "lists/trainlist01.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def records(tree):
    return parse_ucf101(tree / "videos", tree / "lists", 1, "train")[0]


def make_cfg(tree, **kw):
    base = dict(profile="smoke", dataset="ucf101", data_root=str(tree), frame_size=40, image_size=32,
                num_segments=2, test_segments=3, test_crops=1, stack_length=5, batch_size=2, num_workers=0)
    return from_params({**base, **kw})


def test_train_item_shapes_and_rgb_is_stack_centre(tree, records):
    ds = VideoDataset(records, make_cfg(tree), "train", ("rgb", "stack"))
    torch.manual_seed(0)
    item = ds[0]
    assert item["rgb"].shape == (2, 3, 32, 32) and item["rgb"].dtype == torch.float32
    assert item["stack"].shape == (2, 5, 3, 32, 32)
    assert 0 <= item["rgb"].min() and item["rgb"].max() <= 1
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0 and item["index"] == 0
    torch.testing.assert_close(item["rgb"], item["stack"][:, 2])  # centre frame L // 2, same crop


@pytest.mark.parametrize("crops", [1, 5, 10])
def test_test_item_shapes(tree, records, crops):
    ds = VideoDataset(records, make_cfg(tree, test_crops=crops), "test", ("rgb", "stack"))
    item = ds[1]
    assert item["rgb"].shape == (3 * crops, 3, 32, 32) and item["stack"].shape == (3 * crops, 5, 3, 32, 32)
    if crops == 10:  # views are segment-major; crop 5 + c is the mirror of crop c
        v = item["rgb"].view(3, 10, 3, 32, 32)
        torch.testing.assert_close(v[:, 5:], v[:, :5].flip(-1))
    torch.testing.assert_close(ds[1]["rgb"], item["rgb"])  # test mode is deterministic


def test_test_item_content_matches_decoded_frames(tree, records):
    # native 40 x 64 frames, centre crop (4, 16); 12 frames, L = 5 -> 8 starts, S = 3 -> tick 8/3:
    # starts floor(4/3 + 8/3 s) = 1, 4, 6; centre frames (+2) = 3, 6, 8
    ds = VideoDataset(records, make_cfg(tree, frame_size=0), "test", ("rgb", "stack"))
    item = ds[2]
    ref = read_frames(records[2].path, [3, 6, 8])[:, 4:36, 16:48]
    expected = torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(item["rgb"], expected)
    stack_ref = read_frames(records[2].path, range(1, 6))[:, 4:36, 16:48]
    torch.testing.assert_close(item["stack"][0], torch.from_numpy(stack_ref).permute(0, 3, 1, 2).float() / 255)


def test_train_randomness_is_reproducible(tree, records):
    ds = VideoDataset(records, make_cfg(tree), "train", ("rgb",))
    torch.manual_seed(1)
    a = [ds[i]["rgb"] for i in range(3)]
    torch.manual_seed(1)
    ds2 = VideoDataset(records, make_cfg(tree), "train", ("rgb",))
    b = [ds2[i]["rgb"] for i in range(3)]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    c = [ds[i]["rgb"] for i in range(3)]  # the generator moves on: new offsets/crops
    assert any(not torch.equal(x, y) for x, y in zip(a, c))


def test_flow_modality_and_flip_negates_x(tree, records, tmp_path):
    from htsc_core.data.flow_storage import write_flow_video

    rec = records[0]
    rng = np.random.default_rng(0)
    flows = rng.uniform(-15, 15, (T - 1, 8, 8, 2)).astype(np.float32).repeat(5, 1).repeat(8, 2)  # 40 x 64
    write_flow_video(tmp_path, rec.video_id, flows)
    ds = VideoDataset([rec], make_cfg(tree, test_crops=10), "test", ("rgb", "flow"), flow_root=tmp_path)
    item = ds[0]
    assert item["flow"].shape == (30, 8, 32, 32) and item["flow"].dtype == torch.float32
    f = item["flow"].view(3, 10, 8, 32, 32)
    torch.testing.assert_close(f[:, 5:, 0::2], -f[:, :5, 0::2].flip(-1))  # x-flow changes sign
    torch.testing.assert_close(f[:, 5:, 1::2], f[:, :5, 1::2].flip(-1))
    assert f.abs().max() <= 128
    flow_only = VideoDataset([rec], make_cfg(tree), "train", ("flow",), flow_root=tmp_path)
    torch.manual_seed(0)
    assert flow_only[0]["flow"].shape == (2, 8, 32, 32)
    missing = VideoDataset([records[1]], make_cfg(tree), "train", ("flow",), flow_root=tmp_path)
    with pytest.warns(RuntimeWarning, match="skipping"):
        assert missing[0] is None


def test_multilabel_target(tree, records):
    rec = VideoRecord(records[0].path, (0, 1), "val", records[0].video_id)
    ds = VideoDataset([rec], make_cfg(tree), "test", ("rgb",), num_classes=4)
    assert ds[0]["label"].tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(FileNotFoundError, match="classInd"):  # M comes from data_root/ucfTrainTestlist
        VideoDataset([rec], make_cfg(tree), "test", ("rgb",))


def test_bad_arguments(tree, records):
    with pytest.raises(ValueError):
        VideoDataset(records, make_cfg(tree), "eval")
    with pytest.raises(ValueError):
        VideoDataset(records, make_cfg(tree), "train", ("depth",))
    with pytest.raises(ValueError, match="flow_root"):
        VideoDataset(records, make_cfg(tree), "train", ("flow",))


def with_bad(records, tmp_path):
    bad = tmp_path / "Alpha/v_Alpha_g11_c01.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"")
    return records[:3] + [VideoRecord(bad, 0, "train", "Alpha/v_Alpha_g11_c01")] + records[3:]


def test_unreadable_video_is_skipped_and_logged(tree, records, tmp_path):
    recs = with_bad(records, tmp_path)
    log = tmp_path / "run/skipped.jsonl"
    ds = VideoDataset(recs, make_cfg(tree), "test", ("rgb",), skip_log=log)
    with pytest.warns(RuntimeWarning, match="v_Alpha_g11_c01.mp4"):
        assert ds[3] is None
    line = json.loads(log.read_text().splitlines()[0])
    assert line["path"].endswith("v_Alpha_g11_c01.mp4") and "0 bytes" in line["reason"] and line["time"]
    assert collate_skip_none([None, None]) is None
    batch = collate_skip_none([ds[0], None, ds[1]])
    assert batch["rgb"].shape == (2, 3, 3, 32, 32) and batch["index"].tolist() == [0, 1]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_survives_bad_video(tree, records, tmp_path, workers):
    recs = with_bad(records, tmp_path)
    cfg = make_cfg(tree, num_workers=workers, batch_size=3)

    def run():  # a fresh run: new dataset and loader, same seed
        torch.manual_seed(0)
        ds = VideoDataset(recs, cfg, "train", ("rgb", "stack"), skip_log=tmp_path / "skipped.jsonl")
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for batch in make_loader(ds, cfg, shuffle=True):
                assert batch is not None
                out.append(batch)
        return out

    first = run()
    seen = sorted(i for b in first for i in b["index"].tolist())
    assert seen == [0, 1, 2, 4, 5, 6]  # every good video once; the bad one (index 3) dropped
    assert all(b["stack"].shape[1:] == (2, 5, 3, 32, 32) for b in first)
    second = run()  # fixed seed: same order, same crops
    for a, b in zip(first, second):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["rgb"], b["rgb"])
    assert (tmp_path / "skipped.jsonl").read_text().count("v_Alpha_g11_c01") == 2  # logged by workers too


def test_loader_throughput_reports(tree, records):
    from htsc_core.data.throughput import measure_loader_throughput

    cfg = make_cfg(tree, batch_size=2)
    ds = VideoDataset(records, cfg, "train", ("rgb", "stack"))
    res = measure_loader_throughput(ds, cfg, num_batches=4, num_workers=0)
    assert res["clips"] == 8 and res["batch_size"] == 2 and res["num_workers"] == 0  # wraps past the epoch end
    assert res["frames_per_clip"] == 10 and res["clips_per_s"] > 0
    assert res["frames_per_s"] == pytest.approx(res["clips_per_s"] * 10)
