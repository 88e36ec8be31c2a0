"""``htsc flow eval``: score flow estimators (docs/DESIGN.md section 7 "Flow"; paper section 3.1.2, Table 5).

For each method (TV-L1, DIS, Farneback, zero, a trained MotionNet) on the test videos:

- ``epe``: average end-point error ||f - f_gt||_2 over all pixels of all frame pairs,
  against ``ROOT/flow_gt/<video_id>.npy`` (synthetic set; None where there is no truth);
- region-wise EPE (:func:`region_masks`), three regions that partition every frame:
  ``epe_moving`` over the *moving* pixels of the interior (10 % border removed): those whose true
  flow differs from the pair's dominant (median) flow, the camera's, by more than
  ``MOVING_THRESHOLD`` px, i.e. the independently moving object (the background covers most of
  every synthetic frame, so near-zero flow can score well on ``epe`` alone); ``epe_background``
  over the other interior pixels (the panned, textured background); ``epe_border`` over the
  border band (where the unsupervised loss's 10 % border mask puts no photometric term);
- ``photometric``: mean |frame_t - warp(frame_{t+1}, f)| with frames in [0, 1], over the
  interior left after masking a 10 % border (the release masks 10 % in its photometric
  loss, docs/DESIGN.md section 2), warping backward with ``cv2.remap`` (independent of the
  torch warp in ``flow_losses``);
- ``ms_per_pair``: wall-clock milliseconds of ``estimate`` per frame pair (decoding
  excluded), with the OpenCV/torch thread count used.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from htsc_core.flow.estimators import METHODS, make_estimator
from htsc_core.utils import progress, atomic_write_json, run_metadata
from htsc_core.data.registry import load_split
from htsc_core.data.video import read_frames, video_length

log = logging.getLogger(__name__)

BORDER_FRACTION = 0.1  # 10 % border masked, as the release's photometric loss (docs/DESIGN.md section 2)
MOVING_THRESHOLD = 0.5  # px: a pixel "moves" when its true flow differs from its pair's median flow by more
REGIONS = ("moving", "background", "border")  # epe_<region>; see region_masks
ROW_KEYS = ("method", "epe", "epe_moving", "epe_background", "epe_border", "photometric", "ms_per_pair", "pairs",
            "threads", "resolution", "videos",
            "device", "per_video")


def endpoint_error(flow: np.ndarray, gt: np.ndarray) -> float:
    """Mean over all pixels (and pairs) of ||flow - gt||_2; both (..., 2) px."""
    flow, gt = np.asarray(flow, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if flow.shape != gt.shape or flow.shape[-1] != 2:
        raise ValueError(f"flow {flow.shape} and ground truth {gt.shape} must have the same (..., 2) shape")
    return float(np.sqrt(((flow - gt) ** 2).sum(-1)).mean())


def moving_mask(gt: np.ndarray, threshold: float = MOVING_THRESHOLD) -> np.ndarray:
    """(T-1, H, W) bool: pixels whose true flow differs from their pair's median flow by > ``threshold`` px."""
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim != 4 or gt.shape[-1] != 2:
        raise ValueError(f"moving_mask: expected ground truth (T-1, H, W, 2), got {gt.shape}")
    med = np.median(gt.reshape(len(gt), -1, 2), axis=1)[:, None, None, :]
    return np.sqrt(((gt - med) ** 2).sum(-1)) > threshold


def region_masks(gt: np.ndarray, border: float = BORDER_FRACTION,
                 threshold: float = MOVING_THRESHOLD) -> dict[str, np.ndarray]:
    """(T-1, H, W) bool masks of the three regions of :data:`REGIONS`, a partition of every pixel.

    ``moving``: interior (:func:`interior_slices`) and :func:`moving_mask`; ``background``: interior and not
    moving; ``border``: outside the interior.
    """
    moving = moving_mask(gt, threshold)
    interior = np.zeros(moving.shape[1:], dtype=bool)
    interior[interior_slices(*moving.shape[1:], border)] = True
    return {"moving": moving & interior, "background": ~moving & interior,
            "border": np.broadcast_to(~interior, moving.shape)}


def warp_backward(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out(p) = image(p + flow(p))`` by bilinear ``cv2.remap`` (replicated border)."""
    h, w = image.shape[:2]
    if flow.shape != (h, w, 2):
        raise ValueError(f"flow {flow.shape} does not match image {image.shape[:2]}")
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = xs + flow[..., 0].astype(np.float32)
    map_y = ys + flow[..., 1].astype(np.float32)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def interior_slices(h: int, w: int, border: float = BORDER_FRACTION) -> tuple[slice, slice]:
    """Rows/columns left after removing ``border`` * size on each side (at least one pixel kept)."""
    if not 0 <= border < 0.5:
        raise ValueError(f"border={border}; expected 0 <= border < 0.5")
    bh, bw = int(round(h * border)), int(round(w * border))
    bh, bw = min(bh, (h - 1) // 2), min(bw, (w - 1) // 2)
    return slice(bh, h - bh), slice(bw, w - bw)


def photometric_errors(frames: np.ndarray, flows: np.ndarray, border: float = BORDER_FRACTION) -> np.ndarray:
    """Per pair: mean |frame_t - warp(frame_{t+1}, flow_t)| on the interior, frames as [0, 1]. -> (T-1,)"""
    frames = np.asarray(frames)
    if frames.ndim != 4 or flows.shape != (frames.shape[0] - 1, *frames.shape[1:3], 2):
        raise ValueError(f"frames {frames.shape} and flows {flows.shape}: expected (T, H, W, C) and (T-1, H, W, 2)")
    f = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)
    rs, cs = interior_slices(*frames.shape[1:3], border)
    out = np.empty(len(flows), dtype=np.float64)
    for t in range(len(flows)):
        recon = warp_backward(f[t + 1], flows[t]).reshape(f[t].shape)
        out[t] = float(np.abs(f[t] - recon)[rs, cs].mean())
    return out


def gt_path(data_root: str | Path, video_id: str) -> Path:
    return Path(data_root).expanduser() / "flow_gt" / f"{video_id}.npy"


def load_gt(path: Path, expected: tuple[int, int, int]) -> np.ndarray:
    """Ground-truth flow (T-1, H, W, 2) float16 -> float32; checks its shape against the frames."""
    try:
        gt = np.load(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read ground-truth flow {path}: {exc}") from exc
    if gt.shape != (*expected, 2):
        raise ValueError(f"ground-truth flow {path} has shape {gt.shape}; the decoded video needs "
                         f"{(*expected, 2)} (T-1, H, W, 2)")
    return gt.astype(np.float32)


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    items = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    bad = [m for m in items if m not in METHODS]
    if bad or not items:
        raise ValueError(f"unknown or empty flow method(s) {bad or items}; expected a subset of {METHODS}")
    return list(dict.fromkeys(items))


def evaluate_flow(cfg, methods: str | Sequence[str] = ("tvl1", "dis", "farneback", "zero"),
                  checkpoint: str | Path | None = None, max_videos: int | None = None, threads: int = 1,
                  records: Iterable | None = None, subset: str = "test", max_pairs: int = 0) -> list[dict]:
    """Score each method on ``subset`` videos (or ``records``) -> one row per method (see ROW_KEYS).

    ``max_pairs`` > 0 (``cfg.flow_eval_pairs``): at most that many frame pairs in all, the same number from the
    middle of every video (ceil(max_pairs / videos), at least one), so that TV-L1 on full-size real videos takes
    minutes, not hours (issue 37: every pair of every 12th UCF101 test video was about 28 hours on one thread).

    Frames are decoded at native size when ground truth exists (it is stored at the
    video's resolution), else at ``cfg.frame_size`` short side.
    """
    methods = parse_methods(methods)
    if max_videos is not None and int(max_videos) < 1:
        raise ValueError(f"max_videos={max_videos}; expected >= 1 or None")
    if records is None:
        records = load_split(cfg, subset)[0]
    recs = list(records)[: int(max_videos)] if max_videos else list(records)
    if not recs:
        raise ValueError(f"no {subset} videos to evaluate flow on under {cfg.data_root}")
    if max_pairs < 0:
        raise ValueError(f"max_pairs={max_pairs}; expected >= 0 (0 = every pair)")
    pairs_each = -(-int(max_pairs) // len(recs)) if max_pairs else 0
    estimators = {m: make_estimator(m, threads=threads, checkpoint=checkpoint, cfg=cfg) for m in methods}
    acc = {m: {"epe_sum": 0.0, "gt_pixels": 0, "photo_sum": 0.0, "pairs": 0, "seconds": 0.0,
               **{f"{r}_sum": 0.0 for r in REGIONS}, **{f"{r}_pixels": 0 for r in REGIONS}} for m in methods}
    # per video, for the paired intervals of the notebooks' claims (every method sees the same videos,
    # one after the other, so the timings are interleaved); a region a video lacks is None there
    per_video = {m: {"epe": [], **{f"epe_{r}": [] for r in REGIONS}, "photometric": [], "ms_per_pair": []}
                 for m in methods}
    resolutions: set[str] = set()
    videos = 0
    for rec in progress(recs, desc="flow eval", unit="video"):
        gtp = gt_path(cfg.data_root, rec.video_id)
        try:
            n = video_length(rec.path)
            first, count = 0, n  # frames first .. first + count - 1: every pair, or max_pairs' share from the middle
            if pairs_each and n - 1 > pairs_each:
                first, count = (n - 1 - pairs_each) // 2, pairs_each + 1
            frames = read_frames(rec.path, range(first, first + count),
                                 size=None if gtp.is_file() else (cfg.frame_size or None))
            gt = load_gt(gtp, (n - 1, *frames.shape[1:3]))[first:first + count - 1] if gtp.is_file() else None
        except (OSError, ValueError) as exc:  # unreadable video or bad GT: log with the file, skip
            log.warning("flow eval: skipping %s (%s)", rec.path, exc)
            continue
        if n < 2:
            log.warning("flow eval: skipping %s (%d frame)", rec.path, n)
            continue
        videos += 1
        resolutions.add(f"{frames.shape[1]}x{frames.shape[2]}")
        regions = None
        for m, est in estimators.items():
            if videos == 1:  # untimed warm-up (allocations, cuDNN autotuning) so ms/pair is steady-state
                est.estimate(frames[: max(2, getattr(est, "length", 2))])
            t0 = time.perf_counter()
            flows = est.estimate(frames)
            seconds = time.perf_counter() - t0
            acc[m]["seconds"] += seconds
            acc[m]["pairs"] += len(flows)
            photo = photometric_errors(frames, flows)
            acc[m]["photo_sum"] += float(photo.sum())
            per_video[m]["photometric"].append(float(photo.mean()))
            per_video[m]["ms_per_pair"].append(1000.0 * seconds / len(flows))
            if gt is not None:
                epe = endpoint_error(flows, gt)
                acc[m]["epe_sum"] += epe * gt[..., 0].size
                acc[m]["gt_pixels"] += gt[..., 0].size
                per_video[m]["epe"].append(float(epe))
                if regions is None:
                    regions = region_masks(gt)
                for r, mask in regions.items():
                    k = int(mask.sum())
                    e = endpoint_error(flows[mask], gt[mask]) if k else None
                    per_video[m][f"epe_{r}"].append(e)
                    if k:
                        acc[m][f"{r}_sum"] += e * k
                        acc[m][f"{r}_pixels"] += k
    if videos == 0:
        raise ValueError(f"none of the {len(recs)} {subset} videos under {cfg.data_root} could be read")
    rows = []
    for m, a in acc.items():
        est = estimators[m]
        rows.append({
            "method": m,
            "epe": a["epe_sum"] / a["gt_pixels"] if a["gt_pixels"] else None,
            **{f"epe_{r}": a[f"{r}_sum"] / a[f"{r}_pixels"] if a[f"{r}_pixels"] else None for r in REGIONS},
            "photometric": a["photo_sum"] / a["pairs"],
            "ms_per_pair": 1000.0 * a["seconds"] / a["pairs"],
            "pairs": a["pairs"],
            "threads": est.threads,
            "resolution": ",".join(sorted(resolutions)),
            "videos": videos,
            "device": str(getattr(est, "device", "cpu")),
            "per_video": per_video[m],
        })
    return rows


def write_flow_eval(path: str | Path, rows: list[dict], cfg, **extra) -> Path:
    """Rows plus run metadata as JSON (atomic)."""
    return atomic_write_json(path, {"rows": rows, "metadata": run_metadata(cfg), **extra})


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'method':<10} {'EPE':>8} {'EPE mov':>8} {'EPE bg':>8} {'EPE bord':>8} {'photo':>8} {'ms/pair':>9} "
             f"{'pairs':>6}  resolution  threads"]

    def num(v) -> str:
        return f"{v:.3f}" if v is not None else "n/a"

    for r in rows:
        epes = " ".join(f"{num(r.get(k)):>8}" for k in ("epe", "epe_moving", "epe_background", "epe_border"))
        lines.append(f"{r['method']:<10} {epes} {r['photometric']:>8.4f} {r['ms_per_pair']:>9.2f} "
                     f"{r['pairs']:>6}  {r['resolution']:<10}  {r['threads']}")
    return "\n".join(lines)
