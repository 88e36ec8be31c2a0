"""Per-stream scores and features under the multi-view test protocol (docs/DESIGN.md section 4).

Each trained stream is run once per subset over S segments x C crops per video; its per-video
scores (TSN consensus: the mean of the per-view softmax probabilities, :func:`video_scores`) and
per-segment fc7 features (mean over crops, :func:`segment_features`) are saved to
``<runs_dir>/scores/<subset>_<stream>.npz``. The CLN trains on these features
(:mod:`htsc_core.train.cln`) and AWL fits on the validation scores (:mod:`htsc_core.tables`).
Scores of different streams are combined only through :func:`align_streams`, the one rule
for matching videos across streams.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from htsc_core.config import Config
from htsc_core.data.dataset import VideoDataset, eval_videos_per_batch, make_loader
from htsc_core.data.registry import load_split
from htsc_core.models.htsc import segment_features, video_scores
from htsc_core.models.views import as_float, in_chunks
from htsc_core.train.engine import (ShardSampler, barrier, gather_rows, is_main_process,
                                    precision_policy, progress)
from htsc_core.train.streams import MODALITY, build_stream, clip_config, flow_root, num_classes, run_dir
from htsc_core.utils import atomic_save_npz, resolve_device

# stage names of the CNN streams (rgbdiff: TSN RGB difference; conv_fusion: two-stream conv fusion, whose scores
# are already the method's, Feichtenhofer et al. 2016)
STREAMS = ("spatial", "temporal", "tvl1", "rgbdiff", "conv_fusion", "c3d")  # c3d: C3D on RGB clips (Tran et al. 2015)


def scores_path(cfg: Config, subset: str, stream: str) -> Path:
    return Path(cfg.runs_dir) / "scores" / f"{subset}_{stream}.npz"


def load_scores(cfg: Config, subset: str, stream: str) -> dict[str, np.ndarray]:
    path = scores_path(cfg, subset, stream)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `htsc evaluate` after training the {stream!r} stage")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != SCORES_KEY}


SCORES_KEY = "made_from"  # what a scores file was computed from (:func:`scores_key`), stored beside the arrays
SCORE_NEUTRAL = frozenset({"device", "num_workers", "clip_cache_mb", "results_dir", "runs_dir"})


def scores_key(cfg: Config, stream: str) -> str:
    """A digest of what a stream's scores depend on: its ``best.pt`` (inode, modification time and size: a new
    best epoch, a retrained stream; not the change time, which a hard link to ``last.pt`` moves) and every
    setting but where it runs and with how many workers (the data root and the precision count)."""
    st = (run_dir(cfg, stream) / "best.pt").stat()
    settings = {k: v for k, v in cfg.to_dict().items() if k not in SCORE_NEUTRAL}
    blob = json.dumps([st.st_ino, st.st_mtime_ns, st.st_size, settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def scores_current(cfg: Config, stream: str, subset: str) -> bool:
    """Are the saved scores of ``stream`` on ``subset`` those its current checkpoint and settings give?"""
    path = scores_path(cfg, subset, stream)
    if not path.exists() or not (run_dir(cfg, stream) / "best.pt").exists():
        return False
    with np.load(path, allow_pickle=False) as z:
        return SCORES_KEY in z.files and str(z[SCORES_KEY]) == scores_key(cfg, stream)


def align_streams(streams: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Put the saved scores of several streams in one video order (the first stream's); every array
    of a stream is reordered with its ``video_ids``.

    Raises ``ValueError`` when the streams do not cover the same videos (a video skipped by one
    stream only, see ``<runs_dir>/<stage>/skipped.jsonl``) rather than silently dropping rows.
    """
    if not streams:
        raise ValueError("align_streams: no streams given")
    names = list(streams)
    ref = np.asarray(streams[names[0]]["video_ids"])
    if len(np.unique(ref)) != len(ref):
        raise ValueError(f"align_streams: {names[0]!r} has duplicate video ids")
    out = {}
    for name in names:
        ids = np.asarray(streams[name]["video_ids"])
        if len(ids) != len(ref) or not np.array_equal(np.sort(ids), np.sort(ref)):
            only_here = sorted(set(ids.tolist()) - set(ref.tolist()))
            only_ref = sorted(set(ref.tolist()) - set(ids.tolist()))
            raise ValueError(
                f"the scores of {names[0]!r} and {name!r} cover different videos: {len(only_ref)} only in "
                f"{names[0]!r} {only_ref[:3]}, {len(only_here)} only in {name!r} {only_here[:3]}; a video "
                f"unreadable for one stream (see its skipped.jsonl) must be fixed or removed from the split")
        order = np.argsort(ids)[np.argsort(np.argsort(ref))]  # ids[order] == ref
        out[name] = {k: np.asarray(v)[order] for k, v in streams[name].items()}
    return out


def _fused_video_scores(model: nn.Module, batch: dict, segments: int) -> torch.Tensor:
    """Two-stream conv fusion: its video scores (B, M) (the mean of its fused and temporal heads' softmax). It
    fuses a video's segments inside the network, so each forward takes whole videos (a scoring batch holds
    ``eval_videos_per_batch`` of them: one at the paper profile's 250 views)."""
    return model(as_float(batch["rgb"]), batch["flow"], segments)["scores"]


def _forward(stream: str, model: nn.Module, batch: dict, views_per_forward: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, fc7) for every view of the batch, flattened to (B*V, ...), in forwards of at most
    ``views_per_forward`` views (:func:`in_chunks`)."""
    if stream == "temporal":
        return in_chunks(lambda v: (lambda out: (out["logits"], out["fc7"]))(model(v)),
                         batch["stack"].flatten(0, 1), views_per_forward)
    x = batch[{"spatial": "rgb", "tvl1": "flow", "rgbdiff": "rgbdiff", "c3d": "stack"}[stream]].flatten(0, 1)

    def head(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fc7 = model.features(v)
        return model.classifier_head(fc7), fc7
    return in_chunks(head, x, views_per_forward)


def view_loader(cfg: Config, subset: str, modalities: tuple[str, ...], skip_stage: str, flow: bool = False):
    """(records, loader) of ``subset`` under the test protocol (S segments x C crops, segment-major): uint8 frames
    (:func:`~htsc_core.models.views.as_float` on the device), ``eval_videos_per_batch`` videos a batch."""
    records, _ = load_split(cfg, subset)
    dataset = VideoDataset(records, cfg, mode="test", modalities=modalities,
                           skip_log=run_dir(cfg, skip_stage) / "skipped.jsonl",
                           flow_root=flow_root(cfg) if flow else None, uint8_frames=True)
    # under torchrun each rank scores its share of the videos (extract_scores gathers them)
    return records, make_loader(dataset, cfg, shuffle=False, sampler=ShardSampler(len(dataset)),
                                batch_size=eval_videos_per_batch(cfg, dataset.num_views))


@torch.inference_mode()
def extract_scores(cfg: Config, stream: str, subset: str, device: str | None = None, reuse: bool = True) -> Path:
    """Run a trained stream over ``subset`` with the multi-view test protocol; save scores + features.

    ``reuse``: keep saved scores made from the same checkpoint and settings (:func:`scores_current`) rather than
    run S x C views of every video again (the notebooks score val and test in several places; at the paper
    profile each pass over UCF101's test split is 3783 videos x 250 views)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
    if reuse and scores_current(cfg, stream, subset):
        return scores_path(cfg, subset, stream)
    dev = resolve_device(device or cfg.device)
    # C3D reads clips of its own length (clip_config); every other stream the config's stacks
    records, loader = view_loader(clip_config(cfg, stream), subset, MODALITY[stream], stream,
                                  flow="flow" in MODALITY[stream])
    model = build_stream(cfg, stream, num_classes(cfg), load_trained=True).to(dev).eval()
    scores, feats, labels, ids = [], [], [], []
    for batch in progress(loader, desc=f"{stream} {subset}", leave=False):
        if batch is None:
            continue
        batch = {k: v.to(dev, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        b = batch["index"].shape[0]
        with precision_policy(dev, cfg).autocast(dev):  # the training policy: bf16 where native
            if stream == "conv_fusion":  # no per-view logits or fc7: video scores, no features (B, S, 0)
                scores.append(_fused_video_scores(model, batch, cfg.test_segments).float().cpu().numpy())
                feats.append(np.zeros((b, cfg.test_segments, 0), dtype=np.float32))
            else:
                logits, fc7 = _forward(stream, model, batch, cfg.views_per_forward)
                scores.append(video_scores(logits.float(), b).cpu().numpy())  # (B, M): mean over segments x crops
                feats.append(segment_features(fc7.float(), b, cfg.test_segments).cpu().numpy())  # (B, S, d)
        labels.append(batch["label"].cpu().numpy())
        ids.extend(records[i].video_id for i in batch["index"].tolist())
    gathered = gather_videos(records, ids, {"scores": scores, "features": feats, "labels": labels})
    if gathered is None:
        raise RuntimeError(f"no readable video in {subset} of {cfg.data_root}; see the skipped.jsonl files")
    path = scores_path(cfg, subset, stream)
    if is_main_process():
        atomic_save_npz(path, **gathered, **{SCORES_KEY: np.array(scores_key(cfg, stream))})
    barrier()  # the other ranks read the file only once it is written
    return path


def gather_videos(records, ids: list[str], columns: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray] | None:
    """Per-video arrays of this rank's batches -> every rank's videos in the listing's order (``records``), on
    every rank: under torchrun each video is scored on exactly one rank (:class:`ShardSampler`); outside it,
    this process's videos. ``columns``: name -> batches (B, ...) in the order of ``ids``. Returns the columns
    stacked plus ``video_ids``; None when no rank read a video."""
    names = list(columns)
    rows = gather_rows(list(zip(ids, *(np.concatenate(columns[k]) if columns[k] else [] for k in names))))
    if not rows:
        return None
    order = {r.video_id: i for i, r in enumerate(records)}
    rows.sort(key=lambda row: order[row[0]])
    return {**{k: np.stack([r[i + 1] for r in rows]) for i, k in enumerate(names)},
            "video_ids": np.array([r[0] for r in rows])}
