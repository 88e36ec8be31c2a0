"""Video records and split-file errors shared by every dataset parser (docs/DESIGN.md section 4).

A :class:`VideoRecord` is one labelled video of one subset; parsers return
lists of them and :func:`htsc_core.data.registry.load_split` dispatches on the
dataset. Validation helpers here turn every bad split-file line into a
:class:`SplitFileError` naming the file, the line and the problem.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov")
SUBSETS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoRecord:
    path: Path  # absolute path of the video file
    label: int | tuple[int, ...]  # class index; tuple of indices for multi-label (THUMOS14)
    split: str  # "train" | "val" | "test"
    video_id: str  # path relative to the video root, without extension ("Class/v_Class_g08_c01")
    group: str | None = None  # UCF101-style group ("g08"), used for leakage-free validation splits

    def __post_init__(self) -> None:
        if self.split not in SUBSETS:
            raise ValueError(f"VideoRecord.split={self.split!r}; expected one of {SUBSETS}")


class SplitFileError(ValueError):
    """A split/annotation file line is malformed or names a bad video.

    The message reads ``"<split file>:<line>: <problem>"``.
    """

    def __init__(self, split_file: str | Path, line: int, problem: str) -> None:
        self.split_file = Path(split_file)
        self.line = line
        self.problem = problem
        super().__init__(f"{split_file}:{line}: {problem}")


def require_dir(path: Path, what: str) -> Path:
    """Raise FileNotFoundError explaining what was expected when ``path`` is not a directory."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what} not found: expected a directory at {path}. Real datasets cannot be downloaded "
            f"by this toolkit; point it at a local copy with cfg.data_root (see the layout in "
            f"htsc_core/data/<dataset>.py)."
        )
    return path


def require_file(path: Path, what: str) -> Path:
    """Raise FileNotFoundError explaining what was expected when ``path`` is not a file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: expected a file at {path}. Point the toolkit at a local copy of "
            f"the dataset with cfg.data_root (see the layout in htsc_core/data/<dataset>.py)."
        )
    return path


def safe_relative(root: Path, rel: str, split_file: Path, line: int) -> Path:
    """Resolve ``rel`` under ``root``; reject absolute paths and paths escaping the root."""
    if not rel:
        raise SplitFileError(split_file, line, "empty video path")
    if Path(rel).is_absolute() or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise SplitFileError(split_file, line, f"absolute path {rel!r}; paths must be relative to {root}")
    # Lexical check (not resolve()): datasets are often symlinked, which must stay allowed.
    norm = posixpath.normpath(rel.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise SplitFileError(split_file, line, f"path {rel!r} points outside the dataset root {root}")
    return root / norm


def resolve_case_insensitive(root: Path, rel: str) -> Path | None:
    """Find ``root/rel`` matching each path component case-insensitively (UCF101 folder names).

    Returns the existing path, or None. Exact matches are preferred.
    """
    current = root
    for part in Path(rel).parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        if not current.is_dir():
            return None
        low = part.lower()
        hits = sorted(p for p in current.iterdir() if p.name.lower() == low)
        if not hits:
            return None
        current = hits[0]
    return current


def listed_but_absent(path: Path, where: str) -> dict:
    """A problem entry (check-videos format) for a video that a split file lists but the tree lacks.

    ``where`` is ``"<split file>:<line>"``; a dangling symbolic link is told apart from a missing file.
    """
    if path.is_symlink():
        import os

        return {"path": str(path), "kind": "dangling_symlink", "frames": None,
                "reason": f"{where}: symbolic link to {os.readlink(path)}, which does not exist"}
    return {"path": str(path), "kind": "missing", "frames": None, "reason": f"{where}: listed but not on disk"}


def video_id_of(path: Path, root: Path) -> str:
    """Path relative to the video root, without extension, with forward slashes."""
    return path.relative_to(root).with_suffix("").as_posix()
