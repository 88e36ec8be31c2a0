"""C3D (Tran et al. 2015; issue 26, item 3) at tiny sizes: the paper's net at its size, short clips, training
steps, the stage on a tiny tree with its Table 3 row, and the Table 5 pipeline."""
import json
import warnings

import numpy as np
import pytest
import torch

from htsc_core.bench.table5_networks import count_flops
from htsc_core.config import from_params
from htsc_core.models.c3d import C3D

CPU = torch.device("cpu")


def test_paper_net_at_its_input_size():
    """Tran et al. 2015: 16 x 112 x 112 clips; pool5 is 512 x 1 x 4 x 4 (fc6 takes 8192); the multiply-adds
    of the 8 convs and 3 fcs, counted by hand, equal the counter's (about 38.5 G)."""
    flops, params = count_flops(lambda: C3D(101, 1.0), (1, 16, 3, 112, 112))
    macs, c, (t, s) = 0, 3, (16, 112)
    for i, block in enumerate(((64,), (128,), (256, 256), (512, 512), (512, 512))):
        for out in block:
            macs += t * s * s * 27 * c * out
            c = out
        t, s = (t if i == 0 else (t + 1) // 2), (s + 1) // 2  # pool1 1x2x2, the others 2x2x2, rounding up
    assert (t, s) == (1, 4)  # pool5: 1 x 4 x 4
    macs += 512 * 16 * 4096 + 4096 * 4096 + 4096 * 101
    assert flops == 2 * macs and macs / 1e9 == pytest.approx(38.5, rel=0.01)
    assert C3D(101, 1.0).classifier[0].in_features == 8192


@pytest.mark.parametrize("frames,size", [(16, 64), (8, 32), (5, 32), (1, 32)])
def test_short_clips_and_small_frames(frames, size):
    torch.manual_seed(0)
    model = C3D(4, 1 / 16, batch_norm=True).eval()
    with torch.no_grad():
        out = model(torch.rand(2, frames, 3, size, size))
        fc7 = model.features(torch.rand(2, frames, 3, size, size))
    assert out.shape == (2, 4) and fc7.shape == (2, model.feature_dim) and torch.isfinite(out).all()


def test_clear_errors():
    with pytest.raises(ValueError, match="c3d_clip_length"):
        from_params(profile="smoke", c3d_clip_length=1)
    with pytest.raises(ValueError, match=r"clip \(N, T, 3, H, W\)"):
        C3D(4, 1 / 16)(torch.rand(2, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="below 16 px"):
        C3D(4, 1 / 16)(torch.rand(1, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="width"):
        C3D(4, 0)


def test_a_few_training_steps_reduce_the_loss_and_reach_conv1():
    torch.manual_seed(0)
    model = C3D(3, 1 / 16, dropout=0.0)
    x = torch.rand(6, 4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    for i, c in enumerate(y):  # a moving bright column per class: a motion cue
        for t in range(4):
            x[i, t, :, :, (int(c) * 8 + 3 * t) % 32] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):  # measured: 1.099 -> 0.63 (fc8 starts at N(0, 0.01), so the first steps are slow)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        assert model.blocks[0][0].weight.grad.abs().sum() > 0
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_c3d_stage_trains_on_clips_of_its_length_and_is_scored_as_a_table3_row(tmp_path):
    from dataset_trees import ucf101_smoke_config
    from htsc_core.tables import baseline_scores
    from htsc_core.train.scores import extract_scores, load_scores
    from htsc_core.train.stages import build_stream, stage_data_config, train

    # C3D's own crop (16 px of frames decoded at 24 px short side), as the paper profile's 112 of 128
    cfg = ucf101_smoke_config(tmp_path, max_steps_per_epoch=1, c3d_image_size=16, c3d_frame_size=24)
    data_cfg = stage_data_config(cfg, "c3d")
    assert (data_cfg.stack_length, data_cfg.num_segments) == (cfg.c3d_clip_length, 1) == (8, 1)
    assert (data_cfg.image_size, data_cfg.frame_size) == (16, 24) and (cfg.image_size, cfg.frame_size) == (32, 40)
    assert cfg.stack_length != 8
    seen = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda m, a: seen.append(tuple(a[0].shape)) if isinstance(m, C3D) else None)
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tree's truncated video is screened out with a warning
            out = train(cfg, "c3d", resume=False)
            extract_scores(cfg, "c3d", "test", device="cpu")
    finally:
        hook.remove()
    assert seen and all(s[1:] == (8, 3, 16, 16) for s in seen)  # clips of c3d_clip_length RGB frames, C3D's crop
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["stage"] == "c3d" and np.isfinite(log[0]["train_loss"])
    assert isinstance(build_stream(cfg, "c3d", 3, load_trained=True), C3D)
    s = load_scores(cfg, "test", "c3d")
    assert s["scores"].shape == (3, 3) and s["features"].shape[:2] == (3, cfg.test_segments)
    np.testing.assert_allclose(s["scores"].sum(1), 1.0, rtol=1e-5)
    test = {"spatial": np.full((3, 3), 1 / 3), "labels": s["labels"], "video_ids": s["video_ids"]}
    rows = baseline_scores(cfg, test)
    assert sorted(rows) == ["c3d"]
    np.testing.assert_allclose(rows["c3d"], s["scores"])


def test_the_paper_profile_reads_c3d_clips_at_c3ds_own_size():
    """Tran et al. 2015 (Sec. 3.2): 16-frame clips, frames resized to 128 x 171, 112 x 112 crops; the other
    streams keep 224 px crops of 256 px frames, and image_size still has to suit MotionNet."""
    from htsc_core.train.stages import stage_data_config

    paper = from_params(profile="paper")
    c3d = stage_data_config(paper, "c3d")
    assert (c3d.stack_length, c3d.image_size, c3d.frame_size, c3d.num_segments) == (16, 112, 128, 1)
    assert (stage_data_config(paper, "spatial").image_size, paper.frame_size) == (224, 256)
    assert stage_data_config(from_params(profile="default"), "c3d").image_size == 64  # 0: the profile's own size
    with pytest.raises(ValueError, match="image_size=112 must be a multiple of 32"):
        from_params(profile="paper", image_size=112)
    with pytest.raises(ValueError, match="c3d_frame_size=100 is smaller than c3d_image_size=112"):
        from_params(profile="paper", c3d_frame_size=100)


def test_table5_c3d_pipeline_matches_the_network():
    from htsc_core.bench.common import StepTimer
    from htsc_core.bench.table5_networks import build_networks
    from htsc_core.bench.table5_pipelines import make_clips, run_c3d

    torch.set_num_threads(1)
    clips = make_clips(2, 2, 4, 32, seed=3)  # (B, S, L=4, 32, 32, 3)
    nets = build_networks(5, 4, 1 / 16, 1 / 16, False, 8, 1, seed=0)
    timer = StepTimer(CPU)
    scores = run_c3d(clips, nets, timer, CPU)
    assert {"input", "c3d_cnn"} <= set(timer.times)
    x = torch.from_numpy(clips).permute(0, 1, 2, 5, 3, 4).float().div(255).flatten(0, 1)
    with torch.inference_mode():
        want = torch.softmax(nets["c3d"](x), 1).view(2, 2, -1).mean(1).numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-6)
