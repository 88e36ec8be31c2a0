"""Does MotionNet's unsupervised loss reward the true flow? (docs/SYNTHETIC.md section 7)

On the synthetic set the ground-truth flow is known, so the loss of Eq. 1-2 (photometric +
smoothness, the release's weighting and frame normalisation) can be evaluated for the true flow
scaled by a factor ``a``: a = 0 is zero flow, a = 1 the truth. Where the loss is lowest at a = 1,
minimising it recovers the true flow; where it is lowest at a < 1, the loss itself prefers an
underestimate. Each scale is evaluated as MotionNet's losses see it: frames area-averaged to the
scale's size, the true flow area-averaged and expressed in that grid's pixels. A trained MotionNet's
own output at each scale is scored beside it (``factor`` None), so one can tell an optimisation
shortfall (MotionNet's loss above the truth's) from a loss that prefers something else (below).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from htsc_core.models import flow_losses as fl
from htsc_core.models.motionnet import FLOW_SCALES, flow_resolution
from htsc_core.data.registry import load_split
from htsc_core.data.video import read_frames, video_length
from htsc_core.flow.estimators import load_motionnet
from htsc_core.flow.evaluate import gt_path, load_gt

FACTORS = (0.0, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25)
LANDSCAPE_SCALES = (1, 2, 3, 4)  # 1 = the input resolution; 2..4 = MotionNet's flow2..flow4 grids


def _terms(frames: torch.Tensor, flow_px: torch.Tensor) -> tuple[float, float]:
    """(photometric, smoothness) of one stack as MotionNetLoss weighs them (frames (L, 3, h, w) normalised)."""
    photo, smooth, _ = fl.scale_terms(frames[None], flow_px)
    return float(photo), float(smooth)


def loss_landscape(cfg, checkpoint=None, factors: Sequence[float] = FACTORS, max_videos: int = 30,
                   subset: str = "train") -> list[dict]:
    """Rows {scale, size, factor (None = MotionNet), photometric, smoothness, total} averaged over stacks.

    Stacks are the non-overlapping ``cfg.stack_length``-frame windows of every ``len // max_videos``-th
    video of ``subset`` that has ground-truth flow (``ROOT/flow_gt``); frames at native size, cropped
    to a multiple of 32.
    """
    records = [r for r in load_split(cfg, subset)[0] if gt_path(cfg.data_root, r.video_id).is_file()]
    if not records:
        raise ValueError(f"loss landscape: no {subset} video under {cfg.data_root} has ground-truth flow "
                         "(flow_gt/): it needs the synthetic set")
    records = records[:: max(1, len(records) // max_videos)][:max_videos]
    model = None
    if checkpoint is not None:
        model = load_motionnet(checkpoint, cfg).eval()
    L = cfg.stack_length
    sums: dict[tuple[int, float | None], list[np.ndarray]] = {}
    for rec in records:
        n = video_length(rec.path)
        frames = read_frames(rec.path, range(n), size=None)
        gt = load_gt(gt_path(cfg.data_root, rec.video_id), (n - 1, *frames.shape[1:3]))
        side = (min(frames.shape[1:3]) // 32) * 32
        for s0 in range(0, n - L + 1, L):
            stack = torch.from_numpy(frames[s0:s0 + L, :side, :side]).float().div(255).permute(0, 3, 1, 2)
            g = torch.from_numpy(gt[s0:s0 + L - 1, :side, :side]).permute(0, 3, 1, 2).reshape(1, -1, side, side)
            normed = fl.release_normalise(stack)
            outs = None
            if model is not None:
                with torch.inference_mode():
                    outs = model(stack[None])
            for scale in LANDSCAPE_SCALES:
                h, w = (side, side) if scale == 1 else flow_resolution((side, side), scale)
                f = side // h
                fr = normed if f == 1 else F.interpolate(normed, size=(h, w), mode="area")
                g_s = g if f == 1 else F.avg_pool2d(g, f) / f  # true flow in pixels of this grid
                for a in factors:
                    sums.setdefault((scale, float(a)), []).append(np.array(_terms(fr, float(a) * g_s)))
                if outs is not None:
                    pred = (fl.flow_in_pixels(outs, (side, side)) if scale == 1
                            else outs[-1 - (scale - 2)] * FLOW_SCALES[scale])
                    sums.setdefault((scale, None), []).append(np.array(_terms(fr, pred.float())))
    rows = []
    for (scale, a), vals in sums.items():
        photo, smooth = np.mean(vals, axis=0)
        size = side if scale == 1 else flow_resolution((side, side), scale)[0]
        rows.append({"scale": scale, "size": size, "factor": a, "photometric": float(photo),
                     "smoothness": float(smooth), "total": float(photo + smooth), "stacks": len(vals)})
    return rows


def best_factor(rows: Sequence[dict], scale: int) -> float:
    """The factor with the lowest total loss at ``scale`` (MotionNet's row excluded)."""
    cand = [r for r in rows if r["scale"] == scale and r["factor"] is not None]
    if not cand:
        raise ValueError(f"loss landscape: no rows for scale {scale}")
    return min(cand, key=lambda r: r["total"])["factor"]
