"""`htsc check-videos`: every kind of broken video is listed with its reason; exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from htsc_core.data.check import add_arguments, check_videos, command, paths_from_split, scan_videos
from htsc_core.data.video import write_video


def frames(t, h=32, w=64):
    return np.random.default_rng(t).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for p in [*s.encode(f), *s.encode()]:
            c.mux(p)
    return path


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "videos"
    write_video(r / "A/good.mp4", frames(6))
    write_video(r / "A/good2.avi", frames(4), "mpeg4")
    write_video(r / "A/short.mp4", frames(1))
    (r / "B").mkdir(parents=True)
    (r / "B/empty.avi").write_bytes(b"")
    (r / "B/junk.mp4").write_bytes(b"not a video at all" * 50)
    audio_only(r / "B/sound.mkv")
    (r / "B/notes.txt").write_text("ignored: not a video extension")
    return r


def run(argv):
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    return command(p.parse_args([str(a) for a in argv]))


def test_check_videos_lists_every_problem(root):
    paths = scan_videos(root)
    assert [p.name for p in paths] == ["good.mp4", "good2.avi", "short.mp4", "empty.avi", "junk.mp4", "sound.mkv"]
    found = {Path(p["path"]).name: p for p in check_videos(paths, min_frames=2)}
    assert set(found) == {"short.mp4", "empty.avi", "junk.mp4", "sound.mkv"}
    assert found["short.mp4"]["kind"] == "too_short" and found["short.mp4"]["frames"] == 1
    assert found["empty.avi"]["kind"] == "empty" and "0 bytes" in found["empty.avi"]["reason"]
    assert found["junk.mp4"]["kind"] == "unreadable"
    assert found["sound.mkv"]["kind"] == "no_video_stream"
    stricter = {Path(p["path"]).name for p in check_videos(paths, min_frames=5)}
    assert "good2.avi" in stricter and "good.mp4" not in stricter
    with pytest.raises(ValueError):
        check_videos(paths, min_frames=0)


def test_gray_video_is_odd(tmp_path):
    import av

    path = tmp_path / "gray.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=5)
        s.width, s.height, s.pix_fmt = 32, 32, "gray"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32), 40 * i, np.uint8), format="gray")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    (problem,) = check_videos([path])
    assert problem["kind"] == "channels"


def test_command_exit_codes_and_json(root, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert run([root, "--json", out]) == 1
    text = capsys.readouterr().out
    assert "6 videos checked" in text and "4 problem(s)" in text and "junk.mp4" in text
    report = json.loads(out.read_text())
    assert report["checked"] == 6 and len(report["problems"]) == 4
    assert run([root / "A"]) == 1  # short.mp4
    assert run([root / "A", "--min-frames", "1"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out.splitlines()[-1]
    assert run([tmp_path / "absent"]) == 2


def test_split_file_mode(root, tmp_path):
    split = tmp_path / "trainlist01.txt"
    split.write_text("a/GOOD.mp4 1\nA/missing.mp4 1\n../escape.avi 1\nA/good2.avi 1\n")
    paths, problems = paths_from_split(root, split)
    assert [p.name for p in paths] == ["good.mp4", "good2.avi"]  # case-insensitive lookup
    assert [p["kind"] for p in problems] == ["missing", "outside_root"]
    assert "trainlist01.txt:2" in problems[0]["reason"]
    assert run([root, "--split", split]) == 1
    ok = tmp_path / "ok.txt"
    ok.write_text("A/good.mp4 1\nA/good2.avi\n")
    assert run([root, "--split", ok]) == 0
    hmdb = tmp_path / "A_test_split1.txt"  # HMDB51 syntax: bare names under ROOT/<class>/
    hmdb.write_text("good.mp4 1\nshort.mp4 2\n")
    assert run([root, "--split", hmdb]) == 1
    assert [p.name for p in paths_from_split(root, hmdb)[0]] == ["good.mp4", "short.mp4"]


# --- dangling links, permissions, truncated files, and a user's dataset screened for the study ---------
def test_dangling_symlink_and_unreadable_file_are_named(root, capsys, monkeypatch):
    import os

    (root / "A" / "gone.avi").symlink_to(root / "A" / "deleted.avi")
    denied = root / "A" / "locked.mp4"
    write_video(denied, frames(4))
    denied.chmod(0)
    if os.geteuid() == 0:  # root reads anything: emulate the permission check a user would hit
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p).name != "locked.mp4" and real(p, mode, **kw))
    assert run([root / "A"]) == 1
    text = capsys.readouterr().out
    assert "dangling_symlink" in text and "gone.avi" in text and "deleted.avi" in text
    assert "permission" in text and "locked.mp4" in text
    assert "5 videos checked" in text  # good, good2, short, gone (link), locked: none passed over silently
    denied.chmod(0o644)


def test_split_names_a_dangling_link_and_a_missing_file(root, tmp_path):
    (root / "A" / "gone.avi").symlink_to(root / "nowhere.avi")
    split = tmp_path / "testlist01.txt"
    split.write_text("A/gone.avi\r\nA/absent.avi\r\nA/good.mp4\r\n")
    paths, problems = paths_from_split(root, split)
    found = {Path(p["path"]).name: p for p in problems + check_videos(paths)}
    assert found["gone.avi"]["kind"] == "dangling_symlink" and "nowhere.avi" in found["gone.avi"]["reason"]
    assert found["absent.avi"]["kind"] == "missing" and "testlist01.txt:2" in found["absent.avi"]["reason"]
    assert "good.mp4" not in found


def test_truncated_rule():
    from htsc_core.data.check import truncated

    assert truncated(40, 12) and truncated(100, 94) and truncated(20, 18)
    assert not truncated(100, 95) and not truncated(20, 19) and not truncated(0, 3) and not truncated(16, 16)


def test_truncated_avi_is_found(tmp_path):
    from dataset_trees import truncate, write_clip
    from htsc_core.data.check import probe_video
    from htsc_core.data.video import video_length

    good = write_clip(tmp_path / "good.avi", 1, 0)
    cut = truncate(tmp_path / "cut.avi", 2, 1)
    assert probe_video(good) is None
    problem = probe_video(cut)
    assert problem["kind"] == "truncated" and "declares 40 frames" in problem["reason"]
    assert problem["frames"] == video_length(cut) < 40


def _ucf_cfg(tmp_path, runs="runs"):
    from dataset_trees import ucf101_tree
    from htsc_core.config import from_params

    root, bad = ucf101_tree(tmp_path / "ucf")
    return from_params(dataset="ucf101", data_root=str(root), profile="smoke", runs_dir=str(tmp_path / runs)), bad


def test_screened_split_leaves_out_the_bad_video_and_warns(tmp_path):
    from htsc_core.data import check
    from htsc_core.data.registry import load_split

    cfg, bad = _ucf_cfg(tmp_path)
    with pytest.warns(RuntimeWarning, match=str(bad.name)):
        train, _ = load_split(cfg, "train")
    subsets = {s: load_split(cfg, s)[0] for s in ("val", "test")} | {"train": train}
    assert all(r.path != bad for rs in subsets.values() for r in rs)
    assert sum(len(rs) for rs in subsets.values()) == 12  # 13 listed, one truncated
    unscreened = load_split(cfg, "train", screen=False)[0] + load_split(cfg, "val", screen=False)[0]
    assert bad in [r.path for r in unscreened]
    scan = check.screen_dataset(cfg)
    assert scan["checked"] == 13 and [p["path"] for p in scan["problems"]] == [str(bad)]
    assert Path(scan["cache"]).is_file()


def test_screen_is_cached_per_listing_and_rescans_when_a_file_changes(tmp_path, monkeypatch):
    import os

    from htsc_core.data import check, probe

    cfg, bad = _ucf_cfg(tmp_path)
    first = check.screen_dataset(cfg)
    calls = []
    real = probe.check_videos
    monkeypatch.setattr(probe, "check_videos", lambda paths, *a, **k: calls.append(len(list(paths))) or [])
    monkeypatch.setattr(probe, "_SCREENS", {})  # a new process: only the cache file is left
    again = check.screen_dataset(cfg)
    assert calls == [] and again["problems"] == first["problems"]
    monkeypatch.setattr(probe, "check_videos", real)
    from dataset_trees import write_clip

    write_clip(bad, 7, 2)  # the user re-downloads the cut file
    st = bad.stat()
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    fixed = check.screen_dataset(cfg)
    assert fixed["problems"] == [] and fixed["key"] != first["key"]
    assert len(list((tmp_path / "runs" / "video-check").glob("*.json"))) == 2


def test_listed_but_absent_video_is_left_out_not_fatal(tmp_path):
    from htsc_core.data import check
    from htsc_core.data.records import SplitFileError
    from htsc_core.data.registry import load_split

    cfg, _ = _ucf_cfg(tmp_path)
    gone = Path(cfg.data_root) / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"
    gone.unlink()
    with pytest.raises(SplitFileError, match="testlist01.txt:1"):
        load_split(cfg, "test", screen=False)
    with pytest.warns(RuntimeWarning, match="v_ApplyEyeMakeup_g01_c01"):
        test, _ = load_split(cfg, "test")
    assert len(test) == 2
    kinds = {Path(p["path"]).name: p for p in check.screen_dataset(cfg)["problems"]}
    assert kinds["v_ApplyEyeMakeup_g01_c01.avi"]["kind"] == "missing"
    assert "testlist01.txt:1" in kinds["v_ApplyEyeMakeup_g01_c01.avi"]["reason"]


def test_skipped_records_json_and_run_log(tmp_path):
    from htsc_core.data import check

    cfg, bad = _ucf_cfg(tmp_path)
    cfg = cfg.replace(results_dir=str(tmp_path / "results"))
    path = check.write_skipped(cfg, check.screen_dataset(cfg))
    body = json.loads(path.read_text())
    assert path == tmp_path / "results" / "metrics" / "skipped.json"
    assert body["metrics"]["checked"] == 13 and body["metrics"]["problems"][0]["path"] == str(bad)
    assert body["meta"]["config"]["dataset"] == "ucf101"
    log = tmp_path / "run" / "skipped.jsonl"
    assert check.log_excluded(cfg, log) == 1
    assert check.log_excluded(cfg, log) == 0  # a resumed run adds nothing twice
    (line,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert line["path"] == str(bad) and line["kind"] == "truncated" and line["when"] == "screen"
    assert check.log_excluded(cfg.replace(dataset="synthetic", data_root=str(tmp_path)), log) == 0


def test_check_videos_dataset_mode(tmp_path, capsys):
    cfg, bad = _ucf_cfg(tmp_path)
    assert run([cfg.data_root, "--dataset", "ucf101"]) == 1
    text = capsys.readouterr().out
    assert "truncated" in text and bad.name in text and "13 videos checked" in text
    bad.unlink()
    assert run([cfg.data_root, "--dataset", "ucf101"]) == 1
    assert "trainlist01.txt:" in capsys.readouterr().out  # listed, not on disk: names the line
