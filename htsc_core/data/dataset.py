"""Video dataset and loader for every training stage (paper section 4.2; docs/DESIGN.md section 4).

One item = one video: TSN sampling (``sampling.py``) picks K stacks of L frames
(train) or S centred stacks (test); the needed frames are decoded once; crops
and flips (``transforms.py``) are shared by every frame of the video; the item
holds the modalities asked for (docs/CONTRACTS.md "Dataset"):

- ``rgb``   float32 (V, 3, S, S) in [0, 1], the centre frame of each stack
- ``stack`` float32 (V, L, 3, S, S) in [0, 1], the MotionNet input (section 3.1.2)
- ``flow``  float32 (V, 2(L-1), S, S), stored TV-L1 flow as ``jpeg_value - 128``
- ``rgbdiff`` float32 (V, 3(D-1), S, S), TSN's RGB difference (Wang et al. 2016, sec. 3.2):
  D = ``cfg.rgbdiff_length`` consecutive frames centred on the segment's RGB frame
  (``sampling.diff_window_indices``), cropped and flipped together, then the D-1 differences
  ``I_{i+1} - I_i`` stacked along channels in pixel units [-255, 255] (``transforms.rgb_difference``)
- ``label`` int64 scalar, or float32 (M,) multi-hot (THUMOS14)

With ``uint8_frames`` (the test protocol's scoring and validation loaders) ``rgb`` and ``stack`` stay uint8 in
[0, 255] until the device (``models.views.as_float``): 250 views of 11-frame 224-px stacks are 414 MB a video
instead of 1.65 GB (docs/DESIGN.md section 4).
- ``index`` int

An unreadable video gives ``None`` (after a warning and a JSON line in
``skip_log``); ``collate_skip_none`` drops those from the batch.
"""
from __future__ import annotations

import json
import os
import random
import time
import warnings
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from htsc_core.data import sampling, transforms
from htsc_core.data.records import VideoRecord
from htsc_core.data.video import VideoReadError, read_sampled
from htsc_core.data.flow_storage import read_complete_info, read_flow_stack
from htsc_core.data.ucf101 import UCF_LIST_DIR, read_class_index

MODALITIES = ("rgb", "stack", "flow", "rgbdiff")


class VideoDataset(Dataset):
    """Videos -> dicts of views (see module docstring).

    ``num_classes`` is only needed for multi-label records (tuple labels); when omitted it is
    the length of ``classInd.txt`` under ``cfg.data_root/ucfTrainTestlist`` (THUMOS14 uses the
    101 UCF101 classes).
    """

    def __init__(self, records: Sequence[VideoRecord], cfg, mode: str = "train",
                 modalities: Sequence[str] = ("rgb", "stack"), flow_root: str | Path | None = None,
                 skip_log: str | Path | None = None, num_classes: int | None = None,
                 uint8_frames: bool = False) -> None:
        if mode not in ("train", "test"):
            raise ValueError(f"mode={mode!r}; expected 'train' or 'test'")
        modalities = tuple(modalities)
        if not modalities or any(m not in MODALITIES for m in modalities):
            raise ValueError(f"modalities={modalities}; expected a non-empty subset of {MODALITIES}")
        if "flow" in modalities and flow_root is None:
            raise ValueError("the 'flow' modality needs flow_root (stored TV-L1 flow, `htsc flow extract`)")
        self.records = list(records)
        self.cfg = cfg
        self.mode = mode
        self.modalities = modalities
        self.flow_root = Path(flow_root) if flow_root is not None else None
        self.skip_log = Path(skip_log) if skip_log is not None else None
        self.uint8_frames = bool(uint8_frames)
        self.length = cfg.stack_length
        self.diff_length = cfg.rgbdiff_length
        self.segments = cfg.num_segments if mode == "train" else cfg.test_segments
        self.crops = 1 if mode == "train" else cfg.test_crops
        self.multilabel = any(isinstance(r.label, tuple) for r in self.records)
        if self.multilabel and num_classes is None:
            num_classes = len(read_class_index(Path(cfg.data_root) / UCF_LIST_DIR / "classInd.txt"))
        self.num_classes = num_classes
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_views(self) -> int:
        """V: segments (train) or segments x crops (test)."""
        return self.segments * self.crops

    def frames_per_item(self) -> int:
        """Frame indices requested per item (before de-duplication): K*L with stacks, else K (rgb)
        plus K*D (rgbdiff windows)."""
        if "stack" in self.modalities:
            return self.segments * self.length
        return self.segments * (("rgb" in self.modalities) + self.diff_length * ("rgbdiff" in self.modalities))

    # -------------------------------------------------------------- randomness
    def _generator(self) -> np.random.Generator:
        """Per-process generator seeded from torch.initial_seed().

        In a DataLoader worker that is base_seed + worker_id (base_seed drawn from the loader's
        seeded generator), in the main process the seed given to torch.manual_seed: so a fixed
        seed reproduces every crop and offset, and copies pickled into workers never share state.
        """
        key = (os.getpid(), torch.initial_seed())
        if self._rng is None or self._rng_key != key:
            self._rng = np.random.default_rng(torch.initial_seed())
            self._rng_key = key
        return self._rng

    # -------------------------------------------------------------- items
    def __getitem__(self, index: int) -> dict | None:
        rec = self.records[index]
        try:
            return self._load(index, rec)
        except (VideoReadError, OSError) as exc:
            self._skip(rec, exc)
            return None

    def _skip(self, rec: VideoRecord, exc: Exception) -> None:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        warnings.warn(f"skipping unreadable video {rec.path}: {reason}", RuntimeWarning, stacklevel=3)
        if self.skip_log is not None:
            line = json.dumps({"path": str(rec.path), "reason": str(reason),
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            self.skip_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.skip_log, "a", encoding="utf-8") as fh:  # O_APPEND: one short line per write
                fh.write(line + "\n")

    def _label(self, rec: VideoRecord) -> torch.Tensor:
        if not self.multilabel:
            return torch.tensor(int(rec.label), dtype=torch.int64)
        labels = rec.label if isinstance(rec.label, tuple) else (rec.label,)
        target = torch.zeros(self.num_classes, dtype=torch.float32)
        target[list(labels)] = 1.0
        return target

    def _flow_frame_count(self, rec: VideoRecord) -> int:
        """Frames of a video from its stored flow (pairs + 1), for flow-only items (no decoding)."""
        try:
            return int(read_complete_info(self.flow_root, rec.video_id)["pairs"]) + 1
        except (ValueError, KeyError) as exc:
            raise VideoReadError(self.flow_root / rec.video_id, f"stored flow unusable ({exc})") from exc

    def _load(self, index: int, rec: VideoRecord) -> dict:
        cfg, L = self.cfg, self.length
        rng = self._generator() if self.mode == "train" else None
        need_frames = any(m in self.modalities for m in ("rgb", "stack", "rgbdiff"))
        chosen: dict[str, np.ndarray] = {}

        def choose(n: int) -> np.ndarray:
            stacks = sampling.sample_indices(n, self.segments, L, self.mode, rng)  # (K, L)
            chosen["stacks"] = stacks
            wanted = [stacks if "stack" in self.modalities else sampling.centre_frames(stacks)]
            if "rgbdiff" in self.modalities:
                chosen["diff"] = sampling.diff_window_indices(stacks, self.diff_length, n)  # (K, D)
                wanted.append(chosen["diff"])
            return np.concatenate([w.reshape(-1) for w in wanted])

        item: dict = {}
        if need_frames:
            uniq, frames, n = read_sampled(rec.path, choose, size=cfg.frame_size or None)
            frames = transforms.ensure_min_side(frames, cfg.image_size)
        else:
            n = self._flow_frame_count(rec)
            choose(n)
            frames, uniq = None, None
        stacks = chosen["stacks"]
        flow = None
        if "flow" in self.modalities:
            flow = self._read_flow(rec, stacks, n)  # (K, H, W, 2(L-1)) uint8
            if frames is not None and flow.shape[1:3] != frames.shape[1:3]:
                flow = transforms.resize_frames(flow, *frames.shape[1:3])  # same crop box for both
            flow = transforms.ensure_min_side(flow, cfg.image_size)
        h, w = (frames if frames is not None else flow).shape[1:3]
        if self.mode == "train":
            # One crop and flip per video, as TSN's GroupMultiScaleCrop / GroupRandomHorizontalFlip.
            specs = [(transforms.multiscale_crop_box(h, w, cfg.image_size, rng), bool(rng.random() < 0.5))]
        else:
            specs = transforms.test_crop_specs(h, w, cfg.image_size, self.crops)
        S, V = self.segments, self.num_views
        flips = np.array([f for _, f in specs] * S)  # segment-major views: v = s * C + c, C = len(specs)
        if frames is not None:
            # (C, U, S, S, 3)
            crops = np.stack([transforms.crop_resize(frames, b, cfg.image_size, f) for b, f in specs])
            pos = np.searchsorted(uniq, stacks)  # (S, L) positions in the decoded frames
            if "stack" in self.modalities:
                st = crops[:, pos]  # (C, S, L, s, s, 3)
                item["stack"] = transforms.rgb_to_tensor(st.transpose(1, 0, 2, 3, 4, 5).reshape(V, L, *st.shape[3:]),
                                                        self.uint8_frames)
            if "rgb" in self.modalities:
                centre = np.searchsorted(uniq, sampling.centre_frames(stacks))  # (S,)
                rg = crops[:, centre]  # (C, S, s, s, 3)
                item["rgb"] = transforms.rgb_to_tensor(rg.transpose(1, 0, 2, 3, 4).reshape(V, *rg.shape[2:]),
                                                      self.uint8_frames)
            if "rgbdiff" in self.modalities:
                win = np.searchsorted(uniq, chosen["diff"])  # (S, D); the D frames share the crop and flip
                dw = crops[:, win]  # (C, S, D, s, s, 3)
                item["rgbdiff"] = transforms.rgb_difference(
                    dw.transpose(1, 0, 2, 3, 4, 5).reshape(V, *dw.shape[2:]))  # (V, 3(D-1), s, s)
        if flow is not None:
            fc = np.stack([np.stack([transforms.crop_resize(flow[k:k + 1], b, cfg.image_size, f)[0]
                                     for b, f in specs]) for k in range(S)])  # (S, C, s, s, 2(L-1))
            item["flow"] = transforms.flow_to_tensor(fc.reshape(V, *fc.shape[2:]), flips)
        item["label"] = self._label(rec)
        item["index"] = int(index)
        return item

    def _read_flow(self, rec: VideoRecord, stacks: np.ndarray, n: int) -> np.ndarray:
        pairs = sampling.flow_pair_indices(stacks, n)  # (K, L-1)
        K, P = pairs.shape
        try:
            planes = read_flow_stack(self.flow_root, rec.video_id, pairs.reshape(-1).tolist(),
                                     self.cfg.frame_size or None)  # (2*K*P, H, W) x0,y0,x1,y1,...
        except ValueError as exc:  # corrupt JPEG or mixed sizes: this video's flow is unusable
            raise VideoReadError(self.flow_root / rec.video_id, str(exc)) from exc
        planes = np.asarray(planes)
        if planes.ndim != 3 or planes.shape[0] != 2 * K * P:
            raise VideoReadError(self.flow_root / rec.video_id,
                                 f"read_flow_stack returned shape {planes.shape}, expected ({2 * K * P}, H, W)")
        return np.ascontiguousarray(planes.reshape(K, 2 * P, *planes.shape[1:]).transpose(0, 2, 3, 1))


def collate_skip_none(batch: list) -> dict | None:
    """default_collate over the items that are not None; None when the whole batch was unreadable."""
    items = [b for b in batch if b is not None]
    if not items:
        return None
    return default_collate(items)


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed numpy and python RNGs of each worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def host_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, as under a batch scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def loader_workers(requested: int) -> int:
    """DataLoader workers for ``cfg.num_workers`` = ``requested`` on this host: at most the cores each rank gets
    (the host's cores over ``LOCAL_WORLD_SIZE``, the processes torchrun starts here) less one for the rank's own
    training loop. The paper profile's 8 workers suit a GPU server's 8+ cores per GPU; on a 2-core machine they
    only oversubscribe it (issue 25: 8 workers on 2 cores, each holding decoded 256-px clips)."""
    if requested < 0:
        raise ValueError(f"num_workers={requested}; expected >= 0")
    per_rank = host_cpus() // max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return min(int(requested), max(per_rank - 1, 0))


def eval_videos_per_batch(cfg, views: int) -> int:
    """Videos per batch of a scoring or validation loader whose items hold ``views`` views each: ``batch_size``,
    fewer where batch x views would pass ``views_per_forward``, at least one (whose views then go through the
    network in chunks, ``models.views.in_chunks``). The memory of such a pass is then bounded by one batch of at
    most max(views_per_forward, views) views, whatever batch_size is (docs/DESIGN.md section 4)."""
    return max(1, min(int(cfg.batch_size), int(cfg.views_per_forward) // max(int(views), 1)))


def make_loader(dataset: Dataset, cfg, shuffle: bool, drop_last: bool = False, sampler=None,
                seed: int | None = None, batch_size: int | None = None) -> DataLoader:
    """DataLoader with collate_skip_none, cfg.batch_size / cfg.num_workers, reproducible from ``seed``.

    ``seed`` defaults to cfg.seed; the trainer passes a per-epoch seed so that augmentation
    differs between epochs yet a resumed run repeats an uninterrupted one exactly. Workers are
    ``cfg.num_workers`` bounded by the host (:func:`loader_workers`); pinned memory on CUDA, so that the
    trainer's ``non_blocking`` copies overlap the step. ``batch_size``: videos per batch, ``cfg.batch_size`` when
    None (scoring and validation pass :func:`eval_videos_per_batch`).
    """
    workers = loader_workers(int(cfg.num_workers))
    generator = torch.Generator()
    generator.manual_seed(int(cfg.seed if seed is None else seed))  # shuffling and worker base seeds
    return DataLoader(
        dataset,
        batch_size=int(cfg.batch_size if batch_size is None else batch_size),
        shuffle=bool(shuffle) and sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skip_none,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=False,  # a new loader (and seed) per epoch: see the trainer
        worker_init_fn=seed_worker,
        generator=generator,
    )
