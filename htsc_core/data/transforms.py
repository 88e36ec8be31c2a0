"""TSN-style crops and flips on uint8 frames (Wang et al. 2016, section 4; paper section 4.2).

Training: multi-scale corner cropping (crop side = short side x {1, .875, .75, .66},
width/height scales at most one step apart, position one of the 4 corners or the
centre), resize to ``image_size``, horizontal flip with probability 1/2. One crop
and flip per video, shared by every frame of every segment (TSN GroupMultiScaleCrop).
Testing: centre crop, 5 crops (4 corners + centre) or 10 crops (the 5 plus their
flips; TSN GroupOverSample). Arrays are numpy uint8 (N, H, W, C) processed with
OpenCV; ``rgb_to_tensor``/``flow_to_tensor`` convert to float tensors at the end.

Flipping flow: a mirrored x-flow changes sign, so for stored flow the x channels
are negated after subtracting 128 (docs/DESIGN.md section 3: flow in the CNN range).
RGB differences (``rgb_difference``) are taken after the crop and flip, which are the
same for the D frames of a window, so a mirrored window gives the mirrored differences.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

TRAIN_SCALES = (1.0, 0.875, 0.75, 0.66)  # TSN GroupMultiScaleCrop scales
Box = tuple[int, int, int, int]  # (y0, x0, height, width)


def _positions(h: int, w: int, ch: int, cw: int) -> list[tuple[int, int]]:
    """(y0, x0) of the 4 corners + centre, TSN fill_fix_offset order: UL, UR, LL, LR, C."""
    dy, dx = h - ch, w - cw
    return [(0, 0), (0, dx), (dy, 0), (dy, dx), (dy // 2, dx // 2)]


def multiscale_crop_box(height: int, width: int, image_size: int, rng: np.random.Generator,
                        scales: tuple[float, ...] = TRAIN_SCALES, max_distort: int = 1) -> Box:
    """TSN GroupMultiScaleCrop: random (height, width) from scaled short sides, random corner/centre."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    # TSN snaps sizes within 3 px of the input size to it.
    sizes = [image_size if abs(s - image_size) < 3 else s for s in sizes]
    sizes = [max(1, min(s, base)) for s in sizes]
    pairs = [(sizes[i], sizes[j]) for i in range(len(sizes)) for j in range(len(sizes)) if abs(i - j) <= max_distort]
    ch, cw = pairs[int(rng.integers(len(pairs)))]
    y0, x0 = _positions(height, width, ch, cw)[int(rng.integers(5))]
    return (y0, x0, ch, cw)


def centre_box(height: int, width: int, size: int) -> Box:
    if size > min(height, width):
        raise ValueError(f"crop {size} larger than frame {height}x{width}")
    return ((height - size) // 2, (width - size) // 2, size, size)


def five_crop_boxes(height: int, width: int, size: int) -> list[Box]:
    """Upper-left, upper-right, lower-left, lower-right, centre (TSN GroupOverSample order)."""
    if size > min(height, width):
        raise ValueError(f"crop {size} larger than frame {height}x{width}")
    return [(y, x, size, size) for y, x in _positions(height, width, size, size)]


def test_crop_specs(height: int, width: int, size: int, crops: int) -> list[tuple[Box, bool]]:
    """(box, flip) per test view: 1 = centre; 5 = corners + centre; 10 = those 5 then their flips."""
    if crops == 1:
        return [(centre_box(height, width, size), False)]
    boxes = five_crop_boxes(height, width, size)
    if crops == 5:
        return [(b, False) for b in boxes]
    if crops == 10:
        return [(b, False) for b in boxes] + [(b, True) for b in boxes]
    raise ValueError(f"crops={crops}; expected 1, 5 or 10")


def ensure_min_side(frames: np.ndarray, size: int) -> np.ndarray:
    """Upscale (N, H, W, C) frames whose short side is below ``size`` so a size x size crop fits."""
    h, w = frames.shape[1:3]
    if min(h, w) >= size:
        return frames
    nh, nw = (size, max(size, int(round(w * size / h)))) if h <= w else (max(size, int(round(h * size / w))), size)
    return resize_frames(frames, nh, nw)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (N, H, W, C) uint8 frames (any C; cv2 handles up to 4 channels at once)."""
    n, h, w, c = frames.shape
    if (h, w) == (height, width):
        return frames
    out = np.empty((n, height, width, c), dtype=frames.dtype)
    for i in range(n):
        for c0 in range(0, c, 4):
            part = np.ascontiguousarray(frames[i, :, :, c0:c0 + 4])
            res = cv2.resize(part, (width, height), interpolation=cv2.INTER_LINEAR)
            out[i, :, :, c0:c0 + 4] = res.reshape(height, width, -1)
    return out


def crop_resize(frames: np.ndarray, box: Box, out_size: int, flip: bool = False) -> np.ndarray:
    """Crop ``box`` from (N, H, W, C) uint8 frames, resize to out_size x out_size, optionally mirror."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be (N, H, W, C), got shape {frames.shape}")
    y0, x0, ch, cw = box
    h, w = frames.shape[1:3]
    if y0 < 0 or x0 < 0 or y0 + ch > h or x0 + cw > w:
        raise ValueError(f"crop box {box} outside frame {h}x{w}")
    out = resize_frames(frames[:, y0:y0 + ch, x0:x0 + cw], out_size, out_size)
    if flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def rgb_to_tensor(frames: np.ndarray, keep_uint8: bool = False) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1]; with ``keep_uint8`` the same layout in uint8
    (the test protocol's items: a quarter of the bytes until the device, where ``models.views.as_float`` does
    this function's ``float() / 255``)."""
    t = torch.from_numpy(np.ascontiguousarray(frames))
    if not keep_uint8:
        t = t.float().div_(255.0)
    return t.movedim(-1, -3).contiguous()


def flow_to_tensor(flow: np.ndarray, flipped: bool | np.ndarray = False) -> torch.Tensor:
    """Stored flow uint8 (V, H, W, 2n) channels x0,y0,x1,... -> float32 (V, 2n, H, W) as value - 128.

    ``flipped`` (bool or (V,) bools): mirrored views get their x channels negated.
    """
    t = torch.from_numpy(np.ascontiguousarray(flow)).float().sub_(128.0).movedim(-1, -3).contiguous()
    flips = torch.as_tensor(np.broadcast_to(np.asarray(flipped, dtype=bool), (t.shape[0],)).copy())
    if flips.any():
        t[flips, 0::2] = -t[flips, 0::2]  # x channels change sign under a horizontal mirror
    return t


def rgb_difference(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """TSN RGB difference (Wang et al. 2016, sec. 3.2): D consecutive RGB frames -> D-1 differences.

    ``frames``: (..., D, H, W, 3) uint8 RGB (numpy, as the dataset crops them) or a float tensor
    (..., D, 3, H, W) in pixel units [0, 255] (the benchmark computes differences on the fly).
    Returns float32 (..., 3(D-1), H, W): channels ``[I1 - I0 (R, G, B), I2 - I1 (R, G, B), ...]``
    (TSN's ``_get_diff`` order), values in pixel units [-255, 255]. No normalisation: as TSN's
    reference code (IdentityTransform for RGBDiff, frames in [0, 255] for its BN-Inception), the
    difference of two frames equals the difference of their mean-subtracted versions, and VGG16
    divides every non-RGB input by 255 * 0.226 (``FLOW_INPUT_DIVISOR``), so the network sees the
    difference of the ImageNet-normalised frames the spatial stream sees (up to the per-channel std
    vs its mean) -- the units that make the cross-modality initialisation from the spatial conv1 apt.
    Crops and flips must be applied to the frames before differencing (same box and flip for all D).
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim < 4 or frames.shape[-1] != 3:
            raise ValueError(f"rgb_difference: frames must be (..., D, H, W, 3), got shape {frames.shape}")
        t = torch.from_numpy(np.ascontiguousarray(frames)).float().movedim(-1, -3)  # (..., D, 3, H, W)
    else:
        if frames.dim() < 4 or frames.shape[-3] != 3:
            raise ValueError(f"rgb_difference: tensor frames must be (..., D, 3, H, W), got {tuple(frames.shape)}")
        t = frames.float()
    if t.shape[-4] < 2:
        raise ValueError(f"rgb_difference: need at least 2 frames along D, got {t.shape[-4]}")
    diff = t[..., 1:, :, :, :] - t[..., :-1, :, :, :]  # (..., D-1, 3, H, W): I_{i+1} - I_i
    return diff.flatten(-4, -3).contiguous()
