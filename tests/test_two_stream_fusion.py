"""Two-stream conv fusion (Feichtenhofer et al. 2016; issue 26, item 2) at tiny sizes: shapes, the views'
regrouping, the fusion's start as a sum, gradients into both streams, training steps, the stage's build."""
import pytest
import torch
import torch.nn.functional as F

from htsc_core.config import from_params
from htsc_core.models.two_stream_fusion import TwoStreamConvFusion, conv5_maps
from htsc_core.models.vgg import VGG16, build_vgg16
from htsc_core.train.stages import conv_fusion_step, stage_step
from htsc_core.train.streams import build_stream, run_dir

M, FLOW_CH = 3, 4  # classes, 2(L-1) flow channels with L = 3


def tiny(seed=0, dropout=0.5):
    torch.manual_seed(seed)
    return TwoStreamConvFusion(VGG16(M, 3, 1 / 16, dropout=dropout), VGG16(M, FLOW_CH, 1 / 16, dropout=dropout))


def inputs(b=2, v=6, size=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, v, 3, size, size, generator=g), 40 * torch.randn(b, v, FLOW_CH, size, size, generator=g)


def test_shapes_and_scores():
    model = tiny().eval()
    rgb, flow = inputs()
    with torch.no_grad():
        out = model(rgb, flow, segments=3)  # 3 segments x 2 crops
    assert out["logits"].shape == out["logits_temporal"].shape == out["scores"].shape == (2, M)
    torch.testing.assert_close(out["scores"].sum(1), torch.ones(2))
    with torch.no_grad():  # the temporal head goes on from the conv5 maps the fusion used: the stream's own forward
        alone = model.temporal(flow.flatten(0, 1)).view(2, 6, -1).mean(1)
    torch.testing.assert_close(out["logits_temporal"], alone, rtol=1e-5, atol=1e-6)
    assert model.channels == 32  # conv5 at width 1/16: 512 / 16
    with pytest.raises(ValueError, match="multiple of segments"):
        model(rgb, flow, segments=4)
    with pytest.raises(ValueError, match="same B, V"):
        model(rgb, flow[:, :3], segments=3)
    with pytest.raises(ValueError, match="classes, width"):
        TwoStreamConvFusion(VGG16(M, 3, 1 / 16), VGG16(M + 1, FLOW_CH, 1 / 16))


def test_each_crop_is_fused_over_the_segments():
    """Views are segment-major (s0c0, s0c1, s1c0, ...): the video's fused logits are the mean over crops of
    each crop's sequence of segments, fused alone."""
    model = tiny().eval()
    with torch.no_grad():  # a trained-like 3D conv (at the start it is the identity, blind to segment order)
        model.fuse3d.weight.normal_(0.0, 0.05)
    rgb, flow = inputs(v=6)
    with torch.no_grad():
        both = model(rgb, flow, segments=3)
        per_crop = [model(rgb[:, c::2], flow[:, c::2], segments=3) for c in (0, 1)]
    torch.testing.assert_close(both["logits"], (per_crop[0]["logits"] + per_crop[1]["logits"]) / 2)
    torch.testing.assert_close(both["logits_temporal"],
                               (per_crop[0]["logits_temporal"] + per_crop[1]["logits_temporal"]) / 2)
    with torch.no_grad():  # and the segment order matters to the 3D conv: swapping segments changes the output
        swapped = model(rgb[:, [2, 3, 0, 1, 4, 5]], flow[:, [2, 3, 0, 1, 4, 5]], segments=3)
    assert not torch.allclose(swapped["logits"], both["logits"])


def test_fusion_starts_as_the_sum_of_the_streams_maps():
    model = tiny().eval()
    rgb, flow = inputs(b=1, v=2)
    with torch.no_grad():
        xs, xo = conv5_maps(model.spatial, rgb[0]), conv5_maps(model.temporal, flow[0])
        y = F.relu(model.fuse(torch.cat([xs, xo], 1)))
        torch.testing.assert_close(y, xs + xo)  # conv fusion [I I]: both maps are post-ReLU, so relu(sum) = sum
        z = model.fuse3d(y.transpose(0, 1).unsqueeze(0))  # (1, D, T, h, w)
        torch.testing.assert_close(z[0].transpose(0, 1), y)  # the 3D conv is the identity at the start
        assert xs.shape[-1] == 2  # conv5 of a 32 px input, before pool5 (stride 16)


def test_gradients_reach_both_streams_and_the_fusion():
    model = tiny().train()
    rgb, flow = inputs(v=3)
    step = conv_fusion_step(test_segments=3)
    loss, stats = step(model, {"rgb": rgb, "flow": flow, "label": torch.tensor([0, 2])})
    loss.backward()
    for name, p in (("spatial conv1", model.spatial.conv1.weight), ("temporal conv1", model.temporal.conv1.weight),
                    ("conv fusion", model.fuse.weight), ("3D conv", model.fuse3d.weight),
                    ("fused fc8", model.spatial.fc8.weight), ("temporal fc8", model.temporal.fc8.weight)):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert stats["count"] == 2 and 0 <= stats["correct"] <= 2
    assert stats["ce_fused"] > 0 and stats["ce_temporal"] > 0


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = tiny(dropout=0.0)
    rgb, flow = inputs(b=6, v=2, seed=3)
    label = torch.tensor([0, 1, 2, 0, 1, 2])
    for i, y in enumerate(label):  # a class cue in both modalities
        rgb[i, :, int(y)] += 0.5
        flow[i, :, int(y)] += 30.0
    batch = {"rgb": rgb, "flow": flow, "label": label}
    step = conv_fusion_step(test_segments=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(8):
        loss, _ = step(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_stage_starts_from_the_trained_spatial_and_tvl1_streams(tmp_path):
    cfg = from_params(profile="smoke", device="cpu", runs_dir=str(tmp_path / "runs"),
                      data_root=str(tmp_path / "none"), results_dir=str(tmp_path / "results"))
    with pytest.raises(FileNotFoundError, match="train the stage first"):
        build_stream(cfg, "conv_fusion", M)
    torch.manual_seed(5)
    spatial = build_vgg16(cfg, M, 3, imagenet=False)
    tvl1 = build_vgg16(cfg, M, 2 * cfg.num_flows, imagenet=False)
    for stage, net in (("spatial", spatial), ("tvl1", tvl1)):
        run_dir(cfg, stage).mkdir(parents=True)
        torch.save({"model": net.state_dict(), "stage": stage}, run_dir(cfg, stage) / "best.pt")
    model = build_stream(cfg, "conv_fusion", M)
    assert isinstance(model, TwoStreamConvFusion)
    torch.testing.assert_close(model.spatial.conv1.weight, spatial.conv1.weight)
    torch.testing.assert_close(model.temporal.conv1.weight, tvl1.conv1.weight)
    with pytest.raises(ValueError, match="needs the config"):
        stage_step("conv_fusion")
    # eval mode: the step groups the views as the config's test segments
    model.eval()
    rgb, flow = torch.rand(1, 2 * cfg.test_segments, 3, 32, 32), torch.randn(1, 2 * cfg.test_segments, 8, 32, 32)
    with torch.no_grad():
        loss, stats = stage_step("conv_fusion", cfg)(model, {"rgb": rgb, "flow": flow, "label": torch.tensor([1])})
    assert torch.isfinite(loss) and stats["count"] == 1


def test_conv_fusion_stage_trains_and_is_scored_as_a_table3_row(tmp_path):
    """`htsc train conv_fusion` after spatial and tvl1 on a tiny UCF101-shaped tree with its TV-L1 flow: a step
    of the fused model from the two streams' checkpoints, then its test scores and the two_stream_fusion row."""
    import json
    import warnings

    import numpy as np

    from dataset_trees import ucf101_smoke_config
    from htsc_core.flow.extract import extract_flow
    from htsc_core.tables import baseline_scores
    from htsc_core.train.scores import extract_scores, load_scores
    from htsc_core.train.stages import train

    cfg = ucf101_smoke_config(tmp_path, max_steps_per_epoch=1)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tree's truncated video is screened out with a warning
        extract_flow(cfg, workers=1)
        train(cfg, "spatial", resume=False)
        train(cfg, "tvl1", resume=False)
        tvl1 = build_stream(cfg, "tvl1", 3, load_trained=True)
        out = train(cfg, "conv_fusion", resume=False)
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert len(log) == 1 and log[0]["stage"] == "conv_fusion" and np.isfinite(log[0]["train_loss"])
        assert log[0]["train_ce_fused"] > 0 and log[0]["train_ce_temporal"] > 0
        trained = build_stream(cfg, "conv_fusion", 3, load_trained=True)
        assert not torch.equal(trained.temporal.conv1.weight, tvl1.conv1.weight)  # the step moved the streams
        extract_scores(cfg, "conv_fusion", "test", device="cpu")
    s = load_scores(cfg, "test", "conv_fusion")
    assert s["scores"].shape == (3, 3) and s["features"].shape == (3, cfg.test_segments, 0)
    np.testing.assert_allclose(s["scores"].sum(1), 1.0, rtol=1e-5)
    # Table 3's two_stream_fusion row: the saved scores themselves, in the HTSC pass's video order
    order = np.argsort(s["video_ids"])[::-1]
    test = {"spatial": np.full((3, 3), 1 / 3), "labels": s["labels"][order], "video_ids": s["video_ids"][order]}
    rows = baseline_scores(cfg, test)
    assert sorted(rows) == ["two_stream_fusion"]
    np.testing.assert_allclose(rows["two_stream_fusion"], s["scores"][order])
