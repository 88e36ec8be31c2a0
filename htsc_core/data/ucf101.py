"""UCF101 split parser (Soomro et al. 2012; paper section 4.1, docs/DESIGN.md section 4).

Layout of ``cfg.data_root`` for ``dataset="ucf101"``::

    ROOT/UCF-101/<Class>/v_<Class>_gGG_cCC.avi      the videos, one folder per class
    ROOT/ucfTrainTestlist/classInd.txt              "1 ApplyEyeMakeup" ... "101 YoYo"
    ROOT/ucfTrainTestlist/trainlist0{1,2,3}.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    ROOT/ucfTrainTestlist/testlist0{1,2,3}.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

The synthetic set (docs/DESIGN.md section 5) uses the same syntax with
``video_root=ROOT/videos`` and ``list_dir=ROOT/splits`` (split 1 only).

Class names in the lists and the folder names on disk differ in case for a few
classes (``HandStandPushups`` vs ``HandstandPushups``), so class names are
matched to ``classInd.txt`` case-insensitively and the folder on disk is
resolved case-insensitively (docs/DESIGN.md section 4).
"""
from __future__ import annotations

import re
from pathlib import Path

from htsc_core.data.records import (
    SplitFileError,
    VideoRecord,
    require_dir,
    require_file,
    listed_but_absent,
    resolve_case_insensitive,
    safe_relative,
    video_id_of,
)

UCF_VIDEO_DIR = "UCF-101"
UCF_LIST_DIR = "ucfTrainTestlist"
_GROUP_RE = re.compile(r"_g(\d+)_c\d+$", re.IGNORECASE)


def read_class_index(path: str | Path) -> list[str]:
    """Parse ``classInd.txt`` -> class names ordered by their 1-based index (label = position)."""
    path = require_file(Path(path), "UCF101 class index classInd.txt")
    entries: dict[int, str] = {}
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFileError(path, lineno, f"expected '<index> <ClassName>', got {raw!r}")
        idx, name = int(parts[0]), parts[1]
        if idx in entries:
            raise SplitFileError(path, lineno, f"class index {idx} appears twice")
        if name.lower() in seen:
            raise SplitFileError(path, lineno, f"class name {name!r} appears twice (case-insensitive)")
        entries[idx] = name
        seen[name.lower()] = idx
    if not entries:
        raise SplitFileError(path, 1, "no classes listed")
    if sorted(entries) != list(range(1, len(entries) + 1)):
        raise SplitFileError(path, 1, f"class indices must be 1..{len(entries)} without gaps, got {sorted(entries)}")
    return [entries[i] for i in range(1, len(entries) + 1)]


def group_of(video_id: str) -> str | None:
    """UCF101 group ("g08") from ``.../v_Class_g08_c01``; None when the name has no group."""
    m = _GROUP_RE.search(video_id)
    return f"g{int(m.group(1)):02d}" if m else None


def parse_list_file(
    list_file: str | Path,
    video_root: str | Path,
    class_names: list[str],
    split_name: str,
    require_label: bool,
    missing: list[dict] | None = None,
) -> list[VideoRecord]:
    """Parse one UCF101-syntax list file ("Class/video.avi [label]") into records.

    Every line is validated: path inside ``video_root``, known class (case-insensitive),
    label (if given) consistent with the class, and the file present on disk
    (folder resolved case-insensitively). Problems raise :class:`SplitFileError`, except
    a video absent from disk when ``missing`` is a list: it is appended there (a
    ``check-videos`` problem entry) and left out.
    """
    list_file = require_file(Path(list_file), "UCF101-style split list")
    root = Path(video_root).absolute()
    require_dir(root, "video root")
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    records: list[VideoRecord] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(list_file.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (1, 2) or (require_label and len(parts) != 2):
            want = "'<Class>/<video> <label>'" if require_label else "'<Class>/<video> [label]'"
            raise SplitFileError(list_file, lineno, f"malformed line {raw!r}; expected {want}")
        rel = parts[0]
        safe_relative(root, rel, list_file, lineno)
        rel_parts = rel.replace("\\", "/").split("/")
        if len(rel_parts) != 2:
            raise SplitFileError(list_file, lineno, f"expected '<Class>/<video file>', got {rel!r}")
        cls = rel_parts[0]
        if cls.lower() not in lookup:
            raise SplitFileError(list_file, lineno, f"unknown class {cls!r} (not in classInd.txt)")
        label = lookup[cls.lower()]
        if len(parts) == 2:
            if not parts[1].isdigit():
                raise SplitFileError(list_file, lineno, f"label {parts[1]!r} is not a positive integer")
            given = int(parts[1]) - 1  # lists are 1-based
            if given != label:
                given_name = class_names[given] if 0 <= given < len(class_names) else "out of range"
                raise SplitFileError(
                    list_file, lineno,
                    f"label {parts[1]} ({given_name}) disagrees with the path's class {class_names[label]!r}",
                )
        path = resolve_case_insensitive(root, rel)
        if path is None or not path.is_file():
            if missing is None:
                raise SplitFileError(list_file, lineno, f"video file {root / rel} does not exist")
            missing.append(listed_but_absent(path or root / rel, f"{list_file}:{lineno}"))
            continue
        vid = video_id_of(path, root)
        if vid in seen:
            raise SplitFileError(list_file, lineno, f"video {rel!r} listed twice")
        seen.add(vid)
        records.append(VideoRecord(path=path, label=label, split=split_name, video_id=vid, group=group_of(vid)))
    return records


def parse_ucf101(
    video_root: str | Path, list_dir: str | Path, split: int, subset: str, missing: list[dict] | None = None
) -> tuple[list[VideoRecord], list[str]]:
    """Official UCF101 split ``split`` (1..3), ``subset`` "train" (trainlist) or "test" (testlist).

    Returns (records, class_names); labels are 0-based positions in classInd.txt. Listed videos
    absent from disk raise, or go to ``missing`` when it is a list (see :func:`parse_list_file`).
    Validation held-out groups are carved out of "train" by ``registry.load_split``.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 split={split}; expected 1, 2 or 3")
    if subset not in ("train", "test"):
        raise ValueError(f"parse_ucf101 subset={subset!r}; expected 'train' or 'test'")
    video_root, list_dir = Path(video_root), Path(list_dir)
    require_dir(video_root, "UCF101 video folder (ROOT/UCF-101/<Class>/*.avi)")
    require_dir(list_dir, "UCF101 split folder (ROOT/ucfTrainTestlist)")
    class_names = read_class_index(list_dir / "classInd.txt")
    name = f"{'trainlist' if subset == 'train' else 'testlist'}{split:02d}.txt"
    records = parse_list_file(list_dir / name, video_root, class_names, subset, require_label=subset == "train",
                              missing=missing)
    return records, class_names
