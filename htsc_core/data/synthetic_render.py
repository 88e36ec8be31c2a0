"""Synthetic action set, part 3: drawing the frames and their exact flow (docs/SYNTHETIC.md).

Every frame is rendered by inverse mapping: for every pixel the object-local coordinates follow
from the object's similarity pose at time t, the background is sampled bilinearly from a panned
canvas. The flow between consecutive frames is therefore known exactly per pixel
(docs/CONTRACTS.md convention): ``frame_t(p) ~= frame_{t+1}(p + flow_t(p))``. Chroma is
band-limited before quantisation, so 4:2:0 encoding (:mod:`htsc_core.data.synthetic_video`) can
carry it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from htsc_core.data.synthetic_scene import ObjectModel, Scene, scene_for
from htsc_core.data.synthetic_spec import VideoSpec


@dataclass
class RenderedVideo:
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB, what gets encoded
    flow: np.ndarray  # (T-1, S, S, 2) float32 exact flow t -> t+1 (dx, dy)
    alpha: np.ndarray  # (T, S, S) float32 object coverage in [0, 1]



def _texture(obj: ObjectModel, qx: np.ndarray, qy: np.ndarray, t: int = 0) -> np.ndarray:
    """RGB colour (…, 3) of object-local points at frame t (smooth patterns, no aliasing at 80 px)."""
    f = obj.freq
    px, py = qx + obj.phase[0], qy + obj.phase[1]
    if obj.pattern == "stripes":
        v = np.sin(2 * np.pi * f * px)
    elif obj.pattern == "checker":
        v = 2.0 * np.sin(2 * np.pi * f * px) * np.sin(2 * np.pi * f * py)
    elif obj.pattern == "dots":
        dx = (px * f) - np.round(px * f)
        dy = (py * f) - np.round(py * f)
        v = 6.0 * (0.28 - np.sqrt(dx * dx + dy * dy))
    elif obj.pattern == "rings":
        v = np.sin(2 * np.pi * f * np.sqrt(qx * qx + qy * qy) + 2 * np.pi * obj.phase[0])
    elif obj.pattern == "neutral":
        g = np.zeros_like(qx)
        for fx, fy, ph, amp in obj.waves:
            g += amp * np.sin(2 * np.pi * (fx * qx + fy * qy) + ph)
        return np.clip(obj.colour_a * (1.0 + g)[..., None], 0.0, 1.0)
    else:
        raise ValueError(f"unknown pattern {obj.pattern!r}")
    w = 0.5 + 0.5 * np.tanh(2.0 * v)  # soft edges: band-limited enough for 4:2:0 chroma
    return w[..., None] * obj.colour_a_at(t) + (1.0 - w[..., None]) * obj.colour_b


def _object_local(obj: ObjectModel, t: int, wx: np.ndarray, wy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(obj.angle[t]), math.sin(obj.angle[t])
    dx, dy = wx - obj.centre[t, 0], wy - obj.centre[t, 1]
    inv = 1.0 / obj.scale[t]
    return (c * dx + s * dy) * inv, (-s * dx + c * dy) * inv


def _object_world(obj: ObjectModel, t: int, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(obj.angle[t]), math.sin(obj.angle[t])
    sc = obj.scale[t]
    return obj.centre[t, 0] + sc * (c * qx - s * qy), obj.centre[t, 1] + sc * (s * qx + c * qy)


_RGB2YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC2RGB = np.linalg.inv(_RGB2YCC)
CHROMA_SIGMA = 1.0  # px; gap filled here: yuv420p halves chroma resolution, so drawn chroma is band-limited


def _bandlimit_chroma(img: np.ndarray) -> np.ndarray:
    """Blur the chroma (BT.601 Cb, Cr) of a float RGB image so 4:2:0 encoding can carry it.

    Luma keeps full resolution. A shift-invariant filter commutes with translation, so the
    exact flow still maps drawn frame t to drawn frame t+1 away from object edges.
    """
    ycc = img @ _RGB2YCC.T
    for c in (1, 2):
        ycc[..., c] = cv2.GaussianBlur(ycc[..., c], (0, 0), CHROMA_SIGMA, borderType=cv2.BORDER_REFLECT)
    return ycc @ _YCC2RGB.T


def render_scene(scene: Scene, noise: bool = True) -> RenderedVideo:
    """Draw every frame by inverse mapping and the exact flow between consecutive frames."""
    size = scene.size
    n_frames = scene.camera.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    alpha = np.zeros((n_frames, size, size), np.float32)
    flow = np.empty((max(n_frames - 1, 0), size, size, 2), np.float32)
    noise_rng = np.random.default_rng(scene.noise_seed)
    obj = scene.obj
    for t in range(n_frames):
        wx, wy = xs + scene.camera[t, 0], ys + scene.camera[t, 1]
        img = cv2.remap(scene.canvas, wx.astype(np.float32), wy.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT).astype(np.float64)
        if obj is not None:
            qx, qy = _object_local(obj, t, wx, wy)
            rho = np.sqrt(qx * qx + qy * qy)
            phi = np.arctan2(qy, qx)
            outline = np.ones_like(rho)
            for k, a, ph in obj.harmonics:
                outline += a * np.cos(k * phi + ph)
            dist_px = (outline - rho) * obj.scale[t]  # ~ signed distance to the outline (px)
            a_t = np.clip(dist_px + 0.5, 0.0, 1.0)  # one-pixel anti-aliased edge
            shade = 1.0 - 0.18 * np.minimum(rho, 1.5) ** 2  # rigid with the object: brightness constancy holds
            colour = _texture(obj, qx, qy, t) * shade[..., None]
            img = img * (1.0 - a_t[..., None]) + colour * a_t[..., None]
            alpha[t] = a_t
        img = _bandlimit_chroma(img)
        if noise and scene.noise_sigma > 0:
            img = img + noise_rng.normal(0.0, scene.noise_sigma, img.shape)
        frames[t] = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        if t + 1 < n_frames:
            # Background: the scene point at p sits at world p + camera_t; at t+1 it is seen at
            # p + camera_t - camera_{t+1}.
            fx = np.full((size, size), scene.camera[t, 0] - scene.camera[t + 1, 0])
            fy = np.full((size, size), scene.camera[t, 1] - scene.camera[t + 1, 1])
            if obj is not None:
                inside = alpha[t] >= 0.5
                nx, ny = _object_world(obj, t + 1, qx[inside], qy[inside])
                fx[inside] = nx - scene.camera[t + 1, 0] - xs[inside]
                fy[inside] = ny - scene.camera[t + 1, 1] - ys[inside]
            flow[t, ..., 0] = fx
            flow[t, ..., 1] = fy
    return RenderedVideo(frames=frames, flow=flow, alpha=alpha)


def render_video(spec: VideoSpec, noise: bool = True) -> RenderedVideo:
    """The frames drawn for ``spec`` (exactly those that get encoded) and their exact flow."""
    return render_scene(scene_for(spec), noise=noise)
