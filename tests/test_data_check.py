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
