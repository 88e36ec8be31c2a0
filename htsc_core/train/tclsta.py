"""Stage ``tclsta``: TCLSTA's attention heads and collaborative model (Peng, Zhao and Zhang 2018;
:mod:`htsc_core.models.tclsta`, docs/TCLSTA.md) on the frozen conv5 maps of the trained ``spatial`` and ``tvl1``
streams.

The maps are those of the streams under the test protocol (S segments x C crops per video, segment-major), as the
CLN's fc7 features are (:mod:`htsc_core.train.cln`), cached once per subset as float16 in
``<runs_dir>/scores/<subset>_<stream>_conv5.npz`` (kept while made from the same checkpoint and settings).
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
from htsc_core.models.vgg import build_vgg16
from htsc_core.train.cln import paired_feature_batches  # cached two-stream feature batches, per rank
from htsc_core.train.engine import (Trainer, barrier, is_main_process, load_checkpoint, load_state,
                                    precision_policy, progress)
from htsc_core.train.scores import (SCORES_KEY, align_streams, gather_videos, scores_key, scores_path,
                                    view_loader)
from htsc_core.train.streams import MODALITY, build_stream, correct_count, make_optimizer, num_classes, run_dir
from htsc_core.utils import atomic_save_npz, resolve_device

TRUNKS = ("spatial", "tvl1")  # TCLSTA's static (RGB) and motion (TV-L1 flow) streams: the study's trained VGG16s


def conv5_path(cfg: Config, subset: str, stream: str) -> Path:
    return Path(cfg.runs_dir) / "scores" / f"{subset}_{stream}_conv5.npz"


def _current(cfg: Config, subset: str, stream: str) -> bool:
    path = conv5_path(cfg, subset, stream)
    if not path.exists() or not (run_dir(cfg, stream) / "best.pt").exists():
        return False
    with np.load(path, allow_pickle=False) as z:
        return SCORES_KEY in z.files and str(z[SCORES_KEY]) == scores_key(cfg, stream)


@torch.inference_mode()
def extract_conv5(cfg: Config, stream: str, subset: str, device: str | None = None, reuse: bool = True) -> Path:
    """The trained ``stream``'s conv5_3 maps (after ReLU, before pool5) of every view of ``subset`` (test
    protocol): ``maps`` (n, V, C, h, w) float16, ``labels``, ``video_ids``."""
    if stream not in TRUNKS:
        raise ValueError(f"extract_conv5: stream {stream!r}; expected one of {TRUNKS}")
    if reuse and _current(cfg, subset, stream):
        return conv5_path(cfg, subset, stream)
    dev = resolve_device(device or cfg.device)
    key = MODALITY[stream][0]  # "rgb" or "flow"
    records, loader = view_loader(cfg, subset, MODALITY[stream], stream, flow=key == "flow")
    model = build_stream(cfg, stream, num_classes(cfg), load_trained=True).to(dev).eval()
    maps, labels, ids = [], [], []
    for batch in progress(loader, desc=f"conv5 {stream} {subset}", leave=False):
        if batch is None:
            continue
        x = batch[key].to(dev, non_blocking=True)  # (B, V, ...)
        with precision_policy(dev, cfg).autocast(dev):  # the scoring policy: bf16 where native
            m = conv5_maps(model, x.flatten(0, 1))
        maps.append(m.float().view(*x.shape[:2], *m.shape[1:]).cpu().numpy().astype(np.float16))
        labels.append(batch["label"].cpu().numpy())
        ids.extend(records[i].video_id for i in batch["index"].tolist())
    gathered = gather_videos(records, ids, {"maps": maps, "labels": labels})
    if gathered is None:
        raise RuntimeError(f"no readable video in {subset} of {cfg.data_root}; see the skipped.jsonl files")
    path = conv5_path(cfg, subset, stream)
    if is_main_process():
        atomic_save_npz(path, **gathered, **{SCORES_KEY: np.array(scores_key(cfg, stream))})
    barrier()
    return path


def conv5_pairs(cfg: Config, subset: str, device: str | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """(static maps, motion maps (n, V, C, h, w) float16, labels, video_ids) of ``subset`` in one video order
    (:func:`align_streams`), extracted first where missing or stale."""
    data = {}
    for stream in TRUNKS:
        with np.load(extract_conv5(cfg, stream, subset, device), allow_pickle=False) as z:
            data[stream] = {k: z[k] for k in ("maps", "labels", "video_ids")}
    pair = align_streams(data)
    s, o = pair["spatial"], pair["tvl1"]
    return (torch.from_numpy(s["maps"]), torch.from_numpy(o["maps"]), torch.from_numpy(s["labels"]),
            s["video_ids"])


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
                      val_loader=paired_feature_batches(vxs, vxo, vy, 64, None),
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
    for i in torch.arange(len(y)).split(64):
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
