"""Why does MotionNet lose to TV-L1 on the background? (issue 24; docs/SYNTHETIC.md section 7)

On validation videos of the synthetic set (ground-truth flow known), per pyramid grid (1 = the input
size, 2..5 = MotionNet's flow2..flow5 grids) and per *variant* of what the unsupervised loss sees:

- ``loss_truth`` / ``loss_motionnet``: Eq. 1 + Eq. 2 (photometric + smoothness, release weighting:
  Charbonnier summed over colour channels and, per stack, over the frame pairs) of the true flow and of
  MotionNet's flow at that grid, averaged over the *background* cells only (cells of the grid wholly
  inside the interior background of :func:`htsc_core.flow.evaluate.region_masks`). MotionNet's loss
  below the truth's = the loss rewards a wrong background flow there.
- ``drift_epe``: start a free per-pixel flow field at the truth and minimise the scale's full loss
  (Eq. 5: photometric + smoothness + w_s SSIM, on the whole frame) with Adam for ``steps`` steps; its
  background EPE (input pixels) against the truth is how far the loss's own minimum near the truth
  lies from it, with no network involved. A variant that lowers it removes a bias of the loss.
- ``epe_motionnet``: MotionNet's background EPE at that grid, input pixels.

Variants (each changes one thing of ``release``, the loss as trained): ``no_lrn`` (frames in
[0, 1], no mean subtraction or LRN), ``release_pyramid`` (each grid's frames by the release's
``Downsample`` layer, a tent filter of radius ~f with corners aligned, instead of area means of
2 x 2 blocks), ``no_h264`` (the rendered frames that were encoded, before the codec), ``no_noise``
(rendered without the sensor noise, no codec), ``smooth_x0.5`` and ``smooth_x2`` (Eq. 2's weight); beyond the
paper, ``census`` (a census term in Eq. 1's place, :mod:`htsc_core.models.census`).
``region="moving"`` asks the same of the moving object's cells (cells wholly inside ``region_masks``'s
``moving`` pixels) instead of the background's.
One row more, ``upsample_floor``: the background EPE of the true flow area-averaged to a grid and
bilinearly upsampled back (flow2's half resolution alone).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from htsc_core.data.registry import load_split
from htsc_core.data.synthetic import config_from_root, video_specs
from htsc_core.data.synthetic_render import render_video
from htsc_core.data.video import read_frames, video_length
from htsc_core.flow.estimators import load_motionnet
from htsc_core.flow.evaluate import gt_path, load_gt, region_masks
from htsc_core.models import flow_losses as fl
from htsc_core.models.motionnet import FLOW_SCALES, SCALES

GRIDS = (1, 2, 3, 4, 5)  # 1 = input size; k = flow_k's grid (input / 2^(k-1))
VARIANTS: dict[str, dict] = {
    "release": {},
    "no_lrn": {"norm": False},
    "release_pyramid": {"down": "release"},
    "no_h264": {"frames": "rendered"},
    "no_noise": {"frames": "clean"},
    "smooth_x0.5": {"smooth": 0.5},
    "smooth_x2": {"smooth": 2.0},
    "census": {"photo": "census"},  # beyond the paper: models/census.py in Eq. 1's place
}
_DEFAULT = {"norm": True, "down": "area", "frames": "decoded", "smooth": 1.0, "photo": "charbonnier"}


def downsample(x: torch.Tensor, factor: int, mode: str = "area") -> tuple[torch.Tensor, float]:
    """(..., S, S) -> ((..., S / f, S / f), grid spacing in input pixels): area means (spacing f, what
    MotionNetLoss's ``pyramid="area"`` does) or the release's ``Downsample`` tent filter with corners
    aligned (spacing (S - 1) / (S / f - 1); :func:`htsc_core.models.flow_losses.release_downsample`)."""
    if factor == 1:
        return x, 1.0
    size = (x.shape[-2] // factor, x.shape[-1] // factor)
    if mode == "area":
        shape = x.shape
        out = F.avg_pool2d(x.reshape(-1, 1, *shape[-2:]), factor)
        return out.reshape(*shape[:-2], *out.shape[-2:]), float(factor)
    if mode == "release":
        return fl.release_downsample(x, size), (x.shape[-1] - 1) / (size[1] - 1)
    raise ValueError(f"downsample: mode={mode!r}; expected 'area' or 'release'")


def background_cells(bg: torch.Tensor, factor: int, mode: str = "area") -> torch.Tensor:
    """(P, H, W) bool background -> (P, h, w) bool: grid cells wholly background and inside the grid's
    border mask (the loss's 10 % border, :func:`htsc_core.models.flow_losses.border_mask`)."""
    full = downsample(bg.float(), factor, mode)[0] > 1 - 1e-6
    h, w = full.shape[-2:]
    return full & fl.border_mask(h, w)[0].bool()


def loss_maps(frames: torch.Tensor, flow_px: torch.Tensor, smooth: float = 1.0, photo: str = "charbonnier"
              ) -> torch.Tensor:
    """Per-pixel Eq. 1 + smooth x Eq. 2 (release constants): frames (N, L, 3, h, w), flow (N, L-1, 2, h, w) in
    grid pixels -> (N, L-1, h, w). Photometric: sum over colour channels of F(255 (f_i - warp(f_{i+1}))), or
    with ``photo="census"`` F of the census distance; smoothness: F of the forward differences of u and v, at
    the difference's left/upper pixel."""
    n, L, c, h, w = frames.shape
    tgt = frames[:, :-1].reshape(-1, c, h, w)
    rec = fl.warp(frames[:, 1:].reshape(-1, c, h, w), flow_px.reshape(-1, 2, h, w))
    if photo == "census":
        photo = fl.charbonnier(fl.census_distance(tgt, rec), fl.ALPHA_PHOTO)
    else:
        photo = fl.charbonnier(fl.PHOTO_BETA * (tgt - rec), fl.ALPHA_PHOTO).sum(1)
    f = flow_px.reshape(-1, 2, h, w)
    sm = torch.zeros_like(photo)
    sm[:, :, :-1] += fl.charbonnier(f[..., 1:] - f[..., :-1], fl.ALPHA_SMOOTH).sum(1)
    sm[:, :-1, :] += fl.charbonnier(f[..., 1:, :] - f[..., :-1, :], fl.ALPHA_SMOOTH).sum(1)
    return (photo + smooth * sm).reshape(n, L - 1, h, w)


def _unit(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float().div(255).permute(0, 3, 1, 2)


def _stacks(cfg, records, length: int):
    """Yield per video: decoded, rendered (pre-codec) and clean frames (T, 3, S, S) in [0, 1], truth (T-1, S, S, 2)."""
    specs = {s.video_id: s for s in video_specs(config_from_root(cfg.data_root))}
    for rec in records:
        spec = specs.get(rec.video_id)
        if spec is None:
            raise ValueError(f"diagnose: {rec.video_id} is not a video of the synthetic set under {cfg.data_root}")
        n = video_length(rec.path)
        dec = read_frames(rec.path, range(n), size=None)
        gt = load_gt(gt_path(cfg.data_root, rec.video_id), (n - 1, *dec.shape[1:3]))
        rendered, clean = render_video(spec).frames[:n], render_video(spec, noise=False).frames[:n]
        side = (min(dec.shape[1:3]) // 32) * 32
        for s0 in range(0, n - length + 1, length):
            yield (*(_unit(a[s0:s0 + length, :side, :side]) for a in (dec, rendered, clean)),
                   torch.from_numpy(gt[s0:s0 + length - 1, :side, :side]))


def _drift(frames: torch.Tensor, truth: torch.Tensor, grid: int, smooth: float, steps: int, lr: float,
           photo: str = "charbonnier") -> torch.Tensor:
    """Minimise the grid's Eq. 5 over a free flow field started at ``truth`` (N, L-1, 2, h, w) -> the result."""
    n, L = frames.shape[:2]
    flow = truth.clone().requires_grad_(True)
    opt = torch.optim.Adam([flow], lr=lr)
    w_ssim = fl.SSIM_WEIGHTS[max(grid, 2)]
    for i in range(steps):
        for g in opt.param_groups:  # linear decay to 0: ends at the minimum rather than circling it
            g["lr"] = lr * (1 - i / steps)
        lp, lsm, lss = fl.scale_terms(frames, flow.reshape(n, 2 * (L - 1), *flow.shape[-2:]), photometric=photo)
        opt.zero_grad()
        (lp + smooth * lsm + w_ssim * lss).backward()
        opt.step()
    return flow.detach()


def _epe(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, factor: int) -> float | None:
    """Mean ||a - b|| x factor (grid px -> input px) over ``mask``; a, b (N, P, 2, h, w), mask (N, P, h, w)."""
    if not mask.any():
        return None
    return float(((a - b) * factor).norm(dim=2)[mask].mean())


def diagnose_background(cfg, checkpoint=None, max_videos: int = 24, subset: str = "val",
                        variants: Sequence[str] = tuple(VARIANTS), grids: Sequence[int] = GRIDS,
                        steps: int = 100, lr: float = 0.03, region: str = "background") -> list[dict]:
    """Rows {variant, grid, size, bg_cells, loss_truth, loss_motionnet, epe_motionnet, drift_epe, stacks, region}.

    ``bg_cells``: the share of the grid's cells that are wholly ``region`` ("background" or "moving").

    Stacks: the non-overlapping ``cfg.stack_length``-frame windows of the first ``max_videos`` videos of
    ``subset`` (validation by default: choices are made there, never on test). ``checkpoint`` None leaves the
    MotionNet columns None. See the module docstring for each column.
    """
    if region not in ("background", "moving"):
        raise ValueError(f"diagnose: region={region!r}; expected 'background' or 'moving'")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"diagnose: unknown variant(s) {bad}; expected a subset of {tuple(VARIANTS)}")
    if subset == "test":
        raise ValueError("diagnose: choices are made on validation videos; pass subset='val' (or 'train')")
    records = [r for r in load_split(cfg, subset)[0] if gt_path(cfg.data_root, r.video_id).is_file()][:max_videos]
    if not records:
        raise ValueError(f"diagnose: no {subset} video under {cfg.data_root} has ground-truth flow (flow_gt/)")
    L = cfg.stack_length
    data = list(zip(*_stacks(cfg, records, L)))
    if not data:
        raise ValueError(f"diagnose: the {subset} videos are shorter than a stack of {L} frames")
    stacks = {"decoded": torch.stack(data[0]), "rendered": torch.stack(data[1]), "clean": torch.stack(data[2])}
    truth = torch.stack(data[3]).permute(0, 1, 4, 2, 3)  # (N, L-1, 2, S, S) input px
    bg = torch.from_numpy(np.stack([region_masks(g.numpy())[region] for g in data[3]]))  # (N, L-1, S, S)
    n, side = truth.shape[0], truth.shape[-1]
    preds = None
    if checkpoint is not None:
        model = load_motionnet(checkpoint, cfg).eval()
        with torch.inference_mode():
            outs = model(stacks["decoded"])
        preds = {k: outs[SCALES.index(k)].reshape(n, L - 1, 2, *outs[SCALES.index(k)].shape[-2:]) * FLOW_SCALES[k]
                 for k in SCALES}
        preds[1] = fl.flow_in_pixels(outs, (side, side)).reshape(n, L - 1, 2, side, side)
    rows = []
    for name in variants:
        v = {**_DEFAULT, **VARIANTS[name]}
        frames = stacks[v["frames"]]
        if v["norm"]:
            frames = fl.release_normalise(frames.reshape(-1, 3, side, side)).reshape(frames.shape)
        for grid in grids:
            f = 2 ** (grid - 1)
            if side % f or side // f < 2:
                continue
            fr, r = downsample(frames, f, v["down"])
            t_s = downsample(truth, f, v["down"])[0] / r  # truth in grid px, sampled as the frames are
            cells = background_cells(bg.reshape(-1, side, side), f, v["down"]).reshape(n, L - 1, *fr.shape[-2:])
            row = {"variant": name, "grid": grid, "size": side // f, "bg_cells": float(cells.float().mean()),
                   "stacks": n, "region": region, "loss_truth": None, "loss_motionnet": None,
                   "epe_motionnet": None, "drift_epe": None}
            if cells.any():
                row["loss_truth"] = float((L - 1) * loss_maps(fr, t_s, v["smooth"], v["photo"])[cells].mean())
                if preds is not None:
                    p = preds[grid].float()
                    row["loss_motionnet"] = float((L - 1) * loss_maps(fr, p, v["smooth"], v["photo"])[cells].mean())
                    row["epe_motionnet"] = _epe(p, t_s, cells, r)
                if steps > 0:
                    row["drift_epe"] = _epe(_drift(fr, t_s, grid, v["smooth"], steps, lr, v["photo"]), t_s, cells, r)
            rows.append(row)
    for grid in grids:  # flow2's half resolution alone: truth down to the grid and bilinearly back up
        f = 2 ** (grid - 1)
        if grid == 1 or side % f:
            continue
        down = downsample(truth, f, "area")[0]  # input px, at the grid
        up = F.interpolate(down.reshape(-1, 2, side // f, side // f), size=(side, side), mode="bilinear",
                           align_corners=False).reshape(truth.shape)
        cells = bg & fl.border_mask(side, side)[0].bool()
        rows.append({"variant": "upsample_floor", "grid": grid, "size": side // f,
                     "bg_cells": float(cells.float().mean()), "stacks": n, "region": region, "loss_truth": None,
                     "loss_motionnet": None, "epe_motionnet": None, "drift_epe": _epe(up, truth, cells, 1)})
    return rows


def format_diagnosis(rows: Sequence[dict]) -> str:
    """A plain-text table of :func:`diagnose_background`'s rows."""
    def num(x) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
    head = f"{'variant':<14} {'grid':>4} {'size':>4} {'bg':>6} {'L truth':>8} {'L MN':>8} {'EPE MN':>7} {'drift':>7}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['variant']:<14} {r['grid']:>4} {r['size']:>4} {num(r['bg_cells']):>6} "
                     f"{num(r['loss_truth']):>8} {num(r['loss_motionnet']):>8} {num(r['epe_motionnet']):>7} "
                     f"{num(r['drift_epe']):>7}")
    return "\n".join(lines)
