"""Probe videos for problems (the check-videos scan) and screen a dataset's listing with a cache.

Leaf module (no dataset parsing): ``check.py`` holds the ``htsc check-videos`` command,
``registry.py`` lists a dataset's videos and leaves out what :func:`screen_listing` finds.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from collections.abc import Iterable

from htsc_core.data.video import VideoReadError, read_frames, video_length
from htsc_core.utils import progress, atomic_write_json

MIN_FRAMES = 2  # a flow needs one frame pair; shorter videos are sampled by repeating frames
_SCREENS: dict[str, dict] = {}  # listing key -> scan result, per process
_WARNED: set[str] = set()


def _stream_info(path: Path) -> tuple[int | None, int]:
    """(colour components of the first video stream's pixel format or None without a video stream,
    frames the container header declares, 0 when it does not say)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return None, 0
        stream = container.streams.video[0]
        fmt = stream.codec_context.format
        return (len(fmt.components) if fmt is not None else None), int(stream.frames or 0)


def truncated(declared: int, decoded: int) -> bool:
    """A header that declares clearly more frames than decode: a download cut short.

    Tolerates 1 frame or 5 % (whichever is more): some encoders count a trailing or dropped
    frame in the header that no decoder returns.
    """
    return declared > 0 and decoded < declared - max(1, declared // 20)


def probe_video(path: str | Path, min_frames: int = 2) -> dict | None:
    """None when ``path`` is a sound video, else {"path", "kind", "reason", "frames"}."""
    path = Path(path)

    def problem(kind: str, reason: str, frames: int | None = None) -> dict:
        return {"path": str(path), "kind": kind, "reason": reason, "frames": frames}

    if path.is_symlink() and not path.exists():
        return problem("dangling_symlink", f"symbolic link to {os.readlink(path)}, which does not exist")
    if not path.exists():
        return problem("missing", "file is missing")
    if not path.is_file():
        return problem("not_a_file", "not a regular file")
    if not os.access(path, os.R_OK):
        return problem("permission", "no read permission (permission denied)")
    if path.stat().st_size == 0:
        return problem("empty", "file is empty (0 bytes)")
    try:
        channels, declared = _stream_info(path)
    except Exception as exc:  # noqa: BLE001 - any container error makes the file unreadable
        return problem("unreadable", f"cannot open container ({type(exc).__name__}: {exc})")
    if channels is None:
        return problem("no_video_stream", "no video stream")
    try:
        n = video_length(path)
    except VideoReadError as exc:
        kind = "zero_frames" if "zero frames" in exc.reason else "unreadable"
        return problem(kind, exc.reason, 0 if kind == "zero_frames" else None)
    if channels != 3:
        return problem("channels", f"pixel format has {channels} colour components, expected 3", n)
    if truncated(declared, n):
        return problem("truncated", f"the header declares {declared} frames, {n} decode (file cut short?)", n)
    if n < min_frames:
        return problem("too_short", f"{n} frame(s) < min-frames {min_frames}", n)
    try:
        frames = read_frames(path, sorted({0, n // 2, n - 1}))
    except VideoReadError as exc:
        return problem("unreadable", exc.reason, n)
    if frames.shape[-1] != 3:
        return problem("channels", f"decoded {frames.shape[-1]} channels, expected 3", n)
    return None


def check_videos(paths: Iterable[str | Path], min_frames: int = 2, workers: int = 1) -> list[dict]:
    """Probe every path; return one dict per problem video (path, kind, reason, frames).

    ``workers`` > 1 probes in a thread pool (decoding releases the GIL); the order of the
    result follows ``paths`` either way.
    """
    if min_frames < 1:
        raise ValueError(f"min_frames={min_frames}; expected >= 1")
    paths = list(paths)
    bar = progress(total=len(paths), desc="check-videos", unit="video")  # off with TQDM_DISABLE
    if int(workers) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(int(workers)) as pool:
            results = []
            for res in pool.map(lambda p: probe_video(p, min_frames), paths):
                results.append(res)
                bar.update(1)
    else:
        results = []
        for p in paths:
            results.append(probe_video(p, min_frames))
            bar.update(1)
    bar.close()
    return [r for r in results if r is not None]


def _listing_key(cfg, records, missing, min_frames: int) -> str:
    """Hash of what the scan depends on: dataset, root, split, and every listed file's size and mtime."""
    items = []
    for r in records:
        try:
            st = os.stat(r.path)
            items.append((str(r.path), st.st_size, st.st_mtime_ns))
        except OSError as exc:
            items.append((str(r.path), -1, type(exc).__name__))
    items += sorted((m["path"], m["kind"]) for m in missing)
    blob = json.dumps([cfg.dataset, str(Path(cfg.data_root).expanduser().resolve()), cfg.split, min_frames,
                       sorted(items, key=str)])
    return hashlib.sha256(blob.encode()).hexdigest()


def screen_listing(cfg, records, missing: list[dict], cache: bool = True, min_frames: int = MIN_FRAMES,
                   workers: int | None = None) -> dict:
    """The check-videos scan of ``records`` (every video ``cfg``'s split listing names) plus ``missing``
    (listed files the tree lacks); :func:`htsc_core.data.registry.screen_dataset` is the entry point.

    Returns ``{"dataset", "data_root", "split", "checked", "problems", "key", "cache"}``;
    ``problems`` holds one check-videos entry per unusable video: listed files the tree lacks
    (with the split-file line), dangling links, unreadable, empty, truncated or too-short files.
    With ``cache`` the result is kept in ``<runs_dir>/video-check/`` under a key made of the
    dataset root, the split and every listed file's size and modification time, so the scan
    runs once per listing (again only when a file changes). ``workers`` defaults to
    ``cfg.num_workers`` (at least 1).
    """
    key = _listing_key(cfg, records, missing, min_frames)
    if key in _SCREENS:
        return _SCREENS[key]
    path = Path(cfg.runs_dir) / "video-check" / f"{cfg.dataset}-split{cfg.split}-{key[:16]}.json" if cache else None
    if path is not None and path.is_file():
        try:
            result = json.loads(path.read_text())
            if result.get("key") == key:
                _SCREENS[key] = result
                return result
        except (OSError, ValueError):
            pass  # a damaged cache file is rescanned and rewritten
    t0 = time.perf_counter()
    problems = missing + check_videos([r.path for r in records], min_frames,
                                      workers=max(1, int(workers if workers is not None else cfg.num_workers)))
    result = {"dataset": cfg.dataset, "data_root": str(Path(cfg.data_root).expanduser().resolve()),
              "split": cfg.split, "min_frames": min_frames, "checked": len(records) + len(missing),
              "problems": problems, "seconds": round(time.perf_counter() - t0, 2), "key": key,
              "cache": str(path) if path is not None else None}
    if path is not None:
        atomic_write_json(path, result)
    _SCREENS[key] = result
    return result


def warn_excluded(problems: Iterable[dict], what: str) -> None:
    """One warning per problem video (once per process), naming the file and the reason."""
    for p in problems:
        if p["path"] in _WARNED:
            continue
        _WARNED.add(p["path"])
        warnings.warn(f"{what}: leaving out {p['path']}: {p['kind']} ({p['reason']})", RuntimeWarning, stacklevel=3)
