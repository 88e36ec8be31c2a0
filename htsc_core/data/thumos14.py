"""THUMOS14 untrimmed-video classification records (Jiang et al. 2014; paper section 4.1).

Layout of ``cfg.data_root`` for ``dataset="thumos14"``::

    ROOT/UCF-101/<Class>/*.avi                       UCF101 videos (the THUMOS14 training set)
    ROOT/ucfTrainTestlist/classInd.txt, trainlist01.txt, testlist01.txt
    ROOT/validation/video_validation_0000051.mp4     THUMOS14 validation videos
    ROOT/test/video_test_0000004.mp4                 THUMOS14 test videos
    ROOT/annotations/val/<Class>_val.txt             "video_validation_0000051 67.5 75.9"
    ROOT/annotations/test/<Class>_test.txt           "video_test_0000004 0.2 1.1"

Protocol (paper section 4.1, as in the THUMOS14 challenge): train on all 13,320
UCF101 videos (trainlist01 + testlist01), validate on the THUMOS14 validation
videos, test on the THUMOS14 test videos; metric mAP. A video's labels are
every class with at least one annotated instance in it (multi-label, over the
101 UCF101 classes). Class names in annotation file names are matched to
UCF101's classInd case-insensitively. ``Ambiguous_<subset>.txt`` (segments the
annotators could not label) is skipped.
"""
from __future__ import annotations

from pathlib import Path

from htsc_core.data.records import (
    SplitFileError,
    VideoRecord,
    listed_but_absent,
    require_dir,
    safe_relative,
    video_id_of,
)

THUMOS_VIDEO_DIRS = {"val": "validation", "test": "test"}
THUMOS_ANNOTATION_DIRS = {"val": "annotations/val", "test": "annotations/test"}
_SUFFIX = {"val": "_val.txt", "test": "_test.txt"}
_SKIPPED_CLASSES = {"ambiguous"}  # THUMOS14 marks unlabelled segments as "Ambiguous"
_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


def _find_video(video_dir: Path, name: str) -> Path | None:
    if Path(name).suffix.lower() in _EXTENSIONS:
        p = video_dir / name
        return p if p.is_file() else None
    for ext in _EXTENSIONS:
        p = video_dir / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def _dangling(video_dir: Path, name: str) -> Path:
    """The dangling symbolic link that stands for ``name`` if there is one, else ``video_dir/name``."""
    candidates = [name] if Path(name).suffix.lower() in _EXTENSIONS else [name + ext for ext in _EXTENSIONS]
    return next((video_dir / c for c in candidates if (video_dir / c).is_symlink()), video_dir / name)


def parse_thumos14(
    video_dir: str | Path, annotation_dir: str | Path, class_names: list[str], subset: str,
    missing: list[dict] | None = None,
) -> list[VideoRecord]:
    """Multi-label records for THUMOS14 ``subset`` ("val" or "test").

    ``class_names`` are UCF101's classInd names; each record's ``label`` is the sorted
    tuple of class indices with an annotated instance in that video. An annotated video
    absent from ``video_dir`` raises :class:`SplitFileError`, or, when ``missing`` is a
    list, is appended there once (a ``check-videos`` problem entry) and left out.
    """
    if subset not in _SUFFIX:
        raise ValueError(f"parse_thumos14 subset={subset!r}; expected 'val' or 'test'")
    video_dir = require_dir(Path(video_dir), f"THUMOS14 {subset} video folder").absolute()
    annotation_dir = require_dir(Path(annotation_dir), f"THUMOS14 {subset} temporal annotation folder")
    files = sorted(p for p in annotation_dir.iterdir() if p.name.endswith(_SUFFIX[subset]))
    if not files:
        raise FileNotFoundError(
            f"no THUMOS14 annotation files '<Class>{_SUFFIX[subset]}' in {annotation_dir}; point cfg.data_root at "
            f"a local THUMOS14 copy (layout in htsc_core/data/thumos14.py)"
        )
    lookup = {n.lower(): i for i, n in enumerate(class_names)}
    labels: dict[str, set[int]] = {}
    paths: dict[str, Path] = {}
    absent: set[str] = set()
    for ann in files:
        cls = ann.name[: -len(_SUFFIX[subset])]
        if cls.lower() in _SKIPPED_CLASSES:
            continue
        if cls.lower() not in lookup:
            raise SplitFileError(ann, 1, f"unknown class {cls!r} (annotation file name not in UCF101 classInd)")
        label = lookup[cls.lower()]
        for lineno, raw in enumerate(ann.read_text().splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise SplitFileError(ann, lineno, f"malformed line {raw!r}; expected '<video> <start s> <end s>'")
            try:
                start, end = float(parts[1]), float(parts[2])
            except ValueError:
                raise SplitFileError(ann, lineno, f"start/end {parts[1]!r} {parts[2]!r} are not numbers") from None
            if start < 0 or end < start:
                raise SplitFileError(ann, lineno, f"bad segment [{start}, {end}]")
            name = parts[0]
            if name in absent:
                continue
            if name not in paths:
                safe_relative(video_dir, name, ann, lineno)
                if "/" in name or "\\" in name:
                    raise SplitFileError(ann, lineno, f"expected a bare video name, got path {name!r}")
                path = _find_video(video_dir, name)
                if path is None:
                    if missing is None:
                        raise SplitFileError(ann, lineno, f"video {name!r} not found in {video_dir}")
                    missing.append(listed_but_absent(_dangling(video_dir, name), f"{ann}:{lineno}"))
                    absent.add(name)
                    continue
                paths[name] = path
            labels.setdefault(name, set()).add(label)
    return [
        VideoRecord(path=paths[n], label=tuple(sorted(labels[n])), split=subset,
                    video_id=video_id_of(paths[n], video_dir))
        for n in sorted(labels)
    ]
