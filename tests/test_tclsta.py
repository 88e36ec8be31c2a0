"""TCLSTA's heads (htsc_core/models/tclsta.py): a capability test with a known answer on generated conv5 maps
(no video), shapes and gradients, and the full model on top of two VGG16s.

Capability test. Each generated "video" is S = 5 segments of conv5 maps of C = 16 channels on a 4 x 4 grid
(the default profile's conv5 at 64 px), per stream (static, motion), built from fixed random unit directions:

* ``prototype[c]`` one direction per class c (M = 4), the *what*;
* ``marker``       one direction that marks the one informative cell, the *where* and *when*.

In each video one segment t* (the same in both streams: the moment of the action) and in it one location l*
(its own per stream) hold SCALE * (prototype[label] + marker); the other 5 x 16 - 1 = 79 cells each hold
SCALE * prototype[c] of a random class c (distractors); every coordinate gets N(0, NOISE^2) noise.

Known answer: only the marked cell says which class it is. Mean pooling over the cells sees 1 + 79/4 cells of
the label's prototype against about 79/4 of each other class (binomial std ~3.9 cells), so it is near chance
(1/4); attention that finds the marked cell reads the label off it. So: the spatial attention must put on l*
(in segment t*) far more than the uniform 1/16, the temporal attention on t* far more than the uniform 1/5, and
the heads with attention must beat the same heads with mean pooling (``attend=False``, trained the same way).

Thresholds: alpha on l* >= 0.5 (8x uniform), beta on t* >= 0.6 (3x uniform), accuracy of the video scores and of
the temporal-level head >= 0.9 and at least 0.3 above mean pooling.
Measured (``-s``; torch 2.x, these seeds), static / motion: alpha on l* 0.97 / 0.95, beta on t* 0.97 / 0.98,
accuracy of the video scores 0.99 vs 0.34 with mean pooling, of the temporal-level heads 0.98 / 0.99 vs
0.28 / 0.29. Over 2 other seeds of the data and the initialisation: alpha 0.75-0.95, beta 0.81-1.00, video
scores 1.00 vs 0.33-0.38, temporal-level heads 0.97-1.00 vs 0.28-0.33.

Runtime: 2 trainings of 250 Adam steps on one thread, about 10 s.
"""
from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from htsc_core.models.tclsta import STREAM_HEADS, TCLSTA, TCLSTAHeads, conv5_channels, tclsta_loss

S, M, C, G = 5, 4, 16, 4  # segments, classes, channels, grid side (G x G conv5 locations)
SCALE, NOISE = 3.0, 0.5
N_TRAIN, N_TEST = 2000, 800
STEPS, BATCH, LR = 250, 64, 1e-2  # Adam, the optimiser of train/tclsta.py


@functools.cache
def _directions() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(26)
    return F.normalize(torch.randn(M, C, generator=g), dim=1), F.normalize(torch.randn(C, generator=g), dim=0)


def generate(n: int, seed: int) -> dict[str, torch.Tensor]:
    """xs, xo (n, S, C, G, G), label (n,), t (n,) the informative segment, ls, lo (n,) its location per stream."""
    prototype, marker = _directions()
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, M, (n,), generator=g)
    t = torch.randint(0, S, (n,), generator=g)
    out = {"label": label, "t": t}
    rows = torch.arange(n)
    for stream in ("s", "o"):
        cells = prototype[torch.randint(0, M, (n, S, G * G), generator=g)]  # (n, S, L, C) distractors
        loc = torch.randint(0, G * G, (n,), generator=g)
        cells[rows, t, loc] = prototype[label] + marker
        x = SCALE * cells + NOISE * torch.randn(cells.shape, generator=g)
        out[f"x{stream}"] = x.permute(0, 1, 3, 2).reshape(n, S, C, G, G)
        out[f"l{stream}"] = loc
    return out


def heads(attend: bool) -> TCLSTAHeads:
    return TCLSTAHeads(C, M, attention_hidden=16, lstm_hidden=16, cln_hidden=16, cln_rounds=2, attend=attend)


@functools.cache
def trained(attend: bool) -> TCLSTAHeads:
    torch.manual_seed(0)
    model = heads(attend)
    data = generate(N_TRAIN, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        i = torch.randint(0, N_TRAIN, (BATCH,), generator=g)
        loss = tclsta_loss(model(data["xs"][i], data["xo"][i], S), data["label"][i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@functools.cache
def evaluate(attend: bool) -> dict[str, float]:
    data = generate(N_TEST, seed=3)
    model = trained(attend)  # trained outside no_grad
    with torch.no_grad():
        out = model(data["xs"], data["xo"], S)
    rows = torch.arange(N_TEST)
    acc = lambda k: float((out[k].argmax(1) == data["label"]).float().mean())  # noqa: E731
    return {"scores": acc("scores"), "static_temporal": acc("static_temporal"),
            "motion_temporal": acc("motion_temporal"),
            "alpha_s": float(out["alpha_s"][rows, 0, data["t"], data["ls"]].mean()),
            "alpha_o": float(out["alpha_o"][rows, 0, data["t"], data["lo"]].mean()),
            "beta_s": float(out["beta_s"][rows, 0, data["t"]].mean()),
            "beta_o": float(out["beta_o"][rows, 0, data["t"]].mean())}


def test_spatial_attention_finds_the_informative_location():
    att = evaluate(True)
    print(f"\nTCLSTA capability: attention {att}\n                   mean pooling {evaluate(False)}")
    assert att["alpha_s"] >= 0.5 and att["alpha_o"] >= 0.5  # uniform: 1/16


def test_temporal_attention_finds_the_informative_segment():
    att = evaluate(True)
    assert att["beta_s"] >= 0.6 and att["beta_o"] >= 0.6  # uniform: 1/5


def test_attention_beats_mean_pooling_with_the_same_heads():
    att, mean = evaluate(True), evaluate(False)
    for k in ("scores", "static_temporal", "motion_temporal"):
        assert att[k] >= 0.9 and att[k] >= mean[k] + 0.3, (k, att[k], mean[k])


def test_untrained_attention_is_near_uniform():
    """The concentration above is learnt, not built into the initialisation."""
    data = generate(200, seed=4)
    torch.manual_seed(0)
    with torch.no_grad():
        out = heads(True)(data["xs"], data["xo"], S)
    rows = torch.arange(200)
    assert float(out["alpha_s"][rows, 0, data["t"], data["ls"]].mean()) < 0.2
    assert float(out["beta_s"][rows, 0, data["t"]].mean()) < 0.35


# --- shapes and gradients -------------------------------------------------------------------------------------
@pytest.mark.parametrize("crops", [1, 2])
def test_shapes_and_every_parameter_gets_a_gradient(crops):
    torch.manual_seed(0)
    model = heads(True).train()
    B, h, w = 3, 2, 3
    xs, xo = torch.rand(B, S * crops, C, h, w), torch.rand(B, S * crops, C, h, w)
    out = model(xs, xo, S)
    for stream in ("static", "motion"):
        for k in STREAM_HEADS:
            assert out[f"{stream}_{k}"].shape == (B, M)
    assert out["collab_static"].shape == out["collab_motion"].shape == (B, M)
    assert out["alpha_s"].shape == (B, crops, S, h * w) and out["beta_o"].shape == (B, crops, S)
    assert torch.allclose(out["alpha_s"].sum(-1), torch.ones(B, crops, S), atol=1e-5)
    assert torch.allclose(out["beta_s"].sum(-1), torch.ones(B, crops), atol=1e-5)
    assert torch.allclose(out["scores"].sum(-1), torch.ones(B), atol=1e-5)
    tclsta_loss(out, torch.tensor([0, 1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_multi_hot_targets_and_bad_inputs():
    model = heads(True)
    out = model(torch.rand(2, S, C, 2, 2), torch.rand(2, S, C, 2, 2), S)
    assert torch.isfinite(tclsta_loss(out, torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])))
    with pytest.raises(ValueError, match="multiple of segments"):
        model(torch.rand(2, S, C, 2, 2), torch.rand(2, S, C, 2, 2), 3)
    with pytest.raises(ValueError, match="one shape"):
        model(torch.rand(2, S, C, 2, 2), torch.rand(2, S, C, 3, 2), S)


def test_full_model_equals_the_heads_on_the_trunks_conv5_maps():
    """What Table 5 times (trunks + heads) scores as tclsta_scores does (heads on the cached conv5 maps)."""
    from htsc_core.models.two_stream_fusion import conv5_maps
    from htsc_core.models.vgg import VGG16

    torch.manual_seed(0)
    spatial, temporal = VGG16(M, 3, 1 / 16).eval(), VGG16(M, 8, 1 / 16).eval()
    ch = conv5_channels(spatial)
    model = TCLSTA(spatial, temporal, TCLSTAHeads(ch, M, 8, 8, 8)).eval()
    rgb, flow = torch.rand(2, S, 3, 32, 32), torch.rand(2, S, 8, 32, 32) * 40 - 20
    with torch.no_grad():
        out = model(rgb, flow, S)
        xs = conv5_maps(spatial, rgb.flatten(0, 1)).view(2, S, ch, 2, 2)
        xo = conv5_maps(temporal, flow.flatten(0, 1)).view(2, S, ch, 2, 2)
        want = model.heads(xs, xo, S)["scores"]
    assert torch.allclose(out["scores"], want, atol=1e-6)
