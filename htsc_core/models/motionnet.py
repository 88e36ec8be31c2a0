"""MotionNet: the unsupervised flow network of the hidden temporal stream (paper 3.1.2, 4.2.1, Table 2).

L frames stacked on channels (224x224x33 for L = 11) -> an encoder of 3x3 convs
(conv1 .. conv6_1, five stride-2 steps) -> a decoder that predicts 2(L-1) flow
channels at five scales, flow6 (H/32) .. flow2 (H/2). Layer names follow
Table 2 and the Hidden Two-Stream release (Zhu et al. 2018,
``models/multiframe_MotionNet/train.prototxt``).

Flow unit (the release's): every ``flowK`` is in units of 20 input-resolution
pixels, i.e. ``flowK * FLOW_SCALES[K]`` is the displacement in pixels of
flowK's own grid (H / 2^(K-1)), and ``flowK * 20`` in input pixels, at every
scale. Channels are x0, y0, x1, y1, ...: (dx, dy) of pair i (frame i -> i+1),
backward-warp convention frame_i(p) ~= frame_{i+1}(p + flow_i(p)).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Release (train.prototxt "FlowScale6..2" Scale layers): flowK * FLOW_SCALES[K] = pixels at flowK's resolution.
FLOW_SCALES: dict[int, float] = {6: 0.625, 5: 1.25, 4: 2.5, 3: 5.0, 2: 10.0}
SCALES = (6, 5, 4, 3, 2)  # order of MotionNet.forward's list, coarse to fine
# Release: the frames are mean-subtracted with (104, 117, 123) BGR / 255 before conv1 (mean_value in the data layer).
INPUT_MEAN_RGB = (123.0 / 255.0, 117.0 / 255.0, 104.0 / 255.0)
# Table 2 channel widths at width 1.0.
_ENC = {"conv1": 64, "conv2": 128, "conv3": 256, "conv4": 512, "conv5": 512, "conv6": 1024}
_DEC = {5: 512, 4: 256, 3: 128, 2: 64}


def flow_resolution(input_size: tuple[int, int], scale: int) -> tuple[int, int]:
    """(h, w) of flow ``scale`` (6..2) for an input of ``input_size`` (Table 2: 224 -> 7, 14, 28, 56, 112)."""
    f = 2 ** (scale - 1)
    return input_size[0] // f, input_size[1] // f


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _conv(c_in: int, c_out: int, stride: int = 1, act: bool = True) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1)
    return nn.Sequential(conv, nn.LeakyReLU(0.1, inplace=True)) if act else conv


class MotionNet(nn.Module):
    """Table 2. ``forward(stack (N, L, 3, H, W) in [0, 1]) -> [flow6, flow5, flow4, flow3, flow2]``."""

    def __init__(self, num_frames: int = 11, width: float = 1.0) -> None:
        super().__init__()
        if num_frames < 2:
            raise ValueError(f"MotionNet: num_frames={num_frames} must be >= 2")
        if not width > 0:
            raise ValueError(f"MotionNet: width={width} must be > 0")
        self.num_frames = num_frames
        self.num_flows = num_frames - 1
        self.width = float(width)
        nf = 2 * self.num_flows  # 20 flow channels for L = 11
        c = {k: _scaled(v, width) for k, v in _ENC.items()}
        d = {k: _scaled(v, width) for k, v in _DEC.items()}

        # Encoder (Table 2): 3x3 convs, LeakyReLU(0.1) (release: ReLU with negative_slope 0.1).
        self.conv1 = _conv(3 * num_frames, c["conv1"])
        self.conv1_1 = _conv(c["conv1"], c["conv1"])
        self.conv2 = _conv(c["conv1"], c["conv2"], stride=2)
        self.conv2_1 = _conv(c["conv2"], c["conv2"])
        self.conv3 = _conv(c["conv2"], c["conv3"], stride=2)
        self.conv3_1 = _conv(c["conv3"], c["conv3"])
        self.conv4 = _conv(c["conv3"], c["conv4"], stride=2)
        self.conv4_1 = _conv(c["conv4"], c["conv4"])
        self.conv5 = _conv(c["conv4"], c["conv5"], stride=2)
        self.conv5_1 = _conv(c["conv5"], c["conv5"])
        self.conv6 = _conv(c["conv5"], c["conv6"], stride=2)
        self.conv6_1 = _conv(c["conv6"], c["conv6"])
        self.flow6 = _conv(c["conv6"], nf, act=False)

        # Decoder, scale k = 5..2: deconvK (4x4 s2) + LeakyReLU; concat(conv_k_1, deconvK, upsampled flow_{k+1});
        # xconvK (3x3); flowK (3x3 to 2(L-1)). Table 2 inputs: 1044 / 788 / 404 / 212 channels at width 1.
        skip = {5: c["conv5"], 4: c["conv4"], 3: c["conv3"], 2: c["conv2"]}
        prev = c["conv6"]
        for k in (5, 4, 3, 2):
            setattr(self, f"deconv{k}", nn.Sequential(
                nn.ConvTranspose2d(prev, d[k], kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True)))
            # Release: the coarser flow is upsampled by a learned 4x4 stride-2 deconvolution ("upsample_flowXtoY").
            setattr(self, f"upflow{k + 1}to{k}", nn.ConvTranspose2d(nf, nf, kernel_size=4, stride=2, padding=1))
            # Release: xconv ("smooth_conv") has no activation; it feeds deconv and the flow predictor directly.
            setattr(self, f"xconv{k}", _conv(skip[k] + d[k] + nf, d[k], act=False))
            setattr(self, f"flow{k}", _conv(d[k], nf, act=False))
            prev = d[k]
        self.register_buffer("input_mean", torch.tensor(INPUT_MEAN_RGB).view(1, 1, 3, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # Release: "msra" (He, fan-in) weights, zero bias.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        # Departure from the release: flow predictors start 10x smaller, so the initial flow is a few pixels
        # rather than tens (1 unit = 20 px); this keeps short CPU trainings from starting far out of range.
        for k in SCALES:
            self.flow_head(k).weight.data.mul_(0.1)

    def flow_head(self, scale: int) -> nn.Conv2d:
        return getattr(self, f"flow{scale}")

    def forward(self, stack: torch.Tensor) -> list[torch.Tensor]:
        if stack.dim() != 5 or stack.shape[1] != self.num_frames or stack.shape[2] != 3:
            raise ValueError(f"MotionNet: expected stack (N, {self.num_frames}, 3, H, W), got {tuple(stack.shape)}")
        n, L, _, h, w = stack.shape
        if h % 32 or w % 32:
            raise ValueError(f"MotionNet: input {h}x{w} must be a multiple of 32 (five stride-2 steps)")
        x = (stack - self.input_mean).reshape(n, 3 * L, h, w)  # (N, 3L, H, W), frame-major RGB
        if self.conv1[0].weight.is_contiguous(memory_format=torch.channels_last):
            # channels_last convs (the precision policy on CPU and CUDA): cast to autocast's dtype, then transpose
            # the half-size copy to conv1's layout once, rather than autocast's cast plus conv1's own transpose
            # (and a second one for its weight gradient): `htsc bench train --stages motion` measured 67 against
            # 78-80 ms per bf16 step without it (docs/SYNTHETIC.md section 6)
            dev = x.device.type
            dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
            x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        c1 = self.conv1_1(self.conv1(x))
        c2 = self.conv2_1(self.conv2(c1))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        flow = self.flow6(c6)  # (N, 2(L-1), H/32, W/32)
        flows = [flow]
        feat = c6
        for k, skip in ((5, c5), (4, c4), (3, c3), (2, c2)):
            up = getattr(self, f"deconv{k}")(feat)
            up_flow = getattr(self, f"upflow{k + 1}to{k}")(flow)
            # Release concat order: conv_k_1, deconv_k, upsampled flow.
            feat = getattr(self, f"xconv{k}")(torch.cat([skip, up, up_flow], dim=1))
            flow = self.flow_head(k)(feat)  # (N, 2(L-1), H/2^(k-1), W/2^(k-1))
            flows.append(flow)
        return flows


def flow_in_pixels(flows: list[torch.Tensor] | torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """flow2 (or the list, whose last entry is flow2) -> input-resolution pixel flow (N, 2(L-1), H, W).

    flow2 * FLOW_SCALES[2] is in pixels of flow2's grid; it is upsampled bilinearly to ``input_size``
    and each component multiplied by the grid ratio (x by W / w, y by H / h). Channels stay x0, y0, x1, ...
    """
    flow2 = flows[-1] if isinstance(flows, (list, tuple)) else flows
    if flow2.dim() != 4 or flow2.shape[1] % 2:
        raise ValueError(f"flow_in_pixels: expected flow (N, 2(L-1), h, w), got {tuple(flow2.shape)}")
    H, W = int(input_size[0]), int(input_size[1])
    h, w = flow2.shape[-2:]
    px = flow2 * FLOW_SCALES[2]
    up = F.interpolate(px, size=(H, W), mode="bilinear", align_corners=False)
    ratio = torch.tensor([W / w, H / h], dtype=up.dtype, device=up.device).repeat(flow2.shape[1] // 2)
    return up * ratio.view(1, -1, 1, 1)


def build_motionnet(cfg) -> MotionNet:
    """MotionNet(num_frames=cfg.stack_length, width=cfg.motion_width)."""
    return MotionNet(num_frames=cfg.stack_length, width=cfg.motion_width)
