"""Synthetic action set with exact ground-truth flow (docs/SYNTHETIC.md).

The paper evaluates on UCF101/HMDB51/THUMOS14 (section 4.1), which cannot be
downloaded here; this generator fills that gap with a set built to test the
paper's claims that appearance and motion are complementary (section 1) and that
weighting segments helps (the CLN, section 3.2). The full specification, with the
reasons for every number, is docs/SYNTHETIC.md. Classes come in three families:

- ``appearance``: class = the object's colour/texture pattern; shape and motion
  are drawn from one distribution shared by all appearance classes, so the flow
  field (and the silhouette it reveals) carries no information about the class;
- ``motion``: class = the motion pattern (vertical translation, rotation, pulsing
  zoom, horizontal or vertical oscillation); the object is a grey texture drawn from
  one shared distribution, and every trajectory is symmetric about the clip's centre
  frame, so a single frame carries no information about the class;
- ``joint``: class = one appearance with one motion (a grid of appearances x
  motions), so both streams are needed. The motion is the *temporal cue*: the
  object acts during a third of the clip, at a random time, and idles (moves only
  with the camera) otherwise. Each video's cue frames are stored in ROOT/cues.json
  and :func:`cue_segments` says which test segments overlap them.

Label rule (training augmentation, htsc_core/data/transforms.py: horizontal flip,
multi-scale corner crops): **every class is invariant under a horizontal mirror and
under a zoom/shift of the frame**. Mirroring keeps up/down, turns clockwise into
counter-clockwise (one class, "Rotate", direction drawn per video), keeps zoom and
the axis of an oscillation; appearance patterns are drawn at a random orientation,
so their mirror images belong to the same distribution. Left/right translation and
a fixed rotation direction are therefore not classes.

Motion at the network's input (frame side 64 = image_size, TSN crops rescale by
0.8-1.5): object motion 1-4 px/frame, camera pan 0-1.5 px/frame, objects cover
15-30 % of the frame, are textured everywhere, occlude the background at their
edges and leave the frame partly during long translations.

Nuisances: photographic/textured backgrounds from scikit-image's bundled images
(no download), global camera pan, pixel noise, object scale/position jitter.
Train and test use disjoint groups (test g01..g07, train g08..g25, as UCF101
split 1) with disjoint background images and separately drawn object instances.

Every frame is rendered by inverse mapping: for every pixel the object-local
coordinates follow from the object's similarity pose at time t, the background
is sampled bilinearly from a panned canvas. The flow between consecutive frames
is therefore known exactly per pixel (docs/CONTRACTS.md convention):
``frame_t(p) ~= frame_{t+1}(p + flow_t(p))``.

Videos are H.264 (libx264, yuv420p, CRF 10, one thread, no SIMD, bit-exact muxing)
so a given seed gives byte-identical files; the RGB -> YUV 4:2:0 conversion is done
here in numpy (BT.601 limited range, the decoders' default), because feeding RGB
frames through PyAV's own conversion gave run-to-run byte differences (PyAV 18.1).
"""
from __future__ import annotations

import io
import json
import math
import multiprocessing
import time
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from htsc_core.config import Config, from_params
from htsc_core.utils import atomic_write_bytes, atomic_write_json, atomic_write_text, progress_disabled

GENERATOR_VERSION = "2"  # 2: mirror-invariant classes, 1-4 px/frame motion, temporal cues
FPS = 25
CRF = 10  # 64 px frames with dense texture: CRF 12 gave 29.95 dB on one class, CRF 10 >= 30.18 dB
FAMILIES = ("appearance", "motion", "joint")
NUM_TEST_GROUPS = 7  # g01..g07, as UCF101 split 1
NUM_TRAIN_GROUPS = 18  # g08..g25
MAX_CLASSES_PER_FAMILY = 6
FLOW_CONVENTION = "frame_t(p) ~= frame_{t+1}(p + flow_t(p)); flow[t, y, x] = (dx, dy) px, t -> t+1"

# Background images shipped inside scikit-image (skimage/data/*.png|jpg): no download.
# Test and train groups draw from disjoint images.
TEST_BACKGROUNDS = ("astronaut", "coffee", "chelsea", "brick", "coins", "text", "moon")
TRAIN_BACKGROUNDS = ("rocket", "camera", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
                     "retina", "page", "clock", "cell", "colorwheel")

# Appearance patterns: name -> (pattern, colour A, colour B), colours RGB in [0, 1].
APPEARANCES: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float]]] = {
    "RedStripes": ("stripes", (0.85, 0.10, 0.10), (0.95, 0.90, 0.80)),
    "BlueChecker": ("checker", (0.10, 0.25, 0.90), (0.95, 0.95, 0.30)),
    "GreenDots": ("dots", (0.10, 0.65, 0.15), (0.95, 0.95, 0.95)),
    "YellowRings": ("rings", (0.95, 0.85, 0.10), (0.30, 0.10, 0.45)),
    "PinkChecker": ("checker", (0.95, 0.45, 0.70), (0.10, 0.10, 0.10)),
    "TealDots": ("dots", (0.05, 0.55, 0.55), (0.95, 0.75, 0.30)),
}
# Joint-family appearances differ from the appearance family's, so no joint video can
# be mistaken for an appearance-family video (and vice versa) given both streams.
JOINT_APPEARANCES: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float]]] = {
    "Orange": ("dots", (1.00, 0.55, 0.05), (0.05, 0.10, 0.35)),
    "Purple": ("stripes", (0.55, 0.15, 0.75), (0.85, 1.00, 0.60)),
    "Cyan": ("rings", (0.10, 0.85, 0.95), (0.50, 0.05, 0.10)),
}
# Every motion class is invariant under a horizontal mirror (see the module docstring).
MOTIONS = ("TranslateUp", "TranslateDown", "Rotate", "Pulse", "OscillateHorizontal", "OscillateVertical")
JOINT_MOTIONS = ("Rotate", "TranslateUp", "Pulse", "TranslateDown", "OscillateHorizontal", "OscillateVertical")
CUE_FRACTION = 1 / 3  # joint family: the object acts during this share of the clip, idles otherwise


# ----------------------------------------------------------------------------- classes and specs
@dataclass(frozen=True)
class SynthClass:
    index: int  # 1-based, as classInd.txt
    name: str  # CamelCase, UCF101 style
    family: str  # "appearance" | "motion" | "joint"
    appearance: str | None  # key of APPEARANCES / JOINT_APPEARANCES; None = shared neutral texture
    motion: str | None  # one of MOTIONS; None = shared random motion


@dataclass(frozen=True)
class VideoSpec:
    """Everything that determines one video (with GENERATOR_VERSION)."""

    seed: int
    cls: SynthClass
    split: str  # "train" | "test"
    group: int  # 1..7 test, 8.. train
    clip: int  # 1-based within the group
    size: int  # frame side (px)
    frames: int  # number of frames

    @property
    def stem(self) -> str:
        return f"v_{self.cls.name}_g{self.group:02d}_c{self.clip:02d}"

    @property
    def video_id(self) -> str:
        return f"{self.cls.name}/{self.stem}"


def _joint_grid(n: int) -> tuple[int, int]:
    """n joint classes as (#appearances, #motions), as square as n allows (2x2 for 4)."""
    n_app = max(d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0)
    return n_app, n // n_app


def class_table(classes_per_family: int) -> list[SynthClass]:
    """The class list: appearance family, then motion, then joint (indices 1..3n)."""
    n = int(classes_per_family)
    if not 1 <= n <= MAX_CLASSES_PER_FAMILY:
        raise ValueError(f"synth_classes_per_family={classes_per_family}; expected 1..{MAX_CLASSES_PER_FAMILY}")
    rows: list[tuple[str, str, str | None, str | None]] = []
    for app in list(APPEARANCES)[:n]:
        rows.append((f"Appear{app}", "appearance", app, None))
    for mot in MOTIONS[:n]:
        rows.append((f"Motion{mot}", "motion", None, mot))
    # With n = 2 (smoke) the grid is 1 x 2, so the joint classes differ by motion only.
    n_app, n_mot = _joint_grid(n)
    for app in list(JOINT_APPEARANCES)[:n_app]:
        for mot in JOINT_MOTIONS[:n_mot]:
            rows.append((f"Joint{app}{mot}", "joint", app, mot))
    return [SynthClass(i + 1, name, fam, app, mot) for i, (name, fam, app, mot) in enumerate(rows)]


def _check_sizes(cfg: Config) -> None:
    if cfg.synth_size < 16 or cfg.synth_size % 2:
        raise ValueError(f"synth_size={cfg.synth_size}; expected an even size >= 16 (H.264 yuv420p needs even sides)")
    if cfg.synth_frames < 2:
        raise ValueError(f"synth_frames={cfg.synth_frames}; expected >= 2 (flow needs a frame pair)")
    if cfg.synth_train_per_class < 1 or cfg.synth_test_per_class < 1:
        raise ValueError(f"synth_train_per_class={cfg.synth_train_per_class}, synth_test_per_class="
                         f"{cfg.synth_test_per_class}; expected >= 1 each")
    if cfg.seed < 0:
        raise ValueError(f"seed={cfg.seed}; expected a non-negative integer")


def video_specs(cfg: Config) -> list[VideoSpec]:
    """All videos of the set, class by class, train then test.

    Videos are spread round-robin over the groups: train i -> g(8 + i % 18) c(1 + i // 18),
    test i -> g(1 + i % 7) c(1 + i // 7).
    """
    _check_sizes(cfg)
    specs = []
    for cls in class_table(cfg.synth_classes_per_family):
        for i in range(cfg.synth_train_per_class):
            specs.append(VideoSpec(cfg.seed, cls, "train", NUM_TEST_GROUPS + 1 + i % NUM_TRAIN_GROUPS,
                                   1 + i // NUM_TRAIN_GROUPS, cfg.synth_size, cfg.synth_frames))
        for i in range(cfg.synth_test_per_class):
            specs.append(VideoSpec(cfg.seed, cls, "test", 1 + i % NUM_TEST_GROUPS, 1 + i // NUM_TEST_GROUPS,
                                   cfg.synth_size, cfg.synth_frames))
    return specs


# ----------------------------------------------------------------------------- scene model
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


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def cue_window(spec: VideoSpec) -> tuple[int, int]:
    """Frames (start, end) between which the object acts: it moves from frame ``start`` to ``end``.

    Joint family: a window of round(CUE_FRACTION * (T - 1)) frame pairs (at least 1) at a random
    position (own RNG stream, so the rest of the scene does not depend on it); every other class
    acts over the whole clip, (0, T - 1).
    """
    n_pairs = max(spec.frames - 1, 1)
    if spec.cls.family != "joint":
        return 0, n_pairs
    length = min(n_pairs, max(1, int(round(CUE_FRACTION * n_pairs))))
    start = int(_rng(spec.seed, 3, spec.cls.index, spec.group, spec.clip).integers(0, n_pairs - length + 1))
    return start, start + length


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
    else:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")
    return off, dang, dlog


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
        table = APPEARANCES if spec.cls.family == "appearance" else JOINT_APPEARANCES
        pattern, ca, cb = table[spec.cls.appearance]
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
    obj = ObjectModel(centre=centre, angle=angle_c + dang, scale=scale_c * np.exp(dlog), harmonics=harmonics,
                      pattern=pattern, colour_a=colour_a, colour_b=colour_b, freq=freq, phase=phase, waves=waves)
    noise_sigma = c_rng.uniform(0.0, 2.5) / 255.0
    noise_seed = int(c_rng.integers(2**31))
    return Scene(canvas=canvas, camera=camera, size=size, obj=obj, noise_sigma=noise_sigma, noise_seed=noise_seed)


def _texture(obj: ObjectModel, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """RGB colour (…, 3) of object-local points (smooth patterns, no aliasing at 80 px)."""
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
    return w[..., None] * obj.colour_a + (1.0 - w[..., None]) * obj.colour_b


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
            colour = _texture(obj, qx, qy) * shade[..., None]
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


# ----------------------------------------------------------------------------- encoding
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


def decode_video(source: str | Path | bytes) -> np.ndarray:
    """All frames of an MP4 (path or bytes) as uint8 RGB (T, H, W, 3), with PyAV."""
    import av

    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    with av.open(handle) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ValueError(f"decode_video: no frames in {source if not isinstance(source, bytes) else '<bytes>'}")
    return np.stack(frames)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) between two uint8 arrays of the same shape (inf when equal)."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


# ----------------------------------------------------------------------------- generation
def _generate_one(job: tuple[VideoSpec, str]) -> int:
    spec, root = job
    video = render_video(spec)
    mp4 = encode_h264(video.frames)
    flow = _npy_bytes(video.flow.astype(np.float16))
    atomic_write_bytes(Path(root) / "videos" / spec.cls.name / f"{spec.stem}.mp4", mp4)
    atomic_write_bytes(Path(root) / "flow_gt" / spec.cls.name / f"{spec.stem}.npy", flow)
    return len(mp4) + len(flow)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _settings(cfg: Config) -> dict[str, Any]:
    return {"seed": cfg.seed, "profile": cfg.profile, "size": cfg.synth_size, "frames": cfg.synth_frames,
            "classes_per_family": cfg.synth_classes_per_family, "train_per_class": cfg.synth_train_per_class,
            "test_per_class": cfg.synth_test_per_class, "generator_version": GENERATOR_VERSION}


def synth_config(profile: str, seed: int, **overrides: Any) -> Config:
    """The Config whose synth_* fields size the set (``overrides`` e.g. synth_size=32 for tests)."""
    return from_params({"profile": profile, "seed": seed, **overrides})


def config_from_root(root: str | Path) -> Config:
    """Rebuild the Config a synthetic set was generated with, from its classes.json."""
    meta = read_classes_json(root)
    try:
        return synth_config(meta["profile"], meta["seed"], synth_size=meta["size"], synth_frames=meta["frames"],
                            synth_classes_per_family=meta["classes_per_family"],
                            synth_train_per_class=meta["train_per_class"], synth_test_per_class=meta["test_per_class"])
    except KeyError as exc:
        raise ValueError(f"{Path(root) / 'classes.json'}: missing key {exc}") from exc


def read_classes_json(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "classes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a complete synthetic set (run `htsc synth --out {root}`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _progress(iterable: Iterable, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=progress_disabled())  # TQDM_DISABLE, the one switch


def write_splits(root: str | Path, specs: Sequence[VideoSpec]) -> None:
    """classInd.txt, trainlist01.txt (with label), testlist01.txt (without), UCF101 syntax."""
    root = Path(root)
    classes = sorted({s.cls for s in specs}, key=lambda c: c.index)
    atomic_write_text(root / "splits" / "classInd.txt", "".join(f"{c.index} {c.name}\n" for c in classes))
    order = sorted(specs, key=lambda s: (s.cls.index, s.group, s.clip))
    train = [f"{s.video_id}.mp4 {s.cls.index}\n" for s in order if s.split == "train"]
    test = [f"{s.video_id}.mp4\n" for s in order if s.split == "test"]
    atomic_write_text(root / "splits" / "trainlist01.txt", "".join(train))
    atomic_write_text(root / "splits" / "testlist01.txt", "".join(test))


CUES_NAME = "cues.json"


def write_cues(root: str | Path, specs: Sequence[VideoSpec]) -> Path:
    """ROOT/cues.json: per video, the frames [start, end] between which its object acts.

    ``{"frames": T, "cue_fraction": ..., "videos": {video_id: {"start", "end", "family", "split"}}}``;
    the object moves between frames t and t + 1 exactly when start <= t < end (full-clip classes:
    0 and T - 1).
    """
    videos = {}
    for s in sorted(specs, key=lambda s: (s.cls.index, s.group, s.clip)):
        start, end = cue_window(s)
        videos[s.video_id] = {"start": start, "end": end, "family": s.cls.family, "split": s.split}
    frames = specs[0].frames if specs else 0
    return atomic_write_json(Path(root) / CUES_NAME, {"frames": frames, "cue_fraction": CUE_FRACTION,
                                                      "videos": videos})


def read_cues(root: str | Path) -> dict[str, Any]:
    path = Path(root) / CUES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a synthetic set of generator version >= 2 has one "
                                f"(regenerate with `htsc synth --out {root}`)")
    try:
        data = json.loads(path.read_text())
        data["videos"], data["frames"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        expected = "{'frames': T, 'videos': {video_id: {'start', 'end'}}}"
        raise ValueError(f"{path}: expected {expected} ({exc})") from exc
    return data


def segment_overlaps_cue(starts: np.ndarray, length: int, cue: tuple[int, int]) -> np.ndarray:
    """(S,) bool: stack s (frames starts[s] .. starts[s] + length - 1) contains a frame pair of the cue.

    The cue's moving pairs are t = start .. end - 1; the stack's pairs are starts[s] .. starts[s] + length - 2.
    """
    starts = np.asarray(starts, dtype=np.int64)
    start, end = int(cue[0]), int(cue[1])
    return (starts < end) & (starts + length - 1 > start)


def cue_segments(root: str | Path, num_segments: int, length: int, subset: str = "test",
                 family: str | None = "joint") -> dict[str, np.ndarray]:
    """For every ``subset`` video (of ``family``; None = all), which of its test segments overlap its cue.

    Segments are those of :func:`htsc_core.data.sampling.test_starts` (``num_segments`` stacks of
    ``length`` frames, the test protocol), so entry s of the result goes with segment s of the
    network's test-time scores (e.g. the CLN's coefficient for segment s).
    """
    from htsc_core.data.sampling import test_starts

    cues = read_cues(root)
    out = {}
    for vid, c in cues["videos"].items():
        if (subset is not None and c["split"] != subset) or (family is not None and c["family"] != family):
            continue
        starts = test_starts(int(cues["frames"]), num_segments, length)
        out[vid] = segment_overlaps_cue(starts, length, (c["start"], c["end"]))
    return out


def generate(out: str | Path, cfg: Config, workers: int = 2, progress: bool = True) -> dict[str, Any]:
    """Generate the whole set under ``out``; returns a summary (videos, bytes, seconds).

    Every file is written atomically; classes.json is written last, so its presence marks a
    complete set. Re-running with the same settings regenerates identical files; a directory
    holding a set made with other settings is refused.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}; expected >= 1")
    start = time.perf_counter()
    out = Path(out)
    specs = video_specs(cfg)
    settings = _settings(cfg)
    if (out / "classes.json").exists():
        old = read_classes_json(out)
        differing = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if differing:
            raise ValueError(f"{out / 'classes.json'}: the existing set was made with other settings "
                             f"{differing} (old, new); use an empty --out directory")
    (out / "videos").mkdir(parents=True, exist_ok=True)
    jobs = [(s, str(out)) for s in specs]
    total_bytes = 0
    if workers == 1:
        _worker_init()
        for job in (_progress(jobs, len(jobs), "synth") if progress else jobs):
            total_bytes += _generate_one(job)
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            results = pool.imap_unordered(_generate_one, jobs, chunksize=4)
            for nbytes in (_progress(results, len(jobs), "synth") if progress else results):
                total_bytes += nbytes
    write_splits(out, specs)
    write_cues(out, specs)
    classes = class_table(cfg.synth_classes_per_family)
    meta = {
        **settings,
        "classes": [{"index": c.index, "name": c.name, "family": c.family, "appearance": c.appearance,
                     "motion": c.motion} for c in classes],
        "families": {f: sum(c.family == f for c in classes) for f in FAMILIES},
        "fps": FPS,
        "crf": CRF,
        "codec": "libx264 yuv420p",
        "flow_convention": FLOW_CONVENTION,
        "flow_dtype": "float16",
        "flow_shape": "(T-1, H, W, 2)",
        "test_groups": sorted({s.group for s in specs if s.split == "test"}),
        "train_groups": sorted({s.group for s in specs if s.split == "train"}),
        "backgrounds": {"test": list(TEST_BACKGROUNDS), "train": list(TRAIN_BACKGROUNDS)},
        "num_videos": {"train": sum(s.split == "train" for s in specs), "test": sum(s.split == "test" for s in specs)},
    }
    atomic_write_json(out / "classes.json", meta)
    return {"root": str(out), "videos": len(specs), "bytes": total_bytes,
            "seconds": round(time.perf_counter() - start, 2), "workers": workers}
