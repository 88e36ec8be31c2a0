"""TSN segment sampling (Wang et al. 2016, "Temporal Segment Networks"; paper section 4.2).

Pure functions returning frame indices. A video of ``num_frames`` frames is cut
into K equal segments over the valid stack starts; each segment gives a stack
of L consecutive frames (MotionNet input, paper section 3.1.2, L = 11). The RGB
frame of a segment is the centre frame of its stack (index L // 2).

- training: a random start inside each segment (TSN ``_sample_indices``);
- testing: the centre of each of S segments (TSN ``_get_test_indices``).

The RGB-difference input (TSN's third modality) uses D consecutive frames centred on the
same RGB frame (:func:`diff_window_indices`).

Short videos never crash: with fewer valid starts than segments, training
draws sorted random starts (TSN does the same), testing spreads them evenly
(repeating starts); stack indices past the last frame are clipped to it, i.e.
the last frame is repeated. A 1-frame video gives all-zero indices.
"""
from __future__ import annotations

import numpy as np


def _check(num_frames: int, num_segments: int, length: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}; a video needs at least one frame")
    if num_segments < 1:
        raise ValueError(f"num_segments={num_segments}; expected >= 1")
    if length < 1:
        raise ValueError(f"length={length}; expected >= 1")


def num_starts(num_frames: int, length: int) -> int:
    """Valid stack start positions: num_frames - L + 1, at least 1."""
    return max(num_frames - length + 1, 1)


def train_starts(num_frames: int, num_segments: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """(K,) stack starts: segment k covers starts [k*d, (k+1)*d), d = starts // K; random offset in each."""
    _check(num_frames, num_segments, length)
    avail = num_starts(num_frames, length)
    seg = avail // num_segments
    if seg > 0:
        return np.arange(num_segments, dtype=np.int64) * seg + rng.integers(0, seg, size=num_segments)
    # Fewer starts than segments: sorted random starts, as TSN's _sample_indices.
    return np.sort(rng.integers(0, avail, size=num_segments)).astype(np.int64)


def test_starts(num_frames: int, num_segments: int, length: int) -> np.ndarray:
    """(S,) stack starts at the centre of S equal segments: floor(tick / 2 + tick * s), tick = starts / S."""
    _check(num_frames, num_segments, length)
    tick = num_starts(num_frames, length) / float(num_segments)
    return np.floor(tick / 2.0 + tick * np.arange(num_segments)).astype(np.int64)


def stack_indices(starts: np.ndarray, length: int, num_frames: int) -> np.ndarray:
    """(K, L) frame indices start..start+L-1, clipped to the last frame (repeats it in short videos)."""
    starts = np.asarray(starts, dtype=np.int64).reshape(-1, 1)
    return np.minimum(starts + np.arange(length, dtype=np.int64), num_frames - 1)


def sample_indices(num_frames: int, num_segments: int, length: int, mode: str,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """(K, L) frame indices of every segment's stack; ``mode`` "train" (needs ``rng``) or "test"."""
    if mode == "train":
        if rng is None:
            raise ValueError("training sampling needs an np.random.Generator (rng)")
        starts = train_starts(num_frames, num_segments, length, rng)
    elif mode == "test":
        starts = test_starts(num_frames, num_segments, length)
    else:
        raise ValueError(f"mode={mode!r}; expected 'train' or 'test'")
    return stack_indices(starts, length, num_frames)


def centre_frames(stacks: np.ndarray) -> np.ndarray:
    """(K,) RGB frame of each segment: the centre frame of its stack (index L // 2)."""
    stacks = np.asarray(stacks)
    return stacks[:, stacks.shape[1] // 2]


def diff_window_indices(stacks: np.ndarray, length: int, num_frames: int) -> np.ndarray:
    """(K, D) frames of each segment's RGB-difference window (TSN RGB difference, Wang et al. 2016 sec. 3.2).

    D = ``length`` consecutive frames whose own centre (index D // 2) is the segment's RGB frame
    (the stack centre, :func:`centre_frames`): frames c - D//2 .. c - D//2 + D - 1. So the RGB frame,
    the MotionNet stack and the difference window of a segment are centred on the same frame, and
    the window moves with the stack's random offset in training (TSN draws its 5 frames at a random
    offset in the segment). Indices outside the video are clipped to [0, T-1], i.e. the first/last
    frame repeats and the difference there is zero, as stacks do in short videos.
    """
    if length < 2:
        raise ValueError(f"length={length}; an RGB-difference window needs at least 2 frames")
    start = centre_frames(stacks).astype(np.int64).reshape(-1, 1) - length // 2
    return np.clip(start + np.arange(length, dtype=np.int64), 0, num_frames - 1)


def flow_pair_indices(stacks: np.ndarray, num_frames: int) -> np.ndarray:
    """(K, L-1) flow-field indices of each stack (field i: frame i -> i+1), clipped to [0, T-2]."""
    stacks = np.asarray(stacks, dtype=np.int64)
    return np.clip(stacks[:, :-1], 0, max(num_frames - 2, 0))
