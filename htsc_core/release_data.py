"""Real UCF101 evidence, part 1: the Hidden Two-Stream release's per-video scores, loaded and checked.

The release (Zhu et al. 2018; GitHub bryanyzhu/Hidden-Two-Stream, folder ``test/``, commit f7f684a,
BSD 2-clause) publishes the UCF101 split-1 test scores of three streams, 3783 videos x 101 classes
each; they are vendored in ``data/external/hts_release_ucf101_split1/`` and verified against
``SHA256SUMS`` on every load (:func:`load_release`). :func:`convert` puts them in a fusion convention
(the release's ``test/late_fusion.m`` or softmax) and :func:`parity` checks that our fusion code
reproduces the release's five published accuracies. The study on them is :mod:`htsc_core.release`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np

from htsc_core import fusion, metrics

ROOT = Path(__file__).resolve().parents[1]
RELEASE_DIR = ROOT / "data" / "external" / "hts_release_ucf101_split1"
SOURCE = "bryanyzhu/Hidden-Two-Stream, folder test/, commit f7f684a (BSD 2-clause)"
# stream name -> (file, MATLAB variable)
FILES = {
    "spatial": ("spatial_quality100_split01.mat", "spatial_prediction"),
    "hidden_temporal": ("temporal_hidden_split01.mat", "hidden_prediction"),
    "tvl1_temporal": ("temporal_tvl1_split01.mat", "temporal_prediction"),
}
TESTLIST = "testlist01.txt"
CHECKSUMS = "SHA256SUMS"
# Accuracies the release publishes from these files with its late_fusion.m recipe.
PUBLISHED = {"spatial": 0.8097, "hidden_temporal": 0.8406, "tvl1_temporal": 0.8580, "hts": 0.8900,
             "two_stream": 0.9130}
CONVENTIONS = ("release", "softmax")
# Stream pairs fused: (name suffix, first stream, second stream, has a 1:1.5 baseline and its row name);
# 1.5 is fusion.TEMPORAL_WEIGHT.
PAIRS = (
    ("", "spatial", "hidden_temporal", "hts"),
    ("_tvl1", "spatial", "tvl1_temporal", "two_stream"),
    ("_hidden_tvl1", "hidden_temporal", "tvl1_temporal", None),
)
_GROUP = re.compile(r"_g(\d\d)_c\d+\.\w+$")



class ReleaseDataError(ValueError):
    """A release file is missing, altered (checksum) or malformed; the message names the file."""


@dataclass(frozen=True)
class ReleaseScores:
    """The release's raw per-video scores (n, M) per stream, with labels and groups (n,)."""

    scores: Mapping[str, np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    groups: np.ndarray
    video_ids: list[str]
    checksums: Mapping[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksums(root: str | Path = RELEASE_DIR, names: Sequence[str] | None = None) -> dict[str, str]:
    """Check each release file against ``SHA256SUMS``; returns name -> sha256.

    Raises ``ReleaseDataError`` naming the file when it is missing, not listed, or altered.
    """
    root = Path(root)
    sums_path = root / CHECKSUMS
    if not sums_path.exists():
        raise ReleaseDataError(f"{sums_path} is missing: the release folder must carry its checksums")
    expected = {}
    for i, line in enumerate(sums_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise ReleaseDataError(f"{sums_path}:{i}: expected '<sha256>  <file>', got {line!r}")
        expected[parts[1].lstrip("*")] = parts[0]
    names = list(names) if names is not None else [f for f, _ in FILES.values()] + [TESTLIST]
    out = {}
    for name in names:
        path = root / name
        if name not in expected:
            raise ReleaseDataError(f"{path}: not listed in {sums_path}")
        if not path.exists():
            raise ReleaseDataError(f"{path} is missing (listed in {sums_path} with sha256 {expected[name]})")
        got = _sha256(path)
        if got != expected[name]:
            raise ReleaseDataError(f"{path}: checksum mismatch (sha256 {got}, {sums_path} says {expected[name]}); "
                                   "the file is altered or truncated: restore it from the release")
        out[name] = got
    return out


def parse_testlist(path: str | Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(video_ids, labels (n,), class_names, groups (n,) "g01".."g07") from a UCF101 test list.

    The class of a line is its folder; class indices follow the order of first appearance
    (the release's order, which is classInd's order for testlist01).
    """
    path = Path(path)
    ids, folders, groups = [], [], []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        rel = line.split()[0]
        if "/" not in rel:
            raise ReleaseDataError(f"{path}:{i}: expected 'Class/v_Class_gXX_cYY.avi', got {line!r}")
        folder = rel.split("/", 1)[0]
        m = _GROUP.search(rel)
        if m is None:
            raise ReleaseDataError(f"{path}:{i}: no UCF101 group (_gXX_cYY) in {rel!r}")
        ids.append(rel.rsplit(".", 1)[0])
        folders.append(folder)
        groups.append(f"g{m.group(1)}")
    if not ids:
        raise ReleaseDataError(f"{path}: no videos listed")
    class_names = list(dict.fromkeys(folders))
    index = {c: k for k, c in enumerate(class_names)}
    return ids, np.array([index[f] for f in folders], dtype=np.int64), class_names, np.array(groups)


def load_release(root: str | Path = RELEASE_DIR, verify: bool = True) -> ReleaseScores:
    """Load and check the release: raw scores of the three streams, labels, classes, groups."""
    from scipy.io import loadmat

    root = Path(root)
    checksums = verify_checksums(root) if verify else {}
    ids, labels, class_names, groups = parse_testlist(root / TESTLIST)
    scores = {}
    for stream, (name, key) in FILES.items():
        path = root / name
        try:
            mat = loadmat(str(path))
        except (OSError, ValueError) as exc:
            raise ReleaseDataError(f"{path}: cannot read as a MATLAB file ({exc})") from exc
        if key not in mat:
            found = [k for k in mat if not k.startswith("__")]
            raise ReleaseDataError(f"{path}: no variable {key!r} (found {found})")
        x = np.asarray(mat[key], dtype=np.float64)
        if x.shape != (len(ids), len(class_names)):
            raise ReleaseDataError(f"{path}: {key} has shape {x.shape}; {root / TESTLIST} lists "
                                   f"{len(ids)} videos of {len(class_names)} classes")
        if not np.all(np.isfinite(x)):
            raise ReleaseDataError(f"{path}: {key} contains NaN or inf")
        scores[stream] = x
    return ReleaseScores(scores=scores, labels=labels, class_names=class_names, groups=groups,
                         video_ids=ids, checksums=checksums)


def convert(raw, convention: str = "release") -> np.ndarray:
    """Scores (n, M) in a fusion convention.

    "release": the release's late_fusion.m: negatives clipped to 0, each row divided by its sum.
    "softmax": softmax over classes (the paper's Eq. 14 fuses "the SoftMax layer output").
    """
    x = np.asarray(raw, dtype=np.float64)
    if convention == "release":
        x = np.clip(x, 0.0, None)
        total = x.sum(axis=1, keepdims=True)
        if np.any(total <= 0):
            raise ValueError(f"release.py: {int(np.sum(total <= 0))} rows have no positive score; the release "
                             "convention (clip, normalise) is undefined for them")
        return x / total
    if convention == "softmax":
        return metrics.softmax_np(x, axis=1)
    raise ValueError(f"release.py: convention={convention!r}; expected one of {CONVENTIONS}")


def parity(rel: ReleaseScores) -> list[dict]:
    """Our fusion on the release's convention vs the release's five published accuracies (4 decimals)."""
    s, h, t = (convert(rel.scores[k]) for k in ("spatial", "hidden_temporal", "tvl1_temporal"))
    ours = {"spatial": metrics.top1(s, rel.labels), "hidden_temporal": metrics.top1(h, rel.labels),
            "tvl1_temporal": metrics.top1(t, rel.labels),
            "hts": metrics.top1(fusion.hts_fusion(s, h), rel.labels),
            "two_stream": metrics.top1(fusion.hts_fusion(s, t), rel.labels)}
    return [{"method": k, "ours": ours[k], "published": PUBLISHED[k],
             "match": round(ours[k], 4) == PUBLISHED[k]} for k in PUBLISHED]
