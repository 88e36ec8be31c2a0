"""Scoring and validation in bounded forwards (issue 37): uint8 test-mode frames made float on the device, evaluation
batches of at most ``views_per_forward`` views, chunked forwards that give the unchunked scores, TCLSTA's maps read
from disk a batch at a time, and peak memory that does not grow with batch x views or with the number of videos
(measured in fresh processes by tests/memory_probe.py at the paper's 25 x 10 views)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from htsc_core.config import from_params
from htsc_core.data import transforms
from htsc_core.data.dataset import VideoDataset, eval_videos_per_batch
from htsc_core.data.registry import load_split
from htsc_core.models.views import as_float, in_chunks
from htsc_core.train.stages import stage_data_config, validation_config
from launch import ENV

PROBE = Path(__file__).with_name("memory_probe.py")


def test_as_float_is_rgb_to_tensor_bit_for_bit():
    frames = np.random.default_rng(0).integers(0, 256, (4, 9, 7, 3), dtype=np.uint8)
    assert torch.equal(as_float(transforms.rgb_to_tensor(frames, keep_uint8=True)), transforms.rgb_to_tensor(frames))
    flow = torch.randn(3, 2)
    assert as_float(flow) is flow  # float input passes through


def test_in_chunks_concatenates_in_order_and_is_the_plain_call_within_one_chunk():
    x = torch.arange(10, dtype=torch.float32)[:, None]
    calls = []

    def fn(v):
        calls.append(len(v))
        return {"twice": 2 * v, "pair": (v + 1, v.sum(1))}
    out = in_chunks(fn, x, 4)
    assert calls == [4, 4, 2]
    torch.testing.assert_close(out["twice"], 2 * x)
    torch.testing.assert_close(out["pair"][1], x[:, 0])
    calls.clear()
    in_chunks(fn, x, 10)
    assert calls == [10]


def test_uint8_items_are_the_float_items(smoke_set):
    cfg = from_params(profile="smoke", data_root=str(smoke_set))
    records = load_split(cfg, "val")[0][:2]
    a = VideoDataset(records, cfg, mode="test", modalities=("rgb", "stack"))[0]
    b = VideoDataset(records, cfg, mode="test", modalities=("rgb", "stack"), uint8_frames=True)[0]
    assert b["rgb"].dtype == torch.uint8 and b["stack"].dtype == torch.uint8
    assert torch.equal(as_float(b["rgb"]), a["rgb"]) and torch.equal(as_float(b["stack"]), a["stack"])


def test_chunked_htsc_forward_gives_the_unchunked_scores(smoke_set):
    from htsc_core.models.cln import CollaborativeLearning
    from htsc_core.models.htsc import HTSC
    from htsc_core.models.motionnet import build_motionnet
    from htsc_core.models.temporal import HiddenTemporalStream
    from htsc_core.models.vgg import build_vgg16
    from htsc_core.train.streams import build_stream

    cfg = from_params(profile="smoke", data_root=str(smoke_set), test_segments=3, test_crops=5)
    torch.manual_seed(0)
    spatial = build_stream(cfg, "spatial", 6).eval()
    temporal = HiddenTemporalStream(build_motionnet(cfg), build_vgg16(cfg, 6, 2 * cfg.num_flows, imagenet=False)).eval()
    model = HTSC(spatial, temporal, CollaborativeLearning(spatial.feature_dim, 8, 6).eval())
    records = load_split(cfg, "val")[0][:2]
    ds = VideoDataset(records, cfg, mode="test", modalities=("stack",), uint8_frames=True)
    stack = torch.stack([ds[0]["stack"], ds[1]["stack"]])  # (2, 15, L, 3, S, S) uint8
    with torch.inference_mode():
        whole = model(as_float(stack), 3)
        chunked = model(stack, 3, views_per_forward=4)  # 30 views in forwards of 4, 4, ..., 2
    for key in ("spatial", "temporal", "hts", "cln_s", "cln_o", "fc7_s", "fc7_o"):
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-4, atol=1e-6)


def test_cpu_profiles_keep_their_batches_and_the_paper_profile_is_bounded():
    for profile in ("smoke", "default"):  # the committed results' forwards: unchanged
        cfg = from_params(profile=profile)
        assert eval_videos_per_batch(cfg, cfg.test_segments * cfg.test_crops) == cfg.batch_size
        assert validation_config(cfg) == cfg
    paper = from_params(profile="paper", dataset="ucf101")
    assert eval_videos_per_batch(paper, 250) == 1  # one video, its 250 views in forwards of 50
    for stage, views in (("spatial", 3), ("c3d", 1), ("motion", 1)):
        v = validation_config(stage_data_config(paper, stage))
        assert (v.test_segments * v.test_crops, v.test_crops) == (views, 1)
    assert paper.test_segments * paper.test_crops == 250  # the test protocol stays 25 x 10


def test_paper_plan_bounds_validation_and_device_memory():
    """Issue 37's done-when: validation and scoring lines per stage, each validation <= 25 % of its training FLOPs,
    every stage's peak device memory below 80 GB on an A100."""
    from htsc_core.plan import make_plan

    plan = make_plan(from_params(profile="paper", dataset="ucf101"), gpu="A100")
    for stage, s in plan["stages"].items():
        assert s["validation"]["share_of_training"] <= 0.25, stage
        assert s["scoring"]["views_per_forward"] <= 250 and s["peak_device_bytes"] < 80e9 and s["fits_gpu"], stage
    assert plan["stages"]["spatial"]["scoring"]["views_per_video"] == 250
    assert plan["stages"]["spatial"]["scoring"]["videos_per_batch"] == 1


def _probe(*args: str) -> float:
    r = subprocess.run([sys.executable, str(PROBE), *args], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_mb"]


def test_plan_scoring_memory_matches_a_measured_forward():
    """The plan's live-activation count (``plan_passes.LiveBytes``, on the meta device) against the resident memory a
    real CPU forward of the same VGG16 adds, at 256 views of 64 px."""
    # the CPU side: resident memory (/proc/self/statm) after every layer's forward, less the memory before the forward
    code = ("import os, sys, torch\n"
            "from htsc_core.models.vgg import VGG16\n"
            "from htsc_core.plan_passes import LiveBytes\n"
            "meta = sys.argv[1] == 'meta'\n"
            "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
            "with torch.device('meta' if meta else 'cpu'):\n"
            "    m = VGG16(12, 3, 0.25, True, 0.5).eval(); x = torch.rand(256, 3, 64, 64)\n"
            "peak = [0]\n"
            "for mod in m.modules():\n"
            "    mod.register_forward_hook(lambda *a: peak.__setitem__(0, max(peak[0], rss())))\n"
            "with torch.no_grad():\n"
            "    if meta:\n"
            "        with LiveBytes(m, x) as lb: m(x)\n"
            "        print(lb.peak / 1e6)\n"
            "    else:\n"
            "        m(x); r0 = rss(); peak[0] = 0; m(x); print((peak[0] - r0) / 1e6)\n")
    mb = {}
    for kind in ("meta", "cpu"):
        r = subprocess.run([sys.executable, "-c", code, kind], env=ENV, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        mb[kind] = float(r.stdout.strip().splitlines()[-1])
    assert 0.7 * mb["cpu"] <= mb["meta"] <= 1.3 * mb["cpu"], mb


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory) -> Path:
    """18 test videos (a batch of 16 must be full), smoke sizes."""
    from htsc_core.data import synthetic

    root = tmp_path_factory.mktemp("views") / "set"
    synthetic.generate(root, synthetic.synth_config("smoke", 0, synth_test_per_class=3, synth_train_per_class=2),
                       workers=1, progress=False)
    return root


@pytest.mark.parametrize("mode", ["score", "validate"])
def test_peak_memory_of_a_pass_does_not_grow_with_batch_x_views(many_videos, tmp_path, mode):
    """25 x 10 views, batch 2 and 16: peak resident memory within 20 %; the unbounded pass of before (every view of
    a batch in one forward: views_per_forward above 16 x 250) shows what the bound removes."""
    root = str(many_videos)
    small = _probe(mode, root, str(tmp_path / "b2"), "--batch", "2")
    large = _probe(mode, root, str(tmp_path / "b16"), "--batch", "16")
    unbounded = _probe(mode, root, str(tmp_path / "x16"), "--batch", "16", "--views-per-forward", "100000")
    assert large <= 1.2 * small, (small, large)
    # the probe sees what the bound removes: 4,000 views in one forward hold some 200 MB more at these sizes
    assert unbounded > large + 100, (large, unbounded)


def test_tclsta_stage_memory_does_not_grow_with_the_number_of_videos(many_videos, tmp_path):
    few = _probe("tclsta", str(many_videos), str(tmp_path / "n10"), "--videos", "10")
    many = _probe("tclsta", str(many_videos), str(tmp_path / "n80"), "--videos", "80")
    held = _probe("tclsta", str(many_videos), str(tmp_path / "m80"), "--videos", "80", "--in-memory")
    assert many <= 1.2 * few, (few, many)  # 70 more videos' maps held (290 MB of float16, train and val) would not
    assert held > many + 100, (many, held)  # the maps held whole (the stage before issue 37) show in the probe


def test_flow_evaluation_takes_at_most_max_pairs_from_the_middle_of_each_video(smoke_set):
    """Notebook 02 at paper scale (cfg.flow_eval_pairs): 3 pairs over 2 videos -> 2 from each video's middle; the
    zero flow's EPE there is the mean true-flow magnitude of those pairs (from the stored truth)."""
    from htsc_core.flow.evaluate import evaluate_flow, gt_path

    cfg = from_params(profile="smoke", data_root=str(smoke_set))
    recs = load_split(cfg, "test")[0][:2]
    full = evaluate_flow(cfg, ["zero"], records=recs)[0]
    some = evaluate_flow(cfg, ["zero"], records=recs, max_pairs=3)[0]
    assert some["pairs"] == 4 and full["pairs"] > some["pairs"]
    mags = []
    for rec in recs:
        gt = np.load(gt_path(cfg.data_root, rec.video_id))  # (T-1, H, W, 2)
        first = (len(gt) - 2) // 2
        mags.append(np.linalg.norm(gt[first:first + 2].astype(np.float64), axis=-1).mean())
    assert some["epe"] == pytest.approx(float(np.mean(mags)), rel=1e-5)
