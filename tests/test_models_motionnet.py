"""Tests for htsc_core/models/motionnet.py: Table 2 layer by layer, widths, determinism, validation."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from htsc_core.config import from_params
from htsc_core.models.motionnet import MotionNet, build_motionnet, flow_resolution

# Table 2 (paper section 4.2.1), 224 px input, L = 11: layer -> (input channels, output (C, H, W)).
TABLE2 = {
    "conv1": (33, (64, 224, 224)), "conv1_1": (64, (64, 224, 224)),
    "conv2": (64, (128, 112, 112)), "conv2_1": (128, (128, 112, 112)),
    "conv3": (128, (256, 56, 56)), "conv3_1": (256, (256, 56, 56)),
    "conv4": (256, (512, 28, 28)), "conv4_1": (512, (512, 28, 28)),
    "conv5": (512, (512, 14, 14)), "conv5_1": (512, (512, 14, 14)),
    "conv6": (512, (1024, 7, 7)), "conv6_1": (1024, (1024, 7, 7)),
    "flow6": (1024, (20, 7, 7)),
    "deconv5": (1024, (512, 14, 14)), "xconv5": (1044, (512, 14, 14)), "flow5": (512, (20, 14, 14)),
    "deconv4": (512, (256, 28, 28)), "xconv4": (788, (256, 28, 28)), "flow4": (256, (20, 28, 28)),
    "deconv3": (256, (128, 56, 56)), "xconv3": (404, (128, 56, 56)), "flow3": (128, (20, 56, 56)),
    "deconv2": (128, (64, 112, 112)), "xconv2": (212, (64, 112, 112)), "flow2": (64, (20, 112, 112)),
}


def test_table2_walk_at_224_width_1():
    # Shapes only: the width-1.0 network is built and run on the meta device (no memory, no compute).
    with torch.device("meta"):
        net = MotionNet(num_frames=11, width=1.0)
        stack = torch.empty(1, 11, 3, 224, 224)
    seen: dict[str, tuple[int, tuple[int, ...]]] = {}

    def hook(name):
        def fn(module, inputs, output):
            seen[name] = (inputs[0].shape[1], tuple(output.shape[1:]))
        return fn

    for name in TABLE2:
        getattr(net, name).register_forward_hook(hook(name))
    flows = net(stack)
    assert seen == TABLE2
    assert [tuple(f.shape) for f in flows] == [(1, 20, s, s) for s in (7, 14, 28, 56, 112)]
    # the learned flow upsampling (release "upsample_flow6to5" ..): 20 -> 20 channels, x2
    assert net.upflow6to5.weight.shape == (20, 20, 4, 4) and net.upflow6to5.stride == (2, 2)
    assert all(isinstance(getattr(net, n), nn.Sequential) and isinstance(getattr(net, n)[1], nn.LeakyReLU)
               and getattr(net, n)[1].negative_slope == 0.1 for n in TABLE2 if n.startswith(("conv", "deconv")))


@pytest.mark.parametrize("L,width,size", [(5, 1 / 16, 32), (3, 0.125, 64), (11, 1 / 16, 64)])
def test_output_shapes_small(L, width, size):
    torch.manual_seed(0)
    net = MotionNet(num_frames=L, width=width)
    flows = net(torch.rand(2, L, 3, size, size))
    assert len(flows) == 5
    for s, f in zip((6, 5, 4, 3, 2), flows):
        assert tuple(f.shape) == (2, 2 * (L - 1), *flow_resolution((size, size), s))
        assert torch.isfinite(f).all()
    assert net.conv1[0].out_channels == max(1, round(64 * width))


def test_deterministic_with_seed_and_initial_flow_small():
    stack = torch.rand(1, 5, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(MotionNet(5, 0.25)(stack))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    # flow heads start 10x below He init: initial full-resolution flow (x20 px) stays within a few px
    assert (outs[0][-1] * 20).abs().mean().item() < 5.0


def test_build_from_config_and_validation():
    cfg = from_params(profile="smoke")
    net = build_motionnet(cfg)
    assert net.num_frames == cfg.stack_length and net.width == cfg.motion_width
    with pytest.raises(ValueError, match="multiple of 32"):
        net(torch.rand(1, cfg.stack_length, 3, 48, 48))
    with pytest.raises(ValueError, match="expected stack"):
        net(torch.rand(1, cfg.stack_length + 1, 3, 32, 32))
    with pytest.raises(ValueError, match="num_frames"):
        MotionNet(num_frames=1)
