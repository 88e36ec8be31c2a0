"""HTSC (htsc_core/models/htsc.py): one forward equals the parts computed separately, shapes, input checks."""
import numpy as np
import pytest
import torch

from htsc_core.fusion import awl_scores, hts_fusion
from htsc_core.models.cln import CollaborativeLearning
from htsc_core.models.htsc import HTSC, segment_features, video_scores
from htsc_core.models.motionnet import MotionNet
from htsc_core.models.temporal import HiddenTemporalStream, flow_to_cnn_input
from htsc_core.models.vgg import VGG16

M, L, SIZE = 4, 3, 32


def parts(seed: int = 0, width: float = 1 / 16):
    torch.manual_seed(seed)
    spatial = VGG16(M, 3, width, batch_norm=True, dropout=0.5).eval()
    temporal = HiddenTemporalStream(MotionNet(L, width), VGG16(M, 2 * (L - 1), width, batch_norm=True)).eval()
    cln = CollaborativeLearning(spatial.feature_dim, 8, M, rounds=2, dropout=0.3).eval()
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    return spatial, temporal, cln, W


@pytest.mark.parametrize("segments,crops", [(2, 1), (3, 2)])
def test_forward_equals_the_parts_composed(segments, crops):
    spatial, temporal, cln, W = parts()
    model = HTSC(spatial, temporal, cln, W)
    B, V = 2, segments * crops
    stack = torch.rand(B, V, L, 3, SIZE, SIZE)
    with torch.inference_mode():
        out = model(stack, segments)
        # the parts, by hand: centre frame -> spatial VGG16; MotionNet -> flow2 -> temporal VGG16
        flat = stack.reshape(B * V, L, 3, SIZE, SIZE)
        rgb = flat[:, L // 2]
        fs = spatial.features(rgb)
        ls = spatial.classifier_head(fs)
        x = flow_to_cnn_input(temporal.motion(flat)[-1], SIZE)
        fo = temporal.vgg.features(x)
        lo = temporal.vgg.classifier_head(fo)
        s = torch.softmax(ls, 1).reshape(B, V, M).mean(1).numpy()  # mean of the per-view softmax
        o = torch.softmax(lo, 1).reshape(B, V, M).mean(1).numpy()
        Fs = fs.reshape(B, segments, crops, -1).mean(2)  # (B, S, d), mean over crops
        Fo = fo.reshape(B, segments, crops, -1).mean(2)
        heads = cln(Fs, Fo)
        cs, co = torch.softmax(heads["logits_s"], 1).numpy(), torch.softmax(heads["logits_o"], 1).numpy()
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["spatial"].numpy(), s, **tol)
    np.testing.assert_allclose(out["temporal"].numpy(), o, **tol)
    np.testing.assert_allclose(out["hts"].numpy(), hts_fusion(s, o), **tol)
    np.testing.assert_allclose(out["cln_s"].numpy(), cs, **tol)
    np.testing.assert_allclose(out["cln_o"].numpy(), co, **tol)
    np.testing.assert_allclose(out["cln"].numpy(), hts_fusion(cs, co), **tol)
    np.testing.assert_allclose(out["htsc"].numpy(), awl_scores(W, cs, co), **tol)
    np.testing.assert_allclose(out["c_s"].numpy(), heads["c_s"].numpy(), **tol)
    for key in ("spatial", "temporal", "hts", "cln_s", "cln_o", "cln", "htsc"):
        assert out[key].shape == (B, M), key
    assert out["c_s"].shape == out["c_o"].shape == (B, segments)
    assert out["fc7_s"].shape == (B, segments, spatial.feature_dim)
    np.testing.assert_allclose(out["spatial"].sum(1).numpy(), 1.0, rtol=1e-5)


def test_hts_only_and_no_awl():
    spatial, temporal, cln, _ = parts()
    stack = torch.rand(1, 2, L, 3, SIZE, SIZE)
    with torch.inference_mode():
        hts = HTSC(spatial, temporal)(stack, 2)
        no_awl = HTSC(spatial, temporal, cln)(stack, 2)
        skipped = HTSC(spatial, temporal, cln)(stack, 2, with_cln=False)
    assert set(hts) == {"spatial", "temporal", "hts"} == set(skipped)
    assert "cln" in no_awl and "htsc" not in no_awl
    torch.testing.assert_close(hts["hts"], no_awl["hts"])


def test_timer_sees_every_step():
    spatial, temporal, cln, W = parts()
    seen = []

    class Timer:
        def __call__(self, name):
            seen.append(name)
            return torch.no_grad()

    with torch.inference_mode():
        HTSC(spatial, temporal, cln, W)(torch.rand(1, 2, L, 3, SIZE, SIZE), 2, timer=Timer())
    assert seen == ["input", "spatial_cnn", "motionnet", "flow_to_cnn", "temporal_cnn", "fusion", "cln", "awl"]


def test_consensus_helpers():
    logits = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [0.0, 0.0]])
    s = video_scores(logits, 2)
    np.testing.assert_allclose(s[0].numpy(), [(0.5 + 1 / (1 + np.exp(-10))) / 2, (0.5 + 1 / (1 + np.exp(10))) / 2],
                               rtol=1e-6)
    fc7 = torch.arange(12.0).view(4, 3)  # 1 video, 2 segments x 2 crops
    np.testing.assert_allclose(segment_features(fc7, 1, 2).numpy(), [[[1.5, 2.5, 3.5], [7.5, 8.5, 9.5]]])


def test_input_validation():
    spatial, temporal, cln, W = parts()
    model = HTSC(spatial, temporal, cln, W)
    with pytest.raises(ValueError, match="stack"):
        model(torch.rand(2, L, 3, SIZE, SIZE), 1)  # no view axis
    with pytest.raises(ValueError, match="L=3"):
        model(torch.rand(1, 2, L + 1, 3, SIZE, SIZE), 2)
    with pytest.raises(ValueError, match="multiple of segments"):
        model(torch.rand(1, 3, L, 3, SIZE, SIZE), 2)
    with pytest.raises(ValueError, match="awl_weights"):
        HTSC(spatial, temporal, cln, W[:2])
    with pytest.raises(ValueError, match="give a cln"):
        HTSC(spatial, temporal, None, W)
    with pytest.raises(ValueError, match="classes"):
        HTSC(VGG16(M + 1, 3, 1 / 16), temporal)
    with pytest.raises(ValueError, match="fc7 widths"):
        HTSC(VGG16(M, 3, 1 / 8), temporal)
    with pytest.raises(ValueError, match="RGB"):
        HTSC(VGG16(M, 4, 1 / 16), temporal)
    with pytest.raises(ValueError, match="CLN"):
        HTSC(spatial, temporal, CollaborativeLearning(spatial.feature_dim, 8, M + 1))
