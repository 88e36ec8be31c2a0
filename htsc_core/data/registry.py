"""Dataset registry: ``load_split(cfg, subset)`` for every dataset (docs/DESIGN.md section 4).

Subsets: "train", "val" (disjoint from train) and "test".

- ucf101 / synthetic: "test" is the official test list; "val" holds out ~20 %
  of the training *groups* (chosen with ``cfg.seed``), so clips cut from one
  long video never sit on both sides (groups share actors/backgrounds);
  "train" is the rest. The paper does not describe its validation set; AWL
  (section 3.3) needs held-out scores, so we carve them out of the training set.
- hmdb51: no groups, so ~20 % of each class's training videos are held out.
- thumos14: train = all UCF101 videos (trainlist01 + testlist01), val = THUMOS14
  validation videos, test = THUMOS14 test videos (paper section 4.1).

Layouts under ``cfg.data_root`` are documented in ucf101.py, hmdb51.py, thumos14.py;
the synthetic set is ROOT/videos + ROOT/splits + ROOT/classes.json (docs/CONTRACTS.md).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from htsc_core.data.hmdb51 import HMDB_SPLIT_DIR, HMDB_VIDEO_DIR, parse_hmdb51
from htsc_core.data.records import SUBSETS, VideoRecord, require_dir, require_file
from htsc_core.data.synthetic_spec import GENERATOR_VERSION
from htsc_core.data.thumos14 import THUMOS_ANNOTATION_DIRS, THUMOS_VIDEO_DIRS, parse_thumos14
from htsc_core.data.ucf101 import UCF_LIST_DIR, UCF_VIDEO_DIR, parse_ucf101, read_class_index
from htsc_core.data.probe import MIN_FRAMES, screen_listing, warn_excluded

VAL_FRACTION = 0.2  # share of training groups (or videos) held out for "val"
FAMILIES = ("appearance", "motion", "cue")  # = data.synthetic_spec.FAMILIES

_SEALED: list[str] = []  # why the test split is closed now, innermost last (test_split_sealed)


class TestSplitSealed(RuntimeError):
    """The test split was read while training or choosing a setting (choose on validation, report on test)."""


@contextmanager
def test_split_sealed(reason: str):
    """While active, ``load_split(cfg, "test")`` raises :class:`TestSplitSealed` naming ``reason``.

    Every training stage runs inside it (``htsc_core.train.stages.train``), so training, checkpoint
    selection and early stopping can only see "train" and "val"; the notebooks that report read "test"
    outside it.
    """
    _SEALED.append(reason)
    try:
        yield
    finally:
        _SEALED.pop()


def _root(cfg) -> Path:
    return require_dir(Path(cfg.data_root).expanduser(), f"{cfg.dataset} dataset root (cfg.data_root)")


def _check_generator_version(root: Path) -> None:
    """A synthetic set made by another generator version has other classes: refuse it with what to do.
    (A classes.json without the key was not written by the generator, e.g. a hand-made test tree.)"""
    path = root / "classes.json"
    if not path.is_file():
        return  # an incomplete set: the split files' own checks name what is missing
    try:
        meta = json.loads(path.read_text())
        version = meta.get("generator_version", GENERATOR_VERSION)
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a JSON object ({exc})") from exc
    if version != GENERATOR_VERSION:
        raise ValueError(f"{path}: this set was made by generator version {version!r}, this code's is "
                         f"{GENERATOR_VERSION!r} (docs/SYNTHETIC.md): delete {root} and regenerate it "
                         f"(`htsc synth --out {root}`, or `make data`)")


def _layout(cfg) -> tuple[Path, Path]:
    root = _root(cfg)
    if cfg.dataset == "synthetic":
        _check_generator_version(root)
        return root / "videos", root / "splits"
    if cfg.dataset == "hmdb51":
        return root / HMDB_VIDEO_DIR, root / HMDB_SPLIT_DIR
    return root / UCF_VIDEO_DIR, root / UCF_LIST_DIR


def split_train_val(records: list[VideoRecord], seed: int, fraction: float = VAL_FRACTION
                    ) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Deterministically split training records into (train, val).

    With groups (UCF101 style): hold out round(fraction * n_groups) whole groups (>= 1).
    Without groups, or with a single group: hold out round(fraction * n) videos of each
    class (>= 1 when a class has >= 2 videos). The same seed gives the same split.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction}; expected 0 < fraction < 1")
    rng = np.random.default_rng(seed)
    groups = sorted({r.group for r in records if r.group is not None})
    if len(groups) >= 2 and all(r.group is not None for r in records):
        n_val = min(len(groups) - 1, max(1, int(round(fraction * len(groups)))))
        val_groups = set(rng.choice(np.array(groups), size=n_val, replace=False).tolist())
        is_val = [r.group in val_groups for r in records]
    else:
        is_val = [False] * len(records)
        by_class: dict[object, list[int]] = {}
        for i, r in enumerate(records):
            by_class.setdefault(r.label, []).append(i)
        for key in sorted(by_class, key=str):
            members = by_class[key]
            if len(members) < 2:
                continue
            n_val = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
            for i in rng.permutation(members)[:n_val]:
                is_val[int(i)] = True
    train = [r for r, v in zip(records, is_val) if not v]
    val = [replace(r, split="val") for r, v in zip(records, is_val) if v]
    return train, val


def _drop(records: list[VideoRecord], bad: dict | None, excluded: list[dict] | None) -> list[VideoRecord]:
    """``records`` without the paths in ``bad`` (those go to ``excluded``)."""
    if not bad:
        return records
    if excluded is not None:
        excluded += [bad[str(r.path)] for r in records if str(r.path) in bad]
    return [r for r in records if str(r.path) not in bad]


def _ucf_like(cfg, subset: str, split: int, missing: list[dict] | None, bad: dict | None = None,
              excluded: list[dict] | None = None) -> tuple[list[VideoRecord], list[str]]:
    video_root, list_dir = _layout(cfg)
    if subset == "test":
        records, names = parse_ucf101(video_root, list_dir, split, "test", missing)
        return _drop(records, bad, excluded), names
    records, names = parse_ucf101(video_root, list_dir, split, "train", missing)
    train, val = split_train_val(_drop(records, bad, excluded), cfg.seed)  # held out among usable videos
    return (train if subset == "train" else val), names


def _parse(cfg, subset: str, missing: list[dict] | None, bad: dict | None = None,
           excluded: list[dict] | None = None) -> tuple[list[VideoRecord], list[str]]:
    """The records ``subset`` lists; absent files raise, or go to ``missing`` when it is a list.

    Paths in ``bad`` (path -> check-videos problem) are left out, before the train/val split,
    and their problems appended to ``excluded``.
    """
    if cfg.dataset == "synthetic":
        if cfg.split != 1:
            raise ValueError(f"the synthetic set has one split; got cfg.split={cfg.split}")
        return _ucf_like(cfg, subset, 1, missing, bad, excluded)
    if cfg.dataset == "ucf101":
        return _ucf_like(cfg, subset, cfg.split, missing, bad, excluded)
    if cfg.dataset == "hmdb51":
        video_root, split_dir = _layout(cfg)
        if subset == "test":
            records, names = parse_hmdb51(video_root, split_dir, cfg.split, "test", missing)
            return _drop(records, bad, excluded), names
        records, names = parse_hmdb51(video_root, split_dir, cfg.split, "train", missing)
        train, val = split_train_val(_drop(records, bad, excluded), cfg.seed)
        return (train if subset == "train" else val), names
    if cfg.dataset == "thumos14":
        root = _root(cfg)
        video_root, list_dir = root / UCF_VIDEO_DIR, root / UCF_LIST_DIR
        if subset == "train":
            # Paper protocol: all 13,320 UCF101 videos (split 1 train + test lists) train the model.
            a, names = parse_ucf101(video_root, list_dir, 1, "train", missing)
            b, _ = parse_ucf101(video_root, list_dir, 1, "test", missing)
            return [replace(r, label=(r.label,), split="train") for r in _drop(a + b, bad, excluded)], names
        names = read_class_index(require_file(list_dir / "classInd.txt", "UCF101 classInd.txt for THUMOS14"))
        recs = parse_thumos14(root / THUMOS_VIDEO_DIRS[subset], root / THUMOS_ANNOTATION_DIRS[subset], names, subset,
                              missing)
        return _drop(recs, bad, excluded), names
    raise ValueError(f"unknown dataset {cfg.dataset!r}")


def listed_videos(cfg) -> tuple[list[VideoRecord], list[dict]]:
    """Every video that ``cfg``'s split listing names (train, val and test, once each), and the
    listed files the tree lacks (check-videos problem entries, each naming its split-file line)."""
    missing: list[dict] = []
    seen: dict[Path, VideoRecord] = {}
    for subset in SUBSETS:
        for rec in _parse(cfg, subset, missing)[0]:
            seen.setdefault(rec.path, rec)
    unique = list({m["path"]: m for m in missing}.values())  # val and train re-read one list
    return list(seen.values()), unique


def screen_dataset(cfg, cache: bool = True, min_frames: int | None = None, workers: int | None = None) -> dict:
    """The check-videos scan of every video ``cfg``'s split listing names, cached per listing
    (:func:`htsc_core.data.probe.screen_listing`): ``{"checked", "problems", ...}``."""
    records, missing = listed_videos(cfg)
    return screen_listing(cfg, records, missing, cache=cache,
                          min_frames=MIN_FRAMES if min_frames is None else min_frames, workers=workers)


def load_split(cfg, subset: str, screen: bool | None = None) -> tuple[list[VideoRecord], list[str]]:
    """Records of ``subset`` ("train" | "val" | "test") of ``cfg.dataset`` -> (records, class_names).

    ``screen`` (default: every dataset but the synthetic one, which we generate and check
    strictly in notebook 00) leaves out the videos that the check-videos scan of the whole
    listing finds unusable (unreadable, truncated, empty, missing, dangling links; scanned
    once per listing and cached, :func:`screen_dataset`), with a warning
    naming each; "val" is held out of the usable training videos. A user's dataset is data: one bad file
    must not end the study.
    ``screen=False`` returns what the split files list and raises on a listed file the tree lacks.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r}; expected one of {SUBSETS}")
    if subset == "test" and _SEALED:
        raise TestSplitSealed(f"the test split of {cfg.dataset} was read during {_SEALED[-1]}: training and every "
                              f"choice made from measurements use 'train' and 'val' only")
    screen = cfg.dataset != "synthetic" if screen is None else bool(screen)
    if not screen:
        records, names = _parse(cfg, subset, None)
        return cap_records(records, video_cap(cfg, subset)), names
    bad = {p["path"]: p for p in screen_dataset(cfg)["problems"]}
    excluded: list[dict] = []
    records, names = _parse(cfg, subset, excluded, bad, excluded)
    if excluded:
        warn_excluded(excluded, f"{cfg.dataset} split {cfg.split}")
    return cap_records(records, video_cap(cfg, subset)), names


def video_cap(cfg, subset: str) -> int:
    """The dry-run cap on ``subset``'s videos (0 = none): ``max_train_videos`` for "train", ``max_eval_videos``
    for "val" and "test" (docs/DESIGN.md section 6). Every reader of a subset goes through :func:`load_split`,
    so one cap bounds training, validation, scoring, feature extraction and flow extraction alike."""
    key = "max_train_videos" if subset == "train" else "max_eval_videos"
    return int(getattr(cfg, key, 0) or 0)


def cap_records(records: list[VideoRecord], cap: int) -> list[VideoRecord]:
    """At most ``cap`` records (0 = all), taken at an even stride over the listing so that a list sorted by
    class keeps several classes, in listing order."""
    if not cap or len(records) <= cap:
        return records
    return [records[(i * len(records)) // cap] for i in range(cap)]


def is_multilabel(cfg) -> bool:
    """True for datasets whose labels are tuples (THUMOS14)."""
    return cfg.dataset == "thumos14"


def class_families(cfg) -> dict[str, str] | None:
    """Synthetic only: class name -> "appearance" | "motion" | "cue" from ROOT/classes.json."""
    if cfg.dataset != "synthetic":
        return None
    path = require_file(_root(cfg) / "classes.json", "synthetic class list classes.json")
    try:
        data = json.loads(path.read_text())
        entries = data["classes"]
        out = {str(e["name"]): str(e["family"]) for e in entries}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: expected {{'classes': [{{'index', 'name', 'family'}}, ...]}} ({exc})") from exc
    bad = {n: f for n, f in out.items() if f not in FAMILIES}
    if bad:
        raise ValueError(f"{path}: unknown families {bad}; expected one of {FAMILIES}")
    return out
