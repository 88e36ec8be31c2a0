"""Synthetic action set, part 4: byte-reproducible H.264 encoding (docs/SYNTHETIC.md).

Videos are H.264 (libx264, yuv420p, CRF 10, one thread, no SIMD, bit-exact muxing) so a given seed
gives byte-identical files; the RGB -> YUV 4:2:0 conversion is done here in numpy (BT.601 limited
range, the decoders' default), because feeding RGB frames through PyAV's own conversion gave
run-to-run byte differences (PyAV 18.1). Files are read back with the library's decoder,
:func:`htsc_core.data.video.read_frames`.
"""
from __future__ import annotations

import io
from fractions import Fraction

import numpy as np

FPS = 25
CRF = 10  # 64 px frames with dense texture: CRF 12 gave 29.95 dB on one class, CRF 10 >= 30.18 dB


def rgb_to_i420(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> planar I420 (3H/2, W): BT.601 limited range, 2x2 mean chroma."""
    x = frame.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    cb = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    cr = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [y, sub(cb), sub(cr)]
    flat = np.concatenate([np.clip(np.rint(p), 0, 255).astype(np.uint8).reshape(-1) for p in planes])
    return flat.reshape(h * 3 // 2, w)


def encode_h264(frames: np.ndarray, fps: int = FPS, crf: int = CRF) -> bytes:
    """Encode uint8 RGB (T, H, W, 3) to an MP4 (H.264 yuv420p) in memory, byte-reproducibly."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"encode_h264: expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"encode_h264: frame size {frames.shape[1:3]} must be even for yuv420p")
    if "libx264" not in av.codecs_available:
        raise RuntimeError("this PyAV build has no libx264 encoder; available H.264 codecs: "
                           f"{sorted(c for c in av.codecs_available if '264' in c)}")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        # asm=0: with x264's SIMD paths the same input gave different bytes from run to run
        # (measured with PyAV 18.1 at 80x80); the C paths are deterministic (100/100 runs).
        stream = container.add_stream("libx264", rate=fps, options={
            "crf": str(crf), "preset": "medium", "threads": "1", "x264-params": "asm=0"})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb_to_i420(frame), format="yuv420p")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()
