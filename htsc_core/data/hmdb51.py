"""HMDB51 split parser (Kuehne et al. 2011; paper section 4.1, docs/DESIGN.md section 4).

Layout of ``cfg.data_root`` for ``dataset="hmdb51"``::

    ROOT/videos/<class>/<video>.avi                  the videos, one folder per class
    ROOT/splits/<class>_test_split{1,2,3}.txt        "<video>.avi 0|1|2"

In the split files 1 = training, 2 = testing, 0 = not used in this split.
Class names are the split-file prefixes; labels are their sorted positions
(the usual HMDB51 convention, e.g. mmaction2's class list).
HMDB51 has no UCF101-style groups, so ``VideoRecord.group`` is None.
"""
from __future__ import annotations

import re
from pathlib import Path

from htsc_core.data.records import (
    SplitFileError,
    VideoRecord,
    listed_but_absent,
    require_dir,
    safe_relative,
    video_id_of,
)

HMDB_VIDEO_DIR = "videos"
HMDB_SPLIT_DIR = "splits"
_SPLIT_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")
_CODES = {"1": "train", "2": "test", "0": None}


def hmdb51_classes(split_dir: str | Path, split: int) -> list[str]:
    """Sorted class names from ``<class>_test_split<split>.txt`` files."""
    split_dir = require_dir(Path(split_dir), "HMDB51 split folder (ROOT/splits/<class>_test_split1.txt)")
    names = sorted(m.group("cls") for p in split_dir.iterdir() if (m := _SPLIT_RE.match(p.name))
                   and int(m.group("split")) == split)
    if not names:
        raise FileNotFoundError(
            f"no HMDB51 split files '<class>_test_split{split}.txt' in {split_dir}; point cfg.data_root at a "
            f"local HMDB51 copy laid out as ROOT/videos/<class>/*.avi + ROOT/splits/"
        )
    return names


def parse_hmdb51(
    video_root: str | Path, split_dir: str | Path, split: int, subset: str, missing: list[dict] | None = None
) -> tuple[list[VideoRecord], list[str]]:
    """Official HMDB51 split ``split`` (1..3); ``subset`` "train" (code 1) or "test" (code 2).

    A listed video absent from disk raises :class:`SplitFileError`, or, when ``missing`` is a
    list, is appended there (a ``check-videos`` problem entry) and left out.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"HMDB51 split={split}; expected 1, 2 or 3")
    if subset not in ("train", "test"):
        raise ValueError(f"parse_hmdb51 subset={subset!r}; expected 'train' or 'test'")
    root = require_dir(Path(video_root), "HMDB51 video folder (ROOT/videos/<class>/*.avi)").absolute()
    class_names = hmdb51_classes(split_dir, split)
    records: list[VideoRecord] = []
    for label, cls in enumerate(class_names):
        split_file = Path(split_dir) / f"{cls}_test_split{split}.txt"
        for lineno, raw in enumerate(split_file.read_text().splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in _CODES:
                raise SplitFileError(split_file, lineno, f"malformed line {raw!r}; expected '<video>.avi 0|1|2'")
            if "/" in parts[0] or "\\" in parts[0]:
                safe_relative(root / cls, parts[0], split_file, lineno)
                raise SplitFileError(split_file, lineno, f"expected a bare file name, got path {parts[0]!r}")
            if _CODES[parts[1]] != subset:
                continue
            path = safe_relative(root, f"{cls}/{parts[0]}", split_file, lineno)
            if not path.is_file():
                if missing is None:
                    raise SplitFileError(split_file, lineno, f"video file {path} does not exist")
                missing.append(listed_but_absent(path, f"{split_file}:{lineno}"))
                continue
            records.append(VideoRecord(path=path, label=label, split=subset, video_id=video_id_of(path, root)))
    return records, class_names
