"""Split parsers and the registry on small fixture trees (placeholder files: no decoding needed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from htsc_core.config import from_params
from htsc_core.data.hmdb51 import parse_hmdb51
from htsc_core.data.records import SplitFileError, VideoRecord
from htsc_core.data.registry import class_families, load_split, split_train_val
from htsc_core.data.thumos14 import parse_thumos14
from htsc_core.data.ucf101 import group_of, parse_ucf101, read_class_index

CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
# UCF101's lists spell the class "HandstandPushups" but files say "HandStandPushups"; some copies name the folder
# "HandStandPushups". The fixture uses the folder spelling that differs from classInd.
FOLDER = {"ApplyEyeMakeup": "ApplyEyeMakeup", "HandstandPushups": "HandStandPushups", "YoYo": "YoYo"}


# The trees below hold placeholder bytes, not videos: the registry is called with screen=False
# (no check-videos scan). Screening is tested on real clips in test_data_check.py.


def ucf_tree(root: Path, groups=range(1, 11), clips=2) -> Path:
    videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    train, test = [], []
    for i, c in enumerate(CLASSES, 1):
        for g in groups:
            for k in range(1, clips + 1):
                name = f"v_{c}_g{g:02d}_c{k:02d}.avi"
                f = videos / FOLDER[c] / name
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(b"x")
                # lists use the classInd spelling; the folder on disk differs in case
                (test if g <= 3 else train).append((f"{c}/{name}", i))
    (lists / "trainlist01.txt").write_text("".join(f"{p} {i}\n" for p, i in train))
    (lists / "testlist01.txt").write_text("".join(f"{p}\n" for p, _ in test))
    return root


def test_ucf101_parse_and_case_mismatch(tmp_path):
    root = ucf_tree(tmp_path)
    recs, names = parse_ucf101(root / "UCF-101", root / "ucfTrainTestlist", 1, "train")
    assert names == CLASSES
    assert len(recs) == 3 * 7 * 2
    hs = [r for r in recs if r.label == 1]
    assert len(hs) == 14 and all(r.path.is_file() for r in hs)
    assert hs[0].path.parent.name == "HandStandPushups"  # resolved on disk case-insensitively
    assert hs[0].video_id.startswith("HandStandPushups/v_HandstandPushups_g")
    assert recs[0] == VideoRecord(path=(root / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01.avi").absolute(),
                                  label=0, split="train", video_id="ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01",
                                  group="g04")
    test, _ = parse_ucf101(root / "UCF-101", root / "ucfTrainTestlist", 1, "test")
    assert len(test) == 18 and {r.group for r in test} == {"g01", "g02", "g03"}
    assert {r.label for r in test} == {0, 1, 2}


def test_case_insensitive_class_names_in_lists(tmp_path):
    root = ucf_tree(tmp_path)
    lst = root / "ucfTrainTestlist/testlist01.txt"
    lst.write_text("handstandpushups/v_HandstandPushups_g01_c01.avi\n")
    recs, _ = parse_ucf101(root / "UCF-101", root / "ucfTrainTestlist", 1, "test")
    assert recs[0].label == 1 and recs[0].path.is_file()


@pytest.mark.parametrize("line, problem", [
    ("ApplyEyeMakeup/v_missing_g09_c01.avi 1", "does not exist"),
    ("../outside.avi 1", "outside the dataset root"),
    ("ApplyEyeMakeup/../../outside.avi 1", "outside the dataset root"),
    ("/etc/passwd 1", "absolute path"),
    ("Skydiving/v_Skydiving_g09_c01.avi 1", "unknown class"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01.avi", "malformed line"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01.avi 1 extra", "malformed line"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01.avi one", "not a positive integer"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01.avi 3", "disagrees"),
])
def test_ucf101_bad_lines(tmp_path, line, problem):
    root = ucf_tree(tmp_path)
    lst = root / "ucfTrainTestlist/trainlist01.txt"
    lst.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c02.avi 1\n\n" + line + "\n")
    with pytest.raises(SplitFileError, match=f"trainlist01.txt:3: .*{problem}") as info:
        parse_ucf101(root / "UCF-101", root / "ucfTrainTestlist", 1, "train")
    assert info.value.line == 3 and info.value.split_file == lst


def test_class_index_errors(tmp_path):
    p = tmp_path / "classInd.txt"
    p.write_text("1 A\n3 B\n")
    with pytest.raises(SplitFileError, match="without gaps"):
        read_class_index(p)
    p.write_text("1 A\nB\n")
    with pytest.raises(SplitFileError, match="classInd.txt:2:"):
        read_class_index(p)
    p.write_text("1 A\n2 a\n")
    with pytest.raises(SplitFileError, match="twice"):
        read_class_index(p)
    assert group_of("X/v_X_g08_c01") == "g08" and group_of("video_test_0000004") is None


def test_missing_root_and_list_say_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.data_root"):
        parse_ucf101(tmp_path / "nothing", tmp_path / "lists", 1, "train")
    cfg = from_params(dataset="ucf101", data_root=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="absent.*cfg.data_root"):
        load_split(cfg, "train")
    root = ucf_tree(tmp_path / "u")
    (root / "ucfTrainTestlist/trainlist01.txt").unlink()
    with pytest.raises(FileNotFoundError, match="trainlist01.txt"):
        load_split(from_params(dataset="ucf101", data_root=str(root)), "train")


def test_registry_ucf101_val_is_held_out_groups(tmp_path):
    root = ucf_tree(tmp_path)
    cfg = from_params(dataset="ucf101", data_root=str(root), seed=3)
    train, names = load_split(cfg, "train", screen=False)
    val, _ = load_split(cfg, "val", screen=False)
    test, _ = load_split(cfg, "test", screen=False)
    assert names == CLASSES
    tg, vg = {r.group for r in train}, {r.group for r in val}
    assert len(vg) == 1 and not tg & vg and len(tg) == 6  # 7 training groups, round(0.2 * 7) = 1 held out
    assert {r.split for r in val} == {"val"} and {r.label for r in val} == {0, 1, 2}
    assert not {r.video_id for r in train} & {r.video_id for r in val}
    assert len(train) + len(val) == 42 and len(test) == 18
    again, _ = load_split(cfg, "val", screen=False)
    assert again == val  # deterministic for a seed
    others = {frozenset(r.group for r in load_split(cfg.replace(seed=s), "val", screen=False)[0]) for s in range(8)}
    assert len(others) > 1  # and the seed matters


def test_split_train_val_without_groups_is_per_class():
    recs = [VideoRecord(Path(f"/v/{c}/{i}.avi"), c, "train", f"{c}/{i}") for c in range(3) for i in range(10)]
    train, val = split_train_val(recs, seed=0)
    assert len(val) == 6 and all(sum(r.label == c for r in val) == 2 for c in range(3))
    assert not {r.video_id for r in train} & {r.video_id for r in val}
    with pytest.raises(ValueError):
        split_train_val(recs, 0, fraction=1.5)


def hmdb_tree(root: Path) -> Path:
    for cls in ("brush_hair", "cartwheel"):
        lines = []
        for i in range(10):
            name = f"{cls}_clip_{i}.avi"
            (root / "videos" / cls).mkdir(parents=True, exist_ok=True)
            (root / "videos" / cls / name).write_bytes(b"x")
            lines.append(f"{name} {1 if i < 7 else (2 if i < 9 else 0)}")
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root


def test_hmdb51(tmp_path):
    root = hmdb_tree(tmp_path)
    train, names = parse_hmdb51(root / "videos", root / "splits", 1, "train")
    test, _ = parse_hmdb51(root / "videos", root / "splits", 1, "test")
    assert names == ["brush_hair", "cartwheel"]
    assert len(train) == 14 and len(test) == 4  # code 0 (unused) dropped
    assert test[0].video_id == "brush_hair/brush_hair_clip_7" and test[0].label == 0 and test[0].group is None
    cfg = from_params(dataset="hmdb51", data_root=str(root))
    tr, _ = load_split(cfg, "train", screen=False)
    va, _ = load_split(cfg, "val", screen=False)
    assert len(tr) + len(va) == 14 and len(va) == 2 and {r.label for r in va} == {0, 1}
    assert class_families(cfg) is None


@pytest.mark.parametrize("line, problem", [
    ("missing.avi 1", "does not exist"),
    ("../x.avi 1", "outside the dataset root"),
    ("brush_hair_clip_0.avi 3", "malformed"),
    ("brush_hair_clip_0.avi", "malformed"),
])
def test_hmdb51_bad_lines(tmp_path, line, problem):
    root = hmdb_tree(tmp_path)
    f = root / "splits/brush_hair_test_split1.txt"
    f.write_text(f.read_text() + line + "\n")
    with pytest.raises(SplitFileError, match=f"brush_hair_test_split1.txt:11: .*{problem}"):
        parse_hmdb51(root / "videos", root / "splits", 1, "train")


def thumos_tree(root: Path) -> Path:
    ucf_tree(root)
    for sub, vids in (("validation", ["video_validation_0000051", "video_validation_0000052"]),
                      ("test", ["video_test_0000004"])):
        (root / sub).mkdir()
        for v in vids:
            (root / sub / f"{v}.mp4").write_bytes(b"x")
    ann = root / "annotations"
    (ann / "val").mkdir(parents=True)
    (ann / "test").mkdir(parents=True)
    (ann / "val/YoYo_val.txt").write_text("video_validation_0000051 67.5 75.9\nvideo_validation_0000051 80 81\n"
                                          "video_validation_0000052 1.0 2.0\n")
    (ann / "val/HANDSTANDPUSHUPS_val.txt").write_text("video_validation_0000051 1 2\n")
    (ann / "val/Ambiguous_val.txt").write_text("video_validation_0000052 3 4\n")
    (ann / "test/ApplyEyeMakeup_test.txt").write_text("video_test_0000004 0.2 1.1\n")
    return root


def test_thumos14(tmp_path):
    root = thumos_tree(tmp_path)
    cfg = from_params(dataset="thumos14", data_root=str(root))
    val, names = load_split(cfg, "val", screen=False)
    assert names == CLASSES
    assert [(r.video_id, r.label) for r in val] == [("video_validation_0000051", (1, 2)),
                                                  ("video_validation_0000052", (2,))]
    test, _ = load_split(cfg, "test", screen=False)
    assert [(r.video_id, r.label, r.split) for r in test] == [("video_test_0000004", (0,), "test")]
    train, _ = load_split(cfg, "train", screen=False)
    assert len(train) == 60 and all(isinstance(r.label, tuple) and r.split == "train" for r in train)


@pytest.mark.parametrize("name, text, problem", [
    ("YoYo_val.txt", "video_validation_0000099 1 2\n", "not found"),
    ("YoYo_val.txt", "video_validation_0000051 1\n", "malformed"),
    ("YoYo_val.txt", "video_validation_0000051 5 2\n", "bad segment"),
    ("YoYo_val.txt", "video_validation_0000051 a b\n", "not numbers"),
    ("YoYo_val.txt", "../video_validation_0000051 1 2\n", "outside"),
    ("Skydiving_val.txt", "video_validation_0000051 1 2\n", "unknown class"),
])
def test_thumos14_bad_annotations(tmp_path, name, text, problem):
    root = thumos_tree(tmp_path)
    (root / "annotations/val" / name).write_text(text)
    with pytest.raises(SplitFileError, match=f"{name}:1: .*{problem}"):
        parse_thumos14(root / "validation", root / "annotations/val", CLASSES, "val")


def test_synthetic_layout_and_families(tmp_path):
    root = tmp_path
    (root / "videos").mkdir()
    (root / "splits").mkdir()
    ucf = ucf_tree(tmp_path / "tmp")
    for c in CLASSES:
        (ucf / "UCF-101" / FOLDER[c]).rename(root / "videos" / FOLDER[c])
    for f in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        (ucf / "ucfTrainTestlist" / f).rename(root / "splits" / f)
    fam = ["appearance", "motion", "cue"]
    (root / "classes.json").write_text(json.dumps(
        {"classes": [{"index": i + 1, "name": c, "family": fam[i]} for i, c in enumerate(CLASSES)],
         "seed": 0, "profile": "smoke"}))
    cfg = from_params(dataset="synthetic", data_root=str(root))
    train, names = load_split(cfg, "train")
    assert names == CLASSES and len(train) > 0
    assert class_families(cfg) == dict(zip(CLASSES, fam))
    with pytest.raises(ValueError, match="one split"):
        load_split(cfg.replace(split=2), "train")
    (root / "classes.json").write_text(json.dumps({"classes": [{"index": 1, "name": "A", "family": "colour"}]}))
    with pytest.raises(ValueError, match="unknown families"):
        class_families(cfg)
    # a set made by an older generator (other classes) is refused with what to do, before any training
    (root / "classes.json").write_text(json.dumps({"classes": [], "generator_version": "2"}))
    with pytest.raises(ValueError, match="generator version '2'.*regenerate"):
        load_split(cfg, "train")
