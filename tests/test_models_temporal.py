"""Tests for htsc_core/models/temporal.py: flow -> CNN range (= the stored TV-L1 JPEG contract), end-to-end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from htsc_core.models.flow_losses import MotionNetLoss
from htsc_core.models.motionnet import FLOW_SCALES, MotionNet
from htsc_core.models.temporal import HiddenTemporalStream, flow_to_cnn_input
from htsc_core.models.vgg import VGG16


def storage_value(flow_px: np.ndarray) -> np.ndarray:
    """CONTRACTS.md stored TV-L1 flow, without the rounding: (clip(f, -20, 20) + 20) * 255 / 40, fed as - 128."""
    return (np.clip(flow_px, -20, 20) + 20) * 255.0 / 40.0 - 128.0


@pytest.mark.parametrize("px", [-35.0, -20.0, -7.3, 0.0, 0.4, 12.5, 20.0, 33.0])
def test_constant_flow_matches_storage_formula(px):
    # a constant input-pixel displacement px, expressed as MotionNet flow2 at half resolution:
    # flow2 * FLOW_SCALES[2] = px / 2 (pixels of the H/2 grid)
    flow2 = torch.full((1, 4, 16, 16), px / 2 / FLOW_SCALES[2], dtype=torch.float64)
    out = flow_to_cnn_input(flow2, 32)
    assert out.shape == (1, 4, 32, 32)
    np.testing.assert_allclose(out.numpy(), storage_value(np.full((1, 4, 32, 32), px)), rtol=0, atol=1e-9)


def test_range_and_per_axis_ratio():
    g = torch.Generator().manual_seed(0)
    flow2 = torch.randn(2, 6, 8, 12, generator=g) * 3
    out = flow_to_cnn_input(flow2, (16, 36))  # x grid ratio 3, y grid ratio 2
    assert out.shape == (2, 6, 16, 36)
    assert out.min() >= -128.0 and out.max() <= 127.0
    const = torch.zeros(1, 2, 8, 12)
    const[:, 0], const[:, 1] = 0.1, 0.1  # 1 px of the flow grid in x and y
    o = flow_to_cnn_input(const, (16, 36))
    assert o[0, 0].mean().item() == pytest.approx(storage_value(np.array(3.0)).item(), abs=1e-4)
    assert o[0, 1].mean().item() == pytest.approx(storage_value(np.array(2.0)).item(), abs=1e-4)
    # scale=1: flow already in pixels of its own grid
    assert flow_to_cnn_input(torch.full((1, 2, 8, 8), 4.0), 16, scale=1.0).mean().item() == pytest.approx(
        storage_value(np.array(8.0)).item(), abs=1e-4)
    with pytest.raises(ValueError, match="flow_to_cnn_input"):
        flow_to_cnn_input(torch.zeros(1, 3, 8, 8), 16)


def test_hidden_temporal_stream_end_to_end_backward():
    torch.manual_seed(0)
    L = 5
    model = HiddenTemporalStream(MotionNet(L, width=1 / 16), VGG16(4, in_channels=2 * (L - 1), width=1 / 16))
    stack = torch.rand(2, L, 3, 32, 32)
    out = model(stack)
    assert out["logits"].shape == (2, 4) and out["fc7"].shape == (2, model.vgg.feature_dim)
    assert len(out["flows"]) == 5 and out["flows"][-1].shape == (2, 8, 16, 16)
    flow_loss, _ = MotionNetLoss(ssim_weight_scale=0.1)(stack, out["flows"])
    loss = torch.nn.functional.cross_entropy(out["logits"], torch.tensor([1, 3])) + flow_loss
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # the classification loss alone reaches MotionNet through flow_to_cnn_input
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(stack)["logits"], torch.tensor([1, 3])).backward()
    assert model.motion.conv1[0].weight.grad.abs().sum() > 0


def test_channel_mismatch_rejected():
    with pytest.raises(ValueError, match="HiddenTemporalStream"):
        HiddenTemporalStream(MotionNet(5, 1 / 16), VGG16(4, in_channels=20, width=1 / 16))


def test_agrees_with_stored_tvl1_quantiser_to_rounding():
    from htsc_core.data.flow_storage import quantise_flow

    g = torch.Generator().manual_seed(1)
    px = torch.randn(24, 24, 2, generator=g, dtype=torch.float64) * 12  # (H, W, 2) input-pixel flow
    stored = quantise_flow(px.numpy()).astype(np.float64) - 128.0  # what the dataset feeds for TV-L1 flow
    ours = flow_to_cnn_input(px.permute(2, 0, 1)[None], 24, scale=1.0)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - stored).max() <= 0.5 + 1e-9
