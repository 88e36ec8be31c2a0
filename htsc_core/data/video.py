"""Video decoding: frames as uint8 RGB arrays (docs/DESIGN.md section 4).

``read_frames`` decodes only the requested frame indices with the ``decord``
API (the maintained ``decord2`` build) and falls back to PyAV when decord
cannot open or decode a file that PyAV can. Frames are always uint8 RGB of
shape (T, H, W, 3); ``size`` optionally resizes so the short side equals it
(``cv2.INTER_AREA``), as TSN resizes frames before cropping.
Any failure raises :class:`VideoReadError` naming the file and the reason.
"""
from __future__ import annotations

from contextlib import contextmanager

import logging
from pathlib import Path
from collections.abc import Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)


class VideoReadError(OSError):
    """A video could not be read. ``str(err)`` names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read video {path}: {reason}")


# ----------------------------------------------------------------------------- helpers
def _check_exists(path: Path) -> None:
    if not path.exists():
        raise VideoReadError(path, "file is missing")
    if not path.is_file():
        raise VideoReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")


def _validate_indices(indices: Sequence[int]) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("read_frames: indices is empty; ask for at least one frame")
    if (idx < 0).any():
        raise ValueError(f"read_frames: negative frame index in {idx.tolist()}")
    return idx


def resize_short_side(frames: np.ndarray, size: int | None) -> np.ndarray:
    """Resize (T, H, W, C) frames so that min(H, W) == size (cv2.INTER_AREA). 0/None = unchanged."""
    if not size:
        return frames
    if size < 0:
        raise ValueError(f"size={size}; expected a positive short side or 0/None")
    h, w = frames.shape[1:3]
    if min(h, w) == size:
        return frames
    if h <= w:
        nh, nw = size, max(1, int(round(w * size / h)))
    else:
        nh, nw = max(1, int(round(h * size / w))), size
    out = np.empty((frames.shape[0], nh, nw, frames.shape[3]), dtype=frames.dtype)
    for i, f in enumerate(frames):
        out[i] = cv2.resize(f, (nw, nh), interpolation=cv2.INTER_AREA).reshape(nh, nw, -1)
    return out


# ----------------------------------------------------------------------------- decord
def _decord_reader(path: Path):
    # torch first: importing decord (decord2) preloads every shared library of the nvidia-* wheels with
    # RTLD_GLOBAL, libnvblas among them, and a torch imported after it resolves its CPU BLAS to NVBLAS and
    # segfaults in its first convolution (seen as `htsc flow extract --method motionnet` after TV-L1 work in one
    # process; tests/test_data_video.py runs that order). With torch loaded first its symbols are already bound.
    # decord2 has no switch for that preload, so every process that decodes with decord loads torch too.
    import torch  # noqa: F401
    import decord

    # One decoding thread per reader: DataLoader workers already parallelise over videos.
    return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)


def _decord_length(path: Path) -> int:
    return len(_decord_reader(path))


def _decord_read(path: Path, idx: np.ndarray) -> np.ndarray:
    vr = _decord_reader(path)
    n = len(vr)
    if n == 0:
        raise VideoReadError(path, "video has zero frames")
    if idx.max() >= n:
        raise VideoReadError(path, f"frame index {int(idx.max())} out of range (video has {n} frames)")
    frames = vr.get_batch(idx.tolist()).asnumpy()
    _check_decord_shape(frames)
    return frames


def _check_decord_shape(frames: np.ndarray) -> None:
    # decord2 3.4 mis-strides some widths (e.g. 32, 48 px: padded rows, 4-6 "channels"); PyAV then decodes.
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise RuntimeError(f"decord returned frames of shape {frames.shape}")


# ----------------------------------------------------------------------------- PyAV
def _av_open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # noqa: BLE001 - every PyAV open failure is one reason for the user
        raise VideoReadError(path, f"undecodable ({type(exc).__name__}: {exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "no video stream")
    return container


def _av_length(path: Path) -> int:
    container = _av_open(path)
    try:
        stream = container.streams.video[0]
        # Count decoded frames: stream.frames is 0 or approximate for many AVI/MKV files.
        n = 0
        for _ in container.decode(stream):
            n += 1
        return n
    except VideoReadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise VideoReadError(path, f"undecodable ({type(exc).__name__}: {exc})") from exc
    finally:
        container.close()


def _av_read(path: Path, idx: np.ndarray) -> np.ndarray:
    container = _av_open(path)
    wanted = set(int(i) for i in idx)
    last = int(idx.max())
    got: dict[int, np.ndarray] = {}
    n_decoded = 0
    try:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            n_decoded = i + 1
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    except Exception as exc:  # noqa: BLE001
        raise VideoReadError(path, f"undecodable ({type(exc).__name__}: {exc})") from exc
    finally:
        container.close()
    if not got and n_decoded == 0:
        raise VideoReadError(path, "video has zero frames")
    missing = sorted(wanted - set(got))
    if missing:
        raise VideoReadError(path, f"frame index {missing[0]} out of range (video has {n_decoded} frames)")
    return np.stack([got[int(i)] for i in idx])


# ----------------------------------------------------------------------------- public
def video_length(path: str | Path) -> int:
    """Number of frames of ``path`` (decord; PyAV decode count as fallback).

    Raises VideoReadError for a missing/empty/undecodable file or a zero-frame video.
    """
    path = Path(path)
    _check_exists(path)
    try:
        n = _decord_length(path)
    except Exception as exc:  # noqa: BLE001 - decord raises DECORDError/RuntimeError; try PyAV
        log.debug("decord could not open %s (%s); trying PyAV", path, exc)
        n = _av_length(path)
    if n <= 0:
        raise VideoReadError(path, "video has zero frames")
    return int(n)


def read_frames(path: str | Path, indices: Sequence[int], size: int | None = None) -> np.ndarray:
    """Decode frames ``indices`` of ``path`` -> uint8 RGB (T, H, W, 3), in the order asked.

    Repeated indices are allowed (short videos). ``size`` resizes so the short side
    equals it (0/None = native). decord first; PyAV when decord fails on the file.
    """
    path = Path(path)
    idx = _validate_indices(indices)
    _check_exists(path)
    try:
        frames = _decord_read(path, idx)
    except VideoReadError as err:
        if "out of range" not in err.reason and "zero frames" not in err.reason:
            raise
        # decord's frame count can differ from the decoded count on broken indexes; ask PyAV.
        log.debug("decord: %s; trying PyAV", err)
        frames = _av_read(path, idx)
    except Exception as exc:  # noqa: BLE001 - decord raises DECORDError/RuntimeError; try PyAV
        log.debug("decord could not decode %s (%s); trying PyAV", path, exc)
        frames = _av_read(path, idx)
    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoReadError(path, f"decoded frames have shape {frames.shape}; expected (T, H, W, 3)")
    if frames.dtype != np.uint8:
        frames = frames.astype(np.uint8)
    return resize_short_side(frames, size)


# ----------------------------------------------------------------------------- decoded-clip cache
_CLIP_CACHE: dict[tuple[str, int | None], tuple[np.ndarray, int]] = {}
_CLIP_CACHE_LIMIT = [0]  # bytes; 0 = off
_CLIP_CACHE_USED = [0]  # bytes held now


def set_clip_cache(max_bytes: int) -> None:
    """Keep whole decoded clips in this process's memory, up to ``max_bytes`` in all (0 = off, and clear).

    For short clips read again every epoch (the synthetic set: 24 frames of 64 px, 0.3 MB each), a
    training process that decodes in the main process (``num_workers=0``) then decodes each clip once
    instead of once per epoch. Clips past the limit are decoded as usual; results are identical.
    """
    if max_bytes < 0:
        raise ValueError(f"set_clip_cache: max_bytes={max_bytes}; expected >= 0")
    _CLIP_CACHE_LIMIT[0] = int(max_bytes)
    if not max_bytes:
        _CLIP_CACHE.clear()
        _CLIP_CACHE_USED[0] = 0


@contextmanager
def clip_cache(max_bytes: int):
    """:func:`set_clip_cache` for the duration of a ``with`` block; the previous setting comes back after it
    (``set_clip_cache(0)`` drops the clips cached inside it when that setting was off)."""
    previous = _CLIP_CACHE_LIMIT[0]
    set_clip_cache(max_bytes)
    try:
        yield
    finally:
        set_clip_cache(previous)


def read_sampled(path: str | Path, choose, size: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Open ``path`` once, pick indices with ``choose(num_frames)``, decode each distinct frame once.

    Returns (unique_indices (U,), frames uint8 (U, H, W, 3), num_frames). The dataset uses it so
    every item costs one open and one decode of exactly the frames it needs (or, with
    :func:`set_clip_cache` on, one decode of the whole clip the first time it is asked for).
    """
    if not _CLIP_CACHE_LIMIT[0]:
        return _read_sampled(path, choose, size)
    key = (str(Path(path).resolve()), size or None)
    hit = _CLIP_CACHE.get(key)
    if hit is None:
        if _CLIP_CACHE_USED[0] >= _CLIP_CACHE_LIMIT[0]:  # full: decode only the frames asked for
            return _read_sampled(path, choose, size)
        _, frames, n = _read_sampled(path, lambda num: np.arange(num), size)
        hit = (frames, n)
        if _CLIP_CACHE_USED[0] + frames.nbytes <= _CLIP_CACHE_LIMIT[0]:
            _CLIP_CACHE[key] = hit
            _CLIP_CACHE_USED[0] += frames.nbytes
    frames, n = hit
    uniq = np.unique(_validate_indices(choose(n)))
    if uniq.max() >= n:
        raise ValueError(f"choose({n}) returned index {int(uniq.max())} past the last frame")
    return uniq, frames[uniq], n


def _read_sampled(path: str | Path, choose, size: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    path = Path(path)
    _check_exists(path)
    try:
        vr = _decord_reader(path)
        n = len(vr)
        if n <= 0:
            raise VideoReadError(path, "video has zero frames")
        uniq = np.unique(_validate_indices(choose(n)))
        if uniq.max() >= n:
            raise ValueError(f"choose({n}) returned index {int(uniq.max())} past the last frame")
        frames = vr.get_batch(uniq.tolist()).asnumpy()
        _check_decord_shape(frames)
    except (VideoReadError, ValueError):
        raise
    except Exception as exc:  # noqa: BLE001 - decord could not open/decode; PyAV decides
        log.debug("decord could not decode %s (%s); trying PyAV", path, exc)
        n = _av_length(path)
        if n <= 0:
            raise VideoReadError(path, "video has zero frames") from exc
        uniq = np.unique(_validate_indices(choose(n)))
        frames = _av_read(path, uniq)
    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoReadError(path, f"decoded frames have shape {frames.shape}; expected (T, H, W, 3)")
    return uniq, resize_short_side(frames.astype(np.uint8, copy=False), size), int(n)


def write_video(path: str | Path, frames: np.ndarray, codec: str = "libx264", fps: int = 25,
                quality: int = 10) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) with PyAV (yuv420p; H and W even for libx264).

    ``quality``: x264 CRF for libx264/h264; other codecs get 8 Mbit/s. Used by the tests
    and handy for fixtures; the synthetic generator has its own writer.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "h264"):
            stream.options = {"crf": str(quality), "preset": "ultrafast"}
        else:
            stream.bit_rate = 8_000_000  # high rate: fixtures should decode close to what was written
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
