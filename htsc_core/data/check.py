"""``htsc check-videos``: find unreadable, empty, too-short or odd videos before training.

Real datasets carry a few broken files (truncated downloads, 0-byte files,
audio-only containers). This scan lists each with a reason so they can be fixed
or dropped, instead of surfacing as a crash hours into training (DESIGN.md section 4).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable

from htsc_core.data.records import VIDEO_EXTENSIONS, resolve_case_insensitive
from htsc_core.data.video import VideoReadError, read_frames, video_length


def _channels(path: Path) -> int | None:
    """Colour components of the first video stream's pixel format (3 for yuv/rgb, 1 gray, 4 alpha)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        fmt = container.streams.video[0].codec_context.format
        return len(fmt.components) if fmt is not None else None


def probe_video(path: str | Path, min_frames: int = 2) -> dict | None:
    """None when ``path`` is a sound video, else {"path", "kind", "reason", "frames"}."""
    path = Path(path)

    def problem(kind: str, reason: str, frames: int | None = None) -> dict:
        return {"path": str(path), "kind": kind, "reason": reason, "frames": frames}

    if not path.exists():
        return problem("missing", "file is missing")
    if path.stat().st_size == 0:
        return problem("empty", "file is empty (0 bytes)")
    try:
        channels = _channels(path)
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
    if n < min_frames:
        return problem("too_short", f"{n} frame(s) < min-frames {min_frames}", n)
    try:
        frames = read_frames(path, sorted({0, n // 2, n - 1}))
    except VideoReadError as exc:
        return problem("unreadable", exc.reason, n)
    if frames.shape[-1] != 3:
        return problem("channels", f"decoded {frames.shape[-1]} channels, expected 3", n)
    return None


def check_videos(paths: Iterable[str | Path], min_frames: int = 2) -> list[dict]:
    """Probe every path; return one dict per problem video (path, kind, reason, frames)."""
    from tqdm.auto import tqdm

    if min_frames < 1:
        raise ValueError(f"min_frames={min_frames}; expected >= 1")
    paths = list(paths)
    disable = not sys.stderr.isatty() or bool(os.environ.get("CI"))
    out = []
    for p in tqdm(paths, desc="check-videos", unit="video", disable=disable):
        res = probe_video(p, min_frames)
        if res is not None:
            out.append(res)
    return out


def scan_videos(root: str | Path) -> list[Path]:
    """Every file under ``root`` with a video extension (.avi .mp4 .mkv .webm .mov), sorted."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


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
        hit = next((p for c in candidates if (p := resolve_case_insensitive(root, c)) is not None and p.is_file()),
                   None)
        if hit is None:
            problems.append({"path": str(root / rel), "kind": "missing", "reason": f"{where}: file is missing",
                             "frames": None})
        elif hit not in seen:
            seen.add(hit)
            paths.append(hit)
    return paths, problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset video folder to scan")
    parser.add_argument("--split", type=Path, default=None, help="check only the videos named in this split file")
    parser.add_argument("--min-frames", type=int, default=2, help="fewer frames than this is 'too short' (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="write the findings to this JSON file")


def command(args: argparse.Namespace) -> int:
    from htsc_core.utils import atomic_write_json

    root = Path(args.root)
    if not root.is_dir():
        print(f"check-videos: {root} is not a directory", file=sys.stderr)
        return 2
    if args.split is not None:
        paths, problems = paths_from_split(root, args.split)
    else:
        paths, problems = scan_videos(root), []
    problems += check_videos(paths, args.min_frames)
    for p in problems:
        print(f"{p['kind']:>16}  {p['path']}  ({p['reason']})")
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    detail = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
    print(f"check-videos: {len(paths)} videos checked under {root}: {len(problems)} problem(s)"
          + (f" ({detail})" if detail else ""))
    if args.json is not None:
        atomic_write_json(args.json, {"root": str(root), "split": str(args.split) if args.split else None,
                                      "min_frames": args.min_frames, "checked": len(paths), "problems": problems})
    return 1 if problems else 0
