"""Tests for the synthetic action set generator and its family check (DESIGN.md section 5)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from skimage.metrics import peak_signal_noise_ratio

from htsc_core.data import synthetic as synth
from htsc_core.data import synthetic_check as check
from htsc_core.data.synthetic_render import _bandlimit_chroma
from htsc_core.data.synthetic_scene import _background_image
from htsc_core.data.video import read_frames, video_length



def decode_all(path: Path) -> np.ndarray:
    """Every frame of a video, with the library's decoder."""
    return read_frames(path, range(video_length(path)))


def psnr(decoded: np.ndarray, drawn: np.ndarray) -> float:
    return peak_signal_noise_ratio(drawn, decoded, data_range=255)


TINY = dict(synth_size=32, synth_frames=6, synth_classes_per_family=2, synth_train_per_class=2,
            synth_test_per_class=1)


def tiny_cfg(seed: int = 0, **overrides):
    return synth.synth_config("smoke", seed, **{**TINY, **overrides})


def file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "set"
    synth.generate(root, tiny_cfg(0), workers=1, progress=False)
    return root


# ----------------------------------------------------------------------------- determinism
def test_same_seed_byte_identical_any_worker_count(tiny_set, tmp_path):
    other = tmp_path / "b"
    synth.generate(other, tiny_cfg(0), workers=2, progress=False)
    a, b = file_hashes(tiny_set), file_hashes(other)
    n_videos = 6 * (2 + 1)
    assert sum(k.endswith(".mp4") for k in a) == n_videos
    assert sum(k.endswith(".npy") for k in a) == n_videos
    assert a == b


def test_different_seed_gives_different_videos(tiny_set, tmp_path):
    other = tmp_path / "seed1"
    synth.generate(other, tiny_cfg(1), workers=1, progress=False)
    a, b = file_hashes(tiny_set), file_hashes(other)
    assert a.keys() == b.keys()
    differing = [k for k in a if k.endswith((".mp4", ".npy")) and a[k] != b[k]]
    assert len(differing) == 2 * 18
    assert json.loads((other / "classes.json").read_text())["seed"] == 1


def test_encoder_repeats_give_identical_bytes():
    # A 24-frame 80 px video: with x264's SIMD paths this input gave several distinct outputs in
    # 25 encodes (PyAV 18.1); the generator encodes with asm=0.
    cfg = synth.synth_config("default", 0, synth_train_per_class=2, synth_test_per_class=1)
    spec = next(s for s in synth.video_specs(cfg) if s.cls.name == "AppearBlueChecker" and s.clip == 1
                and s.group == 9)
    frames = synth.render_video(spec).frames
    assert len({hashlib.sha256(synth.encode_h264(frames)).hexdigest() for _ in range(10)}) == 1


def test_rerun_regenerates_identically_and_refuses_other_settings(tmp_path):
    root = tmp_path / "set"
    cfg = tiny_cfg(0, synth_classes_per_family=1, synth_train_per_class=1)
    synth.generate(root, cfg, workers=1, progress=False)
    before = file_hashes(root)
    synth.generate(root, cfg, workers=1, progress=False)
    assert file_hashes(root) == before
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]  # atomic writes leave no temp files
    with pytest.raises(ValueError, match="other settings"):
        synth.generate(root, tiny_cfg(5, synth_classes_per_family=1, synth_train_per_class=1), workers=1,
                       progress=False)


# ----------------------------------------------------------------------------- layout and splits
def test_layout_splits_and_classes_json(tiny_set):
    cfg = tiny_cfg(0)
    class_lines = (tiny_set / "splits" / "classInd.txt").read_text().splitlines()
    classes = {}
    for line in class_lines:
        m = re.fullmatch(r"(\d+) ([A-Z][A-Za-z]+)", line)
        assert m, line
        classes[m.group(2)] = int(m.group(1))
    assert sorted(classes.values()) == list(range(1, 7))

    def parse(name: str, labelled: bool):
        rows = []
        for line in (tiny_set / "splits" / name).read_text().splitlines():
            pat = r"([A-Za-z]+)/v_\1_g(\d\d)_c(\d\d)\.mp4" + (r" (\d+)" if labelled else "")
            m = re.fullmatch(pat, line)
            assert m, f"{name}: {line!r}"
            if labelled:
                assert int(m.group(4)) == classes[m.group(1)]
            rows.append((m.group(1), int(m.group(2)), line.split()[0]))
        return rows

    train, test = parse("trainlist01.txt", True), parse("testlist01.txt", False)
    assert len(train) == 6 * cfg.synth_train_per_class and len(test) == 6 * cfg.synth_test_per_class
    train_groups, test_groups = {g for _, g, _ in train}, {g for _, g, _ in test}
    assert min(train_groups) >= 8 and max(test_groups) <= 7 and not train_groups & test_groups
    assert not {p for *_, p in train} & {p for *_, p in test}
    for _, _, rel in train + test:
        video = tiny_set / "videos" / rel
        frames = decode_all(video)
        assert frames.shape == (cfg.synth_frames, cfg.synth_size, cfg.synth_size, 3)
        flow = np.load(tiny_set / "flow_gt" / Path(rel).with_suffix(".npy"))
        assert flow.dtype == np.float16 and flow.shape == (cfg.synth_frames - 1, cfg.synth_size, cfg.synth_size, 2)

    meta = json.loads((tiny_set / "classes.json").read_text())
    assert meta["seed"] == 0 and meta["profile"] == "smoke" and meta["fps"] == synth.FPS
    assert meta["size"] == 32 and meta["frames"] == 6 and meta["generator_version"] == synth.GENERATOR_VERSION
    assert meta["families"] == {"appearance": 2, "motion": 2, "cue": 2}
    assert [(c["index"], c["name"]) for c in meta["classes"]] == sorted((i, n) for n, i in classes.items())
    assert "frame_{t+1}(p + flow_t(p))" in meta["flow_convention"]


def test_class_table_default_families_and_names():
    table = synth.class_table(4)
    assert [c.index for c in table] == list(range(1, 13))
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", c.name) for c in table)
    assert len({c.name for c in table}) == 12
    fam = [c.family for c in table]
    assert fam == ["appearance"] * 4 + ["motion"] * 4 + ["cue"] * 4
    cue = [c for c in table if c.family == "cue"]
    assert {c.appearance for c in cue} == {"Cue"} and len({c.motion for c in cue}) == 4  # one look, four actions
    assert {c.appearance for c in cue}.isdisjoint(synth.APPEARANCES)
    # no cue action is a class of the motion family, at any family size
    assert {c.motion for c in synth.class_table(6) if c.family == "cue"}.isdisjoint(synth.MOTIONS)
    assert all(c.motion is None for c in table if c.family == "appearance")
    assert all(c.appearance is None for c in table if c.family == "motion")
    with pytest.raises(ValueError, match="synth_classes_per_family"):
        synth.class_table(0)
    with pytest.raises(ValueError, match="even"):
        synth.video_specs(tiny_cfg(0, synth_size=33))


# ----------------------------------------------------------------------------- decoding fidelity
def test_decoded_files_match_drawn_frames(tiny_set):
    for spec in synth.video_specs(tiny_cfg(0)):
        decoded = decode_all(tiny_set / "videos" / spec.cls.name / f"{spec.stem}.mp4")
        assert psnr(decoded, synth.render_video(spec).frames) > 30.0, spec.video_id


def test_decode_psnr_default_size_each_class(tmp_path):
    cfg = synth.synth_config("default", 0, synth_frames=6, synth_train_per_class=1, synth_test_per_class=1)
    for spec in synth.video_specs(cfg)[::2]:
        drawn = synth.render_video(spec).frames
        path = tmp_path / f"{spec.stem}.mp4"
        path.write_bytes(synth.encode_h264(drawn))
        decoded = decode_all(path)
        assert decoded.shape == drawn.shape
        value = psnr(decoded, drawn)
        assert value > 30.0, spec.video_id
        assert psnr(decoded, np.roll(drawn, 3, axis=2)) < value - 5.0  # the PSNR check can fail


# ----------------------------------------------------------------------------- exact flow
def _warp_errors(video, t, delta=(0.0, 0.0)):
    """Mean |frame_t(p) - frame_{t+1}(p + flow_t(p) + delta)| on object interior / background."""
    size = video.frames.shape[1]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    mx, my = xs + video.flow[t, ..., 0], ys + video.flow[t, ..., 1]
    warped = cv2.remap(video.frames[t + 1], mx + delta[0], my + delta[1], cv2.INTER_CUBIC).astype(np.float64)
    kernel = np.ones((5, 5), np.uint8)
    # Pixels that stay visible: object interior whose destination is object interior, background
    # far from the object whose destination is far from the object, destinations inside the frame.
    obj_in = cv2.erode((video.alpha[t] >= 1).astype(np.uint8), kernel).astype(bool)
    dest_obj = cv2.remap(video.alpha[t + 1], mx, my, cv2.INTER_LINEAR, borderValue=2.0)
    bg = ~cv2.dilate((video.alpha[t] > 0).astype(np.uint8), kernel).astype(bool)
    near_next = cv2.dilate((video.alpha[t + 1] > 0).astype(np.uint8), kernel).astype(np.float32)
    dest_near = cv2.remap(near_next, mx, my, cv2.INTER_LINEAR, borderValue=1.0)
    inside = (mx >= 2) & (mx <= size - 3) & (my >= 2) & (my <= size - 3)
    valid_obj = obj_in & (dest_obj >= 0.999) & inside
    valid_bg = bg & (dest_near <= 0) & inside
    assert valid_obj.sum() > 100 and valid_bg.sum() > 1000
    diff = np.abs(warped - video.frames[t]).mean(axis=-1)
    return diff[valid_obj].mean(), diff[valid_bg].mean()


@pytest.mark.parametrize("class_index", range(1, 13))
def test_ground_truth_flow_warps_frame_t1_onto_frame_t(class_index):
    cfg = synth.synth_config("default", 0, synth_size=128, synth_frames=4, synth_train_per_class=1,
                             synth_test_per_class=1)
    spec = next(s for s in synth.video_specs(cfg) if s.cls.index == class_index)
    scene = synth.scene_for(spec)
    # A smoothed background keeps cubic-interpolation error small next to flow error.
    scene = dataclasses.replace(scene, canvas=cv2.GaussianBlur(scene.canvas, (0, 0), 1.5))
    # The cue family's marker changes the object's colour when the act starts and ends, a photometric change that
    # no flow describes (docs/SYNTHETIC.md section 4): the geometry is checked without it.
    scene = dataclasses.replace(scene, obj=dataclasses.replace(scene.obj, lit=None))
    video = synth.render_scene(scene, noise=False)
    for t in range(len(video.flow)):
        err_obj, err_bg = _warp_errors(video, t)
        off = [_warp_errors(video, t, d) for d in ((0.5, 0.0), (0.0, -0.5))]
        assert err_obj < 8.0 and err_obj < 0.6 * np.mean([o[0] for o in off]), (t, err_obj, off)
        assert err_bg < 1.0 and err_bg < 0.6 * np.mean([o[1] for o in off]), (t, err_bg, off)


def test_pure_pan_flow_equals_pan():
    size, n_frames, pan = 32, 5, np.array([2.0, -1.0])
    canvas = cv2.resize(_background_image("astronaut")[100:300, 150:350], (64, 64),
                        interpolation=cv2.INTER_AREA)
    # multiples of 1/32: exact in cv2.remap
    camera = 16.0 - np.outer(np.arange(n_frames), pan) + np.array([0.25, 0.375])
    video = synth.render_scene(synth.Scene(canvas=canvas, camera=camera, size=size, obj=None), noise=False)
    np.testing.assert_array_equal(video.flow, np.broadcast_to(pan, video.flow.shape))
    # Integer pan: frame_{t+1}(x + 2, y - 1) equals frame_t(x, y), away from the borders
    # (the chroma band-limiting reflects at the frame border).
    for t in range(n_frames - 1):
        nxt, cur = video.frames[t + 1][:-1, 2:].astype(int), video.frames[t][1:, :-2].astype(int)
        np.testing.assert_allclose(nxt[4:-4, 4:-4], cur[4:-4, 4:-4], atol=1)
        assert np.abs(video.frames[t + 1].astype(int) - video.frames[t]).mean() > 5  # it does move
    # Independent reference for the bilinear background sampling: scipy's map_coordinates.
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    for t in range(n_frames):
        ref = np.stack([ndimage.map_coordinates(canvas[..., c].astype(np.float64),
                                                [ys + camera[t, 1], xs + camera[t, 0]], order=1)
                        for c in range(3)], axis=-1)
        ref = _bandlimit_chroma(ref)
        assert np.abs(np.clip(np.rint(ref * 255), 0, 255) - video.frames[t]).max() <= 1


def _relative_object_flow(video, t):
    """Object pixels' flow at pair t minus the background's (the median flow), and their offsets from the centroid."""
    inside = video.alpha[t] >= 0.5
    rel = video.flow[t][inside] - np.median(video.flow[t].reshape(-1, 2), axis=0)
    ys, xs = np.nonzero(inside)
    return rel, xs - xs.mean(), ys - ys.mean()


def test_motion_semantics_in_image_coordinates():
    cfg = synth.synth_config("default", 0, synth_frames=12, synth_train_per_class=2, synth_test_per_class=1)
    specs = {}
    for s in synth.video_specs(cfg):
        specs.setdefault(s.cls.name, []).append(s)
    t = 5
    rel, _, _ = _relative_object_flow(synth.render_video(specs["MotionTranslateUp"][0], noise=False), t)
    assert rel[:, 1].mean() < -0.8 and abs(rel[:, 0].mean()) < 0.2  # up = negative y
    rel, _, _ = _relative_object_flow(synth.render_video(specs["MotionTranslateDown"][0], noise=False), t)
    assert rel[:, 1].mean() > 0.8
    # Rotate: one class, either direction; the flow is a rotation (tangential, curl), not a translation.
    for spec in specs["MotionRotate"]:
        rel, dx, dy = _relative_object_flow(synth.render_video(spec, noise=False), t)
        tangential = rel[:, 1] * dx - rel[:, 0] * dy  # > 0: clockwise on screen (y down)
        assert abs(tangential.mean()) > 5.0 and np.abs(rel.mean(axis=0)).max() < 0.3
    # Pulse: the object grows and shrinks: flow radial, of both signs over the clip.
    video = synth.render_video(specs["MotionPulse"][0], noise=False)
    radial = []
    for t in range(len(video.flow)):
        rel, dx, dy = _relative_object_flow(video, t)
        radial.append(np.mean(rel[:, 0] * dx + rel[:, 1] * dy))
    assert max(radial) > 5.0 and min(radial) < -5.0


def test_motion_magnitudes_within_stated_ranges_at_input_size():
    """Object 1-4 px/frame (median over its moving pixels, at the default profile's input size), camera
    pan <= 1.5 px/frame, object >= ~15 % of the frame (docs/SYNTHETIC.md)."""
    cfg = synth.synth_config("default", 0, synth_train_per_class=2, synth_test_per_class=1)
    assert cfg.synth_size == cfg.frame_size == cfg.image_size  # motion at the generated size = at the input
    for spec in synth.video_specs(cfg):
        if spec.cls.family == "appearance":
            continue
        video = synth.render_video(spec, noise=False)
        start, end = synth.cue_window(spec)
        speeds, areas, pans = [], [], []
        for t in range(start, end):
            rel, _, _ = _relative_object_flow(video, t)
            speeds.append(np.median(np.hypot(rel[:, 0], rel[:, 1])))
            pans.append(np.hypot(*np.median(video.flow[t].reshape(-1, 2), axis=0)))
        areas = (video.alpha >= 0.5).mean(axis=(1, 2))
        assert 0.8 <= np.mean(speeds) <= 4.0, (spec.video_id, np.mean(speeds))
        assert max(pans) <= 1.5 + 1e-6, spec.video_id
        assert np.median(areas) >= 0.14 and areas.max() <= 0.4, (spec.video_id, areas.min(), np.median(areas))


# ----------------------------------------------------------------------------- label safety
def _mirror(video):
    """A horizontally mirrored video: frames and flow flipped in x, the flow's x component negated."""
    flow = video.flow[:, :, ::-1].copy()
    flow[..., 0] = -flow[..., 0]
    return video.frames[:, :, ::-1].copy(), flow


def test_every_class_keeps_its_label_under_a_horizontal_mirror():
    """The training flip (transforms.py) must not change any label: classifiers fitted on unmirrored videos
    (the family check's flow classifier; the frame classifier for the appearance family) give mirrored test
    videos the class they give the originals, and score them as well."""
    cfg = synth.synth_config("default", 0, synth_size=48, synth_frames=12, synth_train_per_class=10,
                             synth_test_per_class=5)
    feats = {"train": {}, "test": {}}
    for spec in synth.video_specs(cfg):
        video = synth.render_video(spec, noise=False)
        frames_m, flow_m = _mirror(video)
        mid = len(video.frames) // 2
        # appearance: the frame classifier; motion and cue: the flow classifier
        pairs = [(check.frame_features(video.frames[mid]), check.frame_features(frames_m[mid])),
                 (check.flow_features(video.flow), check.flow_features(flow_m))]
        use = {"appearance": pairs[:1], "motion": pairs[1:], "cue": pairs[1:]}[spec.cls.family]
        row = (spec.cls.index, np.concatenate([p[0] for p in use]), np.concatenate([p[1] for p in use]))
        feats[spec.split].setdefault(spec.cls.family, []).append(row)
    for family, rows in feats["train"].items():
        labels = sorted({r[0] for r in rows})
        y = np.array([labels.index(r[0]) for r in rows])
        model = check.fit_logistic(np.stack([r[1] for r in rows]), y, len(labels))
        test = feats["test"][family]
        y_te = np.array([labels.index(r[0]) for r in test])
        pred = check.predict_logistic(model, np.stack([r[1] for r in test]))
        pred_m = check.predict_logistic(model, np.stack([r[2] for r in test]))
        assert np.mean(pred == y_te) >= 0.8, (family, np.mean(pred == y_te))
        assert np.mean(pred_m == pred) >= 0.9, (family, pred, pred_m)
        assert np.mean(pred_m == y_te) >= np.mean(pred == y_te) - 0.1, family


def test_left_right_classes_would_fail_the_mirror_check():
    """The check above can fail: a mirrored upward video is still upward, but a class set with a fixed
    horizontal direction (the version-1 TranslateRight / TranslateLeft) flips under the mirror."""
    size = 32
    ys, xs = np.mgrid[0:size, 0:size] - 15.5
    disc = np.hypot(xs, ys) < 8
    right = np.zeros((4, size, size, 2))
    right[:, disc, 0] = 2.0
    up = np.zeros((4, size, size, 2))
    up[:, disc, 1] = -2.0
    mirror = lambda f: np.stack([-f[:, :, ::-1, 0], f[:, :, ::-1, 1]], axis=-1)  # noqa: E731
    f = check.flow_features
    assert f(mirror(right))[0] == pytest.approx(-f(right)[0])  # b_x changes sign: Right becomes Left
    np.testing.assert_allclose(f(mirror(up)), f(up), atol=1e-9)  # Up stays Up


# ----------------------------------------------------------------------------- temporal structure
def test_cue_is_a_third_of_the_clip_at_varying_times_lit_while_acting_and_idle_otherwise():
    cfg = synth.synth_config("default", 0, synth_train_per_class=6, synth_test_per_class=3)
    cue = [s for s in synth.video_specs(cfg) if s.cls.family == "cue"]
    windows = [synth.cue_window(s) for s in cue]
    n_pairs = cfg.synth_frames - 1
    assert all(e - s == 8 and 0 <= s and e <= n_pairs for s, e in windows)  # round(23 / 3) = 8 pairs, even
    assert len({s for s, _ in windows}) >= 6  # the timing varies across videos
    for spec in cue[::4]:
        video = synth.render_video(spec, noise=False)
        start, end = synth.cue_window(spec)
        for t in range(n_pairs):
            rel, _, _ = _relative_object_flow(video, t)
            speed = np.hypot(rel[:, 0], rel[:, 1])
            if start <= t < end:
                assert np.median(speed) > 0.8, (spec.video_id, t)
            else:  # idle: the object moves only with the camera
                assert speed.max() < 1e-3, (spec.video_id, t, speed.max())
        # the marker: the object is lit (brighter) on the act's frames start..end, on no other frame
        inside = [video.frames[t][video.alpha[t] >= 0.5].mean() for t in range(len(video.frames))]
        lit = [inside[t] for t in range(start, end + 1)]
        idle = [inside[t] for t in range(len(inside)) if not start <= t <= end]
        assert min(lit) > max(idle) + 20, (spec.video_id, lit, idle)
    # Every other family acts over the whole clip.
    assert all(synth.cue_window(s) == (0, n_pairs) for s in synth.video_specs(cfg) if s.cls.family != "cue")


def test_cue_family_idle_frames_and_lit_frames_do_not_tell_the_classes_apart():
    """A single frame shows when the action happens, not which (docs/SYNTHETIC.md section 2): the family check's
    frame classifier, fitted on idle frames or on lit frames of training videos, stays near chance on test videos,
    while the flow classifier tells the actions apart."""
    cfg = synth.synth_config("default", 0, synth_size=48, synth_frames=12, synth_train_per_class=12,
                             synth_test_per_class=6)
    rows = {"train": [], "test": []}
    for spec in synth.video_specs(cfg):
        if spec.cls.family != "cue":
            continue
        video = synth.render_video(spec, noise=False)
        start, end = synth.cue_window(spec)
        idle = next(t for t in range(len(video.frames)) if not start <= t <= end)
        lit = (start + end) // 2
        rows[spec.split].append((spec.cls.index, check.frame_features(video.frames[idle]),
                                 check.frame_features(video.frames[lit]), check.flow_features(video.flow)))
    labels = sorted({r[0] for r in rows["train"]})
    y = {k: np.array([labels.index(r[0]) for r in v]) for k, v in rows.items()}
    acc = {}
    for i, name in ((1, "idle"), (2, "lit"), (3, "flow")):
        model = check.fit_logistic(np.stack([r[i] for r in rows["train"]]), y["train"], len(labels))
        acc[name] = float(np.mean(check.predict_logistic(model, np.stack([r[i] for r in rows["test"]])) == y["test"]))
    chance = 1 / len(labels)
    assert acc["idle"] <= chance + 0.2 and acc["lit"] <= chance + 0.2, acc
    assert acc["flow"] >= 0.8, acc


def test_segment_overlaps_cue_hand_cases():
    starts = np.array([0, 4, 8, 12, 16])  # stacks of 6 frames: pairs s .. s + 4
    assert synth.segment_overlaps_cue(starts, 6, (9, 17)).tolist() == [False, False, True, True, True]
    assert synth.segment_overlaps_cue(starts, 6, (0, 4)).tolist() == [True, False, False, False, False]
    assert synth.segment_overlaps_cue(starts, 6, (5, 8)).tolist() == [False, True, False, False, False]


def test_cues_json_and_cue_segments_vary_across_test_videos(tmp_path):
    from htsc_core.data.sampling import test_starts

    cfg = synth.synth_config("default", 0, synth_size=32, synth_frames=24, synth_classes_per_family=2,
                             synth_train_per_class=1, synth_test_per_class=7)
    root = tmp_path / "set"
    synth.generate(root, cfg, workers=1, progress=False)
    cues = synth.read_cues(root)
    specs = synth.video_specs(cfg)
    assert cues["frames"] == 24 and set(cues["videos"]) == {s.video_id for s in specs}
    for s in specs:
        assert (cues["videos"][s.video_id]["start"], cues["videos"][s.video_id]["end"]) == synth.cue_window(s)
    seg = synth.cue_segments(root, num_segments=5, length=6)
    assert set(seg) == {s.video_id for s in specs if s.split == "test" and s.cls.family == "cue"}
    patterns = {tuple(v.tolist()) for v in seg.values()}
    assert len(patterns) >= 3  # the cue falls in different segments in different videos
    starts = test_starts(24, 5, 6)
    for vid, overlap in seg.items():
        assert 1 <= overlap.sum() <= 4  # part of the clip only
        start, end = cues["videos"][vid]["start"], cues["videos"][vid]["end"]
        for s, o in zip(starts, overlap):  # independent check: any of the stack's pairs inside the cue
            assert o == any(start <= p < end for p in range(s, s + 5))
    full = synth.cue_segments(root, 5, 6, family="motion")
    assert all(v.all() for v in full.values())


# ----------------------------------------------------------------------------- family check
def test_flow_features_read_rotation_translation_and_zoom():
    size = 40
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) - 19.5
    disc = np.hypot(xs, ys) < 8
    base = np.zeros((3, size, size, 2))
    rot, trans, zoom = base.copy(), base.copy(), base.copy()
    rot[:, disc, 0], rot[:, disc, 1] = -0.1 * ys[disc], 0.1 * xs[disc]
    trans[:, disc, 0] = 1.5
    zoom[:, disc, 0], zoom[:, disc, 1] = 0.08 * xs[disc], 0.08 * ys[disc]
    f_rot, f_trans, f_zoom = (check.flow_features(f) for f in (rot, trans, zoom))
    # features: b_x, b_y, divergence, curl, ...
    assert f_rot[3] == pytest.approx(0.2, rel=0.05) and abs(f_rot[2]) < 1e-6
    assert f_trans[0] == pytest.approx(1.5) and abs(f_trans[3]) < 1e-9
    assert f_zoom[2] == pytest.approx(0.16, rel=0.05) and abs(f_zoom[3]) < 1e-6


def test_logistic_classifier_learns_separable_and_not_random_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    model = check.fit_logistic(x[:150], y[:150], 2)
    assert np.mean(check.predict_logistic(model, x[150:]) == y[150:]) > 0.9
    y_rand = rng.integers(0, 2, 200)
    model = check.fit_logistic(x[:150], y_rand[:150], 2)
    assert np.mean(check.predict_logistic(model, x[150:]) == y_rand[150:]) < 0.75


def test_family_separability_reports_and_writes_json(tiny_set, tmp_path):
    out = tmp_path / "check.json"
    result = check.family_separability(tiny_set, psnr_videos=4, json_path=out)
    assert json.loads(out.read_text())["families"].keys() == {"appearance", "motion", "cue"}
    for fam in result["families"].values():
        assert fam["chance"] == 0.5 and 0.0 <= fam["frame_acc"] <= 1.0 and fam["test_videos"] == 2
    assert result["psnr_db"]["min"] > 30.0 and result["psnr_db"]["videos"] == 4
    assert "motion" in check.format_table(result)


def test_cli_generates_and_checks(tmp_path, monkeypatch, capsys):
    from htsc_core import cli

    monkeypatch.setattr(sys, "argv", list(sys.argv))
    root, report = tmp_path / "smoke", tmp_path / "check.json"
    rc = cli.main(["synth", "--out", str(root), "--profile", "smoke", "--seed", "3", "--workers", "1", "--check",
                   "--check-json", str(report)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "36 videos" in text and "decode PSNR" in text
    assert json.loads((root / "classes.json").read_text())["seed"] == 3 and report.is_file()
    assert cli.main(["synth", "--profile", "smoke"]) == 2  # neither --out nor --check ROOT
