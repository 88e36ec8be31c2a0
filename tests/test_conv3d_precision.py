"""The 3D convolutions' weight gradients under CPU bf16 autocast against fp32 (htsc_core/models/conv3d.py).

torch 2.14.1's CPU bf16 Conv3d gets the weight gradient wrong for a temporal extent of 2 (measured: 3x to
1e36 times the largest true gradient on AVX512-BF16 CPUs). These tests fail there without the workaround; on a
CPU without native bf16 the emulated path is checked the same way.
"""
from __future__ import annotations

import pytest
import torch

from htsc_core.models.c3d import C3D
from htsc_core.models.conv3d import Conv3d, cpu_bf16_unsafe

BF16_REL = 0.02  # bf16 keeps 8 bits of mantissa: one layer's gradient is off by well under 1 % of its largest entry


def weight_grad(conv: torch.nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    conv.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = conv(x)
    # a fixed, non-uniform upstream gradient, so every tap and channel gets its own value
    (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return conv.weight.grad.clone()


@pytest.mark.parametrize("extent", [1, 2, 3, 4])
def test_conv3d_weight_gradient_under_bf16_matches_fp32(extent):
    torch.manual_seed(0)
    conv = Conv3d(64, 64, kernel_size=3, padding=1)
    x = torch.randn(1, 64, extent, 4, 4).bfloat16().float()  # representable in bf16: only the kernel's rounding differs
    ref, got = weight_grad(conv, x, False), weight_grad(conv, x, True)
    assert torch.isfinite(got).all()
    assert (got - ref).abs().max() / ref.abs().max() < BF16_REL


def test_only_the_broken_extent_leaves_autocast():
    x2, x3 = torch.zeros(1, 4, 2, 4, 4), torch.zeros(1, 4, 3, 4, 4)
    assert not cpu_bf16_unsafe(x2)  # no autocast: nothing to avoid
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cpu_bf16_unsafe(x2) and not cpu_bf16_unsafe(x3)
        conv = Conv3d(4, 4, kernel_size=3, padding=1)
        assert conv(x2).dtype == torch.float32 and conv(x3).dtype == torch.bfloat16


def test_c3d_conv5_gradients_under_bf16_stay_on_the_fp32_scale():
    """A 16-frame clip reaches conv5a/5b with a temporal extent of 2 (four 2x2x2 pools): the case that trained the
    paper-profile dry run's conv5a into 1e26-1e30. Width 0.125 gives conv5 64 channels, the broken kernel's size."""
    torch.manual_seed(0)
    model = C3D(3, width=0.125, dropout=0.0)
    clip = torch.rand(2, 16, 3, 32, 32)

    def grads(bf16: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(clip)
        torch.nn.functional.cross_entropy(logits.float(), torch.tensor([0, 2])).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.dim() == 5}

    ref, got = grads(False), grads(True)
    for name in ("blocks.4.0.weight", "blocks.4.2.weight"):  # conv5a, conv5b
        assert torch.isfinite(got[name]).all(), name
        assert got[name].abs().max() < 2 * ref[name].abs().max(), name
        cosine = torch.nn.functional.cosine_similarity(got[name].flatten(), ref[name].flatten(), dim=0)
        assert cosine > 0.95, (name, float(cosine))
