"""Flow fields of one test video for the notebooks' pictures (MotionNet vs TV-L1 vs ground truth)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from htsc_core.data.registry import load_split
from htsc_core.data.video import read_frames, video_length
from htsc_core.flow.estimators import TVL1Estimator, load_motionnet, tvl1_preset_params
from htsc_core.flow.evaluate import gt_path
from htsc_core.models.motionnet import FLOW_SCALES, SCALES, flow_in_pixels


def example_flows(cfg, checkpoint: str | Path, video: int = 0, pairs: int = 3) -> dict:
    """Frames and flows of the first ``pairs`` pairs of test video ``video``.

    Returns ``frames`` (pairs, H, W, 3) uint8, ``flows`` {name: (pairs, H, W, 2) px} for the
    ground truth (synthetic set only), MotionNet and TV-L1, and ``scales``: MotionNet's
    first pair at each of its five output scales, in pixels of that scale's grid.
    """
    records = load_split(cfg, "test")[0]
    rec = records[video % len(records)]
    n = video_length(rec.path)
    gt_file = gt_path(cfg.data_root, rec.video_id)
    frames = read_frames(rec.path, range(min(n, cfg.stack_length)),
                         size=None if gt_file.is_file() else (cfg.frame_size or None))
    h, w = frames.shape[1:3]
    side = (min(h, w) // 32) * 32  # MotionNet needs a multiple of 32: centre crop to it
    top, left = (h - side) // 2, (w - side) // 2
    frames = frames[:, top:top + side, left:left + side]
    stack = np.concatenate([frames, np.repeat(frames[-1:], cfg.stack_length - len(frames), 0)])
    model = load_motionnet(checkpoint, cfg)
    x = torch.from_numpy(stack).float().div(255).permute(0, 3, 1, 2)[None]  # (1, L, 3, S, S)
    with torch.inference_mode():
        outs = model(x)
    full = flow_in_pixels(outs, (side, side))[0].view(-1, 2, side, side).permute(0, 2, 3, 1).numpy()
    k = min(pairs, len(frames) - 1)
    flows = {}
    if gt_file.is_file():
        gt = np.load(gt_file).astype(np.float32)[:k, top:top + side, left:left + side]
        flows["ground truth"] = gt
    flows["MotionNet"] = full[:k]
    flows["TV-L1"] = TVL1Estimator(**tvl1_preset_params(cfg)).estimate(frames[:k + 1])
    scales = {f"flow{s}": (o[0, :2] * FLOW_SCALES[s]).permute(1, 2, 0).numpy() for s, o in zip(SCALES, outs)}
    return {"frames": frames[:k], "flows": flows, "scales": scales, "video_id": rec.video_id}
