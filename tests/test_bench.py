"""htsc_core.bench: Table 5 pipelines, FLOP counts, data and scaling benchmarks (smoke sizes)."""
import json

import numpy as np
import pytest
import torch

from htsc_core.bench import _resolutions, data_benchmark, scaling_benchmark, table5_benchmark
from htsc_core.bench.common import StepTimer, spread
from htsc_core.bench.table5_networks import build_networks, count_flops
from htsc_core.bench.table5_pipelines import METHODS, make_clips, run_hts, run_htsc, run_two_stream
from htsc_core.config import from_params
from htsc_core.flow.estimators import TVL1Estimator
from htsc_core.fusion import awl_scores, hts_fusion
from htsc_core.models.vgg import VGG16
from htsc_core.paper import TABLE5_FPS

CPU = torch.device("cpu")


def smoke_cfg(tmp_path, **kw):
    return from_params(profile="smoke", device="cpu", results_dir=str(tmp_path / "results"),
                       data_root=str(tmp_path / "no_data"), **kw)


def vgg16_hand_flops(size: int, in_ch: int = 3, classes: int = 1000) -> tuple[int, int]:
    """2 x multiply-adds of the 13 convs and 3 fcs of Table 1, and the parameter count, by hand."""
    flops, params, c, s = 0, 0, in_ch, size
    for block in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for out in block:
            flops += 2 * s * s * 9 * c * out
            params += 9 * c * out + out
            c = out
        s //= 2
    for i, o in ((512 * 7 * 7, 4096), (4096, 4096), (4096, classes)):
        flops += 2 * i * o
        params += i * o + o
    return flops, params


def test_vgg16_flops_match_hand_count_at_paper_size():
    flops, params = count_flops(lambda: VGG16(1000, 3, 1.0), (1, 3, 224, 224))
    hand_flops, hand_params = vgg16_hand_flops(224)
    assert flops == hand_flops
    assert params == hand_params == 138_357_544  # torchvision's vgg16
    assert flops / 2 == pytest.approx(15.47e9, rel=0.01)  # the known ~15.5 G multiply-adds


def test_flops_scale_with_batch_and_channels():
    one, _ = count_flops(lambda: VGG16(10, 20, 0.25), (1, 20, 64, 64))
    two, _ = count_flops(lambda: VGG16(10, 20, 0.25), (2, 20, 64, 64))
    assert two == 2 * one
    rgb, _ = count_flops(lambda: VGG16(10, 3, 0.25), (1, 3, 64, 64))
    # only conv1 differs: 2 * 64^2 * 9 * (20 - 3) * 16 extra
    assert one - rgb == 2 * 64 * 64 * 9 * 17 * 16


def test_pipelines_compute_the_fused_scores(tmp_path):
    torch.set_num_threads(1)
    clips = make_clips(2, 2, 3, 32, seed=1)
    assert clips.shape == (2, 2, 3, 32, 32, 3) and clips.dtype == np.uint8
    nets = build_networks(5, 3, 1 / 16, 1 / 16, False, 8, 2, seed=0)
    timer = StepTimer(CPU)
    scores, nbytes = run_two_stream(clips, nets, TVL1Estimator(1), tmp_path / "flow", timer, CPU)
    files = sorted((tmp_path / "flow").rglob("*.jpg"))
    assert len(files) == 2 * 2 * 2 * 2  # videos x segments x pairs x (x, y)
    assert nbytes == sum(f.stat().st_size for f in files) > 0
    assert scores.shape == (2, 5) and np.allclose(scores.sum(1), 2.5)  # softmax + 1.5 softmax
    assert {"tvl1", "flow_jpeg_write", "flow_jpeg_read", "spatial_cnn", "temporal_cnn", "fusion"} <= set(timer.times)

    # HTS / HTSC against a direct computation with the same networks.
    with torch.inference_mode():
        stack = torch.from_numpy(clips.reshape(4, 3, 32, 32, 3)).permute(0, 1, 4, 2, 3).float() / 255
        rgb = stack[:, 1]
        from htsc_core.models.temporal import flow_to_cnn_input
        x = flow_to_cnn_input(nets["motion"](stack)[-1], 32)
        s_log, o_log = nets["spatial"](rgb), nets["temporal"](x)
        # TSN consensus of HTSC (models/htsc.py): the mean over segments of the per-view softmax
        want_hts = hts_fusion(torch.softmax(s_log, 1).view(2, 2, -1).mean(1).numpy(),
                              torch.softmax(o_log, 1).view(2, 2, -1).mean(1).numpy())
        out = nets["cln"](nets["spatial"].features(rgb).view(2, 2, -1), nets["temporal"].features(x).view(2, 2, -1))
        want_htsc = awl_scores(nets["awl_W"], torch.softmax(out["logits_s"], 1).numpy(),
                               torch.softmax(out["logits_o"], 1).numpy())
    np.testing.assert_allclose(run_hts(clips, nets, StepTimer(CPU), CPU), want_hts, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(run_htsc(clips, nets, StepTimer(CPU), CPU), want_htsc, rtol=1e-4, atol=1e-6)


def r_fps(res, method):
    return next(r for r in res["runs"][0]["rows"] if r["method"] == method)["fps_repeats"]


def test_table5_benchmark_smoke_schema_and_json(tmp_path):
    cfg = smoke_cfg(tmp_path)
    res = table5_benchmark(cfg, repeats=5, threads=1)
    rows = {r["method"]: r for r in res["table5"]}
    assert set(rows) == set(METHODS)
    assert res["table5"] == res["table5_profile"]  # no 224 px run in smoke: the profile's run is the headline
    for m, r in rows.items():
        assert r["ours_fps"] > 0 and r["paper_fps"] == TABLE5_FPS.get(m, "")  # tsn_rgb_diff: not in Table 5
        rounds = res["runs"][0]["htsc_over_hts"]["rounds"]  # HTS / HTSC may take extra rounds (up to 10 in smoke)
        assert r["resolution"] == cfg.image_size and r["repeats"] == (rounds if m in ("hts", "htsc") else 5)
        assert r["stack_length"] == cfg.stack_length and r["precision"] == res["protocol"]["precision"]
        assert r["ratio_ci_low"] <= r["ratio_to_two_stream"] <= r["ratio_ci_high"]
        assert r["ratio_to_two_stream"] == pytest.approx(
            np.median(r_fps(res, m)) / np.median(r_fps(res, "two_stream")))
    assert rows["two_stream"]["ratio_to_two_stream"] == pytest.approx(1.0)
    for m in METHODS:
        shares = [s["share"] for s in res["steps"] if s["method"] == m]
        assert sum(shares) == pytest.approx(1.0, abs=1e-9) and min(shares) >= 0
    run = res["runs"][0]
    assert run["frames_per_video"] == cfg.test_segments * cfg.stack_length
    assert rows["hts"]["ours_fps"] == pytest.approx(run["rows"][1]["videos_per_s"] * run["frames_per_video"])
    assert run["flow_storage_bytes_per_video"] > 0
    assert "without defining" in res["definition"] and "S x L" in res["definition"]
    assert res["matmul"]["flops_per_s"] > 0 and res["conv1x1"]["flops_per_s"] > 0
    assert {n["network"] for n in res["networks"]} == {"spatial_vgg16", "temporal_vgg16", "motionnet"}
    assert all(n["fraction_of_mm"] > 0 for n in res["networks"])
    saved = json.loads((tmp_path / "results" / "metrics" / "bench_table5.json").read_text())
    assert saved["metrics"]["table5"] == json.loads(json.dumps(res["table5"]))
    assert saved["meta"]["profile"] == "smoke" and "torch_threads" in saved["meta"]


def test_table5_rejects_bad_resolution(tmp_path):
    with pytest.raises(ValueError, match="multiple of 32"):
        table5_benchmark(smoke_cfg(tmp_path), resolutions=[100], repeats=1)


def test_resolutions_argument():
    import argparse

    assert _resolutions("112,224") == [112, 224]
    assert _resolutions("none") == []
    with pytest.raises(argparse.ArgumentTypeError):
        _resolutions("112,abc")


def test_spread_against_numpy():
    v = [3.0, 1.0, 4.0, 1.0, 5.0]
    s = spread(v)
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0
    assert (s["q1"], s["q3"]) == tuple(np.percentile(v, [25, 75]))


def test_data_and_scaling_benchmarks_generate_a_set_when_missing(tmp_path):
    cfg = smoke_cfg(tmp_path)
    res = data_benchmark(cfg, num_batches=1, repeats=1)
    assert res["dataset"].startswith("generated")
    assert [r["stage"] for r in res["rows"]] == ["spatial", "temporal"]
    for r in res["rows"]:
        assert r["loader_clips_per_s"] > 0 and r["train_clips_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["loader_clips_per_s"] / r["train_clips_per_s"])
    assert (tmp_path / "results" / "metrics" / "bench_data.json").is_file()

    sc = scaling_benchmark(cfg, factors=(1, 2), base_videos=4)
    assert [r["videos"] for r in sc["runs"]] == [4, 8]
    assert [r["clips"] for r in sc["runs"]] == [4, 8]  # every video seen once per epoch
    assert sc["size_ratio"] == 2 and sc["peak_rss_ratio"] > 0
    saved = json.loads((tmp_path / "results" / "metrics" / "bench_scaling.json").read_text())
    assert saved["metrics"]["factors"] == [1, 2]
