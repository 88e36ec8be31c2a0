"""Hidden temporal stream: MotionNet flow -> VGG16 (paper section 3.1.2 end, 4.2.1).

"Before sending the estimated optical flow to the CNN ... we normalize it to a
range between 0 and 255" (3.1.2). The exact mapping is the Hidden Two-Stream
release's (docs/DESIGN.md section 2): flow2 x 20, clip to [-20, 20], (+20) x 6.375,
upsample x2, subtract 128. It equals the stored TV-L1 flow contract
(docs/CONTRACTS.md: JPEG value round((clip(f, -20, 20) + 20) * 255 / 40), fed as
value - 128) without the rounding, so temporal CNNs trained on TV-L1 flow and on
hidden flow see the same range.

Unit chain of :func:`flow_to_cnn_input`:
  flow2 (MotionNet unit)  x FLOW_SCALES[2] (= 10)  -> pixels of flow2's grid (H/2)
                          x out_size / flow2 size   -> pixels of the CNN input grid (x2 in the paper setting;
                                                       so flow2 x 20 in total, the release's factor)
  clip [-20, 20] -> (+20) x 255/40 (= 6.375) -> [0, 255] -> bilinear upsample to out_size -> -128.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from htsc_core.models.motionnet import FLOW_SCALES, MotionNet
from htsc_core.models.vgg import VGG16

FLOW_BOUND = 20.0  # denseflow / release bound (pixels)
CNN_OFFSET = 128.0  # stored JPEG value - 128 (docs/CONTRACTS.md, Dataset "flow")


def flow_to_cnn_input(flow2: torch.Tensor, out_size: int | tuple[int, int],
                      scale: float = FLOW_SCALES[2]) -> torch.Tensor:
    """MotionNet flow2 (N, 2(L-1), h, w) -> temporal-CNN input (N, 2(L-1), S, S) in [-128, 127].

    ``flow2 * scale`` must be pixels of flow2's own grid: the default ``scale`` converts MotionNet's unit;
    pass ``scale=1.0`` for a flow already in pixels at that resolution. Channels stay x0, y0, x1, y1, ...
    """
    if flow2.dim() != 4 or flow2.shape[1] % 2:
        raise ValueError(f"flow_to_cnn_input: expected flow (N, 2(L-1), h, w), got {tuple(flow2.shape)}")
    out_h, out_w = (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))
    if out_h < 1 or out_w < 1:
        raise ValueError(f"flow_to_cnn_input: out_size={out_size} must be positive")
    h, w = flow2.shape[-2:]
    flow2 = flow2.float() if flow2.dtype in (torch.float16, torch.bfloat16) else flow2  # bf16: 1-2 levels of 255
    ratio = torch.tensor([out_w / w, out_h / h], dtype=flow2.dtype, device=flow2.device)
    px = flow2 * scale * ratio.repeat(flow2.shape[1] // 2).view(1, -1, 1, 1)  # pixels of the CNN input grid
    value = (px.clamp(-FLOW_BOUND, FLOW_BOUND) + FLOW_BOUND) * (255.0 / (2 * FLOW_BOUND))  # [0, 255]
    if (h, w) != (out_h, out_w):
        # Release order: map to [0, 255] first, then upsample (bilinear keeps the values in range).
        value = F.interpolate(value, size=(out_h, out_w), mode="bilinear", align_corners=False)
    return value - CNN_OFFSET


class HiddenTemporalStream(nn.Module):
    """MotionNet stacked on a flow VGG16 (Hidden Two-Stream, end-to-end).

    ``forward(stack (N, L, 3, H, W) in [0, 1]) -> dict(logits (N, M), fc7 (N, d), flows [flow6 .. flow2])``;
    the trainer adds ``MotionNetLoss()(stack, out["flows"])`` to the cross-entropy.
    """

    def __init__(self, motion: MotionNet, vgg: VGG16) -> None:
        super().__init__()
        if vgg.in_channels != 2 * motion.num_flows:
            raise ValueError(f"HiddenTemporalStream: VGG16 takes {vgg.in_channels} channels, MotionNet gives "
                             f"{2 * motion.num_flows} (2 x (L-1))")
        self.motion = motion
        self.vgg = vgg

    def forward(self, stack: torch.Tensor, timer: Callable[[str], AbstractContextManager] | None = None
                ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        step = timer or (lambda name: nullcontext())  # the Table 5 benchmark times each step
        with step("motionnet"):
            flows = self.motion(stack)
        with step("flow_to_cnn"):
            x = flow_to_cnn_input(flows[-1], tuple(stack.shape[-2:]))  # (N, 2(L-1), H, W)
            conv1 = self.vgg.conv1.weight
            if not conv1.is_contiguous() and conv1.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)  # the VGG16's layout (channels_last on GPUs)
        with step("temporal_cnn"):
            fc7 = self.vgg.features(x)
            logits = self.vgg.classifier_head(fc7)
        return {"logits": logits, "fc7": fc7, "flows": flows}
