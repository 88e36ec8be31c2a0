"""``htsc check-videos``: find unreadable, empty, too-short or odd videos before training.

Real datasets carry a few broken files (truncated downloads, 0-byte files,
audio-only containers, dangling symbolic links, files without read permission,
names a split file lists that the tree lacks). This scan lists each with a reason so
they can be fixed or dropped, instead of surfacing as a crash hours into training
(docs/DESIGN.md section 4).

The same scan screens a user's dataset for the study (:func:`screen_dataset`): it runs
once per split listing (cached under ``<runs_dir>/video-check/``), ``load_split`` leaves
the problem videos out of every subset with a warning naming each, notebook 00 records
them in ``<results_dir>/metrics/skipped.json`` (:func:`write_skipped`) and every training
run in its ``skipped.jsonl`` (:func:`log_excluded`). The study goes on without them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Iterable

from htsc_core.data.records import VIDEO_EXTENSIONS, resolve_case_insensitive
from htsc_core.data.video import VideoReadError, read_frames, video_length
from htsc_core.utils import progress_disabled


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
    from tqdm.auto import tqdm

    if min_frames < 1:
        raise ValueError(f"min_frames={min_frames}; expected >= 1")
    paths = list(paths)
    bar = tqdm(total=len(paths), desc="check-videos", unit="video", disable=progress_disabled())  # TQDM_DISABLE
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


def scan_videos(root: str | Path, problems: list[dict] | None = None) -> list[Path]:
    """Every file under ``root`` with a video extension (.avi .mp4 .mkv .webm .mov), sorted.

    Dangling symbolic links with a video extension are included (the probe reports them);
    a folder that cannot be listed is appended to ``problems`` (kind "unreadable_dir")
    when a list is given, instead of being passed over silently.
    """
    root = Path(root)
    found: list[Path] = []

    def on_error(exc: OSError) -> None:
        if problems is not None:
            problems.append({"path": str(exc.filename), "kind": "unreadable_dir", "frames": None,
                             "reason": f"cannot list folder ({exc.strerror or type(exc).__name__})"})

    for folder, _dirs, files in os.walk(root, onerror=on_error, followlinks=True):
        for name in files:
            p = Path(folder) / name
            if p.suffix.lower() in VIDEO_EXTENSIONS and (p.is_file() or p.is_symlink()):
                found.append(p)
    return sorted(found)


def paths_from_split(root: str | Path, split_file: str | Path) -> tuple[list[Path], list[dict]]:
    """Videos named in a split file (first token of each line: UCF101, HMDB51 or THUMOS14 syntax).

    Returns (paths, problems) where problems are names that resolve outside ``root`` or to nothing.
    HMDB51 names ("x.avi" in ``<class>_test_split1.txt``) are looked up under ``root/<class>``;
    THUMOS14 names without extension are tried with each video extension.
    """
    root, split_file = Path(root), Path(split_file)
    if not split_file.is_file():
        raise FileNotFoundError(f"split file {split_file} not found")
    hmdb_class = split_file.name.rsplit("_test_split", 1)[0] if "_test_split" in split_file.name else None
    paths: list[Path] = []
    problems: list[dict] = []
    seen: set[Path] = set()
    for lineno, raw in enumerate(split_file.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        rel = parts[0].replace("\\", "/")
        where = f"{split_file}:{lineno}"
        if Path(rel).is_absolute() or rel == ".." or rel.startswith("../") or "/../" in rel:
            problems.append({"path": rel, "kind": "outside_root", "reason": f"{where}: path outside {root}",
                             "frames": None})
            continue
        candidates = [rel] + ([f"{hmdb_class}/{rel}"] if hmdb_class and "/" not in rel else [])
        if not Path(rel).suffix:
            candidates += [rel + ext for ext in VIDEO_EXTENSIONS]
        hit = next((p for c in candidates if (p := resolve_case_insensitive(root, c)) is not None
                    and (p.is_file() or p.is_symlink())), None)  # a dangling link is reported by the probe
        if hit is None:
            problems.append({"path": str(root / rel), "kind": "missing", "reason": f"{where}: file is missing",
                             "frames": None})
        elif hit not in seen:
            seen.add(hit)
            paths.append(hit)
    return paths, problems


# --------------------------------------------------------------------- a dataset's screen
MIN_FRAMES = 2  # a flow needs one frame pair; shorter videos are sampled by repeating frames
_SCREENS: dict[str, dict] = {}  # listing key -> scan result, per process
_WARNED: set[str] = set()


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


def screen_dataset(cfg, cache: bool = True, min_frames: int = MIN_FRAMES, workers: int | None = None) -> dict:
    """The check-videos scan of every video ``cfg``'s split listing names (train, val, test).

    Returns ``{"dataset", "data_root", "split", "checked", "problems", "key", "cache"}``;
    ``problems`` holds one check-videos entry per unusable video: listed files the tree lacks
    (with the split-file line), dangling links, unreadable, empty, truncated or too-short files.
    With ``cache`` the result is kept in ``<runs_dir>/video-check/`` under a key made of the
    dataset root, the split and every listed file's size and modification time, so the scan
    runs once per listing (again only when a file changes). ``workers`` defaults to
    ``cfg.num_workers`` (at least 1).
    """
    from htsc_core.data.registry import listed_videos
    from htsc_core.utils import atomic_write_json

    records, missing = listed_videos(cfg)
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


def write_skipped(cfg, scan: dict) -> Path:
    """``<results_dir>/metrics/skipped.json``: the videos the study leaves out, each with its reason."""
    from htsc_core.utils import atomic_write_json, run_metadata

    body = {k: scan[k] for k in ("dataset", "data_root", "split", "min_frames", "checked", "problems")}
    return atomic_write_json(Path(cfg.results_dir) / "metrics" / "skipped.json",
                             {"metrics": body, "meta": run_metadata(cfg)})


def log_excluded(cfg, skip_log: str | Path) -> int:
    """Append the videos the screen leaves out to a run's ``skipped.jsonl`` (lines not already there).

    Same line format as :class:`htsc_core.data.dataset.VideoDataset`'s skips, plus ``kind`` and
    ``"when": "screen"``. Returns the number of lines added. Nothing for unscreened datasets.
    """
    if cfg.dataset == "synthetic":
        return 0
    skip_log = Path(skip_log)
    problems = screen_dataset(cfg)["problems"]
    have = set()
    if skip_log.is_file():
        for line in skip_log.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("when") == "screen":
                have.add(entry.get("path"))
    new = [p for p in problems if p["path"] not in have]
    if new:
        skip_log.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with open(skip_log, "a", encoding="utf-8") as fh:  # O_APPEND: short lines, as the dataset's skips
            for p in new:
                fh.write(json.dumps({"path": p["path"], "reason": p["reason"], "kind": p["kind"],
                                     "when": "screen", "time": stamp}) + "\n")
    return len(new)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset video folder to scan (the dataset root with --dataset)")
    parser.add_argument("--split", type=Path, default=None, help="check only the videos named in this split file")
    parser.add_argument("--dataset", choices=("ucf101", "hmdb51", "thumos14", "synthetic"), default=None,
                        help="ROOT is this dataset's root: check every video its split listing names "
                             "(train, val, test; the scan the study screens with)")
    parser.add_argument("--split-number", type=int, default=1, help="official split with --dataset (default 1)")
    parser.add_argument("--min-frames", type=int, default=MIN_FRAMES,
                        help=f"fewer frames than this is 'too short' (default {MIN_FRAMES})")
    parser.add_argument("--workers", type=int, default=1, help="videos probed in parallel (threads, default 1)")
    parser.add_argument("--json", type=Path, default=None, help="write the findings to this JSON file")


def command(args: argparse.Namespace) -> int:
    from htsc_core.utils import atomic_write_json

    root = Path(args.root)
    if not root.is_dir():
        print(f"check-videos: {root} is not a directory", file=sys.stderr)
        return 2
    if args.dataset is not None:
        from htsc_core.config import from_params

        cfg = from_params(dataset=args.dataset, data_root=str(root), split=args.split_number)
        scan = screen_dataset(cfg, cache=False, min_frames=args.min_frames, workers=args.workers)
        checked, problems = scan["checked"], scan["problems"]
    else:
        if args.split is not None:
            paths, problems = paths_from_split(root, args.split)
        else:
            problems = []
            paths = scan_videos(root, problems)
        problems += check_videos(paths, args.min_frames, workers=args.workers)
        checked = len(paths)
    for p in problems:
        print(f"{p['kind']:>16}  {p['path']}  ({p['reason']})")
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    detail = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
    print(f"check-videos: {checked} videos checked under {root}: {len(problems)} problem(s)"
          + (f" ({detail})" if detail else ""))
    if args.json is not None:
        atomic_write_json(args.json, {"root": str(root), "split": str(args.split) if args.split else None,
                                      "dataset": args.dataset, "min_frames": args.min_frames, "checked": checked,
                                      "problems": problems})
    return 1 if problems else 0
