"""Real evidence from a second release: DMC-Net's per-video UCF101 and HMDB51 scores, loaded and checked.

The release (Shou et al., "DMC-Net", CVPR 2019; GitHub facebookresearch/dmc-net, folder ``exp_my/``,
commit 323d160, MIT) publishes, for every test video of UCF101 and HMDB51 splits 1-3, the scores of an
RGB stream (CoViAR's I-frame ResNet-152), a stream on TV-L1 flow, and DMC-Net's learned motion cue
(motion vectors + residuals -> a generated flow-like input, ResNet-18). Like Hidden Two-Stream it replaces
TV-L1 by a learned, cheap motion input, so it answers the same fusion questions (:mod:`htsc_core.release_questions`).
The three streams are vendored, converted to plain arrays, in ``data/external/dmc_net_scores/``
(its README says what each array is and what was converted) and verified against ``SHA256SUMS`` on every load.

:func:`load_dmc` returns the same :class:`~htsc_core.release_data.ReleaseScores` as the Hidden Two-Stream
loader: raw scores per stream (n, M), labels, class names (from the names' class folders), video ids
(aligned by name across the streams) and the groups that cross-fitting leaves out whole
(:func:`crossfit_groups`).
"""
from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from htsc_core.release_data import ROOT, ReleaseDataError, ReleaseScores, verify_checksums

DMC_DIR = ROOT / "data" / "external" / "dmc_net_scores"
SOURCE = "facebookresearch/dmc-net, folder exp_my/, commit 323d160 (MIT)"
DATASETS = ("ucf101", "hmdb51")
SPLITS = (1, 2, 3)
# stream name in the files -> its role in the paper's questions (rgb: the spatial stream; tvl1: the
# two-stream baseline's temporal stream; learned: the learned-motion stream that replaces TV-L1)
STREAMS = {"rgb_iframe": "rgb", "tvl1_flow": "tvl1", "dmc_generated": "learned"}
N_FOLDS = 7  # HMDB51 cross-fitting folds, as many as UCF101's test groups per split
_UCF_GROUP = re.compile(r"_g(\d\d)_c\d+$")
# HMDB51 file names: <source video>_<class>_<body part>_<camera motion>_<people>_<viewpoint>_<quality>_<clip>
# (Kuehne et al. 2011, the dataset's meta tags); clips of one source video share the prefix.
_HMDB_TAGS = r"_[fhul]_(?:cm|nm)_np\d+_(?:fr|ba|le|ri)_(?:bad|med|goo)_\d+"


def file_name(dataset: str, split: int, stream: str) -> str:
    return f"{dataset}_split{split}_{stream}.npz"


def _check(dataset: str, split: int) -> None:
    if dataset not in DATASETS or split not in SPLITS:
        raise ValueError(f"release_dmc.py: no DMC-Net scores for dataset={dataset!r} split={split!r}; "
                         f"the release has {DATASETS} x splits {SPLITS}")


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("scores", "labels", "names")}
    except KeyError as exc:
        raise ReleaseDataError(f"{path}: no array {exc} (expected scores, labels, names)") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ReleaseDataError(f"{path}: cannot read as a numpy .npz file ({exc})") from exc
    scores = np.asarray(arrays["scores"], dtype=np.float64)
    labels = np.asarray(arrays["labels"], dtype=np.int64)
    names = [str(x) for x in arrays["names"]]
    if scores.ndim != 2 or labels.shape != (scores.shape[0],) or len(names) != scores.shape[0]:
        raise ReleaseDataError(f"{path}: scores {scores.shape}, labels {labels.shape} and {len(names)} names "
                               "do not describe the same videos")
    if not np.all(np.isfinite(scores)):
        raise ReleaseDataError(f"{path}: scores contain NaN or inf")
    if len(set(names)) != len(names):
        raise ReleaseDataError(f"{path}: {len(names) - len(set(names))} video names appear twice")
    return scores, labels, names


def class_map(names, labels, where: str) -> list[str]:
    """Class names indexed by label, from the class folder of each name ("<Class>/<file>"); refuses a label
    that stands for two folders, a folder with two labels, or labels that skip an index."""
    folders: dict[int, set[str]] = {}
    for name, y in zip(names, labels):
        if "/" not in name:
            raise ReleaseDataError(f"{where}: video name {name!r} has no class folder ('<Class>/<file>')")
        folders.setdefault(int(y), set()).add(name.split("/", 1)[0])
    clash = {y: sorted(f) for y, f in folders.items() if len(f) > 1}
    if clash:
        raise ReleaseDataError(f"{where}: a label names videos of several class folders: {clash}")
    if sorted(folders) != list(range(len(folders))):
        raise ReleaseDataError(f"{where}: labels {sorted(folders)[:3]}... are not 0..{len(folders) - 1}")
    out = [next(iter(folders[k])) for k in range(len(folders))]
    if len(set(out)) != len(out):
        raise ReleaseDataError(f"{where}: a class folder has two labels")
    return out


def crossfit_groups(dataset: str, video_ids, n_folds: int = N_FOLDS) -> np.ndarray:
    """The group of each video that cross-fitting leaves out whole (:func:`htsc_core.release_fit.cross_fit`).

    UCF101: the video's group gXX (clips of one group share actors and scenes; a split's test list holds
    seven). HMDB51 has no groups; clips cut from one source video share its name prefix, so whole source
    videos go to ``n_folds`` folds "f1".."f<n>", the largest first, each to the fold with the fewest videos
    (ties: the first), which keeps the folds balanced and the assignment deterministic.
    """
    ids = [str(v) for v in video_ids]
    if dataset == "ucf101":
        out = []
        for v in ids:
            m = _UCF_GROUP.search(v)
            if m is None:
                raise ReleaseDataError(f"release_dmc.py: no UCF101 group (_gXX_cYY) in {v!r}")
            out.append(f"g{m.group(1)}")
        return np.array(out)
    if dataset != "hmdb51":
        raise ValueError(f"release_dmc.py: dataset={dataset!r}; expected one of {DATASETS}")
    sources = []
    for v in ids:
        cls, _, stem = v.partition("/")
        m = re.fullmatch(rf"(.+)_{re.escape(cls)}{_HMDB_TAGS}", stem)
        if m is None:
            raise ReleaseDataError(f"release_dmc.py: {v!r} is not an HMDB51 clip name "
                                   "(<source>_<class>_<tags>_<clip>)")
        sources.append(m.group(1))
    counts = Counter(sources)
    sizes = [0] * n_folds
    fold_of = {}
    for src, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        f = int(np.argmin(sizes))
        fold_of[src] = f"f{f + 1}"
        sizes[f] += k
    return np.array([fold_of[s] for s in sources])


def load_dmc(dataset: str, split: int, root: str | Path = DMC_DIR, verify: bool = True) -> ReleaseScores:
    """One dataset and split of the release: raw scores (logits) of the three streams, aligned by video name
    (the RGB stream's order), labels, class names, video ids ("<Class>/<file>" without extension) and
    cross-fitting groups. Every file read is checked against ``SHA256SUMS`` first (``verify``)."""
    _check(dataset, split)
    root = Path(root)
    files = {stream: file_name(dataset, split, stream) for stream in STREAMS}
    checksums = verify_checksums(root, list(files.values())) if verify else {}
    scores, ref = {}, None
    for stream, name in files.items():
        path = root / name
        x, y, names = _read(path)
        if ref is None:
            ref = (names, y, class_map(names, y, str(path)), path)
            order = np.arange(len(names))
        else:
            index = {v: i for i, v in enumerate(names)}
            missing = [v for v in ref[0] if v not in index]
            if missing or len(names) != len(ref[0]):
                raise ReleaseDataError(f"{path}: {len(names)} videos, {ref[3].name} {len(ref[0])}; "
                                       f"{len(missing)} of the latter are missing here (e.g. {missing[:2]})")
            order = np.array([index[v] for v in ref[0]])
            if not np.array_equal(y[order], ref[1]):
                bad = int(np.sum(y[order] != ref[1]))
                raise ReleaseDataError(f"{path}: {bad} videos have another label than in {ref[3].name}")
        if x.shape[1] != len(ref[2]):
            raise ReleaseDataError(f"{path}: scores have {x.shape[1]} classes, the names {len(ref[2])}")
        scores[stream] = x[order]
    names, labels, class_names, _ = ref
    video_ids = [v.rsplit(".", 1)[0] for v in names]
    return ReleaseScores(scores=scores, labels=labels, class_names=class_names,
                         groups=crossfit_groups(dataset, video_ids), video_ids=video_ids, checksums=checksums)


def load_all(root: str | Path = DMC_DIR, verify: bool = True) -> dict[tuple[str, int], ReleaseScores]:
    """Every dataset and split: {(dataset, split): ReleaseScores}."""
    return {(d, s): load_dmc(d, s, root, verify) for d in DATASETS for s in SPLITS}
