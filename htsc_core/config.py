"""One frozen configuration object for every stage (docs/DESIGN.md section 6).

Built from a flat dict of papermill-style parameters: the profile
(``smoke`` | ``default`` | ``paper``) supplies every default, explicit
parameters override it, unknown keys raise and list the valid ones, and the
resolved config is saved as JSON beside every run.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from collections.abc import Mapping

DATASETS = ("synthetic", "ucf101", "hmdb51", "thumos14")
PROFILES = ("smoke", "default", "paper")
TVL1_PRESETS = ("auto", "denseflow", "fast", "minimal")  # flow/estimators.TVL1_PRESET_PARAMS


@dataclass(frozen=True)
class Config:
    # --- what and where -------------------------------------------------
    dataset: str = "synthetic"  # one of DATASETS
    data_root: str = "data/synthetic-default"  # dataset root (UCF101 layout for synthetic)
    split: int = 1  # official split 1..3 (UCF101/HMDB51); synthetic has one
    profile: str = "default"  # one of PROFILES; supplies the defaults below
    seed: int = 0  # every RNG (python, numpy, torch, sampling) derives from it
    device: str = "auto"  # "auto" -> cuda if available else cpu
    results_dir: str = "results/synthetic"  # executed notebooks, metrics, tables, figures
    runs_dir: str = "runs/synthetic"  # checkpoints and logs (not committed)

    # --- synthetic set (docs/DESIGN.md section 5) -----------------------------
    synth_size: int = 64  # frame side of generated videos (px) = image_size: motion sizes hold at the input
    synth_frames: int = 24  # frames per video: >= 3 x stack_length, so training and test segments differ
    synth_classes_per_family: int = 4  # appearance / motion / cue families
    synth_train_per_class: int = 24  # training videos per class (~20 % of the groups go to "val")
    synth_test_per_class: int = 30  # test videos per class: 360 resolve a 3-4 point difference (docs/SYNTHETIC.md)

    # --- sampling (TSN, Wang et al. 2016) --------------------------------
    frame_size: int = 64  # decoded frames are resized so the short side is this (0 = native)
    image_size: int = 64  # network input side after cropping (multiple of 32 for MotionNet)
    num_segments: int = 3  # K segments per video at training time
    test_segments: int = 5  # S segments per video at test time (paper protocol: 25)
    test_crops: int = 1  # 1 (centre), 5, or 10 (5 crops + flips)
    stack_length: int = 6  # L frames per stack -> L-1 flow fields; paper L = 11 (Tab. 2); 6 on CPU (docs/SYNTHETIC.md)
    rgbdiff_length: int = 5  # D frames per RGB-difference window -> D-1 differences, 3(D-1) channels (TSN: 5 -> 12)
    # validation protocol of the training stages (docs/DESIGN.md section 4): "test" = the test protocol (S x C
    # views, the CPU profiles); "centre" = each stage's K training segments, one centre crop (the paper profile:
    # 250 views a video every epoch would cost 8x the epoch's training); the test protocol stays S x C
    val_protocol: str = "test"
    # at most this many views per forward in scoring and validation (models/views.py): a batch of the test protocol
    # takes fewer videos, and one video's views go through in chunks, so memory does not grow with batch x views;
    # the CPU profiles' batch x views stay below it (their forwards unchanged)
    views_per_forward: int = 256

    # --- networks --------------------------------------------------------
    vgg_width: float = 0.25  # VGG16 channel multiplier (1.0 = Tab. 1); 1/8 learned too slowly (measured)
    vgg_batch_norm: bool = True  # BN makes from-scratch CPU training stable; paper VGG16 has none
    motion_width: float = 0.25  # MotionNet channel multiplier (1.0 = Tab. 2)
    motion_smooth_weight: float = 1.0  # Eq. 5's weight of the smoothness loss (release: 1; issue 24 trial)
    # Eq. 6's delta_s for the coarse scales s = 6..3 (delta_2 = 1): the release's 1 everywhere; issue 24's trial of a
    # lower weight where the coarse losses reward a wrong flow on the moving object (docs/SYNTHETIC.md section 7)
    motion_coarse_weight: float = 1.0
    # frames of each loss scale: "release" = the release's Downsample layer (tent filter; chosen on validation,
    # docs/SYNTHETIC.md section 7), "area" = 2x2 means (our first reading, kept for comparison)
    motion_pyramid: str = "release"
    # Eq. 1's photometric term: "charbonnier" (the paper's), or "census" (beyond the paper: issue 24's labelled
    # motionnet_beyond trial, models/census.py; never the study's MotionNet)
    motion_photometric: str = "charbonnier"
    # dropout per module (docs/DESIGN.md section 3, "Dropout per module", each with its source); the CPU profiles
    # keep one value for every module (0.2 here, 0.5 smoke): 0.5 stalled from-scratch CPU runs of the VGG16s
    dropout: float = 0.2  # the two-stream VGG16s' fc6/fc7 (spatial, temporal, TV-L1, RGB difference, conv fusion)
    dropout_c3d: float = 0.2  # C3D's fc6/fc7 (Tran et al. 2015: 0.5)
    dropout_cln: float = 0.2  # the CLN's pooled V^s, V^o before its heads (HTSC gives none; TCLSTA's release: 0.5)
    dropout_tclsta: float = 0.2  # TCLSTA's heads and collaborative model (its release: 0.5 before the classifier)
    pretrained: bool = False  # ImageNet VGG16 weights from the hub cache; they exist only for width 1.0, so the
    # CPU profiles train from scratch and only the paper profile asks for them; absent -> the run stops before
    # training (models/vgg.MissingPretrainedWeights), never a silent from-scratch run
    cln_hidden: int = 64  # k, rows of H^s/H^o in Eq. 7
    cln_rounds: int = 2  # alternations of the two attention updates (section 3.2.2 step 7)
    # TCLSTA (Peng et al. 2018; docs/TCLSTA.md): its heads on the frozen spatial / TV-L1 streams' conv5 maps
    tclsta_attention: int = 64  # channels of the spatial-level attention's 3x3 conv (release: 1024 on ResNet-50)
    tclsta_lstm: int = 64  # hidden units of the temporal-level attention's LSTM (release: 512)

    # --- optimisation ----------------------------------------------------
    optimizer: str = "adam"  # "sgd" (momentum 0.9: two-stream/TSN practice, paper profile) or "adam" (= AdamW,
    # decoupled weight_decay, as everywhere: train/streams.make_optimizer; MotionNet and the CLN always use it)
    # (CPU profiles: from-scratch VGG16 barely learned with SGD in their epoch budget; measured)
    # the global batch: videos per optimiser step at any world size (docs/DESIGN.md section 6); under torchrun each
    # of W processes takes batch_size / W (train/distributed.batch_plan); the CLN's and TCLSTA's feature batches too
    batch_size: int = 16
    micro_batch: int = 0  # most videos one device forwards at once; a larger share is accumulated (0 = no limit)
    num_workers: int = 1  # decoding is cheap at 64 px; more workers oversubscribe 2 cores
    clip_cache_mb: int = 1024  # decode each training clip once and keep it (main process) up to this many MB;
    # short CPU-profile clips made decoding bound the MotionNet epochs (docs/SYNTHETIC.md); 0 = off
    # the default profile's epochs, each read on validation loss in tables/schedules.csv (docs/SYNTHETIC.md 10)
    epochs_spatial: int = 20  # validation loss flat from epoch 11
    epochs_motion: int = 250  # x 15 steps of 16 stacks = 3750 Adam steps; validation loss still falls (SYNTHETIC 7)
    epochs_temporal: int = 30  # validation loss lowest at epoch 21, flat after
    epochs_tvl1: int = 30  # validation loss still falling at epoch 30
    epochs_rgbdiff: int = 15  # TSN RGB-difference stream (docs/RGBDIFF.md), initialised from the trained spatial one
    epochs_cln: int = 30  # validation loss lowest at epoch 3 (best.pt keeps it): the CLN overfits at once
    epochs_c3d: int = 20  # C3D (Tran et al. 2015) from scratch on RGB clips (docs/DESIGN.md), at lr_spatial
    c3d_clip_length: int = 16  # frames per C3D clip (Tran et al. 2015: 16)
    c3d_image_size: int = 0  # C3D's crop side (Tran et al. 2015: 112 px); 0 = image_size (the CPU profiles)
    c3d_frame_size: int = 0  # C3D's decoded short side (Tran et al.: frames of 128 x 171); 0 = frame_size
    epochs_conv_fusion: int = 10  # two-stream conv fusion (docs/DESIGN.md): fine-tunes trained spatial + TV-L1 streams
    epochs_tclsta: int = 30  # TCLSTA's heads on cached conv5 maps (docs/TCLSTA.md); best.pt on validation loss
    lr_spatial: float = 3e-4
    lr_motion: float = 1e-3  # Adam, unsupervised MotionNet pre-training
    lr_temporal: float = 3e-4
    lr_rgbdiff: float = 3e-4  # as lr_temporal (a 12-channel VGG16 cross-modality initialised from the spatial one)
    lr_motion_e2e: float = 1e-5  # MotionNet during end-to-end stacking, 30x lower (release: 1e-6 vs 1e-3)
    lr_cln: float = 1e-3
    lr_tclsta: float = 1e-3  # Adam, as the CLN (both train on cached features)
    weight_decay: float = 5e-4
    max_steps_per_epoch: int = 0  # 0 = full epoch; >0 caps training steps per epoch (smoke profile, dry runs)
    # dry-run caps (docs/DESIGN.md section 6, "A paper-profile dry run"): 0 = every video. They bound what
    # max_steps_per_epoch does not: validation, test scoring, CLN features, flow extraction and evaluation
    max_eval_videos: int = 0  # >0: at most this many videos of "val" and of "test" (spread over the listing)
    max_train_videos: int = 0  # >0: at most this many "train" videos (bounds TV-L1 extraction, CLN features)
    # the folder under data_root the two-stream temporal CNN (stage tvl1) reads its flow JPEGs from: `htsc flow
    # extract` writes TV-L1's to flow_tvl1; `--method motionnet|truth --out DATA_ROOT/flow_<name>` writes another
    # estimator's there in the same format (issue 24's flow swap, docs/SYNTHETIC.md section 7)
    flow_dir: str = "flow_tvl1"
    tvl1_preset: str = "auto"  # TV-L1 parameters (flow/estimators.py): "auto" = "fast" for extraction on the CPU
    # profiles and OpenCV's (denseflow's) defaults elsewhere; a named preset applies to every TV-L1 run (extraction,
    # flow evaluation, Table 5); "minimal" (1 scale, 1 warp) proves storage and shapes only: dry runs
    # notebook 02's flow evaluation: at most this many frame pairs over its sampled test videos (0 = every pair;
    # the paper profile: TV-L1 at OpenCV's defaults on 256-px UCF101 frames would take hours for every pair)
    flow_eval_pairs: int = 0
    bench_repeats: int = 0  # Table 5 timing repeats of every pipeline; 0 = stats.MIN_TIMINGS (5), the fewest a
    # timing claim takes; > 0 (a dry run): exactly this many, and no HTS / HTSC rounds beyond them (bench/table5.py)
    # Table 5's HTS / HTSC rounds in all, interleaved (fixed: the benchmark's time is chosen, the interval of HTSC /
    # HTS is what they give); 0 = 20 (smoke 10); at 224 px a round of the two is about 3 s in bf16 on 2 cores
    bench_ratio_rounds: int = 0
    awl_c: float = 5e-3  # Eq. 10/13, c = 5e-3
    amp: str = "auto"  # "auto": bf16 autocast where native (CUDA; CPU with AVX512-BF16/AMX), "bf16", "off" = fp32

    # ---------------------------------------------------------------------
    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset={self.dataset!r}; expected one of {DATASETS}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile={self.profile!r}; expected one of {PROFILES}")
        # MotionNet downsamples by 32. A C3D clip config (train/streams.clip_config) carries C3D's own crop side
        # as image_size (112 px in the paper profile): no MotionNet reads it.
        c3d_clip = self.c3d_image_size == self.image_size and self.stack_length == self.c3d_clip_length
        if self.image_size % 32 and not c3d_clip:
            raise ValueError(f"image_size={self.image_size} must be a multiple of 32 (MotionNet downsamples by 32)")
        if self.c3d_image_size and self.c3d_image_size < 16:
            raise ValueError(f"c3d_image_size={self.c3d_image_size} is below 16 px (C3D's four 2x2 pools)")
        c3d_frame = self.c3d_frame_size or self.frame_size
        if c3d_frame and c3d_frame < (self.c3d_image_size or self.image_size):
            raise ValueError(f"c3d_frame_size={c3d_frame} is smaller than c3d_image_size="
                             f"{self.c3d_image_size or self.image_size}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer={self.optimizer!r}; expected 'sgd' or 'adam'")
        if self.tvl1_preset not in TVL1_PRESETS:
            raise ValueError(f"tvl1_preset={self.tvl1_preset!r}; expected one of {TVL1_PRESETS}")
        if self.test_crops not in (1, 5, 10):
            raise ValueError(f"test_crops={self.test_crops}; expected 1, 5 or 10")
        if self.stack_length < 2:
            raise ValueError("stack_length must be >= 2 (at least one frame pair)")
        if self.c3d_clip_length < 2:  # read as a "stack" (train/streams.clip_config), which needs >= 2 frames
            raise ValueError(f"c3d_clip_length={self.c3d_clip_length} must be >= 2")
        if self.motion_photometric not in ("charbonnier", "census"):
            raise ValueError(f"motion_photometric={self.motion_photometric!r}; expected 'charbonnier' or 'census'")
        if not self.flow_dir or "/" in self.flow_dir or self.flow_dir in (".", ".."):
            raise ValueError(f"flow_dir={self.flow_dir!r}; expected a folder name under data_root (e.g. flow_tvl1)")
        if not self.motion_coarse_weight >= 0:
            raise ValueError(f"motion_coarse_weight={self.motion_coarse_weight}; expected >= 0")
        if self.motion_pyramid not in ("area", "release"):
            raise ValueError(f"motion_pyramid={self.motion_pyramid!r}; expected 'area' or 'release'")
        if self.tclsta_attention < 1 or self.tclsta_lstm < 1:
            raise ValueError(f"tclsta_attention={self.tclsta_attention}, tclsta_lstm={self.tclsta_lstm}; expected >= 1")
        if self.rgbdiff_length < 2:
            raise ValueError(f"rgbdiff_length={self.rgbdiff_length} must be >= 2 (at least one frame difference)")
        if isinstance(self.amp, bool):  # configs saved before amp was a mode: true/false
            object.__setattr__(self, "amp", "auto" if self.amp else "off")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp={self.amp!r}; expected 'auto', 'bf16' or 'off' (or true/false)")
        for key in ("dropout", "dropout_c3d", "dropout_cln", "dropout_tclsta"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"{key}={getattr(self, key)}; expected in [0, 1)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; expected >= 1 (the global batch)")
        if self.val_protocol not in ("test", "centre"):
            raise ValueError(f"val_protocol={self.val_protocol!r}; expected 'test' or 'centre'")
        if self.views_per_forward < 1:
            raise ValueError(f"views_per_forward={self.views_per_forward}; expected >= 1")
        for key in ("max_steps_per_epoch", "max_eval_videos", "max_train_videos", "bench_repeats", "num_workers",
                    "flow_eval_pairs", "micro_batch", "bench_ratio_rounds"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)}; expected >= 0 (0 = no cap / the default)")
        if self.frame_size and self.frame_size < self.image_size:
            raise ValueError(f"frame_size={self.frame_size} is smaller than image_size={self.image_size}")

    @property
    def num_flows(self) -> int:
        """Flow fields per stack: L - 1 (10 in the paper)."""
        return self.stack_length - 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Config:
        return from_params({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> Path:
        from htsc_core.utils import atomic_write_text  # deferred: `htsc --help` imports config, not numpy

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        return from_params(json.loads(Path(path).read_text()))


# Profile defaults. `default` is the dataclass default; the others override it.
PROFILE_OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        data_root="data/synthetic-smoke", runs_dir="runs/smoke", results_dir="results/smoke",
        synth_size=40, synth_frames=15, synth_classes_per_family=2,
        synth_train_per_class=4, synth_test_per_class=2,
        frame_size=40, image_size=32, num_segments=2, test_segments=2, stack_length=5,
        vgg_width=1 / 16, motion_width=1 / 16, cln_hidden=16, tclsta_attention=16, tclsta_lstm=16, dropout=0.5,
        dropout_c3d=0.5, dropout_cln=0.5, dropout_tclsta=0.5,
        pretrained=False, batch_size=4,
        num_workers=0,
        epochs_spatial=1, epochs_motion=1, epochs_temporal=1, epochs_tvl1=1, epochs_rgbdiff=1, epochs_cln=2,
        epochs_conv_fusion=1, epochs_c3d=1, epochs_tclsta=2, c3d_clip_length=8, max_steps_per_epoch=3,
    ),
    "default": {},
    "paper": dict(
        dataset="ucf101", data_root="data/ucf101", runs_dir="runs/paper", results_dir="results/ucf101",
        frame_size=256, image_size=224, num_segments=3, test_segments=25, test_crops=10, stack_length=11,
        vgg_width=1.0, vgg_batch_norm=False, pretrained=True, clip_cache_mb=0, motion_width=1.0,
        # dropout per module (docs/DESIGN.md section 3): the two-stream VGG16s' 0.9; C3D's fc6/fc7 0.5 (Tran et al.
        # 2015); the CLN's and TCLSTA's 0.5, before the classifier of TCLSTA's collaborative model (its release,
        # CollaborativeLearning/misc/attention.lua), which the CLN restates
        dropout=0.9, dropout_c3d=0.5, dropout_cln=0.5, dropout_tclsta=0.5,
        cln_hidden=512, tclsta_attention=256, tclsta_lstm=512, optimizer="sgd",
        batch_size=32, num_workers=8, epochs_spatial=80, epochs_motion=40, epochs_temporal=80,
        epochs_tvl1=80, epochs_rgbdiff=80, epochs_cln=50, epochs_conv_fusion=30, epochs_c3d=80, epochs_tclsta=50,
        c3d_image_size=112, c3d_frame_size=128,  # C3D's own input (Tran et al. 2015, Sec. 3.2)
        lr_spatial=1e-3, lr_motion=1e-4, lr_temporal=1e-3, lr_rgbdiff=1e-3,
        lr_motion_e2e=1e-6, lr_cln=1e-3,
        val_protocol="centre", views_per_forward=50, flow_eval_pairs=500,  # issue 37: bounded passes
    ),
}


def valid_keys() -> list[str]:
    return [f.name for f in fields(Config)]


# What a run's config.json records beside its settings (train/engine.Trainer: how its processes took the global
# batch); not settings: a config read back from such a file (`--config`) leaves them out.
RUN_RECORD_KEYS = ("batch_plan",)


def from_params(params: Mapping[str, Any] | None = None, **kwargs: Any) -> Config:
    """Build a Config from papermill-style parameters.

    ``profile`` picks the defaults; every other key overrides them. Unknown
    keys raise ``ValueError`` listing the valid ones.
    """
    merged = {k: v for k, v in {**(params or {}), **kwargs}.items() if k not in RUN_RECORD_KEYS}
    unknown = sorted(set(merged) - set(valid_keys()))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys are: {', '.join(valid_keys())}")
    profile = merged.get("profile", "default")
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}; expected one of {PROFILES}")
    values = {**PROFILE_OVERRIDES[profile], **merged, "profile": profile}
    types = {f.name: f.type for f in fields(Config)}
    coerced = {}
    for key, value in values.items():
        t = types[key]
        if t == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif t == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        coerced[key] = value
    return Config(**coerced)
