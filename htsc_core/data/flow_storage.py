"""Stored TV-L1 flow as denseflow-style grayscale JPEGs (docs/DESIGN.md section 5, two-stream baseline).

The two-stream baseline of Table 3/5 (paper section 4) feeds a temporal CNN with
pre-computed TV-L1 flow. We store it as the ``denseflow`` tool does (Wang et al.'s
``dense_flow``/open-mmlab ``denseflow``, ``src/common.cpp``): each flow component is
clipped to [-bound, bound], mapped linearly to [0, 255], rounded and written as an
8-bit grayscale JPEG, one file per component and frame pair::

    <flow_root>/<video_id>/x_00000.jpg  y_00000.jpg  ...  (pair i = frame i -> i+1)
    <flow_root>/<video_id>/.complete                     (written last; JSON summary)

Every file is written atomically (temp file + ``os.replace``) and ``.complete`` only
after every pair, so a video without it is treated as not extracted.

The format is data: :mod:`htsc_core.flow.extract` writes it, the dataset
(:mod:`htsc_core.data.dataset`, modality ``"flow"``) reads it, so it lives in the data layer,
below both (docs/CONTRACTS.md, "Layers").
"""
from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Sequence

import cv2
import numpy as np

from htsc_core.utils import atomic_write_bytes, atomic_write_json

DEFAULT_BOUND = 20.0  # denseflow's default bound (-b 20); docs/CONTRACTS.md "Stored TV-L1 flow"
# cv::imencode(".jpg", img) with no parameters, as denseflow calls it, uses OpenCV's
# default IMWRITE_JPEG_QUALITY, documented as 95 (OpenCV imgcodecs, ImwriteFlags).
DEFAULT_JPEG_QUALITY = 95
COMPLETE_MARKER = ".complete"


def _validate_bound(bound: float) -> float:
    bound = float(bound)
    if not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"bound={bound}; expected a positive finite number of pixels")
    return bound


def _validate_flow(flow: np.ndarray, ndim: int, what: str) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != ndim or flow.shape[-1] != 2:
        want = "(H, W, 2)" if ndim == 3 else "(T-1, H, W, 2)"
        raise ValueError(f"{what} has shape {flow.shape}; expected {want} (dx, dy) in pixels")
    if not np.issubdtype(flow.dtype, np.floating):
        raise ValueError(f"{what} has dtype {flow.dtype}; expected a float array of pixels")
    if not np.isfinite(flow).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return flow


def quantise_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """(H, W, 2) float px -> uint8 (H, W, 2): ``round((clip(f, -b, b) + b) * 255 / (2b))``.

    ``np.rint`` rounds half to even, as denseflow's ``cvRound`` (``lrint``) does.
    """
    bound = _validate_bound(bound)
    f = np.clip(np.asarray(flow, dtype=np.float64), -bound, bound)
    return np.rint((f + bound) * 255.0 / (2.0 * bound)).astype(np.uint8)


def dequantise_flow(values: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of :func:`quantise_flow`: uint8 values -> float32 px in [-bound, bound]."""
    bound = _validate_bound(bound)
    return (np.asarray(values, dtype=np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound))


def encode_flow_jpeg(flow: np.ndarray, bound: float = DEFAULT_BOUND,
                     quality: int = DEFAULT_JPEG_QUALITY) -> tuple[bytes, bytes]:
    """One flow field (H, W, 2) float px -> (x_jpeg_bytes, y_jpeg_bytes), grayscale JPEGs."""
    flow = _validate_flow(flow, 3, "flow")
    if not 0 <= int(quality) <= 100:
        raise ValueError(f"quality={quality}; expected 0..100")
    q = quantise_flow(flow, bound)
    out = []
    for c in range(2):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(q[..., c]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError(f"cv2.imencode failed to encode a {q.shape[:2]} flow image as JPEG")
        out.append(buf.tobytes())
    return out[0], out[1]


def _decode_gray(data: bytes, what: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"{what}: not a decodable JPEG/PNG image ({len(data)} bytes)")
    return img


def decode_flow_jpeg(x_bytes: bytes, y_bytes: bytes, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """(x_jpeg_bytes, y_jpeg_bytes) -> float32 (H, W, 2) flow in px (quantised, JPEG-lossy)."""
    x = _decode_gray(x_bytes, "x component")
    y = _decode_gray(y_bytes, "y component")
    if x.shape != y.shape:
        raise ValueError(f"x and y flow images differ in size: {x.shape} vs {y.shape}")
    return dequantise_flow(np.stack([x, y], axis=-1), bound)


# ----------------------------------------------------------------------------- files
def video_dir(flow_root: str | Path, video_id: str) -> Path:
    """``<flow_root>/<video_id>``; rejects ids that are absolute or leave the root."""
    if not video_id or Path(video_id).is_absolute() or ".." in Path(video_id).parts:
        raise ValueError(f"video_id={video_id!r}; expected a relative id like 'Class/v_Class_g08_c01'")
    return Path(flow_root) / video_id


def flow_file(flow_root: str | Path, video_id: str, component: str, index: int) -> Path:
    if component not in ("x", "y"):
        raise ValueError(f"component={component!r}; expected 'x' or 'y'")
    return video_dir(flow_root, video_id) / f"{component}_{int(index):05d}.jpg"


def write_flow_pairs(flow_root: str | Path, video_id: str, start: int, flows: np.ndarray,
                     bound: float = DEFAULT_BOUND, quality: int = DEFAULT_JPEG_QUALITY) -> int:
    """Write pairs ``start .. start+len(flows)-1`` (each file atomic); returns bytes written.

    Does not write ``.complete``: callers that stream a long video in chunks call
    :func:`mark_complete` after the last chunk.
    """
    flows = _validate_flow(flows, 4, "flows")
    if start < 0:
        raise ValueError(f"start={start}; expected >= 0")
    written = 0
    for k, flow in enumerate(flows):
        xb, yb = encode_flow_jpeg(flow, bound, quality)
        atomic_write_bytes(flow_file(flow_root, video_id, "x", start + k), xb)
        atomic_write_bytes(flow_file(flow_root, video_id, "y", start + k), yb)
        written += len(xb) + len(yb)
    return written


def mark_complete(flow_root: str | Path, video_id: str, pairs: int, height: int, width: int,
                  bound: float = DEFAULT_BOUND, quality: int = DEFAULT_JPEG_QUALITY,
                  method: str = "tvl1", made_for: dict | None = None) -> Path:
    """Write ``.complete`` (last): checks every pair's files exist first. ``made_for`` records what the flow was
    made for (:data:`MADE_FOR_KEYS`: the frame size asked for and the TV-L1 preset), so that a run reading it can
    tell flow made for another run (``flow/extract.check_stored_flow``)."""
    missing = [str(flow_file(flow_root, video_id, c, i)) for i in range(pairs) for c in ("x", "y")
               if not flow_file(flow_root, video_id, c, i).is_file()]
    if missing:
        raise FileNotFoundError(f"cannot mark {video_dir(flow_root, video_id)} complete: "
                                f"{len(missing)} flow file(s) missing, first {missing[0]}")
    meta = {"pairs": int(pairs), "height": int(height), "width": int(width), "bound": float(bound),
            "jpeg_quality": int(quality), "method": method, **(made_for or {})}
    return atomic_write_json(video_dir(flow_root, video_id) / COMPLETE_MARKER, meta)


def write_flow_video(flow_root: str | Path, video_id: str, flows: np.ndarray,
                     bound: float = DEFAULT_BOUND, quality: int = DEFAULT_JPEG_QUALITY,
                     method: str = "tvl1") -> int:
    """Store all (T-1, H, W, 2) flows of one video, then ``.complete``; returns bytes written."""
    flows = _validate_flow(flows, 4, "flows")
    if len(flows) == 0:
        raise ValueError(f"no flow pairs to write for {video_id!r} (a video needs at least 2 frames)")
    marker = video_dir(flow_root, video_id) / COMPLETE_MARKER
    marker.unlink(missing_ok=True)  # rewriting: the video is incomplete until the new marker lands
    written = write_flow_pairs(flow_root, video_id, 0, flows, bound, quality)
    mark_complete(flow_root, video_id, len(flows), flows.shape[1], flows.shape[2], bound, quality, method)
    return written


# What a video's flow was made for, beside ``method`` (issue 41): ``frame_size``, the short side the frames were
# decoded at (0 = native), and ``tvl1_preset``, the TV-L1 parameter set (None for other methods). Markers written
# before these keys carry only the stored height and width.
MADE_FOR_KEYS = ("frame_size", "tvl1_preset")


def made_for_mismatch(info: dict, expected: dict) -> list[str]:
    """``key: stored -> expected`` for each of ``method`` and :data:`MADE_FOR_KEYS` that ``info`` (a ``.complete``)
    records otherwise than ``expected`` (keys ``expected`` leaves out, or sets to None, are not compared). A marker
    without ``frame_size`` (from before issue 41) is compared by its stored short side; without ``tvl1_preset``
    it cannot be compared there (:func:`legacy_marker` says so), nor by method (extraction wrote "tvl1" for every
    method then)."""
    out = []
    for key in ("method", *MADE_FOR_KEYS):
        want = expected.get(key)
        if want is None or (key == "method" and legacy_marker(info)):
            continue
        have = info.get(key)
        if have is None and key == "frame_size" and want and "height" in info:
            have = min(int(info["height"]), int(info["width"]))  # the stored short side
        if have is not None and have != want:
            out.append(f"{key}: {have!r} -> {want!r}")
    return out


def legacy_marker(info: dict) -> bool:
    """A ``.complete`` written before :data:`MADE_FOR_KEYS` were recorded: its TV-L1 preset is unknown."""
    return any(k not in info for k in MADE_FOR_KEYS)


def is_complete(flow_root: str | Path, video_id: str) -> bool:
    """True when ``<flow_root>/<video_id>/.complete`` exists (all pairs were written)."""
    return (video_dir(flow_root, video_id) / COMPLETE_MARKER).is_file()


def read_complete_info(flow_root: str | Path, video_id: str) -> dict:
    """The JSON in ``.complete`` (pairs, height, width, bound, jpeg_quality, method)."""
    path = video_dir(flow_root, video_id) / COMPLETE_MARKER
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: flow for {video_id!r} was not (fully) extracted; "
                                f"run `htsc flow extract --data-root ROOT`") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc


def _read_gray(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"stored flow image {path} is missing; extract TV-L1 flow first with "
                                f"`htsc flow extract --data-root ROOT` (or pass the right flow_root)")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"stored flow image {path} cannot be decoded (corrupt or truncated JPEG); "
                         f"delete {path.parent} and re-run `htsc flow extract`")
    return img


def _resize(img: np.ndarray, size: int | Sequence[int] | None) -> np.ndarray:
    if size is None or (isinstance(size, (int, np.integer)) and size == 0):
        return img
    h, w = img.shape
    if isinstance(size, (int, np.integer)):
        if size < 0:
            raise ValueError(f"size={size}; expected a positive short side, (H, W), or 0/None")
        if h <= w:
            nh, nw = int(size), max(1, int(round(w * size / h)))
        else:
            nh, nw = max(1, int(round(h * size / w))), int(size)
    else:
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size={size}; expected a positive short side, (H, W), or 0/None")
        nh, nw = int(size[0]), int(size[1])
    if (nh, nw) == (h, w):
        return img
    # Flow images are resized as images (values unchanged), as TSN's data layer does.
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)


def read_flow_stack(flow_root: str | Path, video_id: str, pair_indices: Sequence[int],
                    size: int | Sequence[int] | None = None) -> np.ndarray:
    """Stored JPEG values of ``pair_indices`` -> uint8 (2n, H, W), channels x0, y0, x1, y1, ...

    ``size``: short side to resize to (as ``read_frames``), or an explicit (H, W), or
    0/None for the stored size. The CNN input is ``value - 128.0`` (docs/CONTRACTS.md, Dataset).
    """
    idx = [int(i) for i in np.asarray(pair_indices).reshape(-1)]
    if not idx:
        raise ValueError("read_flow_stack: pair_indices is empty")
    if min(idx) < 0:
        raise ValueError(f"read_flow_stack: negative pair index in {idx}")
    planes = []
    for i in idx:
        for c in ("x", "y"):
            planes.append(_resize(_read_gray(flow_file(flow_root, video_id, c, i)), size))
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise ValueError(f"stored flow images of {video_dir(flow_root, video_id)} differ in size: {sorted(shapes)}")
    return np.stack(planes)


def read_flow_video(flow_root: str | Path, video_id: str, bound: float | None = None) -> np.ndarray:
    """All stored pairs of a complete video -> float32 (T-1, H, W, 2) px (for checks and plots)."""
    info = read_complete_info(flow_root, video_id)
    b = float(info.get("bound", DEFAULT_BOUND)) if bound is None else bound
    stack = read_flow_stack(flow_root, video_id, range(int(info["pairs"])))  # (2n, H, W)
    n = stack.shape[0] // 2
    return dequantise_flow(stack.reshape(n, 2, *stack.shape[1:]).transpose(0, 2, 3, 1), b)
