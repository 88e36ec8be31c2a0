"""``htsc flow extract``: pre-compute TV-L1 flow JPEGs for the two-stream baseline (docs/DESIGN.md section 5).

``method="motionnet"`` (a trained checkpoint) or ``"truth"`` (the synthetic set's ``flow_gt``) writes that flow
instead, in the same format, for the flow swap of docs/SYNTHETIC.md section 7: the two-stream temporal CNN
trained on another flow (``cfg.flow_dir``) tells the flow's quality from the hidden stream's end-to-end pipeline.

The two-stream baseline of paper Table 3 (and the "two-stream" row of Table 5) trains
its temporal CNN on pre-computed TV-L1 flow. For every video of train/val/test we
decode all frames at ``cfg.frame_size`` (short side), run :class:`TVL1Estimator`
frame pair by frame pair and store denseflow-style JPEGs (:mod:`htsc_core.data.flow_storage`).

Resumable: a video whose ``.complete`` marker exists is skipped; one without it is
recomputed from scratch (stale temp files of an interrupted run are removed first).
Unreadable videos are logged with their file name and skipped; the run never aborts
on one. A JSON summary goes to ``<out>/extract_summary.json``.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from collections.abc import Iterable, Sequence

from htsc_core import utils
from htsc_core.data import flow_storage as storage
from htsc_core.data.registry import load_split
from htsc_core.data.video import read_frames, video_length
from htsc_core.flow.estimators import TVL1_PRESET_PARAMS, TVL1Estimator, make_estimator, tvl1_preset_params
from htsc_core.utils import atomic_write_json, run_metadata

log = logging.getLogger(__name__)

CHUNK_FRAMES = 64  # frames decoded at once; bounds memory on long (THUMOS14) videos
# CPU profiles (smoke, default) extract with fewer pyramid levels and warps and a looser stopping
# threshold: 3 scales cover the 1-4 px motions of 64 px synthetic frames. Measured on 60 pairs of the
# default synthetic set: EPE 0.160 px vs 0.142 px with the library defaults, at a third of the CPU time
# (22 vs 66 ms/pair; docs/SYNTHETIC.md). The paper profile keeps denseflow's defaults. Flow evaluation
# (``htsc flow eval``, flow.csv) always scores TV-L1 with the defaults.
FAST_TVL1 = TVL1_PRESET_PARAMS["fast"]


def tvl1_params(cfg) -> dict:
    """TV-L1 parameters used for extraction under ``cfg`` (empty = OpenCV's defaults, as denseflow); a
    ``tvl1_preset`` other than "auto" overrides the profile's choice (:func:`tvl1_preset_params`)."""
    return tvl1_preset_params(cfg, extraction=True)
SUMMARY_NAME = "extract_summary.json"
EXTRACT_METHODS = ("tvl1", "motionnet", "truth")
_MOTIONNETS: dict = {}  # (checkpoint, its mtime, threads) -> estimator, loaded once per process


def _estimator(method: str, threads: int, params: dict | None, checkpoint, cfg):
    if method == "tvl1":
        return TVL1Estimator(threads=threads, **(params or {}))
    if method == "motionnet":
        key = (str(checkpoint), Path(checkpoint).stat().st_mtime_ns, int(threads))  # a rewritten file reloads
        if key not in _MOTIONNETS:
            _MOTIONNETS[key] = make_estimator("motionnet", threads=threads, checkpoint=checkpoint, cfg=cfg)
        return _MOTIONNETS[key]
    return None  # truth: read, not estimated


def _truth(cfg, video_id: str, pairs: int, size_hw: tuple[int, int]):
    """The synthetic set's true flow of a video (pairs, H, W, 2), checked against the decoded frames' size."""
    from htsc_core.flow.evaluate import gt_path, load_gt  # deferred: evaluate imports this module's neighbours

    path = gt_path(cfg.data_root, video_id)
    if not path.is_file():
        raise ValueError(f"no ground-truth flow {path}: method 'truth' needs the synthetic set's flow_gt/")
    return load_gt(path, (pairs, *size_hw))


def default_flow_root(cfg) -> Path:
    return Path(cfg.data_root).expanduser() / "flow_tvl1"


def _remove_stale_temps(directory: Path) -> None:
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):  # atomic-write temps of a killed run
            tmp.unlink(missing_ok=True)


def extract_video(path: str | Path, video_id: str, flow_root: str | Path, frame_size: int | None,
                  threads: int = 1, chunk: int = CHUNK_FRAMES, params: dict | None = None, method: str = "tvl1",
                  checkpoint: str | Path | None = None, cfg=None) -> dict:
    """TV-L1 flow (or ``method``'s, :data:`EXTRACT_METHODS`) of one video into ``flow_root``; returns
    {video_id, status, bytes, pairs, error}.

    status is "done", "skipped" (already complete) or "failed" (error names the file).
    """
    row = {"video_id": video_id, "path": str(path), "status": "done", "bytes": 0, "pairs": 0, "error": None}
    if storage.is_complete(flow_root, video_id):
        row["status"] = "skipped"
        return row
    if chunk < 2:
        raise ValueError(f"chunk={chunk}; expected >= 2 frames")
    try:
        _remove_stale_temps(storage.video_dir(flow_root, video_id))
        n = video_length(path)
        if n < 2:
            raise ValueError(f"video {path} has {n} frame(s); flow needs at least 2")
        estimator = _estimator(method, threads, params, checkpoint, cfg)
        truth = None
        start, size_hw = 0, None
        while start < n - 1:
            stop = min(start + chunk, n)
            frames = read_frames(path, range(start, stop), size=frame_size or None)
            if size_hw is not None and frames.shape[1:3] != size_hw:
                raise ValueError(f"video {path}: frame size changes from {size_hw} to {frames.shape[1:3]}")
            size_hw = frames.shape[1:3]
            if method == "truth":
                truth = _truth(cfg, video_id, n - 1, size_hw) if truth is None else truth
                flows = truth[start:stop - 1]
            else:
                flows = estimator.estimate(frames)  # (stop-start-1, H, W, 2)
            row["bytes"] += storage.write_flow_pairs(flow_root, video_id, start, flows)
            start = stop - 1  # chunks overlap by one frame
        row["pairs"] = n - 1
        marker = storage.mark_complete(flow_root, video_id, n - 1, size_hw[0], size_hw[1])
        row["bytes"] += marker.stat().st_size
    except Exception as exc:  # noqa: BLE001 - one bad video is logged and skipped, never aborts the run
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log.warning("flow extract: skipping %s (%s)", path, row["error"])
    return row


def _worker(args: tuple) -> dict:
    return extract_video(*args)


def dataset_records(cfg, subsets: Sequence[str] = ("train", "val", "test")) -> list:
    """Every video of ``subsets`` (deduplicated by video_id, in split order)."""
    seen, records = set(), []
    for subset in subsets:
        for rec in load_split(cfg, subset)[0]:
            if rec.video_id not in seen:
                seen.add(rec.video_id)
                records.append(rec)
    return records


def extract_flow(cfg, out: str | Path | None = None, workers: int = 1, limit: int | None = None,
                 threads: int = 1, records: Iterable | None = None, write_summary: bool = True,
                 method: str = "tvl1", checkpoint: str | Path | None = None) -> dict:
    """TV-L1 flow (or ``method``'s) for every video of ``cfg``'s dataset (or ``records``) -> summary dict.

    ``workers`` processes run videos in parallel (1 = in-process, the benchmark-friendly
    path); ``threads`` is OpenCV's thread count inside each; ``limit`` keeps the first N videos.
    """
    if int(workers) < 1:
        raise ValueError(f"workers={workers}; expected >= 1")
    if method not in EXTRACT_METHODS:
        raise ValueError(f"flow extract: method={method!r}; expected one of {EXTRACT_METHODS}")
    if method == "motionnet" and checkpoint is None:
        raise ValueError("flow extract: method 'motionnet' needs --checkpoint MOTIONNET.pt")
    if method == "motionnet" and not Path(checkpoint).is_file():
        raise ValueError(f"flow extract: no MotionNet checkpoint {checkpoint} (train one: `htsc train motion`)")
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit={limit}; expected >= 0 or None")
    flow_root = Path(out).expanduser() if out else default_flow_root(cfg)
    recs = list(records) if records is not None else dataset_records(cfg)
    if limit is not None:
        recs = recs[: int(limit)]
    flow_root.mkdir(parents=True, exist_ok=True)
    params = tvl1_params(cfg) if method == "tvl1" else None
    jobs = [(r.path, r.video_id, flow_root, cfg.frame_size, threads, CHUNK_FRAMES, params, method, checkpoint, cfg)
            for r in recs]
    t0 = time.perf_counter()
    rows: list[dict] = []
    bar = utils.progress(total=len(jobs), desc=f"{method} flow", unit="video")
    if int(workers) == 1:
        for job in jobs:
            rows.append(_worker(job))
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=int(workers)) as pool:
            for row in pool.map(_worker, jobs):
                rows.append(row)
                bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    failed = [{"video_id": r["video_id"], "path": r["path"], "error": r["error"]} for r in rows
              if r["status"] == "failed"]
    summary = {
        "flow_root": str(flow_root),
        "method": method,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "tvl1_params": (params or "opencv defaults") if method == "tvl1" else None,
        "bound": storage.DEFAULT_BOUND,
        "jpeg_quality": storage.DEFAULT_JPEG_QUALITY,
        "frame_size": cfg.frame_size,
        "videos": len(rows),
        "done": sum(r["status"] == "done" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "failed": len(failed),
        "failed_videos": failed,
        "pairs": sum(r["pairs"] for r in rows),
        "bytes_written": sum(r["bytes"] for r in rows),
        "seconds": round(seconds, 3),
        "workers": int(workers),
        "threads": int(threads),
        "metadata": run_metadata(cfg, device="cpu"),
    }
    log.info("flow extract: %d done, %d skipped, %d failed, %d bytes in %.1f s -> %s", summary["done"],
             summary["skipped"], summary["failed"], summary["bytes_written"], seconds, flow_root)
    if write_summary:
        atomic_write_json(flow_root / SUMMARY_NAME, summary)
    return summary
