"""Synthetic action set, part 2: the scene of one video (docs/SYNTHETIC.md).

A scene is a background canvas (one of scikit-image's bundled photographs, no download) seen
through a panning camera, plus a rigid textured object with a similarity pose per frame.
:func:`scene_for` draws every random quantity of a :class:`~htsc_core.data.synthetic_spec.VideoSpec`
from RNG streams keyed by (seed, class, group, clip), so a video never depends on worker count or
order. Motion at the network's input (frame side 64): object motion 1-4 px/frame, camera pan
0-1.5 px/frame; :mod:`htsc_core.data.synthetic_render` draws the frames and their exact flow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from htsc_core.data.synthetic_spec import (APPEARANCES, CUE_APPEARANCE, CUE_LIT_COLOUR, CUE_MOTIONS, MOTIONS,
                                           NUM_TEST_GROUPS, TEST_BACKGROUNDS, TRAIN_BACKGROUNDS, VideoSpec, _rng,
                                           cue_window)


@dataclass(frozen=True)
class ObjectModel:
    """A rigid textured object with a similarity pose per frame.

    World point w at time t has object-local coordinates q = R(-angle_t) (w - centre_t) / scale_t;
    the object covers |q| <= 1 + sum_k a_k cos(k phi + phase_k) (phi = atan2(q_y, q_x)).
    """

    centre: np.ndarray  # (T, 2) world (canvas) coordinates (x, y) of the object origin
    angle: np.ndarray  # (T,) radians, positive = clockwise on screen (y points down)
    scale: np.ndarray  # (T,) pixels per object unit
    harmonics: np.ndarray  # (K, 3) rows (k, a_k, phase_k) of the radial outline
    pattern: str  # "stripes" | "checker" | "dots" | "rings" | "neutral"
    colour_a: np.ndarray  # (3,) RGB in [0, 1]
    colour_b: np.ndarray  # (3,)
    freq: float  # pattern cycles per object unit
    phase: np.ndarray  # (2,) pattern offsets (object units)
    waves: np.ndarray  # (M, 4) rows (fx, fy, phase, amplitude) of the neutral grey texture
    lit: np.ndarray | None = None  # (T,) in [0, 1]: colour_a blends to lit_colour (cue family: 1 while it acts)
    lit_colour: np.ndarray | None = None  # (3,) RGB

    def colour_a_at(self, t: int) -> np.ndarray:
        """The first colour at frame t: ``colour_a``, or its blend with ``lit_colour`` by ``lit[t]``."""
        if self.lit is None or self.lit_colour is None:
            return self.colour_a
        return (1.0 - self.lit[t]) * self.colour_a + self.lit[t] * self.lit_colour


@dataclass(frozen=True)
class Scene:
    """A background canvas seen through a moving camera, plus an optional object."""

    canvas: np.ndarray  # (Hc, Wc, 3) float32 RGB in [0, 1], world coordinates = canvas pixels
    camera: np.ndarray  # (T, 2) world position (x, y) of frame pixel (0, 0) at time t
    size: int  # frame side
    obj: ObjectModel | None
    noise_sigma: float = 0.0  # Gaussian pixel noise, in [0, 1] units
    noise_seed: int = 0


@dataclass
class RenderedVideo:
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB, what gets encoded
    flow: np.ndarray  # (T-1, S, S, 2) float32 exact flow t -> t+1 (dx, dy)
    alpha: np.ndarray  # (T, S, S) float32 object coverage in [0, 1]


@cache
def _background_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled images as float32 RGB in [0, 1] (cached per process)."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.float32) / 255.0
    return np.ascontiguousarray(img)


def _motion_trajectory(motion: str | None, rng: np.random.Generator, tau: np.ndarray, size: int,
                       radius: float, n_active: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offset (T, 2) px, angle change (T,), log-scale change (T,)) relative to the act's centre.

    ``tau`` is the object's own time: frame index minus the centre of its act, clipped to the act
    (constant before and after it, so the object idles there); ``n_active`` frame pairs move.
    Speeds are in px/frame at the generated size (docs/SYNTHETIC.md): translation 1.2-3 px (capped
    so the object travels at most 0.6 of the frame), rotation and pulsing 1.8-3.2 px at the rim
    (``radius``), oscillation peaks 3-6 px. Every trajectory but Pulse is zero at tau = 0; translations
    and rotations are odd in tau, so a single frame's pose carries no class information (the clip's base
    size is drawn from a range as wide as Pulse's swing).
    """
    k = size / 64.0
    off = np.zeros((tau.size, 2))
    dang = np.zeros(tau.size)
    dlog = np.zeros(tau.size)
    directions = {"TranslateUp": (0, -1), "TranslateDown": (0, 1)}
    if motion is None:  # shared random motion of the appearance family: translation + rotation, any direction
        speed = rng.uniform(0.3, 1.6) * k
        theta = rng.uniform(0, 2 * np.pi)
        off = np.outer(tau, [speed * np.cos(theta), speed * np.sin(theta)])
        dang = rng.uniform(-1.5, 1.5) * k / radius * tau
    elif motion in directions:
        cap = min(3.0 * k, 0.6 * size / max(n_active, 1))
        speed = rng.uniform(0.55, 1.0) * cap
        off = np.outer(tau, np.asarray(directions[motion], float) * speed)
    elif motion == "Rotate":  # either direction: a mirror turns one into the other
        omega = rng.uniform(1.8, 3.2) * k / radius  # rad/frame
        dang = omega * (1.0 if rng.integers(2) else -1.0) * tau
    elif motion == "Pulse":  # zoom in and out: rim speed peaks at radius * amp * 2 pi / period
        amp = rng.uniform(0.15, 0.2)
        period = rng.uniform(6.0, 8.0)
        phi = rng.uniform(0, 2 * np.pi)
        dlog = amp * np.sin(2 * np.pi * tau / period + phi)  # about the clip's base size (not zero at tau = 0)
    elif motion in ("OscillateHorizontal", "OscillateVertical"):
        amp = rng.uniform(0.08, 0.12) * size
        period = rng.uniform(8.0, 12.0)
        phi = rng.uniform(0, 2 * np.pi)
        axis = 0 if motion == "OscillateHorizontal" else 1
        off[:, axis] = amp * (np.sin(2 * np.pi * tau / period + phi) - np.sin(phi))
    elif motion in CUE_MOTIONS:
        return _cue_trajectory(motion, rng, tau, radius, n_active, k)
    else:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS + CUE_MOTIONS}")
    return off, dang, dlog


def _cue_trajectory(motion: str, rng: np.random.Generator, tau: np.ndarray, radius: float, n_active: int,
                    k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cue family's actions, each done within the act and back at the idle pose by its end.

    ``s`` runs 0 -> 1 over the act (0 before it, 1 after it). Orbit runs once round a circle; the others go out
    and back at constant speed (a triangle wave, twice for Shake and Bob when the act has a multiple of 4 frame
    pairs), so every frame pair of the act moves (the act has an even number of pairs, :func:`cue_window`):
    2-3.2 px/frame at the input size (rim speed 2.6-4 px for Wobble). Directions a mirror changes (the orbit's
    and the wobble's sense, the shake's and the sway's side) are drawn per video: the label rule holds.
    """
    n = max(n_active, 1)
    s = (tau - tau.min()) / max(tau.max() - tau.min(), 1e-9)
    off = np.zeros((tau.size, 2))
    dang = np.zeros(tau.size)
    side = 1.0 if rng.integers(2) else -1.0
    speed = rng.uniform(2.0, 3.2) * k  # px/frame
    if motion == "Orbit":  # constant speed 2 pi r / n
        r = speed * n / (2 * np.pi)
        phi0 = rng.uniform(0, 2 * np.pi)
        theta = phi0 + side * 2 * np.pi * s
        off = r * np.stack([np.cos(theta) - np.cos(phi0), np.sin(theta) - np.sin(phi0)], axis=1)
        return off, dang, np.zeros(tau.size)
    cycles = 2 if motion in ("Shake", "Bob") and n % 4 == 0 else 1
    tri = 1.0 - np.abs(2.0 * ((cycles * s) % 1.0) - 1.0)  # 0 -> 1 -> 0, c times (0 again at s = 1)
    reach = speed * n / (2.0 * cycles)  # so each frame pair moves by ``speed``
    if motion == "Wobble":  # turn away and back (either sense)
        dang = side * rng.uniform(2.6, 4.0) * k / radius * n / 2.0 * tri
    elif motion == "Hop":  # up and back down
        off[:, 1] = -reach * tri
    elif motion == "Shake":  # sideways and back
        off[:, 0] = side * reach * tri
    elif motion == "Sway":  # diagonally up and back
        off = np.outer(tri, [side * reach / np.sqrt(2), -reach / np.sqrt(2)])
    elif motion == "Bob":  # down and back
        off[:, 1] = reach * tri
    return off, dang, np.zeros(tau.size)


def scene_for(spec: VideoSpec) -> Scene:
    """Build the scene of one video from its spec, deterministically.

    Group-level draws (background image, zoom and tint; object outline and colours) use one
    RNG seeded by (seed, class, group); clip-level draws (crop, pan, pose, motion, noise) one
    seeded by (seed, class, group, clip), so output never depends on worker count or order.
    """
    size, n_frames = spec.size, spec.frames
    g_rng = _rng(spec.seed, 1, spec.cls.index, spec.group)
    c_rng = _rng(spec.seed, 2, spec.cls.index, spec.group, spec.clip)
    t = np.arange(n_frames, dtype=np.float64)
    k = size / 64.0

    # --- background: image fixed per group (rotating through the split's pool), crop per clip
    pool = TEST_BACKGROUNDS if spec.split == "test" else TRAIN_BACKGROUNDS
    first = 1 if spec.split == "test" else NUM_TEST_GROUPS + 1
    image = _background_image(pool[(spec.group - first + spec.cls.index) % len(pool)])
    zoom = g_rng.uniform(1.5, 3.0)
    gain = g_rng.uniform(0.75, 1.1)
    tint = 1.0 + g_rng.uniform(-0.12, 0.12, 3)
    flip = bool(g_rng.integers(2))
    pan_speed = c_rng.uniform(0.0, 1.5) * k  # image-space px/frame
    pan_dir = c_rng.uniform(0, 2 * np.pi)
    pan = pan_speed * np.array([np.cos(pan_dir), np.sin(pan_dir)])
    margin = int(math.ceil(pan_speed * (n_frames - 1) / 2.0)) + 3
    side = size + 2 * margin
    src_side = int(min(side * zoom, 0.98 * min(image.shape[:2])))
    y0 = int(c_rng.integers(0, image.shape[0] - src_side + 1))
    x0 = int(c_rng.integers(0, image.shape[1] - src_side + 1))
    crop = image[y0:y0 + src_side, x0:x0 + src_side]
    if flip:
        crop = crop[:, ::-1]
    canvas = cv2.resize(np.ascontiguousarray(crop), (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.clip(canvas * gain * tint, 0.0, 1.0).astype(np.float32)
    # Background content moves by +pan per frame: the camera moves by -pan.
    camera = margin + np.outer((n_frames - 1) / 2.0 - t, pan)

    # --- object instance (group level): outline, colours, pattern
    harmonics = np.array([[2, g_rng.uniform(0.0, 0.3), g_rng.uniform(0, 2 * np.pi)],
                          [3, g_rng.uniform(0.0, 0.12), g_rng.uniform(0, 2 * np.pi)],
                          [4, g_rng.uniform(0.0, 0.08), g_rng.uniform(0, 2 * np.pi)]])
    base_radius = g_rng.uniform(0.24, 0.28) * size  # object area ~ 18-25 % of the frame
    if spec.cls.appearance is None:
        pattern = "neutral"
        colour_a = np.clip(g_rng.uniform(0.45, 0.65) * (1.0 + g_rng.uniform(-0.08, 0.08, 3)), 0, 1)
        colour_b = colour_a
    else:
        pattern, ca, cb = APPEARANCES[spec.cls.appearance] if spec.cls.family == "appearance" else CUE_APPEARANCE
        colour_a = np.clip(np.asarray(ca) + g_rng.uniform(-0.05, 0.05, 3), 0, 1)
        colour_b = np.clip(np.asarray(cb) + g_rng.uniform(-0.05, 0.05, 3), 0, 1)
    freq = 1.2 * g_rng.uniform(0.9, 1.1)
    phase = g_rng.uniform(0, 1, 2)
    n_waves = 6  # textured everywhere, so the photometric loss sees the object's motion
    wave_f = g_rng.uniform(1.0, 3.0, n_waves)
    wave_dir = g_rng.uniform(0, 2 * np.pi, n_waves)
    waves = np.stack([wave_f * np.cos(wave_dir), wave_f * np.sin(wave_dir),
                      g_rng.uniform(0, 2 * np.pi, n_waves), np.full(n_waves, 0.2)], axis=1)

    # --- pose (clip level): centre-frame pose from one shared distribution, then the motion
    centre_c = margin + (size - 1) / 2.0 + c_rng.uniform(-0.1, 0.1, 2) * size
    angle_c = c_rng.uniform(0, 2 * np.pi)
    scale_c = base_radius * math.exp(c_rng.uniform(-0.15, 0.15))  # about the Pulse class's size range
    start, end = cue_window(spec)
    tau = np.clip(t, start, end) - (start + end) / 2.0  # the object's own time: frozen outside its act
    off, dang, dlog = _motion_trajectory(spec.cls.motion, c_rng, tau, size, base_radius, end - start)
    # The object moves in the world; the image shows it relative to the panning camera.
    centre = centre_c + off
    lit = lit_colour = None
    if spec.cls.family == "cue":  # lit on every frame of the act (start .. end), one colour for every class
        lit = ((t >= start) & (t <= end)).astype(np.float64)
        lit_colour = np.clip(np.asarray(CUE_LIT_COLOUR) + g_rng.uniform(-0.03, 0.03, 3), 0, 1)
    obj = ObjectModel(centre=centre, angle=angle_c + dang, scale=scale_c * np.exp(dlog), harmonics=harmonics,
                      pattern=pattern, colour_a=colour_a, colour_b=colour_b, freq=freq, phase=phase, waves=waves,
                      lit=lit, lit_colour=lit_colour)
    noise_sigma = c_rng.uniform(0.0, 2.5) / 255.0
    noise_seed = int(c_rng.integers(2**31))
    return Scene(canvas=canvas, camera=camera, size=size, obj=obj, noise_sigma=noise_sigma, noise_seed=noise_seed)
