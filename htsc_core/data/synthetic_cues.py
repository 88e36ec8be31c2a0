"""Synthetic action set, part 5: the cue family's temporal cues on disk (docs/SYNTHETIC.md).

In the cue family the object acts during a third of the clip, at a random time
(:func:`htsc_core.data.synthetic_spec.cue_window`), and idles otherwise. ``ROOT/cues.json`` records
every video's window; :func:`cue_segments` says which test segments (the test protocol's stacks,
:func:`htsc_core.data.sampling.test_starts`) overlap it, for the CLN's coefficient analysis.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from htsc_core.data.sampling import test_starts
from htsc_core.data.synthetic_spec import CUE_FRACTION, VideoSpec, cue_window
from htsc_core.utils import atomic_write_json

CUES_NAME = "cues.json"


def write_cues(root: str | Path, specs: Sequence[VideoSpec]) -> Path:
    """ROOT/cues.json: per video, the frames [start, end] between which its object acts.

    ``{"frames": T, "cue_fraction": ..., "videos": {video_id: {"start", "end", "family", "split"}}}``;
    the object moves between frames t and t + 1 exactly when start <= t < end (full-clip classes:
    0 and T - 1).
    """
    videos = {}
    for s in sorted(specs, key=lambda s: (s.cls.index, s.group, s.clip)):
        start, end = cue_window(s)
        videos[s.video_id] = {"start": start, "end": end, "family": s.cls.family, "split": s.split}
    frames = specs[0].frames if specs else 0
    return atomic_write_json(Path(root) / CUES_NAME, {"frames": frames, "cue_fraction": CUE_FRACTION,
                                                      "videos": videos})


def read_cues(root: str | Path) -> dict[str, Any]:
    path = Path(root) / CUES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a synthetic set of generator version >= 2 has one "
                                f"(regenerate with `htsc synth --out {root}`)")
    try:
        data = json.loads(path.read_text())
        data["videos"], data["frames"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        expected = "{'frames': T, 'videos': {video_id: {'start', 'end'}}}"
        raise ValueError(f"{path}: expected {expected} ({exc})") from exc
    return data


def segment_overlaps_cue(starts: np.ndarray, length: int, cue: tuple[int, int]) -> np.ndarray:
    """(S,) bool: stack s (frames starts[s] .. starts[s] + length - 1) contains a frame pair of the cue.

    The cue's moving pairs are t = start .. end - 1; the stack's pairs are starts[s] .. starts[s] + length - 2.
    """
    starts = np.asarray(starts, dtype=np.int64)
    start, end = int(cue[0]), int(cue[1])
    return (starts < end) & (starts + length - 1 > start)


def cue_segments(root: str | Path, num_segments: int, length: int, subset: str = "test",
                 family: str | None = "cue") -> dict[str, np.ndarray]:
    """For every ``subset`` video (of ``family``; None = all), which of its test segments overlap its cue.

    Segments are those of :func:`htsc_core.data.sampling.test_starts` (``num_segments`` stacks of
    ``length`` frames, the test protocol), so entry s of the result goes with segment s of the
    network's test-time scores (e.g. the CLN's coefficient for segment s).
    """
    cues = read_cues(root)
    out = {}
    for vid, c in cues["videos"].items():
        if (subset is not None and c["split"] != subset) or (family is not None and c["family"] != family):
            continue
        starts = test_starts(int(cues["frames"]), num_segments, length)
        out[vid] = segment_overlaps_cue(starts, length, (c["start"], c["end"]))
    return out
