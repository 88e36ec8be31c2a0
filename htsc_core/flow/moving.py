"""Where on the moving object does a flow method err? (issue 24; docs/SYNTHETIC.md section 7)

``flow.csv``'s ``epe_moving`` averages the end-point error over the moving pixels of the interior
(:func:`htsc_core.flow.evaluate.region_masks`). This module splits those pixels, on **validation** videos
(choices are made there), to tell the candidate causes apart:

- by place: ``core`` (moving pixels at least :data:`EDGE` px from every non-moving pixel) against
  ``edge`` (the rest: the motion boundary, where the true flow jumps). A loss whose smoothness term
  (Eq. 2) is not edge-aware, or a flow predicted at half resolution (flow2) and upsampled, errs at the
  boundary; a method that cannot follow the object's speed errs in its core as well;
- by relative speed ``|f_gt - median f_gt|`` (the object's motion against the camera's), in the bins of
  :data:`SPEED_BINS` px/frame: large displacements that the coarse-to-fine estimate misses err more at
  high speed;
- ``near``: the background pixels within :data:`EDGE` px of the object, where the object covers or
  uncovers the background between the frames (occlusion, which Eq. 1 does not model).

Two floors that need no method: ``truth@flow2`` (the true flow area-averaged to flow2's half-resolution
grid and bilinearly upsampled back, MotionNet's output path with a perfect flow2) and ``median`` (every
pixel given its pair's median flow, the camera's: what a method that misses the object entirely scores).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from htsc_core.data.registry import load_split
from htsc_core.data.video import read_frames, video_length
from htsc_core.flow.estimators import make_estimator
from htsc_core.flow.evaluate import gt_path, load_gt, moving_mask, region_masks
from htsc_core.utils import progress

log = logging.getLogger(__name__)

EDGE = 2  # px at the input size: the boundary band's width (flow2's upsampling spreads a jump over ~2 px)
SPEED_BINS = (0.5, 1.5, 2.5, math.inf)  # relative speed px/frame: [0.5, 1.5), [1.5, 2.5), [2.5, inf)
FLOORS = ("truth@flow2", "median")
PARTS = ("moving", "core", "edge", *(f"speed_{a}-{b}" for a, b in zip(SPEED_BINS[:-1], SPEED_BINS[1:])), "near")


def part_masks(gt: np.ndarray, edge: int = EDGE) -> dict[str, np.ndarray]:
    """(T-1, H, W) bool masks of :data:`PARTS` for the truth ``gt`` (T-1, H, W, 2).

    ``core`` and ``edge`` partition ``moving``; the speed bins partition it too; ``near`` is background.
    """
    regions = region_masks(gt)
    moving = regions["moving"]
    anywhere_moving = moving_mask(gt)  # the object including any part of it in the border band
    square = np.ones((1, 2 * edge + 1, 2 * edge + 1), dtype=bool)
    # border_value=1: the frame's edge is not a motion boundary
    core = moving & ndimage.binary_erosion(anywhere_moving, structure=square, border_value=1)
    near = regions["background"] & ndimage.binary_dilation(anywhere_moving, structure=square)
    med = np.median(gt.reshape(len(gt), -1, 2), axis=1)[:, None, None, :]
    speed = np.sqrt(((gt - med) ** 2).sum(-1))
    out = {"moving": moving, "core": core, "edge": moving & ~core}
    for a, b in zip(SPEED_BINS[:-1], SPEED_BINS[1:]):
        out[f"speed_{a}-{b}"] = moving & (speed >= a) & (speed < b)
    out["near"] = near
    return out


def truth_at_flow2(gt: np.ndarray) -> np.ndarray:
    """The truth (T-1, H, W, 2) area-averaged to half resolution and bilinearly upsampled back (MotionNet's
    flow2 path: ``flow_losses.flow_in_pixels`` upsamples flow2 with ``align_corners=False``)."""
    t = torch.from_numpy(np.ascontiguousarray(gt)).permute(0, 3, 1, 2).float()
    h, w = t.shape[-2:]
    down = F.avg_pool2d(t, 2)
    up = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).numpy()


def records_with_truth(cfg, subset: str = "val", max_videos: int | None = None) -> list:
    """The first ``max_videos`` (None: all) videos of ``subset`` that have ground-truth flow (``ROOT/flow_gt``).
    The split lists its videos class by class: take them all to cover every family."""
    records = [r for r in load_split(cfg, subset)[0] if gt_path(cfg.data_root, r.video_id).is_file()][:max_videos]
    if not records:
        raise ValueError(f"moving breakdown: no {subset} video under {cfg.data_root} has ground-truth flow")
    return records


def moving_breakdown(cfg, methods: Sequence[str] = ("tvl1", "farneback", "motionnet"), checkpoint=None,
                     max_videos: int | None = None, subset: str = "val", threads: int = 1,
                     edge: int = EDGE) -> list[dict]:
    """Rows {method, part, epe, pixels, videos, per_video}: the EPE of each method (and of :data:`FLOORS`) over
    each part of :data:`PARTS`, pooled over the pixels of the first ``max_videos`` (None: all) videos of ``subset``
    that have ground truth; ``per_video`` the per-video means (None where a video lacks the part)."""
    if subset == "test":
        raise ValueError("moving breakdown: choices are made on validation videos; pass subset='val' (or 'train')")
    if "motionnet" in methods and checkpoint is None:
        raise ValueError("moving breakdown: method motionnet needs a MotionNet checkpoint")
    records = records_with_truth(cfg, subset, max_videos)
    estimators = {m: make_estimator(m, threads=threads, checkpoint=checkpoint, cfg=cfg) for m in methods}
    names = [*methods, *FLOORS]
    sums = {(m, p): [0.0, 0] for m in names for p in PARTS}
    per_video = {(m, p): [] for m in names for p in PARTS}
    for rec in progress(records, desc="moving breakdown", unit="video"):
        n = video_length(rec.path)
        frames = read_frames(rec.path, range(n), size=None)
        gt = load_gt(gt_path(cfg.data_root, rec.video_id), (n - 1, *frames.shape[1:3]))
        masks = part_masks(gt, edge)
        med = np.median(gt.reshape(len(gt), -1, 2), axis=1)[:, None, None, :]
        flows = {m: est.estimate(frames) for m, est in estimators.items()}
        flows["truth@flow2"] = truth_at_flow2(gt)
        flows["median"] = np.broadcast_to(med, gt.shape)
        for m, flow in flows.items():
            err = np.sqrt(((flow.astype(np.float64) - gt) ** 2).sum(-1))
            for p, mask in masks.items():
                k = int(mask.sum())
                per_video[m, p].append(float(err[mask].mean()) if k else None)
                sums[m, p][0] += float(err[mask].sum())
                sums[m, p][1] += k
    return [{"method": m, "part": p, "epe": s / k if k else None, "pixels": k, "videos": len(records),
             "per_video": per_video[m, p]} for (m, p), (s, k) in sums.items()]


def format_breakdown(rows: Sequence[dict]) -> str:
    """Methods as rows, parts as columns (EPE in px; the pixel share of each part below the header)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    parts = list(dict.fromkeys(r["part"] for r in rows))
    cell = {(r["method"], r["part"]): r for r in rows}
    moving = max(cell[methods[0], "moving"]["pixels"], 1)
    lines = [f"{'method':<12}" + "".join(f"{p:>14}" for p in parts),
             f"{'(share)':<12}" + "".join(f"{cell[methods[0], p]['pixels'] / moving:>14.2f}" for p in parts)]
    for m in methods:
        vals = [cell[m, p]["epe"] for p in parts]
        lines.append(f"{m:<12}" + "".join(f"{v:>14.3f}" if v is not None else f"{'-':>14}" for v in vals))
    return "\n".join(lines)
