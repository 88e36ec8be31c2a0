"""The networks of each training stage, where their runs live, and the policies every stage shares.

One place for: the input modality of each stream (:data:`MODALITY`), the run directory of a
stage, the class count of a dataset (:func:`num_classes`), the classification loss
(:func:`htsc_core.models.losses.classification_loss`), TSN consensus, and what "adam" means
(:func:`make_optimizer`). :mod:`htsc_core.train.stages` (training), :mod:`htsc_core.train.cln`
(the CLN stage) and :mod:`htsc_core.train.scores` (testing) build on it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from htsc_core.config import Config
from htsc_core.data.registry import load_split
from htsc_core.models.losses import classification_loss
from htsc_core.models.c3d import C3D
from htsc_core.models.motionnet import build_motionnet
from htsc_core.models.temporal import HiddenTemporalStream
from htsc_core.models.two_stream_fusion import TwoStreamConvFusion
from htsc_core.models.vgg import build_vgg16, cross_modality_init
from htsc_core.train.engine import load_checkpoint, load_state

__all__ = ["MODALITY", "STREAM_STAGES", "NOMINAL_CLASSES", "clip_config", "run_dir", "flow_root", "num_classes",
           "classification_loss", "correct_count", "consensus", "build_stream", "imagenet_needed", "make_optimizer"]

# stages that train a network on video; conv_fusion: two-stream conv fusion (Feichtenhofer et al. 2016)
# c3d: C3D (Tran et al. 2015) on RGB clips of cfg.c3d_clip_length frames (the "stack" modality, :func:`clip_config`)
STREAM_STAGES = ("spatial", "motion", "temporal", "tvl1", "rgbdiff", "conv_fusion", "c3d")
MODALITY = {"spatial": ("rgb",), "motion": ("stack",), "temporal": ("stack",), "tvl1": ("flow",),
            "rgbdiff": ("rgbdiff",), "conv_fusion": ("rgb", "flow"), "c3d": ("stack",)}
# Class counts of the real datasets, for timing without the data (htsc bench table5).
NOMINAL_CLASSES = {"ucf101": 101, "hmdb51": 51, "thumos14": 101}


def clip_config(cfg: Config, stage: str) -> Config:
    """The config the data of ``stage`` is read with: C3D's clips are "stacks" of ``c3d_clip_length`` frames,
    cropped to ``c3d_image_size`` from frames decoded at ``c3d_frame_size`` (0: the config's own sizes)."""
    if stage != "c3d":
        return cfg
    return cfg.replace(stack_length=cfg.c3d_clip_length, image_size=cfg.c3d_image_size or cfg.image_size,
                       frame_size=cfg.c3d_frame_size or cfg.frame_size)


def run_dir(cfg: Config, stage: str) -> Path:
    return Path(cfg.runs_dir) / stage


def flow_root(cfg: Config) -> Path:
    """Where the two-stream temporal CNN reads its flow JPEGs: ``DATA_ROOT/<cfg.flow_dir>`` (``htsc flow extract``
    writes TV-L1's to ``flow_tvl1``, the default)."""
    return Path(cfg.data_root) / cfg.flow_dir


def num_classes(cfg: Config, from_data: bool = True) -> int:
    """M, the number of classes: from the dataset's class list (``from_data``), else the nominal count
    (101 / 51 / 101, or 3 families x ``synth_classes_per_family`` for the synthetic set)."""
    if from_data:
        return len(load_split(cfg, "train")[1])  # every subset lists the same classes; "test" is sealed in training
    return NOMINAL_CLASSES.get(cfg.dataset, 3 * cfg.synth_classes_per_family)


def correct_count(logits: torch.Tensor, label: torch.Tensor) -> float:
    pred = logits.argmax(1)
    if label.dim() == 2:  # multi-label: top-1 is correct when it is one of the labels
        return float(label.gather(1, pred[:, None]).gt(0).sum())
    return float((pred == label).sum())


def consensus(per_view: torch.Tensor, batch: int) -> torch.Tensor:
    """TSN segmental consensus: the average of the K segment scores (Wang et al. 2016)."""
    return per_view.view(batch, -1, per_view.shape[-1]).mean(1)


def imagenet_needed(cfg: Config, stage: str, load_trained: bool = False) -> bool:
    """Does building ``stage`` fresh load ImageNet VGG16 weights? Only with ``cfg.pretrained``, for a VGG16
    stage whose weights nothing else will replace: not a trained stream (``load_trained``), and not a flow or
    RGB-difference stream that is cross-modality initialised from a trained spatial stream (every tensor
    of which replaces ImageNet's)."""
    if not cfg.pretrained or load_trained or stage not in ("spatial", "temporal", "tvl1", "rgbdiff"):
        return False
    return stage == "spatial" or not (run_dir(cfg, "spatial") / "best.pt").exists()


def build_stream(cfg: Config, stage: str, n_classes: int, load_trained: bool = False) -> nn.Module:
    """Build the network of ``stage``; with ``load_trained`` load its ``best.pt``.

    ImageNet weights are required where :func:`imagenet_needed` says so (``MissingPretrainedWeights`` when
    they are absent); never silently replaced by a from-scratch start."""
    imagenet = imagenet_needed(cfg, stage, load_trained)
    if stage == "spatial":
        model = build_vgg16(cfg, n_classes, 3, imagenet=imagenet)
    elif stage == "motion":
        model = build_motionnet(cfg)
    elif stage in ("temporal", "tvl1", "rgbdiff"):
        # flow streams: 2(L-1) channels; TSN RGB difference: 3(D-1) channels (docs/RGBDIFF.md)
        channels = 3 * (cfg.rgbdiff_length - 1) if stage == "rgbdiff" else 2 * cfg.num_flows
        vgg = build_vgg16(cfg, n_classes, channels, imagenet=imagenet)
        spatial_ckpt = run_dir(cfg, "spatial") / "best.pt"
        if not load_trained and spatial_ckpt.exists():  # cross-modality init (docs/DESIGN.md section 2, TSN)
            rgb = build_stream(cfg, "spatial", n_classes, load_trained=True)
            cross_modality_init(vgg, rgb)
        if stage in ("tvl1", "rgbdiff"):
            model = vgg
        else:
            motion = build_motionnet(cfg)
            if not load_trained:  # stage 3 starts from the unsupervised MotionNet of stage 2
                path = run_dir(cfg, "motion") / "best.pt"
                load_state(motion, load_checkpoint(path, stage="motion"), path)
            model = HiddenTemporalStream(motion, vgg)
    elif stage == "c3d":  # one net on RGB clips, trained from scratch (Tran et al. 2015; docs/DESIGN.md)
        model = C3D(n_classes, cfg.vgg_width, cfg.vgg_batch_norm, cfg.dropout_c3d)
    elif stage == "conv_fusion":
        # Feichtenhofer et al. 2016 fine-tune fusion from trained two-stream networks: ours starts from the trained
        # spatial and TV-L1 streams (their best.pt; missing ones raise, saying which stage to train first)
        spatial = build_vgg16(cfg, n_classes, 3, imagenet=False)
        temporal = build_vgg16(cfg, n_classes, 2 * cfg.num_flows, imagenet=False)
        if not load_trained:
            for name, net in (("spatial", spatial), ("tvl1", temporal)):
                path = run_dir(cfg, name) / "best.pt"
                load_state(net, load_checkpoint(path, stage=name), path)
        model = TwoStreamConvFusion(spatial, temporal)
    else:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STREAM_STAGES}")
    if load_trained:
        path = run_dir(cfg, stage) / "best.pt"
        load_state(model, load_checkpoint(path, stage=stage), path)
    return model


def make_optimizer(cfg: Config, params, kind: str | None = None) -> torch.optim.Optimizer:
    """The optimizer of every stage; ``kind`` defaults to ``cfg.optimizer``.

    "adam" means AdamW, Adam with decoupled weight decay ``cfg.weight_decay``, everywhere (the
    classification stages, MotionNet, the CLN); "sgd" is SGD with momentum 0.9 and L2 weight
    decay ``cfg.weight_decay`` (two-stream / TSN practice). ``params`` is an iterable of
    parameters or of param groups with their own ``lr``.
    """
    kind = cfg.optimizer if kind is None else kind
    if kind == "sgd":
        return torch.optim.SGD(params, momentum=0.9, weight_decay=cfg.weight_decay)
    if kind == "adam":  # fused: one kernel for all parameters (CPU and CUDA); 6x faster than the per-tensor
        # loop on MotionNet's 50 tensors (1 vs 6 ms per step on 2 cores), same update
        return torch.optim.AdamW(params, weight_decay=cfg.weight_decay, fused=True)
    raise ValueError(f"optimizer {kind!r}; expected 'sgd' or 'adam'")
