"""``htsc flow extract``: pre-compute TV-L1 flow JPEGs for the two-stream baseline (docs/DESIGN.md section 5).

``method="motionnet"`` (a trained checkpoint) or ``"truth"`` (the synthetic set's ``flow_gt``) writes that flow
instead, in the same format, for the flow swap of docs/SYNTHETIC.md section 7: the two-stream temporal CNN
trained on another flow (``cfg.flow_dir``) tells the flow's quality from the hidden stream's end-to-end pipeline.

The two-stream baseline of paper Table 3 (and the "two-stream" row of Table 5) trains
its temporal CNN on pre-computed TV-L1 flow. For every video of train/val/test we
decode all frames at ``cfg.frame_size`` (short side), run :class:`TVL1Estimator`
frame pair by frame pair and store denseflow-style JPEGs (:mod:`htsc_core.data.flow_storage`).

Resumable: a video whose ``.complete`` marker exists and records the flow this run makes (method, frame size,
TV-L1 preset: :func:`made_for`) is skipped; one without it, or made for another size or preset, is recomputed
from scratch (stale temp files of an interrupted run are removed first). A marker written before the preset was
recorded is kept when its stored size is this run's, with a logged warning (its preset cannot be told).
A stage that reads flow (``tvl1``, ``conv_fusion``) checks the markers first (:func:`check_stored_flow`) and
stops before training on flow made for another run, naming the command that makes the right one
(:func:`extraction_command`).
Unreadable videos are logged with their file name and skipped; the run never aborts
on one. A JSON summary goes to ``<out>/extract_summary.json``.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from collections.abc import Iterable, Sequence

from htsc_core import utils
from htsc_core.config import from_params
from htsc_core.data import flow_storage as storage
from htsc_core.data.dataset import host_cpus
from htsc_core.data.registry import load_split
from htsc_core.data.video import read_frames, video_length
from htsc_core.flow.estimators import (TVL1_PRESET_PARAMS, TVL1Estimator, make_estimator, tvl1_preset_name,
                                       tvl1_preset_params)
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


def made_for(cfg, method: str = "tvl1") -> dict:
    """What flow extracted under ``cfg`` is made for, recorded in each video's ``.complete``
    (:data:`htsc_core.data.flow_storage.MADE_FOR_KEYS`): the frame size asked for (short side, 0 = native) and,
    for TV-L1, the preset (:func:`~htsc_core.flow.estimators.tvl1_preset_name` for extraction)."""
    return {"frame_size": int(cfg.frame_size),
            "tvl1_preset": tvl1_preset_name(cfg, extraction=True) if method == "tvl1" else None}


# config keys that decide which flow `htsc flow extract` makes, or for which videos (the listing's caps)
EXTRACTION_KEYS = ("split", "frame_size", "tvl1_preset", "max_train_videos", "max_eval_videos")


def extraction_command(cfg, method: str = "tvl1", out: str | Path | None = None) -> str:
    """The ``htsc flow extract`` command that makes the flow a run under ``cfg`` reads: its profile, dataset and
    data root, and every extraction setting (:data:`EXTRACTION_KEYS`) where it is not the profile's."""
    base = from_params({"profile": cfg.profile})
    parts = ["htsc flow extract", f"--profile {cfg.profile}"]
    if cfg.dataset != base.dataset:
        parts.append(f"--dataset {cfg.dataset}")
    parts.append(f"--data-root {cfg.data_root}")
    if cfg.seed:
        parts.append(f"--seed {cfg.seed}")
    parts += [f"--set {k}={getattr(cfg, k)}" for k in EXTRACTION_KEYS if getattr(cfg, k) != getattr(base, k)]
    if method != "tvl1":
        parts.append(f"--method {method}" + (" --checkpoint MOTIONNET.pt" if method == "motionnet" else ""))
    if out is not None and Path(out) != default_flow_root(cfg):
        parts.append(f"--out {out}")
    return " ".join(parts)


class FlowMismatchError(ValueError):
    """Stored flow made for another run (frame size, TV-L1 preset, method), or none: names the command."""


def check_stored_flow(cfg, records: Iterable, flow_root: str | Path) -> dict:
    """Before a stage reads stored flow: every listed video's ``.complete`` must record the flow this run reads
    (frame size ``cfg.frame_size``; for TV-L1 flow the preset this config extracts with; TV-L1 in the default
    ``flow_tvl1`` folder). Raises :class:`FlowMismatchError` naming :func:`extraction_command` when any video's
    flow was made for another size or preset, or when no listed video has flow; markers from before the preset
    was recorded pass when their stored size matches, with a logged warning. Returns the counts checked."""
    root = Path(flow_root)
    records = list(records)
    default_dir = root == default_flow_root(cfg)
    stale, legacy, missing, method = [], 0, 0, "tvl1"
    for rec in records:
        marker = storage.video_dir(root, rec.video_id) / storage.COMPLETE_MARKER
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):  # missing or unreadable: the dataset skips that video, with a warning
            missing += 1
            continue
        method = info.get("method", "tvl1") if not default_dir else "tvl1"
        expected = {**made_for(cfg, method), "method": "tvl1" if default_dir else None}
        diff = storage.made_for_mismatch(info, expected)
        if diff:
            stale.append((rec.video_id, diff))
        elif storage.legacy_marker(info):
            legacy += 1
    if stale or (records and missing == len(records)):
        command = extraction_command(cfg, method, root)
        what = (f"the flow of {len(stale)} of {len(records)} videos was made for another run (first "
                f"{stale[0][0]}: {'; '.join(stale[0][1])})" if stale else f"none of its {len(records)} videos has "
                f"extracted flow")
        raise FlowMismatchError(
            f"{root}: {what}. This run reads flow at frame_size={cfg.frame_size}"
            + (f" with the TV-L1 preset {tvl1_preset_name(cfg, extraction=True)!r}" if method == "tvl1" else "")
            + f"; make it with `{command}` (it re-extracts the videos made for another size or preset), then "
              "start the stage again")
    if legacy:
        log.warning("%s: %d of %d videos' flow predates the recorded TV-L1 preset (its stored size matches this "
                    "run's); its preset cannot be checked: re-extract with `%s` after deleting %s to be sure",
                    root, legacy, len(records), extraction_command(cfg, method, root), root)
    return {"videos": len(records), "legacy": legacy, "missing": missing}


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
                  checkpoint: str | Path | None = None, cfg=None, made_for: dict | None = None) -> dict:
    """TV-L1 flow (or ``method``'s, :data:`EXTRACT_METHODS`) of one video into ``flow_root``; returns
    {video_id, status, bytes, pairs, error, replaced, legacy}.

    status is "done", "skipped" (already complete, made for ``made_for``) or "failed" (error names the file);
    ``replaced`` lists what a complete video's flow was made for when it is redone for another size or preset.
    """
    row = {"video_id": video_id, "path": str(path), "status": "done", "bytes": 0, "pairs": 0, "error": None,
           "replaced": None, "legacy": False}
    if storage.is_complete(flow_root, video_id):
        try:
            info = storage.read_complete_info(flow_root, video_id)
        except ValueError:
            info = {"unreadable": True}
        diff = ["marker unreadable"] if "unreadable" in info else storage.made_for_mismatch(
            info, {**(made_for or {}), "method": method})
        if not diff:
            row["status"], row["legacy"] = "skipped", storage.legacy_marker(info)
            return row
        row["replaced"] = diff  # made for another run: redone, incomplete until the new marker lands
        (storage.video_dir(flow_root, video_id) / storage.COMPLETE_MARKER).unlink(missing_ok=True)
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
        marker = storage.mark_complete(flow_root, video_id, n - 1, size_hw[0], size_hw[1], method=method,
                                       made_for=made_for)
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


def extract_flow(cfg, out: str | Path | None = None, workers: int | None = 1, limit: int | None = None,
                 threads: int = 1, records: Iterable | None = None, write_summary: bool = True,
                 method: str = "tvl1", checkpoint: str | Path | None = None) -> dict:
    """TV-L1 flow (or ``method``'s) for every video of ``cfg``'s dataset (or ``records``) -> summary dict.

    ``workers`` processes run videos in parallel (1, the default here = in-process, the benchmark-friendly path;
    None = the host's cores, :func:`~htsc_core.data.dataset.host_cpus`, the default of ``htsc flow extract`` and
    notebook 03, as ``htsc plan`` assumes); ``threads`` is OpenCV's thread
    count inside each; ``limit`` keeps the first N videos. The flow is made for ``cfg`` (its frame size and TV-L1
    preset, recorded in each ``.complete``): videos complete for another size or preset are redone.
    """
    workers = host_cpus() if workers is None else workers
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
    target = made_for(cfg, method)
    jobs = [(r.path, r.video_id, flow_root, cfg.frame_size, threads, CHUNK_FRAMES, params, method, checkpoint, cfg,
             target) for r in recs]
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
        "made_for": target,
        "videos": len(rows),
        "done": sum(r["status"] == "done" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "failed": len(failed),
        "replaced": sum(r["replaced"] is not None and r["status"] == "done" for r in rows),
        "legacy_markers": sum(r["legacy"] for r in rows),
        "failed_videos": failed,
        "pairs": sum(r["pairs"] for r in rows),
        "bytes_written": sum(r["bytes"] for r in rows),
        "seconds": round(seconds, 3),
        "workers": int(workers),
        "threads": int(threads),
        "metadata": run_metadata(cfg, device="cpu"),
    }
    log.info("flow extract: %d done (%d made for another size or preset before), %d skipped, %d failed, %d bytes "
             "in %.1f s -> %s", summary["done"], summary["replaced"], summary["skipped"], summary["failed"],
             summary["bytes_written"], seconds, flow_root)
    if summary["legacy_markers"]:
        log.warning("flow extract: %d videos kept from a marker without the TV-L1 preset (their size matches); "
                    "delete %s and extract again to be sure of the preset", summary["legacy_markers"], flow_root)
    if write_summary:
        atomic_write_json(flow_root / SUMMARY_NAME, summary)
    return summary
