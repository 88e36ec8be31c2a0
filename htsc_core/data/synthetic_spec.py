"""Synthetic action set, part 1: the classes and the videos of a set (docs/SYNTHETIC.md).

Which classes exist (three families: appearance, motion, cue; see :mod:`htsc_core.data.synthetic`
for why), which videos a config asks for (:func:`video_specs`: train groups g08.., test groups
g01..g07, as UCF101 split 1), and when each video's object acts (:func:`cue_window`, the cue
family's temporal cue). A :class:`VideoSpec` with ``GENERATOR_VERSION`` determines a video exactly;
:mod:`htsc_core.data.synthetic_scene` turns it into a scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from htsc_core.config import Config

# 2: mirror-invariant classes, 1-4 px/frame motion, temporal cues; 3: the cue family (one shared look, lit while
# it acts, static otherwise, motions no other family has) replaces the joint family (issue 22)
GENERATOR_VERSION = "3"
FAMILIES = ("appearance", "motion", "cue")
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
# Every motion class is invariant under a horizontal mirror (see the module docstring).
MOTIONS = ("TranslateUp", "TranslateDown", "Rotate", "Pulse", "OscillateHorizontal", "OscillateVertical")
# Cue family: every class looks the same (one pattern, colours drawn per group from one distribution), and the
# object is "lit" (its first colour turns to CUE_LIT_COLOUR) exactly while it acts, so a single frame shows *when*
# the action happens but not *which* action; idle, it only rides with the camera. Its actions are motions that no
# other family has as its class, each done once within the act (docs/SYNTHETIC.md section 2).
CUE_APPEARANCE: tuple[str, tuple[float, float, float], tuple[float, float, float]] = (
    "rings", (0.50, 0.42, 0.36), (0.22, 0.20, 0.26))
CUE_LIT_COLOUR = (0.98, 0.98, 0.90)
CUE_MOTIONS = ("Orbit", "Wobble", "Hop", "Shake", "Sway", "Bob")
CUE_FRACTION = 1 / 3  # cue family: the object acts during this share of the clip, idles otherwise


# ----------------------------------------------------------------------------- classes and specs
@dataclass(frozen=True)
class SynthClass:
    index: int  # 1-based, as classInd.txt
    name: str  # CamelCase, UCF101 style
    family: str  # "appearance" | "motion" | "cue"
    appearance: str | None  # key of APPEARANCES, or "Cue" (CUE_APPEARANCE); None = shared neutral texture
    motion: str | None  # one of MOTIONS or CUE_MOTIONS; None = shared random motion


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


def class_table(classes_per_family: int) -> list[SynthClass]:
    """The class list: appearance family, then motion, then cue (indices 1..3n)."""
    n = int(classes_per_family)
    if not 1 <= n <= MAX_CLASSES_PER_FAMILY:
        raise ValueError(f"synth_classes_per_family={classes_per_family}; expected 1..{MAX_CLASSES_PER_FAMILY}")
    rows: list[tuple[str, str, str | None, str | None]] = []
    for app in list(APPEARANCES)[:n]:
        rows.append((f"Appear{app}", "appearance", app, None))
    for mot in MOTIONS[:n]:
        rows.append((f"Motion{mot}", "motion", None, mot))
    for mot in CUE_MOTIONS[:n]:
        rows.append((f"Cue{mot}", "cue", "Cue", mot))
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



def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def cue_window(spec: VideoSpec) -> tuple[int, int]:
    """Frames (start, end) between which the object acts: it moves from frame ``start`` to ``end``.

    Cue family: a window of round(CUE_FRACTION * (T - 1)) frame pairs (at least 1; made even when the
    clip allows, so the out-and-back actions turn on a frame) at a random
    position (own RNG stream, so the rest of the scene does not depend on it); every other class
    acts over the whole clip, (0, T - 1).
    """
    n_pairs = max(spec.frames - 1, 1)
    if spec.cls.family != "cue":
        return 0, n_pairs
    length = min(n_pairs, max(1, int(round(CUE_FRACTION * n_pairs))))
    if length % 2 and length + 1 <= n_pairs:  # even, so an out-and-back action turns on a frame, not mid-pair
        length += 1
    start = int(_rng(spec.seed, 3, spec.cls.index, spec.group, spec.clip).integers(0, n_pairs - length + 1))
    return start, start + length

