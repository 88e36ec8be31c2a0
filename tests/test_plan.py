"""``htsc plan`` (issue 25 item 5): the bill before the run, per stage and in total, from the config alone."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from htsc_core import cli, plan
from htsc_core.config import from_params

FIELDS = ("steps", "flops", "flops_per_step", "forward_flops_per_view", "gpu_hours", "disk_bytes", "memory_bytes")


@pytest.fixture(scope="module")
def paper():
    return plan.make_plan(from_params(profile="paper", dataset="ucf101"))


def test_cli_json_has_every_figure_per_stage(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert cli.main(["plan", "--profile", "smoke", "--gpu", "H100", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result["stages"]) == set(plan.STAGES)
    for stage, s in result["stages"].items():
        assert all(k in s for k in FIELDS), stage
        assert s["steps"] > 0 and s["flops"] == s["flops_per_step"] * s["steps"] and s["memory_bytes"] > 0
    assert result["gpu"] == {"name": "H100", "peak_tflops": 989.0, "utilisation": 0.35,
                             "sustained_tflops": pytest.approx(989.0 * 0.35)}
    t = result["total"]
    assert t["flops"] == sum(s["flops"] for s in result["stages"].values()) + result["scoring"]["flops"]
    assert t["gpu_hours"] == pytest.approx(t["flops"] / (989e12 * 0.35) / 3600)
    assert "an estimate" in printed and "tvl1" in printed and "total" in printed


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_spatial_flops_equal_a_direct_count_on_the_real_model(profile):
    """Counted on the meta device by the plan; here on the real network (CPU, random weights) at the
    profile's image size: one forward per view, and one training step of the trainer's own step function."""
    from htsc_core.models.vgg import build_vgg16
    from htsc_core.train.stages import stage_step

    cfg = from_params(profile=profile)
    classes = 3 * cfg.synth_classes_per_family
    counted = plan._count(cfg, "spatial", classes)
    torch.manual_seed(0)
    model = build_vgg16(cfg, classes, 3)
    S = cfg.image_size
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(torch.rand(1, 3, S, S))
    assert counted["forward_flops_per_view"] == fc.get_total_flops() > 0
    if profile == "smoke":  # the whole step: forward, loss and backward, as the trainer runs it
        batch = {"rgb": torch.rand(cfg.batch_size, cfg.num_segments, 3, S, S),
                 "label": torch.zeros(cfg.batch_size, dtype=torch.long)}
        with FlopCounterMode(display=False) as fc:
            loss, _ = stage_step("spatial")(model.train(), batch)
            loss.backward()
        assert counted["flops_per_step"] == fc.get_total_flops()
        assert counted["params"] == sum(p.numel() for p in model.parameters())


def test_motion_step_flops_equal_the_trainers_step():
    from htsc_core.models.motionnet import build_motionnet
    from htsc_core.train.stages import stage_step

    cfg = from_params(profile="smoke")
    counted = plan._count(cfg, "motion", 6)
    model = build_motionnet(cfg).train()
    S = cfg.image_size
    batch = {"stack": torch.rand(cfg.batch_size, 1, cfg.stack_length, 3, S, S)}  # one stack per video
    with FlopCounterMode(display=False) as fc:
        loss, _ = stage_step("motion")(model, batch)
        loss.backward()
    assert counted["flops_per_step"] == fc.get_total_flops() > 0


@pytest.mark.parametrize("stage", ["conv_fusion", "c3d"])
def test_baseline_step_flops_equal_the_trainers_step_on_the_real_model(stage):
    """The Table 3 baselines: the plan's meta-device count of one training step and of one test view equals
    a count on the real network (CPU, random weights) running the trainer's step on a batch of the stage's shapes."""
    from htsc_core.models.c3d import C3D
    from htsc_core.models.two_stream_fusion import TwoStreamConvFusion
    from htsc_core.models.vgg import build_vgg16
    from htsc_core.train.stages import stage_data_config, stage_step

    cfg = from_params(profile="smoke")
    classes = 3 * cfg.synth_classes_per_family
    counted = plan._count(cfg, stage, classes)
    c = stage_data_config(cfg, stage)
    B, K, S, T = c.batch_size, c.num_segments, c.image_size, c.test_segments
    torch.manual_seed(0)
    label = torch.zeros(B, dtype=torch.long)
    if stage == "c3d":
        model = C3D(classes, c.vgg_width, c.vgg_batch_norm, c.dropout_c3d)
        batch = {"stack": torch.rand(B, K, c.stack_length, 3, S, S), "label": label}
        view, per_forward = (torch.rand(1, c.stack_length, 3, S, S),), 1
        assert c.stack_length == cfg.c3d_clip_length and K == 1
    else:
        model = TwoStreamConvFusion(build_vgg16(cfg, classes, 3), build_vgg16(cfg, classes, 2 * c.num_flows))
        batch = {"rgb": torch.rand(B, K, 3, S, S), "flow": torch.rand(B, K, 2 * c.num_flows, S, S), "label": label}
        view, per_forward = (torch.rand(1, T, 3, S, S), torch.rand(1, T, 2 * c.num_flows, S, S), T), T
    with FlopCounterMode(display=False) as fc:
        loss, _ = stage_step(stage, cfg)(model.train(), batch)
        loss.backward()
    assert counted["flops_per_step"] == fc.get_total_flops() > 0
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(*view)
    assert counted["forward_flops_per_view"] == int(fc.get_total_flops() / per_forward) > 0
    assert counted["params"] == sum(p.numel() for p in model.parameters())


def test_tclsta_is_counted_on_its_heads_and_cached_conv5_maps():
    """The tclsta stage: one step of TCLSTA's heads on a batch of the two streams' conv5 maps (every test-protocol
    view), counted on the meta device; on the real model on the CPU the LSTM's matrix products are a fused
    kernel FlopCounterMode does not see, so the real count is below the plan's by at most the LSTMs' FLOPs."""
    from htsc_core.models.tclsta import TCLSTAHeads, conv5_channels, tclsta_loss
    from htsc_core.models.vgg import build_vgg16

    cfg = from_params(profile="smoke")
    classes = 3 * cfg.synth_classes_per_family
    counted = plan._count(cfg, "tclsta", classes)
    ch, side = conv5_channels(build_vgg16(cfg, classes, 3)), cfg.image_size // 16
    B, T, V = cfg.batch_size, cfg.test_segments, cfg.test_segments * cfg.test_crops
    torch.manual_seed(0)
    model = TCLSTAHeads(ch, classes, cfg.tclsta_attention, cfg.tclsta_lstm, cfg.cln_hidden, cfg.cln_rounds,
                        cfg.dropout_tclsta).train()
    with FlopCounterMode(display=False) as fc:
        maps = torch.rand(B, V, ch, side, side)
        tclsta_loss(model(maps, maps.clone(), T), torch.zeros(B, dtype=torch.long)).backward()
    h = cfg.tclsta_lstm
    lstm_forward = 2 * B * (V // T) * T * 2 * 4 * h * (ch + h)  # 2 streams, 4 gates, 2 FLOPs per multiply-add
    assert fc.get_total_flops() < counted["flops_per_step"] <= fc.get_total_flops() + 3 * lstm_forward
    assert counted["params"] == sum(p.numel() for p in model.parameters()) and counted["optimizer"] == "adamw"
    result = plan.make_plan(cfg)
    assert "tclsta" in result["stages"] and result["stages"]["tclsta"]["steps"] > 0
    videos = result["scoring"]["videos"]
    assert result["stages"]["tclsta"]["feature_bytes"] == 2 * videos * V * ch * side * side * 2  # float16


def test_steps_by_hand():
    result = plan.make_plan(from_params(profile="default"))
    # default synthetic set: 12 classes x 24 training videos = 288, 20% held out -> 230; ceil(230 / 16) = 15
    s = result["stages"]["spatial"]
    assert result["data"]["train_videos_after_val"] == 230
    assert s["steps"] == math.ceil(230 / 16) * 20 == 300


def test_paper_plan_counts_ucf101(paper):
    result = paper
    # UCF101 split 1: 9537 training videos, 4 of the 18 groups held out -> 7418; batch 32, 80 epochs
    assert result["data"]["train_videos_after_val"] == 7418
    assert result["stages"]["spatial"]["steps"] == math.ceil(7418 / 32) * 80 == 18560
    assert result["stages"]["spatial"]["params"] == pytest.approx(134.7e6, rel=1e-3)  # fc8 of 101 classes
    # VGG16 at 224 px: 15.5 G multiply-adds = ~30.9 GFLOPs per image (bench/table5.count_flops)
    assert result["stages"]["spatial"]["forward_flops_per_view"] == pytest.approx(30.9e9, rel=0.01)
    ex = result["stages"]["tvl1"]["extraction"]
    from htsc_core.data.dataset import host_cpus

    # the workers default to this host's cores, as `htsc flow extract` (issue 41)
    assert ex["workers"] == host_cpus()
    assert ex["pairs"] == (9537 + 3783) * 185 and ex["wall_hours"] == pytest.approx(ex["cpu_hours"] / host_cpus())
    assert result["stages"]["cln"]["feature_bytes"] == 2 * 13320 * 25 * 4096 * 4
    # TCLSTA's conv5 maps: 2 streams x 13320 videos x 250 views x 512 x 14 x 14, float16: 1.3 TB (docs/TCLSTA.md)
    assert result["stages"]["tclsta"]["feature_bytes"] == 2 * 13320 * 250 * 512 * 14 * 14 * 2
    assert result["total"]["gpu_hours"] > 0 and result["total"]["disk_bytes"] > ex["flow_jpeg_bytes"]


def test_unknown_gpu_is_a_user_error():
    with pytest.raises(ValueError, match="expected one of"):
        plan.make_plan(from_params(profile="smoke"), gpu="Z80")
