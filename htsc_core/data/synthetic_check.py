"""Check that the synthetic set's families behave as designed (docs/DESIGN.md section 5).

The paper's premise (section 1, section 3) is that appearance (the spatial stream)
and motion (the temporal stream) are complementary. The synthetic set is built so
that, within each family,

- appearance classes are told apart by a single frame but not by the flow,
- motion classes by the flow but not by a single frame,
- cue classes (one look, lit while the object acts; class = the action) by the flow but not by a
  single frame: a frame shows when the action happens, not which.

:func:`family_separability` verifies this with two deliberately simple classifiers
(multinomial logistic regression in numpy, fitted on the train split and scored on
the test split, per family): one on single decoded frames (8x8 thumbnail + colour
histogram), one on per-video statistics of the ground-truth flow (an affine fit of
the object's motion relative to the dominant background motion, plus the size and
elongation of the moving region). It also reports the decode PSNR of a sample of
videos against the frames the generator drew.

This module also holds the ``htsc synth`` command (generate, then optionally check), so
the generator (:mod:`htsc_core.data.synthetic`) imports nothing from here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio

from htsc_core.data import synthetic as synth
from htsc_core.data.video import read_frames
from htsc_core.utils import atomic_write_json, progress

HIST_BINS = 4  # per RGB channel -> 64-bin colour histogram
THUMB = 8  # thumbnail side


# ----------------------------------------------------------------------------- features
def frame_features(frame: np.ndarray) -> np.ndarray:
    """One RGB frame -> 8x8x3 thumbnail (INTER_AREA) + normalised 4x4x4 colour histogram."""
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame_features: expected (H, W, 3), got {frame.shape}")
    thumb = cv2.resize(frame, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    q = (frame.astype(np.int64) * HIST_BINS) // 256
    codes = (q[..., 0] * HIST_BINS + q[..., 1]) * HIST_BINS + q[..., 2]
    hist = np.bincount(codes.reshape(-1), minlength=HIST_BINS**3).astype(np.float64)
    return np.concatenate([thumb.reshape(-1), hist / hist.sum()])


def flow_features(flow: np.ndarray, min_motion: float = 0.2) -> np.ndarray:
    """Per-video statistics of a flow sequence (T-1, H, W, 2).

    Per frame pair: subtract the median flow (the camera pan, the background dominates), take
    pixels moving by more than ``min_motion`` px, fit relative flow ~ A (p - centroid) + b;
    keep b, divergence, curl, the two shears, the moving area fraction and the elongation of
    the moving region, |b| and the magnitudes |b_x|, |b_y|, |curl|, |second shear| (a horizontal mirror
    flips the signs of b_x, curl and the second shear; the labels do not change, docs/SYNTHETIC.md).
    Video features: mean over pairs of those, the std over pairs of b, and the share of pairs with motion.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow_features: expected (T-1, H, W, 2), got {flow.shape}")
    _, h, w, _ = flow.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    rows = []
    for f in flow:
        rel = f - np.median(f.reshape(-1, 2), axis=0)
        moving = np.hypot(rel[..., 0], rel[..., 1]) > min_motion
        n = int(moving.sum())
        if n < 8:
            rows.append(np.zeros(13))
            continue
        p = np.stack([xs[moving], ys[moving]], axis=1)
        p -= p.mean(axis=0)
        r = rel[moving]
        b = r.mean(axis=0)
        a, *_ = np.linalg.lstsq(p, r - b, rcond=None)  # r - b ~ p @ a, a = A^T
        A = a.T
        ev = np.linalg.eigvalsh(np.cov(p.T) + 1e-9 * np.eye(2))
        curl, shear2 = A[1, 0] - A[0, 1], A[0, 1] + A[1, 0]
        rows.append(np.array([b[0], b[1], A[0, 0] + A[1, 1], curl, A[0, 0] - A[1, 1], shear2, n / (h * w),
                              np.sqrt(ev[0] / ev[1]), np.hypot(*b), abs(b[0]), abs(b[1]), abs(curl), abs(shear2)]))
    rows = np.asarray(rows)
    active = float(np.mean(rows[:, 6] > 0))
    return np.concatenate([rows.mean(axis=0), rows[:, :2].std(axis=0), [active]])


# ----------------------------------------------------------------------------- classifier
def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 500, lr: float = 0.5,
                 l2: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multinomial logistic regression on standardised features, full-batch gradient descent.

    Returns (mean, std, weights) for :func:`predict_logistic`. Deterministic.
    """
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"fit_logistic: x {x.shape} and y {np.shape(y)} must be (N, D) and (N,), N > 0")
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    z = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
    weights = np.zeros((z.shape[1], n_classes))
    onehot = np.eye(n_classes)[y]
    for _ in range(steps):
        logits = z @ weights
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        grad = z.T @ (prob - onehot) / len(z) + l2 * weights
        weights -= lr * grad
    return mean, std, weights


def predict_logistic(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    mean, std, weights = model
    z = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
    return np.argmax(z @ weights, axis=1)


def _accuracy(x_tr, y_tr, x_te, y_te, n_classes: int) -> float:
    model = fit_logistic(np.asarray(x_tr), np.asarray(y_tr), n_classes)
    return float(np.mean(predict_logistic(model, np.asarray(x_te)) == np.asarray(y_te)))


# ----------------------------------------------------------------------------- the check
def family_separability(root: str | Path, frames_per_video: int = 3, psnr_videos: int = 24,
                        json_path: str | Path | None = None) -> dict[str, Any]:
    """Frame-only / flow-only / both classifiers per family, and decode PSNR; optional JSON.

    Frame classifier: ``frames_per_video`` single frames per video, each its own sample
    (train and test). Flow classifier: one sample per video from ground-truth flow. Both:
    the video's flow features concatenated with each of its frames' features.
    """
    root = Path(root)
    if frames_per_video < 1:
        raise ValueError(f"frames_per_video={frames_per_video}; expected >= 1")
    meta = synth.read_classes_json(root)
    if meta.get("generator_version") != synth.GENERATOR_VERSION:
        raise ValueError(f"{root / 'classes.json'}: generator_version {meta.get('generator_version')!r} differs "
                         f"from this code's {synth.GENERATOR_VERSION!r}; regenerate the set")
    cfg = synth.config_from_root(root)
    specs = synth.video_specs(cfg)
    n_frames = cfg.synth_frames
    frame_idx = np.linspace(0, n_frames - 1, frames_per_video + 2)[1:-1].round().astype(int)

    feats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for spec in progress(specs, total=len(specs), desc="check"):
        video = root / "videos" / spec.cls.name / f"{spec.stem}.mp4"
        flow_path = root / "flow_gt" / spec.cls.name / f"{spec.stem}.npy"
        if not flow_path.is_file():
            raise FileNotFoundError(f"{flow_path}: ground-truth flow missing for {spec.video_id}")
        frames = read_frames(video, frame_idx)
        flow = np.load(flow_path)
        if flow.shape != (n_frames - 1, cfg.synth_size, cfg.synth_size, 2):
            raise ValueError(f"{flow_path}: flow shape {flow.shape}, expected "
                             f"{(n_frames - 1, cfg.synth_size, cfg.synth_size, 2)}")
        feats[spec.video_id] = (np.stack([frame_features(f) for f in frames]), flow_features(flow))

    families: dict[str, Any] = {}
    for family in synth.FAMILIES:
        members = [s for s in specs if s.cls.family == family]
        if not members:
            continue
        labels = {c: i for i, c in enumerate(sorted({s.cls.index for s in members}))}
        data: dict[str, dict[str, list]] = {}
        for split in ("train", "test"):
            d = data.setdefault(split, {"frame_x": [], "frame_y": [], "flow_x": [], "flow_y": [], "both_x": []})
            for s in (m for m in members if m.split == split):
                ff, fl = feats[s.video_id]
                y = labels[s.cls.index]
                d["frame_x"].extend(ff)
                d["frame_y"].extend([y] * len(ff))
                d["flow_x"].append(fl)
                d["flow_y"].append(y)
                d["both_x"].extend(np.concatenate([f, fl]) for f in ff)
        n = len(labels)
        tr, te = data["train"], data["test"]
        families[family] = {
            "classes": n,
            "chance": 1.0 / n,
            "frame_acc": _accuracy(tr["frame_x"], tr["frame_y"], te["frame_x"], te["frame_y"], n),
            "flow_acc": _accuracy(tr["flow_x"], tr["flow_y"], te["flow_x"], te["flow_y"], n),
            "both_acc": _accuracy(tr["both_x"], tr["frame_y"], te["both_x"], te["frame_y"], n),
            "test_videos": len(te["flow_y"]),
            "train_videos": len(tr["flow_y"]),
        }

    # Decode PSNR against the drawn frames, on videos spread evenly over the set.
    sample = [specs[i] for i in np.linspace(0, len(specs) - 1, min(psnr_videos, len(specs))).round().astype(int)]
    psnrs = []
    for spec in sample:
        drawn = synth.render_video(spec).frames
        decoded = read_frames(root / "videos" / spec.cls.name / f"{spec.stem}.mp4", range(n_frames))
        psnrs.append(peak_signal_noise_ratio(drawn, decoded, data_range=255))
    result = {
        "root": str(root),
        "profile": meta.get("profile"),
        "seed": meta.get("seed"),
        "generator_version": meta.get("generator_version"),
        "frames_per_video": frames_per_video,
        "families": families,
        "psnr_db": {"min": float(np.min(psnrs)), "mean": float(np.mean(psnrs)), "videos": len(psnrs)},
        "expected": "frame_acc >> chance on appearance, ~chance on motion; flow_acc >> chance on motion, "
                    "~chance on appearance; cue: as motion (flow_acc >> chance, frame_acc ~chance)",
    }
    if json_path is not None:
        atomic_write_json(json_path, result)
    return result


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`family_separability`'s result."""
    lines = [f"family separability ({result['root']}, profile {result['profile']}, seed {result['seed']})",
             f"{'family':<11}{'classes':>8}{'chance':>8}{'frame':>8}{'flow':>8}{'both':>8}{'test vids':>10}"]
    for family, r in result["families"].items():
        lines.append(f"{family:<11}{r['classes']:>8}{r['chance']:>8.2f}{r['frame_acc']:>8.2f}"
                     f"{r['flow_acc']:>8.2f}{r['both_acc']:>8.2f}{r['test_videos']:>10}")
    p = result["psnr_db"]
    lines.append(f"decode PSNR over {p['videos']} videos: min {p['min']:.2f} dB, mean {p['mean']:.2f} dB")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI (`htsc synth`)
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="output root (videos/, flow_gt/, splits/, classes.json)")
    parser.add_argument("--profile", choices=("smoke", "default"), default="default",
                        help="sizes from htsc_core.config (synth_* fields)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives byte-identical files")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (output does not depend on it)")
    parser.add_argument("--check", nargs="?", const=True, default=None, metavar="ROOT",
                        help="family separability + decode PSNR check: of ROOT, or (bare flag) of --out after "
                             "generating")
    parser.add_argument("--check-json", type=Path, default=None, help="also write the check's result as JSON here")


def command(args: argparse.Namespace) -> int:
    check_root: Path | None = None
    if isinstance(args.check, str):
        if args.out is not None:
            print("htsc synth: give either --out DIR [--check] or --check ROOT, not both", file=sys.stderr)
            return 2
        check_root = Path(args.check)
    elif args.out is None:
        print("htsc synth: --out DIR is required (or --check ROOT to check an existing set)", file=sys.stderr)
        return 2
    if args.out is not None:
        cfg = synth.synth_config(args.profile, args.seed)
        summary = synth.generate(args.out, cfg, workers=args.workers)
        print(f"synthetic set ({args.profile}, seed {args.seed}) -> {summary['root']}: {summary['videos']} videos, "
              f"{summary['bytes'] / 1e6:.1f} MB, {summary['seconds']:.1f} s with {summary['workers']} worker(s)")
        if args.check is True:
            check_root = Path(args.out)
    if check_root is not None:
        result = family_separability(check_root, json_path=args.check_json)
        print(format_table(result))
    return 0
