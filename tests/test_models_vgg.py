"""Tests for htsc_core/models/vgg.py: Table 1 shapes, torchvision parity, cross-modality init, no downloads."""
from __future__ import annotations

import os

import pytest
import torch
import torchvision

from htsc_core.config import from_params
from htsc_core.models import vgg as vgg_mod
from htsc_core.models.vgg import (FLOW_INPUT_DIVISOR, IMAGENET_MEAN, IMAGENET_STD, VGG16, build_vgg16,
                                  cross_modality_init, from_torchvision_state_dict)


@pytest.fixture(scope="module")
def width1_pair():
    """A torchvision vgg16 (random init, nothing downloaded) and our width-1 VGG16 holding its weights."""
    torch.manual_seed(0)
    tv = torchvision.models.vgg16(weights=None, num_classes=7).eval()
    ours = VGG16(7).eval()
    ours.load_state_dict(from_torchvision_state_dict(tv.state_dict()))
    return tv, ours


def test_width1_matches_torchvision_forward(width1_pair):
    tv, ours = width1_pair
    x = torch.rand(2, 3, 32, 32)
    norm = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(norm), rtol=1e-4, atol=1e-5)
        fc7 = ours.features(x)
    assert fc7.shape == (2, 4096) and ours.feature_dim == 4096
    assert (fc7 >= 0).all()  # after ReLU


def test_state_dict_shapes_match_torchvision_bn():
    with torch.device("meta"):
        tv = torchvision.models.vgg16_bn()
        ours = VGG16(1000, batch_norm=True)
    want = {k: tuple(v.shape) for k, v in from_torchvision_state_dict(tv.state_dict()).items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert got == want


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("size", [32, 64])
def test_width_one_sixteenth_shapes(batch_norm, size):
    torch.manual_seed(0)
    m = VGG16(5, in_channels=3, width=1 / 16, batch_norm=batch_norm)
    x = torch.rand(3, 3, size, size)
    assert m.feature_dim == 256
    assert m.features(x).shape == (3, 256)
    assert m(x).shape == (3, 5)
    convs = [layer.out_channels for layer in m.body if isinstance(layer, torch.nn.Conv2d)]
    assert convs == [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]  # Table 1 / 16, 13 convs
    assert sum(isinstance(layer, torch.nn.MaxPool2d) for layer in m.body) == 5


def test_head_is_dropout_plus_fc8():
    m = VGG16(4, width=1 / 16, dropout=0.5).eval()
    fc7 = torch.rand(2, 256)
    torch.testing.assert_close(m.classifier_head(fc7), m.fc8(fc7))  # eval: dropout is identity
    with pytest.raises(ValueError, match="classifier_head"):
        m.classifier_head(torch.rand(2, 255))


def test_flow_input_scaling_equals_rescaled_conv1():
    torch.manual_seed(0)
    m = VGG16(3, in_channels=20, width=1 / 16).eval()
    x = torch.rand(2, 20, 32, 32) * 255 - 128
    ref = VGG16(3, in_channels=20, width=1 / 16).eval()
    ref.load_state_dict(m.state_dict())
    with torch.no_grad():
        ref.conv1.weight /= FLOW_INPUT_DIVISOR
        out_ref = ref.classifier_head(ref.classifier[:5](torch.flatten(ref.avgpool(ref.body(x)), 1)))
        torch.testing.assert_close(m(x), out_ref, rtol=1e-4, atol=1e-5)
    assert FLOW_INPUT_DIVISOR == pytest.approx(57.63, abs=0.01)


def test_input_validation():
    m = VGG16(3, width=1 / 16)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        m(torch.rand(1, 20, 32, 32))
    with pytest.raises(ValueError, match="below 32"):
        m(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="width"):
        VGG16(3, width=0)


@pytest.mark.parametrize("classes", [5, 9])
def test_cross_modality_init(classes):
    torch.manual_seed(0)
    rgb = VGG16(5, width=1 / 16, batch_norm=True)
    flow = VGG16(classes, in_channels=20, width=1 / 16, batch_norm=True)
    fc8_before = flow.fc8.weight.clone()
    cross_modality_init(flow, rgb)
    expected = rgb.conv1.weight.mean(dim=1, keepdim=True).expand(-1, 20, -1, -1)
    torch.testing.assert_close(flow.conv1.weight, expected)
    torch.testing.assert_close(flow.conv1.bias, rgb.conv1.bias)
    rs, fs = rgb.state_dict(), flow.state_dict()
    for k in rs:
        if k != "body.0.weight" and not k.startswith("classifier.6."):
            torch.testing.assert_close(fs[k], rs[k], msg=k)
    if classes == 5:
        torch.testing.assert_close(flow.fc8.weight, rgb.fc8.weight)
    else:
        torch.testing.assert_close(flow.fc8.weight, fc8_before)  # different class count: kept
    with pytest.raises(ValueError, match="width"):
        cross_modality_init(VGG16(5, in_channels=20, width=1 / 8), rgb)


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """An empty hub dir, any download attempt raises, and the log-once flag is reset."""
    def boom(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)
    monkeypatch.setattr(torch.hub, "load", boom)
    return tmp_path


def test_pretrained_absent_raises_and_never_downloads(no_download):
    """No silent from-scratch training (issue 25): absent weights, or a width they do not exist for, raise."""
    cfg = from_params(profile="paper", pretrained=True)
    with pytest.raises(vgg_mod.MissingPretrainedWeights, match="vgg16-397923af.pth") as err:
        build_vgg16(cfg, num_classes=4, in_channels=3)
    assert str(no_download) in str(err.value) and "pretrained=false" in str(err.value)
    with pytest.raises(vgg_mod.MissingPretrainedWeights, match="vgg_width=0.0625"):
        build_vgg16(cfg.replace(vgg_width=1 / 16), num_classes=4, in_channels=20)
    small = build_vgg16(cfg.replace(vgg_width=1 / 16), num_classes=4, in_channels=20, imagenet=False)
    assert small.in_channels == 20  # trained weights will replace them: no look-up


def test_pretrained_cached_file_is_loaded(no_download, monkeypatch, width1_pair):
    tv, _ = width1_pair
    path = no_download / "checkpoints" / "vgg16-397923af.pth"
    path.parent.mkdir()
    path.write_bytes(b"")  # presence is what build_vgg16 checks; torch.load is replaced below
    assert vgg_mod.imagenet_weights_path(False) == str(path)
    loaded = []

    def fake_load(p, **kwargs):
        loaded.append(os.fspath(p))
        assert kwargs.get("weights_only") is True
        return tv.state_dict()

    monkeypatch.setattr(torch, "load", fake_load)
    cfg = from_params(profile="paper", pretrained=True)
    m = build_vgg16(cfg, num_classes=3, in_channels=20)
    assert loaded == [str(path)]
    tvs = tv.state_dict()
    torch.testing.assert_close(m.conv1.weight, tvs["features.0.weight"].mean(1, keepdim=True).expand(-1, 20, -1, -1))
    torch.testing.assert_close(m.state_dict()["body.28.weight"], tvs["features.28.weight"])
    torch.testing.assert_close(m.state_dict()["classifier.3.weight"], tvs["classifier.3.weight"])
    assert m.fc8.weight.shape == (3, 4096)  # 7-class fc8 of the file not copied


def test_pretrained_false_builds_from_config():
    cfg = from_params(profile="smoke")
    m = build_vgg16(cfg.replace(pretrained=False), num_classes=6, in_channels=3)
    assert (m.width, m.batch_norm, m.classifier[2].p) == (cfg.vgg_width, cfg.vgg_batch_norm, cfg.dropout)
