"""A 3D convolution that keeps its weight gradient right under bf16 autocast on the CPU.

Measured with torch 2.14.1 on CPUs with native bf16 (AVX512-BF16): under CPU bf16 autocast, ``nn.Conv3d``
with a 3x3x3 kernel and padding 1 returns a **wrong weight gradient when the input's temporal extent is 2** and
it has 64 channels or more: its largest error was 3x to 1e36 times the largest true gradient, in one input
channel, and it varied with what the process had allocated before (it looks like a read of memory the kernel
does not own). Extents 1, 3, 4 and 8, and the input gradient, agree with fp32 to bf16's rounding (0.3-0.5 %).
C3D meets that extent at conv5a/5b (a 16-frame clip pooled four times), the conv fusion's 3D convolution with
two segments; the paper-profile dry run trained C3D's conv5a into values of 1e26-1e30 (NaN loss at validation)
once TV-L1 extraction had run in the same kernel. docs/MEASUREMENTS.md (2026-12-07) has the raw layer's table;
``tests/test_conv3d_precision.py`` checks this one against fp32 (and fails on such a CPU without it).

So a CPU convolution whose input has a temporal extent of 2 runs outside autocast, in fp32 (a few small late
layers; every other 3D convolution keeps bf16). On CUDA nothing changes.
"""
from __future__ import annotations

import torch
import torch.nn as nn

BROKEN_CPU_BF16_EXTENTS = (2,)  # temporal extents whose bf16 weight gradient oneDNN gets wrong (measured above)


def cpu_bf16_unsafe(x: torch.Tensor) -> bool:
    """Would a bf16 CPU autocast convolution of ``x`` (N, C, T, H, W) hit the wrong-weight-gradient case?"""
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and x.shape[2] in BROKEN_CPU_BF16_EXTENTS)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters and state-dict names) that runs in fp32 where CPU bf16 is wrong."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if cpu_bf16_unsafe(x):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)
