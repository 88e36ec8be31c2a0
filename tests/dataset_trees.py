"""Tiny UCF101-, HMDB51- and THUMOS14-shaped trees of real (generated) videos, with the real formats' quirks.

Used by test_datasets_e2e.py and test_data_check.py. Each builder returns the dataset root and the
path of the one truncated video it lists for training. Quirks reproduced:

- UCF101: MPEG-4 AVI, CRLF split lists, the ``HandstandPushups`` folder holding
  ``v_HandStandPushups_*`` files (classInd spells ``HandStandPushups``), groups g01 (test) and
  g08+ (train), as split 1.
- HMDB51: ``<class>_test_split1.txt`` lines ``<name>.avi 0|1|2`` with a trailing space and CRLF,
  file names with brackets, ``#``, ``&``, ``!`` and ``'``.
- THUMOS14: UCF101 for training, MP4 validation/test videos named ``video_validation_*`` /
  ``video_test_*``, temporal annotations ``annotations/{val,test}/<Class>_{val,test}.txt``
  (``<video> <start s> <end s>``, one video holding two classes), plus an ``Ambiguous_*`` file.

No ground-truth flow anywhere (no ``flow_gt/``), as in every real dataset.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from htsc_core.data.video import write_video

FRAMES, HEIGHT, WIDTH = 16, 48, 64  # the smoke profile decodes at a 40 px short side


def clip(seed: int, label: int, frames: int = FRAMES) -> np.ndarray:
    """A textured background with a bright square that moves in a class-dependent direction."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 120, (HEIGHT // 4, WIDTH // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    dx, dy = [(2, 0), (0, 2), (-2, 1)][label % 3]
    out = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(frames):
        f = np.roll(base, (t * dy // 2, t * dx // 2), axis=(0, 1)).copy()
        y, x = (8 + t * dy) % (HEIGHT - 12), (8 + t * dx) % (WIDTH - 12)
        f[y:y + 12, x:x + 12] = (230, 80 + 60 * label, 40)
        out[t] = f
    return out


def write_clip(path: Path, seed: int, label: int, codec: str = "mpeg4", frames: int = FRAMES) -> Path:
    return write_video(path, clip(seed, label, frames), codec)


def truncate(path: Path, seed: int, label: int, keep: float = 0.4, codec: str = "mpeg4") -> Path:
    """A longer clip cut to ``keep`` of its bytes: a download that stopped part way."""
    write_video(path, clip(seed, label, frames=40), codec)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def crlf(lines: list[str]) -> str:
    return "".join(f"{line}\r\n" for line in lines)


UCF_CLASSES = ["ApplyEyeMakeup", "HandStandPushups", "YoYo"]  # classInd spelling
UCF_FOLDERS = {"HandStandPushups": "HandstandPushups"}  # the folder on disk differs in case
UCF_TRAIN_GROUPS = (8, 9, 10)


def ucf101_tree(root: Path, frames: int = FRAMES) -> tuple[Path, Path]:
    """ROOT/UCF-101/<Folder>/v_<Class>_gGG_c01.avi + ROOT/ucfTrainTestlist (CRLF), one truncated training video;
    ``frames`` per video (the paper-profile dry run: 12, one more than its 11-frame stacks)."""
    videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_bytes(crlf([f"{i} {c}" for i, c in enumerate(UCF_CLASSES, 1)]).encode())
    train, test, seed = [], [], 0
    for i, c in enumerate(UCF_CLASSES, 1):
        for g in (1, *UCF_TRAIN_GROUPS):
            name = f"v_{c}_g{g:02d}_c01.avi"
            seed += 1
            write_clip(videos / UCF_FOLDERS.get(c, c) / name, seed, i - 1, frames=frames)
            (test if g == 1 else train).append((f"{c}/{name}", i))
    bad_rel = f"YoYo/v_YoYo_g{UCF_TRAIN_GROUPS[-1]:02d}_c02.avi"  # a second clip of a group
    bad = truncate(videos / bad_rel, 999, 2)
    train.append((bad_rel, 3))
    (lists / "trainlist01.txt").write_bytes(crlf([f"{p} {i}" for p, i in train]).encode())
    (lists / "testlist01.txt").write_bytes(crlf([p for p, _ in test]).encode())
    return root, bad


HMDB_VIDEOS = {  # class -> [(file name, split-1 code)]: 1 train, 2 test, 0 unused
    "brush_hair": [("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1),
                   ("Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", 1),
                   ("brushing_hair_2_brush_hair_h_nm_np1_ba_med_2.avi", 1),
                   ("Aussie_Brushing_Hair!_brush_hair_u_nm_np1_ba_goo_1.avi", 2),
                   ("atempting_to_brush_my_hair_brush_hair_u_nm_np2_le_goo_0.avi", 0)],
    "cartwheel": [("Faith_Rewarded_[Rockhard]_cartwheel_f_cm_np1_le_med_0.avi", 1),
                  ("Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi", 1),
                  ("Ben_&_Jerry's_cartwheel_f_cm_np1_ri_bad_1.avi", 1), ("park_cartwheel_f_cm_np1_ri_med_0.avi", 2),
                  ("turnen_cartwheel_f_cm_np1_fr_med_2.avi", 0)],
    "pick": [("#122_Cleaning_Up_The_Beach_In_Chiba__Japan_pick_f_nm_np1_fr_bad_1.avi", 1),
             ("20060723sfjffjewlinthe_pick_f_nm_np1_ba_med_0.avi", 1),
             ("Bonus_Kill_(Pick_up)_pick_f_cm_np1_le_med_5.avi", 1), ("pick_up_the_pen_pick_u_nm_np1_fr_goo_0.avi", 2),
             ("Picking_up_litter_pick_f_nm_np1_ri_med_1.avi", 0)],
}
HMDB_TRUNCATED = ("pick", "Trash_&_[more]_#7_pick_f_nm_np1_le_bad_3.avi")


def hmdb51_tree(root: Path) -> tuple[Path, Path]:
    """ROOT/videos/<class>/*.avi + ROOT/splits/<class>_test_split{1,2,3}.txt, one truncated training video."""
    seed = 100
    for label, (cls, entries) in enumerate(sorted(HMDB_VIDEOS.items())):
        for name, _code in entries:
            seed += 1
            write_clip(root / "videos" / cls / name, seed, label)
    cls, name = HMDB_TRUNCATED
    bad = truncate(root / "videos" / cls / name, 998, 1)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for cls, entries in HMDB_VIDEOS.items():
        rows = entries + ([(HMDB_TRUNCATED[1], 1)] if cls == HMDB_TRUNCATED[0] else [])
        for split in (1, 2, 3):  # splits 2 and 3 rotate the codes; only split 1 is used here
            codes = [c if split == 1 else (c % 2) + 1 if c else 0 for _, c in rows]
            text = crlf([f"{n} {c} " for (n, _), c in zip(rows, codes)])  # real files: trailing space
            (root / "splits" / f"{cls}_test_split{split}.txt").write_bytes(text.encode())
    return root, bad


THUMOS_ANNOTATIONS = {  # subset -> {Class: [(video, start, end)]}; video ids as THUMOS14 names them
    "val": {"ApplyEyeMakeup": [("video_validation_0000051", 1.2, 3.4), ("video_validation_0000053", 0.0, 1.0)],
            "HandStandPushups": [("video_validation_0000052", 0.5, 2.0), ("video_validation_0000053", 2.0, 3.1)],
            "YoYo": [("video_validation_0000054", 0.1, 0.6)]},
    "test": {"ApplyEyeMakeup": [("video_test_0000004", 0.2, 1.1)],
             "HandStandPushups": [("video_test_0000006", 0.0, 0.4), ("video_test_0000007", 0.3, 0.5)],
             "YoYo": [("video_test_0000007", 0.1, 0.3), ("video_test_0000009", 0.0, 0.5)]},
}


def thumos14_tree(root: Path) -> tuple[Path, Path]:
    """UCF101 (training, holding the truncated video) + ROOT/{validation,test}/*.mp4 + ROOT/annotations/{val,test}."""
    _, bad = ucf101_tree(root)
    folders = {"val": "validation", "test": "test"}
    for subset, by_class in THUMOS_ANNOTATIONS.items():
        ann = root / "annotations" / subset
        ann.mkdir(parents=True, exist_ok=True)
        labels: dict[str, int] = {}
        for cls, rows in by_class.items():
            (ann / f"{cls}_{subset}.txt").write_text("".join(f"{v} {s:.1f} {e:.1f}\n" for v, s, e in rows))
            for v, _, _ in rows:
                labels.setdefault(v, UCF_CLASSES.index(cls))
        (ann / f"Ambiguous_{subset}.txt").write_text(f"{next(iter(labels))} 5.0 6.0\n")
        for k, (video, label) in enumerate(sorted(labels.items())):
            write_clip(root / folders[subset] / f"{video}.mp4", 500 + 10 * len(subset) + k, label, "libx264")
    return root, bad


def ucf101_smoke_config(tmp_path: Path, max_steps_per_epoch: int = 1, **overrides):
    """A UCF101-shaped tree under ``tmp_path/ucf`` and the smoke config a stage test trains on it (fp32 on the
    CPU, ``max_steps_per_epoch`` steps an epoch, runs and results under ``tmp_path``; ``overrides``: more keys)."""
    from htsc_core.config import from_params

    root, _ = ucf101_tree(tmp_path / "ucf")
    return from_params(profile="smoke", dataset="ucf101", data_root=str(root), runs_dir=str(tmp_path / "runs"),
                       results_dir=str(tmp_path / "results"), max_steps_per_epoch=max_steps_per_epoch, device="cpu",
                       amp="off", **overrides)
