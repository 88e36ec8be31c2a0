"""The frames of each MotionNet loss scale (Eq. 6's pyramid): the release's ``Downsample`` layer or 2 x 2 area means.

Split from :mod:`htsc_core.models.flow_losses` (which uses it and re-exports :func:`release_downsample`): how the
frames reach each scale is one decision, the losses at a scale another. The choice between the two is measured in
docs/SYNTHETIC.md section 7.
"""
from __future__ import annotations

import functools

import torch


PYRAMIDS = ("area", "release")


@functools.lru_cache(maxsize=64)
def _downsample_weights(size: int, out: int, dtype, device) -> torch.Tensor:
    """(size, out) matrix: column o = the release's ``Downsample`` layer weights for output pixel o.

    FlowNet's Caffe ``Downsample`` (the release's ``WarpDownsampleK`` layers, each straight from the
    full-size normalised frame): output o sits at input position c = o (size - 1) / (out - 1) (corners
    aligned) and averages the input with a tent of radius r = (size - 1) / (out - 1),
    max(0, 1 - |x - c| / r), over the in-frame pixels, renormalised to sum 1. The layer divides by out - 1,
    so it has no 1-pixel output (grids that small occur only in the tiny test profiles): there the column is
    the mean of the input, as the area pyramid's.
    """
    if out < 1 or out > size:
        raise ValueError(f"release downsampling: output size {out} must be in [1, {size}]")
    if out == 1:
        return torch.full((size, 1), 1.0 / size, dtype=dtype, device=device)
    r = (size - 1) / (out - 1)
    with torch.inference_mode(False):
        x = torch.arange(size, dtype=torch.float64)[:, None]
        c = torch.arange(out, dtype=torch.float64)[None, :] * r
        w = (1 - (x - c).abs() / r).clamp(min=0)
        return (w / w.sum(0, keepdim=True)).to(dtype=dtype, device=device)


def release_downsample(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., H, W) -> (..., h, w) by the release's ``Downsample`` layer (:func:`_downsample_weights`)."""
    rows = _downsample_weights(frames.shape[-2], int(size[0]), frames.dtype, frames.device)
    cols = _downsample_weights(frames.shape[-1], int(size[1]), frames.dtype, frames.device)
    return rows.t() @ frames @ cols


def _halve(frames: torch.Tensor) -> torch.Tensor:
    """Area downsampling by exactly 2: the mean of each 2x2 block (= ``F.interpolate(mode="area")``), as two
    strided sums: ten times faster on CPU than ``avg_pool2d`` or the area interpolation."""
    rows = frames[..., 0::2, :] + frames[..., 1::2, :]
    return (rows[..., 0::2] + rows[..., 1::2]) * 0.25
