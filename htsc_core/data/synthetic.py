"""Synthetic action set with exact ground-truth flow (docs/SYNTHETIC.md).

The paper evaluates on UCF101/HMDB51/THUMOS14 (section 4.1), which cannot be
downloaded here; this generator fills that gap with a set built to test the
paper's claims that appearance and motion are complementary (section 1) and that
weighting segments helps (the CLN, section 3.2). The full specification, with the
reasons for every number, is docs/SYNTHETIC.md. Classes come in three families:

- ``appearance``: class = the object's colour/texture pattern; shape and motion
  are drawn from one distribution shared by all appearance classes, so the flow
  field (and the silhouette it reveals) carries no information about the class;
- ``motion``: class = the motion pattern (vertical translation, rotation, pulsing
  zoom, horizontal or vertical oscillation); the object is a grey texture drawn from
  one shared distribution, and every trajectory is symmetric about the clip's centre
  frame, so a single frame carries no information about the class;
- ``cue``: class = what the object does during its act, a motion no other family
  has as its class (orbit, wobble, hop, shake, ...). Every class looks the same; the
  object acts during a third of the clip, at a random time, is *lit* (one colour
  turns bright) exactly while it acts and idles (moves only with the camera)
  otherwise. So a single frame shows *when* the action happens but not *which*, and
  the idle segments carry nothing that tells the classes apart: the family is built
  for the CLN's claim that one stream's features guide the other's pooling (section
  3.2). Each video's cue frames are stored in ROOT/cues.json and :func:`cue_segments`
  says which test segments overlap them.

Label rule (training augmentation, htsc_core/data/transforms.py: horizontal flip,
multi-scale corner crops): **every class is invariant under a horizontal mirror and
under a zoom/shift of the frame**. Mirroring keeps up/down, turns clockwise into
counter-clockwise (one class, "Rotate", direction drawn per video), keeps zoom and
the axis of an oscillation; appearance patterns are drawn at a random orientation,
so their mirror images belong to the same distribution. Left/right translation and
a fixed rotation direction are therefore not classes.

Motion at the network's input (frame side 64 = image_size, TSN crops rescale by
0.8-1.5): object motion 1-4 px/frame, camera pan 0-1.5 px/frame, objects cover
15-30 % of the frame, are textured everywhere, occlude the background at their
edges and leave the frame partly during long translations.

Nuisances: photographic/textured backgrounds from scikit-image's bundled images
(no download), global camera pan, pixel noise, object scale/position jitter.
Train and test use disjoint groups (test g01..g07, train g08..g25, as UCF101
split 1) with disjoint background images and separately drawn object instances.

This module generates a set on disk (:func:`generate`: videos, exact flow, splits, cues,
classes.json) and is the one import for users of the generator: the names of its parts below are
importable from here. One job per module:

- :mod:`~htsc_core.data.synthetic_spec`: families, classes, the videos of a set, cue windows;
- :mod:`~htsc_core.data.synthetic_scene`: the scene of one video (background, camera, object, motion);
- :mod:`~htsc_core.data.synthetic_render`: frames by inverse mapping and their exact flow;
- :mod:`~htsc_core.data.synthetic_video`: byte-reproducible H.264 encoding;
- :mod:`~htsc_core.data.synthetic_cues`: ``cues.json`` and the test segments overlapping each cue;
- :mod:`~htsc_core.data.synthetic_check`: the family check and the ``htsc synth`` command.
"""
from __future__ import annotations

import io
import json
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from htsc_core.config import Config, from_params
from htsc_core.data.synthetic_cues import CUES_NAME, cue_segments, read_cues, segment_overlaps_cue, write_cues
from htsc_core.data.synthetic_render import RenderedVideo, render_scene, render_video
from htsc_core.data.synthetic_scene import ObjectModel, Scene, scene_for
from htsc_core.data.synthetic_spec import (APPEARANCES, CUE_FRACTION, FAMILIES, FLOW_CONVENTION, GENERATOR_VERSION,
                                           CUE_APPEARANCE, CUE_LIT_COLOUR, CUE_MOTIONS, MAX_CLASSES_PER_FAMILY, MOTIONS,
                                           NUM_TEST_GROUPS, NUM_TRAIN_GROUPS, TEST_BACKGROUNDS, TRAIN_BACKGROUNDS,
                                           SynthClass, VideoSpec, class_table, cue_window, video_specs)
from htsc_core.data.synthetic_video import CRF, FPS, encode_h264, rgb_to_i420
from htsc_core.utils import atomic_write_bytes, atomic_write_json, atomic_write_text
from htsc_core.utils import progress as progress_bar

__all__ = [  # the generator's public names, wherever they live
    "APPEARANCES", "CRF", "CUES_NAME", "CUE_FRACTION", "FAMILIES", "FLOW_CONVENTION", "FPS", "GENERATOR_VERSION",
    "CUE_APPEARANCE", "CUE_LIT_COLOUR", "CUE_MOTIONS", "MAX_CLASSES_PER_FAMILY", "MOTIONS", "NUM_TEST_GROUPS",
    "NUM_TRAIN_GROUPS",
    "TEST_BACKGROUNDS", "TRAIN_BACKGROUNDS", "ObjectModel", "RenderedVideo", "Scene", "SynthClass", "VideoSpec",
    "class_table", "config_from_root", "cue_segments", "cue_window", "encode_h264", "generate", "read_classes_json",
    "read_cues", "render_scene", "render_video", "rgb_to_i420", "scene_for", "segment_overlaps_cue", "synth_config",
    "video_specs", "write_cues", "write_splits",
]


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


# ----------------------------------------------------------------------------- generation
def _generate_one(job: tuple[VideoSpec, str]) -> int:
    spec, root = job
    video = render_video(spec)
    mp4 = encode_h264(video.frames)
    flow = _npy_bytes(video.flow.astype(np.float16))
    atomic_write_bytes(Path(root) / "videos" / spec.cls.name / f"{spec.stem}.mp4", mp4)
    atomic_write_bytes(Path(root) / "flow_gt" / spec.cls.name / f"{spec.stem}.npy", flow)
    return len(mp4) + len(flow)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _settings(cfg: Config) -> dict[str, Any]:
    return {"seed": cfg.seed, "profile": cfg.profile, "size": cfg.synth_size, "frames": cfg.synth_frames,
            "classes_per_family": cfg.synth_classes_per_family, "train_per_class": cfg.synth_train_per_class,
            "test_per_class": cfg.synth_test_per_class, "generator_version": GENERATOR_VERSION}


def synth_config(profile: str, seed: int, **overrides: Any) -> Config:
    """The Config whose synth_* fields size the set (``overrides`` e.g. synth_size=32 for tests)."""
    return from_params({"profile": profile, "seed": seed, **overrides})


def config_from_root(root: str | Path) -> Config:
    """Rebuild the Config a synthetic set was generated with, from its classes.json."""
    meta = read_classes_json(root)
    try:
        return synth_config(meta["profile"], meta["seed"], synth_size=meta["size"], synth_frames=meta["frames"],
                            synth_classes_per_family=meta["classes_per_family"],
                            synth_train_per_class=meta["train_per_class"], synth_test_per_class=meta["test_per_class"])
    except KeyError as exc:
        raise ValueError(f"{Path(root) / 'classes.json'}: missing key {exc}") from exc


def read_classes_json(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "classes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a complete synthetic set (run `htsc synth --out {root}`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def write_splits(root: str | Path, specs: Sequence[VideoSpec]) -> None:
    """classInd.txt, trainlist01.txt (with label), testlist01.txt (without), UCF101 syntax."""
    root = Path(root)
    classes = sorted({s.cls for s in specs}, key=lambda c: c.index)
    atomic_write_text(root / "splits" / "classInd.txt", "".join(f"{c.index} {c.name}\n" for c in classes))
    order = sorted(specs, key=lambda s: (s.cls.index, s.group, s.clip))
    train = [f"{s.video_id}.mp4 {s.cls.index}\n" for s in order if s.split == "train"]
    test = [f"{s.video_id}.mp4\n" for s in order if s.split == "test"]
    atomic_write_text(root / "splits" / "trainlist01.txt", "".join(train))
    atomic_write_text(root / "splits" / "testlist01.txt", "".join(test))


def generate(out: str | Path, cfg: Config, workers: int = 2, progress: bool = True) -> dict[str, Any]:
    """Generate the whole set under ``out``; returns a summary (videos, bytes, seconds).

    Every file is written atomically; classes.json is written last, so its presence marks a
    complete set. Re-running with the same settings regenerates identical files; a directory
    holding a set made with other settings is refused.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}; expected >= 1")
    start = time.perf_counter()
    out = Path(out)
    specs = video_specs(cfg)
    settings = _settings(cfg)
    if (out / "classes.json").exists():
        old = read_classes_json(out)
        differing = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if differing:
            raise ValueError(f"{out / 'classes.json'}: the existing set was made with other settings "
                             f"{differing} (old, new); use an empty --out directory")
    (out / "videos").mkdir(parents=True, exist_ok=True)
    jobs = [(s, str(out)) for s in specs]
    total_bytes = 0
    if workers == 1:
        _worker_init()
        for job in (progress_bar(jobs, total=len(jobs), desc="synth") if progress else jobs):
            total_bytes += _generate_one(job)
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            results = pool.imap_unordered(_generate_one, jobs, chunksize=4)
            for nbytes in (progress_bar(results, total=len(jobs), desc="synth") if progress else results):
                total_bytes += nbytes
    write_splits(out, specs)
    write_cues(out, specs)
    classes = class_table(cfg.synth_classes_per_family)
    meta = {
        **settings,
        "classes": [{"index": c.index, "name": c.name, "family": c.family, "appearance": c.appearance,
                     "motion": c.motion} for c in classes],
        "families": {f: sum(c.family == f for c in classes) for f in FAMILIES},
        "fps": FPS,
        "crf": CRF,
        "codec": "libx264 yuv420p",
        "flow_convention": FLOW_CONVENTION,
        "flow_dtype": "float16",
        "flow_shape": "(T-1, H, W, 2)",
        "test_groups": sorted({s.group for s in specs if s.split == "test"}),
        "train_groups": sorted({s.group for s in specs if s.split == "train"}),
        "backgrounds": {"test": list(TEST_BACKGROUNDS), "train": list(TRAIN_BACKGROUNDS)},
        "num_videos": {"train": sum(s.split == "train" for s in specs), "test": sum(s.split == "test" for s in specs)},
    }
    atomic_write_json(out / "classes.json", meta)
    return {"root": str(out), "videos": len(specs), "bytes": total_bytes,
            "seconds": round(time.perf_counter() - start, 2), "workers": workers}
