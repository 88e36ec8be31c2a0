"""Optical-flow estimators behind one interface (docs/DESIGN.md sections 5 and 7; paper section 3.1.2, Table 5).

``estimate(frames uint8 (T, H, W, 3) RGB) -> float32 (T-1, H, W, 2)`` flow in pixels,
(dx, dy) from frame t to t+1, in the backward-warp convention of docs/CONTRACTS.md::

    frame_t(p) ~= frame_{t+1}(p + flow_t(p))

which is the ordinary forward flow that ``cv2.calcOpticalFlowFarneback(prev=t, next=t+1)``
returns. Classic estimators (TV-L1, the two-stream baseline's input; DIS; Farneback;
zero) run on grayscale frames with ``cv2.setNumThreads(threads)``; the MotionNet
estimator (the hidden temporal stream's flow, section 3.1.2) runs a trained network.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from htsc_core.utils import resolve_device

MOTIONNET_MULTIPLE = 32  # MotionNet downsamples by 2^5 (Table 2)


def validate_frames(frames: np.ndarray) -> np.ndarray:
    """Check ``frames`` is uint8 (T >= 2, H, W, 3)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames have shape {frames.shape}; expected (T, H, W, 3) RGB")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames have dtype {frames.dtype}; expected uint8")
    if frames.shape[0] < 2:
        raise ValueError(f"frames has {frames.shape[0]} frame(s); flow needs at least 2")
    if min(frames.shape[1:3]) < 1:
        raise ValueError(f"frames have empty spatial size {frames.shape[1:3]}")
    return frames


def to_gray(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (T, H, W, 3) -> uint8 (T, H, W) luminance (denseflow converts to gray too)."""
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


class FlowEstimator(ABC):
    """Base class: ``estimate(frames) -> (T-1, H, W, 2)`` float32 px; ``name``, ``threads``."""

    name = "base"

    def __init__(self, threads: int = 1) -> None:
        if int(threads) < 1:
            raise ValueError(f"threads={threads}; expected >= 1")
        self.threads = int(threads)

    def _set_threads(self) -> None:
        # One setting for every estimator so the ms/pair figures are comparable (docs/DESIGN.md section 7).
        cv2.setNumThreads(self.threads)

    @abstractmethod
    def estimate(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB (T, H, W, 3) -> float32 (T-1, H, W, 2) px, frame t -> t+1."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threads={self.threads})"


class PairwiseEstimator(FlowEstimator):
    """OpenCV estimators: grayscale frames, one ``pair(prev, next)`` call per frame pair."""

    def estimate(self, frames: np.ndarray) -> np.ndarray:
        frames = validate_frames(frames)
        self._set_threads()
        gray = to_gray(frames)
        out = np.empty((len(gray) - 1, *gray.shape[1:], 2), dtype=np.float32)
        for t in range(len(gray) - 1):
            out[t] = self.pair(gray[t], gray[t + 1])
        return out

    @abstractmethod
    def pair(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow (H, W, 2) float32 from grayscale ``prev`` to ``nxt``."""


# Named TV-L1 parameter sets (config ``tvl1_preset``), keyword arguments of DualTVL1OpticalFlow_create.
# "fast": the CPU profiles' extraction, 3 scales and warps and a looser stopping threshold (a third of the time,
# EPE 0.160 vs 0.142 px on the default synthetic set: docs/SYNTHETIC.md). "minimal": one scale, one warp, two
# inner iterations: flow of no use for training, for dry runs that prove the storage and the shapes at the
# paper's frame size without its hours of TV-L1 (docs/DESIGN.md section 6). OpenCV spells "innnerIterations".
TVL1_PRESET_PARAMS = {"denseflow": {}, "fast": {"nscales": 3, "warps": 3, "epsilon": 0.02},
                      "minimal": {"nscales": 1, "warps": 1, "innnerIterations": 2, "outerIterations": 1}}


def tvl1_preset_name(cfg, extraction: bool = False) -> str:
    """The TV-L1 preset ``cfg.tvl1_preset`` resolves to. "auto": "fast" for extraction (``extraction``) on the CPU
    profiles, "denseflow" (OpenCV's defaults) otherwise; a named preset applies everywhere."""
    preset = getattr(cfg, "tvl1_preset", "auto") if cfg is not None else "auto"
    if preset == "auto":
        fast = extraction and getattr(cfg, "profile", None) in ("smoke", "default")
        preset = "fast" if fast else "denseflow"
    if preset not in TVL1_PRESET_PARAMS:
        raise ValueError(f"tvl1_preset={preset!r}; expected 'auto' or one of {sorted(TVL1_PRESET_PARAMS)}")
    return preset


def tvl1_preset_params(cfg, extraction: bool = False) -> dict:
    """TV-L1 parameters under ``cfg.tvl1_preset`` (:func:`tvl1_preset_name`)."""
    return dict(TVL1_PRESET_PARAMS[tvl1_preset_name(cfg, extraction)])


class TVL1Estimator(PairwiseEstimator):
    """OpenCV Dual TV-L1 (Zach et al. 2007), the two-stream baseline's flow.

    Parameters are OpenCV's ``DualTVL1OpticalFlow_create()`` defaults (tau 0.25, lambda 0.15,
    theta 0.3, 5 scales, 5 warps, eps 0.01, 30 inner / 10 outer iterations, scale step 0.8,
    median 5): denseflow creates the algorithm with no arguments (yjxiong/dense_flow CPU tool;
    open-mmlab/denseflow ``cuda::OpticalFlowDual_TVL1::create()``), i.e. with the library defaults.
    """

    name = "tvl1"

    def __init__(self, threads: int = 1, **params) -> None:
        super().__init__(threads)
        # ``params``: keyword arguments of DualTVL1OpticalFlow_create (e.g. nscales=3, warps=3); none = defaults.
        self.params = dict(params)
        self._algo = cv2.optflow.DualTVL1OpticalFlow_create(**self.params)

    def pair(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return self._algo.calc(prev, nxt, None)


class DISEstimator(PairwiseEstimator):
    """OpenCV DIS (Kroeger et al. 2016). Default PRESET_MEDIUM: the most accurate preset that
    stays far cheaper than TV-L1; ``preset="fast"`` / ``"ultrafast"`` for speed comparisons."""

    name = "dis"
    PRESETS = {"ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST, "fast": cv2.DISOpticalFlow_PRESET_FAST,
               "medium": cv2.DISOpticalFlow_PRESET_MEDIUM}

    def __init__(self, threads: int = 1, preset: str = "medium") -> None:
        super().__init__(threads)
        if preset not in self.PRESETS:
            raise ValueError(f"preset={preset!r}; expected one of {sorted(self.PRESETS)}")
        self.preset = preset
        self._algo = cv2.DISOpticalFlow_create(self.PRESETS[preset])

    def pair(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return self._algo.calc(prev, nxt, None)


class FarnebackEstimator(PairwiseEstimator):
    """OpenCV Farneback with denseflow's parameters (pyr_scale 0.702, 5 levels, winsize 10,
    2 iterations, poly_n 7, poly_sigma 1.5, Gaussian window; denseflow ``src/dense_flow.cpp``)."""

    name = "farneback"

    def pair(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.702, 5, 10, 2, 7, 1.5,
                                            cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


class ZeroEstimator(FlowEstimator):
    """No motion: the trivial baseline (its EPE is the mean ground-truth flow magnitude)."""

    name = "zero"

    def estimate(self, frames: np.ndarray) -> np.ndarray:
        frames = validate_frames(frames)
        return np.zeros((frames.shape[0] - 1, *frames.shape[1:3], 2), dtype=np.float32)


# ----------------------------------------------------------------------------- MotionNet
class MotionNetCheckpointError(ValueError):
    """A MotionNet checkpoint is missing, unreadable or does not fit the model; names the file."""


def load_motionnet(checkpoint: str | Path, cfg, device: Any = "cpu"):
    """Build ``build_motionnet(cfg)`` and load ``checkpoint["model"]`` (docs/CONTRACTS.md, Checkpoints)."""
    import torch

    from htsc_core.models.motionnet import build_motionnet  # deferred, as torch: TV-L1 processes need neither

    path = Path(checkpoint)
    if not path.is_file():
        raise MotionNetCheckpointError(f"MotionNet checkpoint {path} does not exist; train one with "
                                       f"`htsc train motion` or pass the right --checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise MotionNetCheckpointError(f"cannot load MotionNet checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise MotionNetCheckpointError(f"{path} has no 'model' state dict (keys: "
                                       f"{sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__})")
    model = build_motionnet(cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise MotionNetCheckpointError(
            f"MotionNet checkpoint {path} does not match build_motionnet(cfg) (stack_length="
            f"{cfg.stack_length}, motion_width={cfg.motion_width}): {exc}") from exc
    return model.to(device).eval()


def _pad_amounts(n: int, multiple: int) -> tuple[int, int]:
    total = (-n) % multiple
    return total // 2, total - total // 2


class MotionNetEstimator(FlowEstimator):
    """Flow from a trained MotionNet (paper section 3.1.2, Table 2) on stacks of L frames.

    flow2 (release's scaled unit) becomes input-resolution pixels with the models' helper
    ``htsc_core.models.motionnet.flow_in_pixels`` (x FLOW_SCALES[2], bilinear x2, x grid ratio).

    Frames are centre-padded (edge replicate) to a multiple of 32 rather than resized, so
    the flow stays in the frames' own pixels; the padding is cropped off the output.
    Pairs are covered by non-overlapping stacks of L frames (L-1 pairs each); the last
    stack is shifted back to end at the last frame, and videos shorter than L frames are
    padded by repeating the last frame (only real pairs are returned).
    """

    name = "motionnet"

    def __init__(self, model_or_checkpoint, cfg, device: Any = None, threads: int = 1, batch_size: int = 8) -> None:
        import torch

        super().__init__(threads)
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else resolve_device(cfg.device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; expected >= 1")
        if isinstance(model_or_checkpoint, (str, Path)):
            self.model = load_motionnet(model_or_checkpoint, cfg, self.device)
        elif isinstance(model_or_checkpoint, torch.nn.Module):
            self.model = model_or_checkpoint.to(self.device).eval()
        else:
            raise ValueError(f"model_or_checkpoint is {type(model_or_checkpoint).__name__}; "
                             f"expected a checkpoint path or a MotionNet module")
        self.length = int(cfg.stack_length)

    def _set_threads(self) -> None:
        import torch

        super()._set_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads)

    def stack_starts(self, num_frames: int) -> list[int]:
        """First frame of each L-frame stack covering pairs 0..T-2 (the last one shifted back)."""
        step = self.length - 1
        if num_frames <= self.length:
            return [0]
        starts = list(range(0, num_frames - self.length + 1, step))
        if starts[-1] + step < num_frames - 1:
            starts.append(num_frames - self.length)
        return starts

    def estimate(self, frames: np.ndarray) -> np.ndarray:
        import torch

        from htsc_core.models.motionnet import flow_in_pixels  # deferred with torch (see load_motionnet)

        frames = validate_frames(frames)
        self._set_threads()
        t_frames, height, width = frames.shape[:3]
        if t_frames < self.length:  # repeat the last frame; its pairs are dropped below
            frames = np.concatenate([frames, np.repeat(frames[-1:], self.length - t_frames, axis=0)])
        (top, bottom), (left, right) = (_pad_amounts(height, MOTIONNET_MULTIPLE),
                                        _pad_amounts(width, MOTIONNET_MULTIPLE))
        out = np.zeros((t_frames - 1, height, width, 2), dtype=np.float32)
        filled = np.zeros(t_frames - 1, dtype=bool)
        starts = self.stack_starts(len(frames))
        ph, pw = height + top + bottom, width + left + right
        with torch.inference_mode():
            video = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, H, W)
            if top or bottom or left or right:
                video = torch.nn.functional.pad(video, (left, right, top, bottom), mode="replicate")
            for b in range(0, len(starts), self.batch_size):
                chunk = starts[b:b + self.batch_size]
                stack = torch.stack([video[s:s + self.length] for s in chunk])  # (N, L, 3, ph, pw)
                flow2 = self.model(stack)[-1]  # (N, 2(L-1), ph/2, pw/2)
                flow = flow_in_pixels(flow2.float(), (ph, pw))[..., top:top + height, left:left + width]
                flow = flow.reshape(len(chunk), self.length - 1, 2, height, width).permute(0, 1, 3, 4, 2)
                flow = flow.cpu().numpy()
                for s, f in zip(chunk, flow):
                    for k in range(self.length - 1):
                        if s + k < t_frames - 1 and not filled[s + k]:  # the shifted last stack
                            out[s + k] = f[k]                          # only fills new pairs
                            filled[s + k] = True
        return out


ESTIMATORS = {"tvl1": TVL1Estimator, "dis": DISEstimator, "farneback": FarnebackEstimator,
              "zero": ZeroEstimator}
METHODS = (*ESTIMATORS, "motionnet")


def make_estimator(method: str, threads: int = 1, checkpoint: str | Path | None = None, cfg=None,
                   device: Any = None) -> FlowEstimator:
    """Estimator by name: tvl1 | dis | farneback | zero | motionnet (needs checkpoint and cfg)."""
    if method == "motionnet":
        if checkpoint is None or cfg is None:
            raise ValueError("method 'motionnet' needs a checkpoint (--checkpoint MOTIONNET.pt) and a config")
        return MotionNetEstimator(checkpoint, cfg, device=device, threads=threads)
    if method not in ESTIMATORS:
        raise ValueError(f"unknown flow method {method!r}; expected one of {METHODS}")
    if method == "tvl1":  # the config's preset (OpenCV's defaults unless it names one)
        return TVL1Estimator(threads=threads, **tvl1_preset_params(cfg))
    return ESTIMATORS[method](threads=threads)
