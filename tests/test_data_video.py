"""Decoding: round trip against what was written, decord vs PyAV, resize, every failure reason."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from htsc_core.data import video as V
from htsc_core.data.video import VideoReadError, read_frames, read_sampled, video_length, write_video


def pattern(t=8, h=32, w=64):
    yy, xx = np.mgrid[:h, :w]
    return np.stack([np.stack([(xx * 5 + i * 10) % 256, (yy * 7) % 256, np.full_like(xx, 100 + i * 5)], -1)
                     for i in range(t)]).astype(np.uint8)


@pytest.fixture(scope="module", params=[("libx264", ".mp4"), ("mpeg4", ".avi")])
def clip(request, tmp_path_factory):
    codec, ext = request.param
    frames = pattern()
    path = write_video(tmp_path_factory.mktemp(codec) / f"clip{ext}", frames, codec)
    return path, frames


def test_round_trip_psnr(clip):
    path, frames = clip
    got = read_frames(path, range(8))
    assert got.dtype == np.uint8 and got.shape == (8, 32, 64, 3)
    assert peak_signal_noise_ratio(frames, got, data_range=255) > 30
    # Frame order: each decoded frame is closest to the frame with its own index.
    errs = np.array([[np.abs(got[i].astype(int) - frames[j]).mean() for j in range(8)] for i in range(8)])
    assert (errs.argmin(axis=1) == np.arange(8)).all()


def test_length_and_backends_agree(clip):
    path, _ = clip
    assert video_length(path) == 8
    assert V._av_length(path) == 8 and V._decord_length(path) == 8
    idx = np.array([0, 3, 7])
    dec, av_ = V._decord_read(path, idx), V._av_read(path, idx)
    assert dec.shape == (3, 32, 64, 3)
    assert np.abs(dec.astype(int) - av_.astype(int)).max() <= 2


def test_repeated_and_unordered_indices(clip):
    path, _ = clip
    full = read_frames(path, range(8))
    got = read_frames(path, [5, 0, 5, 7])
    np.testing.assert_array_equal(got, full[[5, 0, 5, 7]])


def test_pyav_fallback_when_decord_fails(clip, monkeypatch):
    path, _ = clip
    ref = read_frames(path, [1, 6])

    def broken(_):
        raise RuntimeError("decord cannot open this")

    monkeypatch.setattr(V, "_decord_reader", broken)
    assert video_length(path) == 8
    got = read_frames(path, [1, 6])
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 2
    uniq, frames, n = read_sampled(path, lambda n: np.array([n - 1, 0, 0]))
    assert n == 8 and uniq.tolist() == [0, 7] and frames.shape == (2, 32, 64, 3)


def test_resize_short_side(clip):
    path, _ = clip
    full = read_frames(path, [2])
    small = read_frames(path, [2], size=16)
    assert small.shape == (1, 16, 32, 3)
    # INTER_AREA halving = 2x2 block mean.
    blocks = full[0].astype(float).reshape(16, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(small[0] - blocks).max() <= 1
    tall = V.resize_short_side(np.zeros((1, 40, 20, 3), np.uint8), 10)
    assert tall.shape == (1, 20, 10, 3)


def test_errors_name_file_and_reason(tmp_path, clip):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoReadError, match="nope.mp4.*missing"):
        read_frames(missing, [0])
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty.avi.*0 bytes"):
        video_length(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="junk.mp4.*undecodable"):
        read_frames(junk, [0])
    path, _ = clip
    with pytest.raises(VideoReadError, match="out of range"):
        read_frames(path, [8])
    with pytest.raises(ValueError):
        read_frames(path, [])


def test_audio_only_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(VideoReadError, match="sound.wav.*no video stream"):
        read_frames(path, [0])


def test_width_decord_mis_strides_falls_back_to_pyav(tmp_path):
    frames = pattern(4, 32, 48)  # decord2 3.4 returns padded rows for this width
    path = write_video(tmp_path / "w48.mp4", frames)
    got = read_frames(path, [0, 3])
    assert got.shape == (2, 32, 48, 3)
    assert peak_signal_noise_ratio(frames[[0, 3]], got, data_range=255) > 30


def test_clip_cache_gives_identical_frames_and_decodes_once(clip, monkeypatch):
    path, _ = clip
    choose = lambda n: np.array([5, 1, 1, 3])  # noqa: E731
    ref = read_sampled(path, choose, size=16)
    calls = []
    real = V._read_sampled
    monkeypatch.setattr(V, "_read_sampled", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    V.set_clip_cache(1 << 26)
    try:
        for _ in range(3):
            uniq, frames, n = read_sampled(path, choose, size=16)
            np.testing.assert_array_equal(uniq, ref[0])
            np.testing.assert_array_equal(frames, ref[1])
            assert n == ref[2]
        assert len(calls) == 1  # the whole clip decoded once, then served from memory
    finally:
        V.set_clip_cache(0)
    assert not V._CLIP_CACHE
    with pytest.raises(ValueError, match="max_bytes"):
        V.set_clip_cache(-1)


def test_clip_cache_context_restores_the_previous_setting(clip):
    # training stages switch the cache on only while they train: no clip cache leaks into the next stage
    path, _ = clip
    with V.clip_cache(1 << 26):
        read_sampled(path, lambda n: np.array([0]), size=16)
        assert V._CLIP_CACHE and V._CLIP_CACHE_LIMIT[0] == 1 << 26
    assert V._CLIP_CACHE_LIMIT[0] == 0 and not V._CLIP_CACHE


def test_reading_a_video_before_torch_is_imported_leaves_torch_working(tmp_path):
    """decord2 preloads the nvidia-* wheels' libraries globally (libnvblas among them); a torch imported after
    that segfaulted in its first convolution. A fresh interpreter reads a video first, then convolves."""
    import subprocess
    import sys

    path = write_video(tmp_path / "v.mp4", pattern())
    code = ("from htsc_core.data.video import read_frames\n"
            f"read_frames({str(path)!r}, range(4))\n"
            "import torch\nx = torch.nn.Conv2d(3, 8, 3)(torch.rand(2, 3, 32, 32))\n"
            "print(float((torch.rand(64, 64) @ torch.rand(64, 64)).sum() > 0), tuple(x.shape))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    assert run.stdout.strip() == "1.0 (2, 8, 30, 30)"
