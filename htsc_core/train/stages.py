"""The training stages of DESIGN.md section 3, each a thin recipe over the one Trainer.

1. ``spatial``  VGG16 on one RGB frame per segment, TSN consensus (average) over K segments (sec. 3.1.1).
2. ``motion``   MotionNet, unsupervised: the multi-scale losses of Eq. 1-6 only (sec. 3.1.2).
3. ``temporal`` MotionNet -> flow normalisation -> 20-channel VGG16, end to end with
                cross-entropy + the flow losses, MotionNet at a much lower learning rate.
4. ``tvl1``     the classic two-stream baseline: the 20-channel VGG16 on stored TV-L1 flow.
5. ``cln``      the collaborative learning network on the two streams' fc7 features (sec. 3.2);
                see :mod:`htsc_core.evaluate` for the feature extraction it trains on.

Every stage writes ``<runs_dir>/<stage>/{config.json, log.jsonl, last.pt, best.pt, skipped.jsonl}``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from htsc_core.config import Config, from_params
from htsc_core.train.engine import Trainer, is_distributed, load_checkpoint, load_state

STAGES = ("spatial", "motion", "temporal", "tvl1", "cln")
MODALITY = {"spatial": ("rgb",), "motion": ("stack",), "temporal": ("stack",), "tvl1": ("flow",)}


def run_dir(cfg: Config, stage: str) -> Path:
    return Path(cfg.runs_dir) / stage


def flow_root(cfg: Config) -> Path:
    """Where ``htsc flow extract`` stores TV-L1 JPEGs for this dataset."""
    return Path(cfg.data_root) / "flow_tvl1"


# --- losses shared by the classification stages -----------------------------------
def classification_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; binary cross-entropy for multi-hot labels (THUMOS14 validation)."""
    if label.dim() == 2:
        return F.binary_cross_entropy_with_logits(logits.float(), label.float())
    return F.cross_entropy(logits.float(), label)


def correct_count(logits: torch.Tensor, label: torch.Tensor) -> float:
    pred = logits.argmax(1)
    if label.dim() == 2:  # multi-label: top-1 is correct when it is one of the labels
        return float(label.gather(1, pred[:, None]).gt(0).sum())
    return float((pred == label).sum())


def consensus(per_view: torch.Tensor, batch: int) -> torch.Tensor:
    """TSN segmental consensus: the average of the K segment scores (Wang et al. 2016)."""
    return per_view.view(batch, -1, per_view.shape[-1]).mean(1)


# --- step functions: (model, batch) -> (loss, stats) ------------------------------
def image_step(key: str):
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch[key]  # (B, V, C, S, S)
        logits = consensus(model(x.flatten(0, 1)), x.shape[0])
        label = batch["label"]
        return classification_loss(logits, label), {"correct": correct_count(logits, label), "count": x.shape[0]}
    return step


def motion_step(loss_fn: nn.Module):
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        stack = batch["stack"].flatten(0, 1)  # (B*V, L, 3, S, S)
        total, parts = loss_fn(stack, model(stack))
        n = batch["stack"].shape[0]
        # logged at the finest scale (flow2): Eq. 1 photometric, Eq. 2 smoothness, Eq. 4 SSIM loss
        names = {"photo2": "photometric", "smooth2": "smoothness", "ssim2": "ssim"}
        return total, {"count": n, **{names[k]: float(v) * n for k, v in parts.items() if k in names}}
    return step


def temporal_step(loss_fn: nn.Module):
    def step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        stack = batch["stack"]  # (B, V, L, 3, S, S)
        out = model(stack.flatten(0, 1))
        logits = consensus(out["logits"], stack.shape[0])
        ce = classification_loss(logits, batch["label"])
        flow_loss, _ = loss_fn(stack.flatten(0, 1), out["flows"])
        n = stack.shape[0]
        stats = {"correct": correct_count(logits, batch["label"]), "count": n,
                 "ce": float(ce.detach()) * n, "flow_loss": float(flow_loss.detach()) * n}
        return ce + flow_loss, stats  # end-to-end stacking: cross-entropy + MotionNet losses
    return step


# --- model builders ------------------------------------------------------------------
def num_classes(cfg: Config) -> int:
    from htsc_core.data.registry import load_split

    return len(load_split(cfg, "test")[1])


def build_stream(cfg: Config, stage: str, n_classes: int, load_trained: bool = False) -> nn.Module:
    """Build the network of ``stage``; with ``load_trained`` load its ``best.pt``."""
    from htsc_core.models.motionnet import build_motionnet
    from htsc_core.models.temporal import HiddenTemporalStream
    from htsc_core.models.vgg import build_vgg16, cross_modality_init

    if stage == "spatial":
        model = build_vgg16(cfg, n_classes, 3)
    elif stage == "motion":
        model = build_motionnet(cfg)
    elif stage in ("temporal", "tvl1"):
        vgg = build_vgg16(cfg, n_classes, 2 * cfg.num_flows)
        spatial_ckpt = run_dir(cfg, "spatial") / "best.pt"
        if not load_trained and spatial_ckpt.exists():  # cross-modality init (DESIGN.md, TSN)
            rgb = build_stream(cfg, "spatial", n_classes, load_trained=True)
            cross_modality_init(vgg, rgb)
        if stage == "tvl1":
            model = vgg
        else:
            motion = build_motionnet(cfg)
            if not load_trained:  # stage 3 starts from the unsupervised MotionNet of stage 2
                path = run_dir(cfg, "motion") / "best.pt"
                load_state(motion, load_checkpoint(path, stage="motion"), path)
            model = HiddenTemporalStream(motion, vgg)
    else:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES[:-1]}")
    if load_trained:
        path = run_dir(cfg, stage) / "best.pt"
        load_state(model, load_checkpoint(path, stage=stage), path)
    return model


def _optimizer(cfg: Config, stage: str, model: nn.Module) -> torch.optim.Optimizer:
    if stage == "motion":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr_motion)  # the release trains MotionNet with Adam
    if stage == "temporal":
        groups = [{"params": model.motion.parameters(), "lr": cfg.lr_motion_e2e},  # much lower (release: 1e-6 vs 1e-3)
                  {"params": model.vgg.parameters(), "lr": cfg.lr_temporal}]
    else:
        groups = [{"params": model.parameters(), "lr": cfg.lr_spatial if stage == "spatial" else cfg.lr_temporal}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, weight_decay=cfg.weight_decay)  # two-stream / TSN practice
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _loader(cfg: Config, dataset, epoch: int, shuffle: bool) -> DataLoader:
    from htsc_core.data.dataset import make_loader

    if is_distributed():
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=cfg.seed, drop_last=False)
        sampler.set_epoch(epoch)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
    else:
        sampler = None
    return make_loader(dataset, cfg, shuffle=False, sampler=sampler, seed=cfg.seed * 1000 + epoch)


def train(cfg: Config, stage: str, resume: bool = True, device: str | None = None) -> Path:
    """Train one stage; returns its run directory."""
    if stage == "cln":
        from htsc_core.evaluate import train_cln

        return train_cln(cfg, resume=resume, device=device)
    from htsc_core.data.dataset import VideoDataset
    from htsc_core.data.registry import load_split
    from htsc_core.models.flow_losses import MotionNetLoss

    out = run_dir(cfg, stage)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train_records, classes = load_split(cfg, "train")
    val_records, _ = load_split(cfg, "val")
    kw = dict(modalities=MODALITY[stage], skip_log=out / "skipped.jsonl",
              flow_root=flow_root(cfg) if stage == "tvl1" else None)
    train_set = VideoDataset(train_records, cfg, mode="train", **kw)
    val_set = VideoDataset(val_records, cfg, mode="test", **kw) if val_records else None
    model = build_stream(cfg, stage, len(classes))
    step = {"spatial": image_step("rgb"), "tvl1": image_step("flow"),
            "motion": motion_step(MotionNetLoss()),
            "temporal": temporal_step(MotionNetLoss(ssim_weight_scale=0.1))}[stage]  # SSIM / 10 end to end
    epochs = getattr(cfg, f"epochs_{stage}")
    optimizer = _optimizer(cfg, stage, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    trainer = Trainer(out, stage, model, optimizer, step, lambda e: _loader(cfg, train_set, e, True), epochs,
                      seed=cfg.seed, device=device or cfg.device, amp=cfg.amp,
                      val_loader=_loader(cfg, val_set, 0, False) if val_set is not None else None,
                      monitor="loss" if stage == "motion" else "accuracy",
                      max_steps_per_epoch=cfg.max_steps_per_epoch, config=cfg.to_dict(), scheduler=scheduler)
    trainer.fit(resume=resume)
    return out


# --- CLI ---------------------------------------------------------------------------
def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="a saved config.json to start from")
    p.add_argument("--profile", choices=("smoke", "default", "paper"))
    p.add_argument("--dataset", choices=("synthetic", "ucf101", "hmdb51", "thumos14"))
    p.add_argument("--data-root")
    p.add_argument("--runs-dir")
    p.add_argument("--device")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field (repeatable), e.g. --set epochs_spatial=2")


def config_from_args(args: argparse.Namespace) -> Config:
    import json

    params: dict = json.loads(args.config.read_text()) if args.config else {}
    for key in ("profile", "dataset", "data_root", "runs_dir", "device", "seed"):
        if getattr(args, key, None) is not None:
            params[key] = getattr(args, key)
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return from_params(params)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if last.pt exists")
    add_config_arguments(p)


def command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from htsc_core.train.engine import shutdown_distributed

    out = train(cfg, args.stage, resume=not args.no_resume)
    shutdown_distributed()
    print(f"{args.stage}: run written to {out}")
    return 0
