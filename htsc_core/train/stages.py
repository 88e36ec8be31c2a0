"""The training stages of docs/DESIGN.md section 3, each a thin recipe over the one Trainer.

1. ``spatial``  VGG16 on one RGB frame per segment, TSN consensus (average) over K segments (sec. 3.1.1).
2. ``motion``   MotionNet, unsupervised: the multi-scale losses of Eq. 1-6 only (sec. 3.1.2).
3. ``temporal`` MotionNet -> flow normalisation -> 20-channel VGG16, end to end with
                cross-entropy + the flow losses, MotionNet at a much lower learning rate.
4. ``tvl1``     the classic two-stream baseline: the 20-channel VGG16 on stored TV-L1 flow.
5. ``cln``      the collaborative learning network on the two streams' fc7 features (sec. 3.2);
                :mod:`htsc_core.train.cln`, on the features :mod:`htsc_core.train.scores` extracts.
6. ``rgbdiff``  TSN's cheapest motion baseline (Wang et al. 2016, sec. 3.2): the 3(D-1)-channel VGG16 on stacked
                differences of D consecutive RGB frames, cross-modality initialised from the spatial stream
                (docs/RGBDIFF.md).
7. ``conv_fusion`` two-stream conv fusion (Feichtenhofer et al. 2016): the trained spatial and TV-L1 VGG16s
                fused at conv5 (conv fusion, 3D conv, 3D pooling over the segments), the temporal stream kept;
                fine-tuned end to end on RGB + stored TV-L1 flow (:mod:`htsc_core.models.two_stream_fusion`).
8. ``c3d``      C3D (Tran et al. 2015): one 3D-conv net on RGB clips of ``c3d_clip_length`` frames, one clip per
                video in training, S clips at test (:mod:`htsc_core.models.c3d`).
9. ``tclsta``   TCLSTA (Peng, Zhao and Zhang 2018): spatial- and temporal-level attention and the static-motion
                collaborative model on the frozen conv5 maps of the trained spatial and TV-L1 streams
                (:mod:`htsc_core.train.tclsta`, :mod:`htsc_core.models.tclsta`; docs/TCLSTA.md).

Every stage writes ``<runs_dir>/<stage>/{config.json, log.jsonl, last.pt, best.pt, skipped.jsonl}``.
"""
from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from htsc_core.cli_args import add_config_arguments, config_from_args
from htsc_core.config import Config
from htsc_core.data.dataset import VideoDataset, eval_videos_per_batch, make_loader
from htsc_core.data.registry import load_split, test_split_sealed
from htsc_core.flow.extract import check_stored_flow
from htsc_core.models.flow_losses import MotionNetLoss
from htsc_core.models.vgg import require_pretrained
from htsc_core.models.views import as_float, in_chunks
from htsc_core.train.cln import train_cln
from htsc_core.train.tclsta import train_tclsta
from htsc_core.train.engine import (ShardSampler, Trainer, barrier, batch_plan, init_distributed, is_main_process,
                                    process_seed, rank_and_world, shutdown_distributed)
from htsc_core.utils import resolve_device
from htsc_core.train.streams import (MODALITY, build_stream, classification_loss, clip_config, consensus, correct_count,
                                     flow_root, imagenet_needed, make_optimizer, num_classes, run_dir)
from htsc_core.data.check import log_excluded
from htsc_core.data.video import clip_cache

__all__ = ["STAGES", "MODALITY", "train", "run_dir", "flow_root", "build_stream", "num_classes", "image_step",
           "motion_step", "temporal_step", "conv_fusion_step", "flow_loss", "stage_step", "stage_data_config",
           "stage_optimizer", "validation_config",
           "consensus", "correct_count", "classification_loss",
           "add_config_arguments", "config_from_args", "add_arguments", "command"]

STAGES = ("spatial", "motion", "temporal", "tvl1", "rgbdiff", "cln", "conv_fusion", "c3d", "tclsta")
# best.pt of every stage: the epoch of lowest validation loss (the stage's training objective over every validation
# video: cross-entropy, + MotionNet's losses end to end), not of highest accuracy, which on ~5 videos a class
# moves in steps of one video and ties between epochs (docs/DESIGN.md section 3; the CLN: train/cln.py; TCLSTA:
# train/tclsta.py)
SELECTION_MONITOR = "loss"


# --- step functions: (model, batch) -> (loss, stats) ------------------------------
# Validation batches (no gradient) hold the validation protocol's views as uint8 frames; their forwards go in chunks
# of at most ``views_per_forward`` views (models/views.py). Training steps are never chunked: the batch is the
# recipe's. A validation batch within one chunk runs the very forward of a float batch (the CPU profiles).
def _eval_chunks(x: torch.Tensor, views_per_forward: int) -> bool:
    """Does this forward (of the flattened views ``x``) go in chunks? Only without gradients, when above the bound."""
    return not torch.is_grad_enabled() and 0 < views_per_forward < x.shape[0]


def image_step(key: str, views_per_forward: int = 0):
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch[key]  # (B, V, C, S, S)
        flat = x.flatten(0, 1)
        chunk = views_per_forward if _eval_chunks(flat, views_per_forward) else 0
        logits = consensus(in_chunks(model, flat, chunk), x.shape[0])
        label = batch["label"]
        return classification_loss(logits, label), {"correct": correct_count(logits, label), "count": x.shape[0]}
    return step


def _chunked_loss(loss_fn: nn.Module, model: nn.Module, flat: torch.Tensor, views_per_forward: int):
    """Validation: the flow loss (a mean over views) of ``flat`` computed in chunks and recombined as the
    view-weighted mean of the chunks' losses; (total, parts, per-view outputs' logits or None)."""
    total, parts, logits, n = 0.0, {}, [], flat.shape[0]
    for i in range(0, n, views_per_forward):
        v = as_float(flat[i:i + views_per_forward])
        out = model(v)
        flows = out["flows"] if isinstance(out, dict) else out
        t, p = loss_fn(v, flows)
        w = v.shape[0] / n
        total = total + t * w
        parts = {k: parts.get(k, 0.0) + float(x) * w for k, x in p.items()}
        if isinstance(out, dict):
            logits.append(out["logits"])
    return total, parts, torch.cat(logits) if logits else None


def motion_step(loss_fn: nn.Module, views_per_forward: int = 0):
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        stack = batch["stack"].flatten(0, 1)  # (B*V, L, 3, S, S)
        if _eval_chunks(stack, views_per_forward):
            total, parts, _ = _chunked_loss(loss_fn, model, stack, views_per_forward)
        else:
            stack = as_float(stack)
            total, parts = loss_fn(stack, model(stack))
        n = batch["stack"].shape[0]
        # logged at the finest scale (flow2): Eq. 1 photometric, Eq. 2 smoothness, Eq. 4 SSIM loss
        names = {"photo2": "photometric", "smooth2": "smoothness", "ssim2": "ssim"}
        return total, {"count": n, **{names[k]: float(v) * n for k, v in parts.items() if k in names}}
    return step


def temporal_step(loss_fn: nn.Module, views_per_forward: int = 0):
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        stack = batch["stack"]  # (B, V, L, 3, S, S)
        flat = stack.flatten(0, 1)
        if _eval_chunks(flat, views_per_forward):
            flow_loss, _, per_view = _chunked_loss(loss_fn, model, flat, views_per_forward)
        else:
            flat = as_float(flat)
            out = model(flat)
            per_view = out["logits"]
            flow_loss, _ = loss_fn(flat, out["flows"])
        logits = consensus(per_view, stack.shape[0])
        ce = classification_loss(logits, batch["label"])
        n = stack.shape[0]
        stats = {"correct": correct_count(logits, batch["label"]), "count": n,
                 "ce": float(ce.detach()) * n, "flow_loss": float(flow_loss.detach()) * n}
        return ce + flow_loss, stats  # end-to-end stacking: cross-entropy + MotionNet losses
    return step


def conv_fusion_step(test_segments: int):
    """Two-stream conv fusion: cross-entropy of the fused (spatiotemporal) head + that of the temporal stream, the
    two losses of Feichtenhofer et al. 2016 (Sec. 3.5); accuracy from their averaged softmax, as tested. In
    training mode every view is a segment (one crop); in eval mode the views are ``test_segments`` x crops."""
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        rgb, label = as_float(batch["rgb"]), batch["label"]  # whole videos: it fuses a video's segments
        out = model(rgb, batch["flow"], rgb.shape[1] if model.training else test_segments)
        ce_fused = classification_loss(out["logits"], label)
        ce_temporal = classification_loss(out["logits_temporal"], label)
        n = rgb.shape[0]
        return ce_fused + ce_temporal, {"correct": correct_count(out["scores"], label), "count": n,
                                        "ce_fused": float(ce_fused.detach()) * n,
                                        "ce_temporal": float(ce_temporal.detach()) * n}
    return step


def flow_loss(stage: str, pyramid: str = Config.motion_pyramid, smooth_weight: float = Config.motion_smooth_weight,
              photometric: str = Config.motion_photometric,
              coarse_weight: float = Config.motion_coarse_weight) -> MotionNetLoss:
    """MotionNet's unsupervised loss (Eq. 1-6) for ``stage``: SSIM / 10 end to end (``temporal``); ``pyramid``:
    how each scale's frames are made (``cfg.motion_pyramid``, :class:`MotionNetLoss`); ``photometric``: Eq. 1
    or the census term beyond the paper (``cfg.motion_photometric``); ``coarse_weight``: Eq. 6's delta_s of
    scales 6..3 (``cfg.motion_coarse_weight``)."""
    return MotionNetLoss(ssim_weight_scale=0.1 if stage == "temporal" else 1.0, pyramid=pyramid,
                         smooth_weight=smooth_weight, photometric=photometric, coarse_weight=coarse_weight)


def stage_step(stage: str, cfg: Config | None = None):
    """The step function of ``stage`` (what the trainer and ``htsc bench train`` run); ``conv_fusion`` needs
    ``cfg`` (its test segments), MotionNet's loss follows ``cfg.motion_pyramid``, ``cfg.motion_smooth_weight`` and
    ``cfg.motion_photometric``."""
    if stage == "conv_fusion":
        if cfg is None:
            raise ValueError("stage_step('conv_fusion') needs the config (its test_segments)")
        return conv_fusion_step(cfg.test_segments)
    cfg = cfg if cfg is not None else Config()
    if stage in ("motion", "temporal"):
        return (motion_step if stage == "motion" else temporal_step)(
            flow_loss(stage, cfg.motion_pyramid, cfg.motion_smooth_weight, cfg.motion_photometric,
                      cfg.motion_coarse_weight), cfg.views_per_forward)
    return image_step({"spatial": "rgb", "tvl1": "flow", "rgbdiff": "rgbdiff", "c3d": "stack"}[stage],
                      cfg.views_per_forward)


def stage_data_config(cfg: Config, stage: str) -> Config:
    """MotionNet pre-training draws one stack per video and validates on the centre stack, as the release's
    MotionNet data layer (num_segments: 1, batch 16 stacks): the segments serve the classifiers' consensus."""
    if stage == "c3d":  # C3D trains on one clip per video (Tran et al. 2015), of its own length
        return clip_config(cfg, stage).replace(num_segments=1)
    return cfg.replace(num_segments=1, test_segments=1) if stage == "motion" else cfg


def validation_config(cfg: Config) -> Config:
    """The views a training stage validates on, as its config's test protocol (what test-mode items read):
    ``val_protocol`` "test" keeps S x C (the CPU profiles); "centre" takes the stage's own K training segments and
    one centre crop (the paper profile, docs/DESIGN.md section 4: 25 x 10 views of every validation video each
    epoch would cost about 8x the epoch's training, 24x for C3D; K x 1 costs a tenth of it at every stage). The
    test protocol of ``htsc evaluate`` is untouched: this config only reaches the stage's validation."""
    if cfg.val_protocol == "centre":
        return cfg.replace(test_segments=cfg.num_segments, test_crops=1)
    return cfg


# --- optimisation ----------------------------------------------------------------
def stage_optimizer(cfg: Config, stage: str, model: nn.Module) -> torch.optim.Optimizer:
    """The optimiser ``stage`` trains with (what ``htsc bench data`` times too)."""
    if stage == "motion":  # the release trains MotionNet with Adam, whatever the classifiers use
        return make_optimizer(cfg, [{"params": model.parameters(), "lr": cfg.lr_motion}], kind="adam")
    if stage == "temporal":
        groups = [{"params": model.motion.parameters(), "lr": cfg.lr_motion_e2e},  # much lower (release: 1e-6 vs 1e-3)
                  {"params": model.vgg.parameters(), "lr": cfg.lr_temporal}]
    else:
        # tvl1, conv_fusion: lr_temporal; c3d (from scratch, like the spatial stream on CPU): lr_spatial
        lr = {"spatial": cfg.lr_spatial, "rgbdiff": cfg.lr_rgbdiff, "c3d": cfg.lr_spatial}.get(stage, cfg.lr_temporal)
        groups = [{"params": model.parameters(), "lr": lr}]
    return make_optimizer(cfg, groups)  # cfg.optimizer: SGD (two-stream / TSN practice) or AdamW


def _loader(cfg: Config, dataset, epoch: int, shuffle: bool) -> DataLoader:
    """This process's loader. Training (``shuffle``): its share of each global batch (``batch_size`` / world size,
    the engine accumulating micro-batches of at most ``micro_batch``), the same permutation on every rank (the
    sampler's seed) and the rank's own draws (crops, offsets, worker seeds: :func:`~htsc_core.train.engine.
    process_seed`); validation: :func:`eval_videos_per_batch`."""
    rank, world = rank_and_world()
    plan = batch_plan(cfg.batch_size, cfg.micro_batch, world)
    if world > 1 and shuffle:  # training: every rank the same number of steps (padded with repeats)
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                     drop_last=False)
        sampler.set_epoch(epoch)
    elif world > 1:  # validation: every video on exactly one rank, the sums all-reduced (engine.py)
        sampler = ShardSampler(len(dataset), rank, world)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
    else:
        sampler = None
    size = plan["per_process_batch"] if shuffle else eval_videos_per_batch(cfg, dataset.num_views)
    return make_loader(dataset, cfg, shuffle=False, sampler=sampler, seed=process_seed(cfg.seed, epoch, rank),
                       batch_size=size)


_optimizer = stage_optimizer  # the earlier private name


def motion_lr_factor(epoch: int, epochs: int) -> float:
    """MotionNet's learning-rate multiplier: 1 for the first 60 % of the epochs, then 0.3, then 0.1 from 85 %.

    A step schedule (constant, then lowered twice, never to zero): the cosine-to-zero of the classification
    stages had annealed MotionNet's rate away before the flow was learned (issue 9).
    """
    frac = epoch / max(epochs, 1)
    return 1.0 if frac < 0.6 else (0.3 if frac < 0.85 else 0.1)


def train(cfg: Config, stage: str, resume: bool = True, device: str | None = None) -> Path:
    """Train one stage; returns its run directory. The test split is sealed meanwhile (data/registry.py)."""
    if imagenet_needed(cfg, stage):  # before any data is read: no silent from-scratch start (issue 25)
        require_pretrained(cfg)
    # under torchrun: the process group before any loader, so that validation loaders (and the CLN's feature
    # extraction) are sharded from the first stage on, not only once the Trainer starts
    init_distributed(resolve_device(device or cfg.device))
    with test_split_sealed(f"training of the {stage!r} stage"):
        out = _train(cfg, stage, resume, device)
    barrier()  # under torchrun: rank 0's log and checkpoints are on disk before any rank reads them
    return out


def _train(cfg: Config, stage: str, resume: bool, device: str | None) -> Path:
    if stage == "cln":
        return train_cln(cfg, resume=resume, device=device)
    if stage == "tclsta":  # heads on the frozen spatial / TV-L1 streams' cached conv5 maps (docs/TCLSTA.md)
        return train_tclsta(cfg, resume=resume, device=device)
    out = run_dir(cfg, stage)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train_records, _ = load_split(cfg, "train")
    val_records, _ = load_split(cfg, "val")
    if is_main_process():  # the videos the dataset screen left out, beside those that fail while loading
        log_excluded(cfg, out / "skipped.jsonl")
    uses_flow = "flow" in MODALITY[stage]  # tvl1, conv_fusion: stored TV-L1 JPEGs
    if uses_flow:  # flow made for this run's frame size and TV-L1 preset, else stop here, naming the command
        check_stored_flow(cfg, train_records + val_records, flow_root(cfg))
    kw = dict(modalities=MODALITY[stage], skip_log=out / "skipped.jsonl",
              flow_root=flow_root(cfg) if uses_flow else None)
    data_cfg = validation_config(stage_data_config(cfg, stage))
    cache = nullcontext()
    if cfg.clip_cache_mb and stage != "tvl1":  # tvl1 reads stored JPEG flow only, not clips
        # clips are decoded once and kept (about 85 MB for the default synthetic set's training and validation
        # videos) in the main process, instead of once per epoch in a worker (docs/SYNTHETIC.md section 6);
        # only while this stage trains
        cache = clip_cache(cfg.clip_cache_mb << 20)
        data_cfg = data_cfg.replace(num_workers=0)
    train_set = VideoDataset(train_records, data_cfg, mode="train", **kw)
    val_set = VideoDataset(val_records, data_cfg, mode="test", uint8_frames=True, **kw) if val_records else None
    model = build_stream(cfg, stage, num_classes(cfg))
    step = stage_step(stage, data_cfg)
    epochs = getattr(cfg, f"epochs_{stage}")
    optimizer = stage_optimizer(cfg, stage, model)
    if stage == "motion":  # MotionNet: hold the rate while it learns, then step down (never to zero)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: motion_lr_factor(e, epochs))
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    trainer = Trainer(out, stage, model, optimizer, step, lambda e: _loader(data_cfg, train_set, e, True), epochs,
                      seed=cfg.seed, device=device or cfg.device, amp=cfg.amp,
                      val_loader=_loader(data_cfg, val_set, 0, False) if val_set is not None else None,
                      monitor=SELECTION_MONITOR,
                      max_steps_per_epoch=cfg.max_steps_per_epoch, config=cfg.to_dict(), scheduler=scheduler)
    with cache:
        trainer.fit(resume=resume)
    return out


# --- CLI ---------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if last.pt exists")
    add_config_arguments(p)


def command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = train(cfg, args.stage, resume=not args.no_resume)
    shutdown_distributed()
    print(f"{args.stage}: run written to {out}")
    return 0
