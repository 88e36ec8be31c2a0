"""``htsc check-videos``: find unreadable, empty, too-short or odd videos before training.

Real datasets carry a few broken files (truncated downloads, 0-byte files,
audio-only containers, dangling symbolic links, files without read permission,
names a split file lists that the tree lacks). This scan lists each with a reason so
they can be fixed or dropped, instead of surfacing as a crash hours into training
(docs/DESIGN.md section 4).

The same scan (``probe.py``) screens a user's dataset for the study (``registry.screen_dataset``): it runs
once per split listing (cached under ``<runs_dir>/video-check/``), ``load_split`` leaves
the problem videos out of every subset with a warning naming each, notebook 00 records
them in ``<results_dir>/metrics/skipped.json`` (:func:`write_skipped`) and every training
run in its ``skipped.jsonl`` (:func:`log_excluded`). The study goes on without them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from htsc_core.data.probe import MIN_FRAMES, check_videos, probe_video, truncated  # noqa: F401 - re-exported
from htsc_core.data.records import VIDEO_EXTENSIONS, resolve_case_insensitive
from htsc_core.data.registry import screen_dataset  # noqa: F401 - re-exported for the notebooks
from htsc_core.config import from_params
from htsc_core.utils import atomic_write_json, run_metadata


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


def write_skipped(cfg, scan: dict) -> Path:
    """``<results_dir>/metrics/skipped.json``: the videos the study leaves out, each with its reason."""
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
    root = Path(args.root)
    if not root.is_dir():
        print(f"check-videos: {root} is not a directory", file=sys.stderr)
        return 2
    if args.dataset is not None:
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
