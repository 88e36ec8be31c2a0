"""Stage ``tclsta``: TCLSTA's attention heads and collaborative model (Peng, Zhao and Zhang 2018;
:mod:`htsc_core.models.tclsta`, docs/TCLSTA.md) on the frozen conv5 maps of the trained ``spatial`` and ``tvl1``
streams.

The maps are those of the streams under the test protocol (S segments x C crops per video, segment-major), as the
CLN's fc7 features are (:mod:`htsc_core.train.cln`), cached once per subset as float16 in
``<runs_dir>/scores/<subset>_<stream>_conv5.npy`` with its index ``..._conv5.npz`` (kept while made from the same
checkpoint and settings), written and read a batch of videos at a time (:class:`MapRows`): the split's maps are never
in memory together.
Training reads ``train`` and ``val`` only (best.pt: the epoch of lowest validation loss, as every stage);
:func:`tclsta_scores` scores a subset (``htsc evaluate``: test and val) and saves
``<runs_dir>/scores/<subset>_tclsta.npz`` in the streams' format (``scores``, ``labels``, ``video_ids``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from htsc_core.config import Config
from htsc_core.models.tclsta import TCLSTAHeads, conv5_channels, tclsta_loss
from htsc_core.models.two_stream_fusion import conv5_maps
from htsc_core.models.views import in_chunks
from htsc_core.models.vgg import build_vgg16
from htsc_core.train.cln import paired_feature_batches  # cached two-stream feature batches, per rank
from htsc_core.train.engine import (Trainer, barrier, is_main_process, load_checkpoint, load_state,
                                    precision_policy, progress)
from htsc_core.train.scores import (SCORES_KEY, align_streams, gather_videos, scores_key, scores_path,
                                    view_loader)
from htsc_core.train.streams import MODALITY, build_stream, correct_count, make_optimizer, num_classes, run_dir
from htsc_core.utils import atomic_save_npz, resolve_device

# at most this many views' maps in one evaluation batch of the heads (validation, scoring): 64 videos at the CPU
# profiles' 2-5 views, 16 at the paper profile's 250 (16 x 250 maps of 512 x 14 x 14 are 1.6 GB in fp32)
EVAL_MAPS = 4096


def eval_videos(views: int) -> int:
    """Videos per evaluation batch of TCLSTA's heads: 64, fewer where their maps would pass :data:`EVAL_MAPS`."""
    return max(1, min(64, EVAL_MAPS // max(int(views), 1)))


TRUNKS = ("spatial", "tvl1")  # TCLSTA's static (RGB) and motion (TV-L1 flow) streams: the study's trained VGG16s


def conv5_path(cfg: Config, subset: str, stream: str) -> Path:
    """The index of a subset's cached maps: ``rows`` (the row of each readable video in :func:`maps_path`),
    ``labels``, ``video_ids`` and what they were made from (``made_from``)."""
    return Path(cfg.runs_dir) / "scores" / f"{subset}_{stream}_conv5.npz"


def maps_path(cfg: Config, subset: str, stream: str) -> Path:
    """The maps themselves: one ``.npy`` array (n videos of the listing, V, C, h, w) float16, a row per video."""
    return Path(cfg.runs_dir) / "scores" / f"{subset}_{stream}_conv5.npy"


class MapRows:
    """Rows of a cached ``.npy`` maps file, read from disk only when indexed (``rows[i]`` -> float16 tensor).

    The split's maps are never in memory together (about 50 MB a video at the paper profile's 250 views of 14 x 14
    x 512; 370 GB per stream for UCF101's training split): a batch reads its videos' rows with plain file reads,
    not a memory map, so the process's resident memory stays one batch whatever the number of videos (issue 37).
    """

    def __init__(self, path: Path, rows: np.ndarray):
        self.path, self.rows = Path(path), np.asarray(rows, dtype=np.int64)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f"{self.path}: .npy format version {version} is not one this reader knows")
            shape, fortran, dtype = readers[version](fh)
            self.offset = fh.tell()
        if fortran or len(shape) < 2:
            raise ValueError(f"{self.path}: expected a C-ordered (n, V, ...) maps array, got shape {shape}")
        self.dtype, self.row_shape = np.dtype(dtype), tuple(shape[1:])
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.row_shape))
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= shape[0]):
            raise ValueError(f"{self.path}: row index out of range for {shape[0]} rows")

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.row_shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> torch.Tensor:
        wanted = self.rows[np.asarray(index, dtype=np.int64)]
        out = np.empty((len(wanted), *self.row_shape), dtype=self.dtype)
        with open(self.path, "rb") as fh:
            for i, row in enumerate(wanted):
                fh.seek(self.offset + int(row) * self.row_bytes)
                fh.readinto(memoryview(out[i].reshape(-1).view(np.uint8)))
        return torch.from_numpy(out)


def _current(cfg: Config, subset: str, stream: str) -> bool:
    path = conv5_path(cfg, subset, stream)
    if not path.exists() or not maps_path(cfg, subset, stream).exists() or not (
            run_dir(cfg, stream) / "best.pt").exists():
        return False
    with np.load(path, allow_pickle=False) as z:
        return SCORES_KEY in z.files and "rows" in z.files and str(z[SCORES_KEY]) == scores_key(cfg, stream)


@torch.inference_mode()
def extract_conv5(cfg: Config, stream: str, subset: str, device: str | None = None, reuse: bool = True) -> Path:
    """The trained ``stream``'s conv5_3 maps (after ReLU, before pool5) of every view of ``subset`` (test
    protocol), written row by row into :func:`maps_path` (float16, a row per video of the listing; under torchrun
    each rank writes its own videos' rows into the one file) and indexed by :func:`conv5_path`. Nothing holds
    more than one batch of maps (issue 37)."""
    if stream not in TRUNKS:
        raise ValueError(f"extract_conv5: stream {stream!r}; expected one of {TRUNKS}")
    if reuse and _current(cfg, subset, stream):
        return conv5_path(cfg, subset, stream)
    dev = resolve_device(device or cfg.device)
    key = MODALITY[stream][0]  # "rgb" or "flow"
    records, loader = view_loader(cfg, subset, MODALITY[stream], stream, flow=key == "flow")
    model = build_stream(cfg, stream, num_classes(cfg), load_trained=True).to(dev).eval()
    views = cfg.test_segments * cfg.test_crops
    probe = conv5_maps(model, torch.zeros(1, model.in_channels, cfg.image_size, cfg.image_size, device=dev))
    final = maps_path(cfg, subset, stream)
    tmp = final.with_name(f".{final.name}.partial")  # renamed into place once every rank has written its rows
    if is_main_process():
        tmp.parent.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                  shape=(len(records), views, *probe.shape[1:])).flush()
    barrier()
    writer = MapRows(tmp, np.arange(len(records)))
    rows, labels, ids = [], [], []
    with open(tmp, "r+b") as fh:
        for batch in progress(loader, desc=f"conv5 {stream} {subset}", leave=False):
            if batch is None:
                continue
            x = batch[key].to(dev, non_blocking=True)  # (B, V, ...); uint8 frames until as_float
            with precision_policy(dev, cfg).autocast(dev):  # the scoring policy: bf16 where native
                m = in_chunks(lambda v: conv5_maps(model, v), x.flatten(0, 1), cfg.views_per_forward)
            m = m.float().view(*x.shape[:2], *m.shape[1:]).cpu().numpy().astype(np.float16)
            for j, index in enumerate(batch["index"].tolist()):
                fh.seek(writer.offset + index * writer.row_bytes)
                fh.write(np.ascontiguousarray(m[j]).tobytes())
            rows.append(batch["index"].numpy())
            labels.append(batch["label"].cpu().numpy())
            ids.extend(records[i].video_id for i in batch["index"].tolist())
    gathered = gather_videos(records, ids, {"rows": rows, "labels": labels})  # small: no maps travel
    if gathered is None:
        raise RuntimeError(f"no readable video in {subset} of {cfg.data_root}; see the skipped.jsonl files")
    barrier()  # every rank's rows are on disk
    path = conv5_path(cfg, subset, stream)
    if is_main_process():
        tmp.replace(final)
        atomic_save_npz(path, **gathered, **{SCORES_KEY: np.array(scores_key(cfg, stream))})
    barrier()
    return path


def conv5_pairs(cfg: Config, subset: str, device: str | None = None
                ) -> tuple[MapRows, MapRows, torch.Tensor, np.ndarray]:
    """(static maps, motion maps: :class:`MapRows` of (n, V, C, h, w) float16, read a batch at a time; labels,
    video_ids) of ``subset`` in one video order (:func:`align_streams`), extracted first where missing or stale."""
    data = {}
    for stream in TRUNKS:
        with np.load(extract_conv5(cfg, stream, subset, device), allow_pickle=False) as z:
            data[stream] = {k: z[k] for k in ("rows", "labels", "video_ids")}
    pair = align_streams(data)
    s, o = pair["spatial"], pair["tvl1"]
    return (MapRows(maps_path(cfg, subset, "spatial"), s["rows"]), MapRows(maps_path(cfg, subset, "tvl1"), o["rows"]),
            torch.from_numpy(s["labels"]), s["video_ids"])


def build_tclsta(cfg: Config, n_classes: int, channels: int | None = None) -> TCLSTAHeads:
    """TCLSTA's heads for the config's streams (``channels``: their conv5 width, from the VGG16 when None)."""
    if channels is None:  # only the width is needed: no weights are loaded
        channels = conv5_channels(build_vgg16(cfg, n_classes, 3, imagenet=False))
    return TCLSTAHeads(channels, n_classes, cfg.tclsta_attention, cfg.tclsta_lstm, cfg.cln_hidden,
                       cfg.cln_rounds, cfg.dropout_tclsta)


def load_tclsta(cfg: Config, n_classes: int, channels: int) -> TCLSTAHeads:
    """The trained heads (``<runs_dir>/tclsta/best.pt``), in eval mode."""
    model = build_tclsta(cfg, n_classes, channels)
    path = run_dir(cfg, "tclsta") / "best.pt"
    load_state(model, load_checkpoint(path, stage="tclsta"), path)
    return model.eval()


def tclsta_step(segments: int):
    """Every head's loss summed (:func:`tclsta_loss`: loss_c, loss_s, loss_t per stream, the collaborative
    heads); accuracy of the video scores. The batches are the cached maps' (``fs``, ``fo``: (B, V, C, h, w))."""
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        out = model(batch["fs"].float(), batch["fo"].float(), segments)
        label = batch["label"]
        return tclsta_loss(out, label), {"correct": correct_count(out["scores"], label), "count": label.shape[0]}
    return step


def train_tclsta(cfg: Config, resume: bool = True, device: str | None = None) -> Path:
    """Train TCLSTA's heads on the cached conv5 maps of ``train``, select on ``val``; returns the run directory."""
    xs, xo, y, _ = conv5_pairs(cfg, "train", device)
    vxs, vxo, vy, _ = conv5_pairs(cfg, "val", device)
    model = build_tclsta(cfg, num_classes(cfg), xs.shape[2])
    optimizer = make_optimizer(cfg, [{"params": model.parameters(), "lr": cfg.lr_tclsta}], kind="adam")
    out_dir = run_dir(cfg, "tclsta")
    trainer = Trainer(out_dir, "tclsta", model, optimizer, tclsta_step(cfg.test_segments),
                      lambda e: paired_feature_batches(xs, xo, y, cfg.batch_size,
                                            torch.Generator().manual_seed(cfg.seed * 1000 + e)),
                      # best.pt: the lowest validation loss (train/stages.SELECTION_MONITOR, docs/DESIGN.md 3)
                      cfg.epochs_tclsta, seed=cfg.seed, device=device or cfg.device, amp=False, monitor="loss",
                      val_loader=paired_feature_batches(vxs, vxo, vy, eval_videos(vxs.shape[1]), None),
                      max_steps_per_epoch=cfg.max_steps_per_epoch, config=cfg.to_dict())
    trainer.fit(resume=resume)
    return out_dir


@torch.inference_mode()
def tclsta_scores(cfg: Config, subset: str, device: str | None = None) -> dict[str, np.ndarray]:
    """The trained TCLSTA's video scores on ``subset`` (the collaborative heads, spatial + 1.5 x motion), with
    the mean attention weights over crops (``beta_s``, ``beta_o``: (n, S)); saved as ``<subset>_tclsta.npz``."""
    xs, xo, y, ids = conv5_pairs(cfg, subset, device)
    model = load_tclsta(cfg, num_classes(cfg), xs.shape[2])
    parts: dict[str, list[np.ndarray]] = {"scores": [], "beta_s": [], "beta_o": []}
    for i in torch.arange(len(y)).split(eval_videos(xs.shape[1])):
        out = model(xs[i].float(), xo[i].float(), cfg.test_segments)
        parts["scores"].append(out["scores"].numpy())
        parts["beta_s"].append(out["beta_s"].mean(1).numpy())
        parts["beta_o"].append(out["beta_o"].mean(1).numpy())
    result = {k: np.concatenate(v) for k, v in parts.items()}
    result.update(labels=y.numpy(), video_ids=ids)
    if is_main_process():
        atomic_save_npz(scores_path(cfg, subset, "tclsta"), **result)
    barrier()
    return result
