"""``htsc plan``: the bill before the run (issue 25), from the config alone, in seconds on a CPU.

    htsc plan --profile paper --dataset ucf101 [--gpu A100] [--flow-workers 8] [--json PATH]

Per training stage (spatial, motion, temporal end to end, tvl1, rgbdiff, cln, and the Table 3 baselines
conv_fusion, c3d and tclsta), for the test-protocol scoring and in total. Every figure but the FLOPs is an
estimate; how each is derived:

- steps: optimiser steps = ceil(training videos / batch_size) per epoch (capped by max_steps_per_epoch)
  x the stage's epochs, at any world size: ``batch_size`` is the global batch, of which each of N ``torchrun``
  processes takes 1/N, accumulating micro-batches of ``micro_batch`` where one device cannot hold its share
  (``train/distributed.batch_plan``); the work is the same. Training videos: the
  dataset's official training list (:data:`DATASETS`, sizes with their source) less the share
  ``data/registry.py`` holds out for validation.
- FLOPs: counted by ``torch.utils.flop_counter.FlopCounterMode`` on the real networks and losses built on
  the meta device (shapes only: nothing is allocated or computed) at the full batch: forward, loss and
  backward of one step; 2 FLOPs per multiply-add of convolutions and matrix products (elementwise work,
  pooling, warping and the optimiser update are not counted), as ``htsc bench train`` counts them.
- GPU hours: FLOPs / (peak x :data:`UTILISATION`); peak = the dense bf16/fp16 tensor throughput of a GPU
  class from its vendor's spec sheet (:data:`GPUS`), utilisation 35% for these convnets (bf16 autocast,
  fp32 flow losses, uncounted elementwise work), assuming the data loader keeps up (``htsc bench data``
  measures it: decoding video is the likelier limit). An estimate, not a measurement.
- TV-L1 (two-stream baseline): OpenCV Dual TV-L1 on the CPU, ms per frame pair read from
  results/synthetic/tables/flow.csv (``htsc flow eval``: one thread, its resolution in the matching
  metrics/02_motionnet.json) and scaled by pixel count to the extraction size (short side = frame_size);
  ``htsc flow extract --workers N`` runs N video processes, so the wall time is about CPU time / N.
- disk: checkpoints (last.pt + best.pt: parameters and optimiser state, fp32), TV-L1 flow JPEGs (two
  per pair, :data:`FLOW_JPEG_BYTES_PER_PIXEL`), the CLN's cached fc7 features (float32), TCLSTA's cached conv5
  maps of the spatial and TV-L1 streams (float16, every view of every video). Frames are decoded
  from the videos on the fly, never stored; ``frames_jpeg_bytes`` says what RGB JPEGs would take.
- scores: the test-protocol forward passes (S segments x C crops per video): the two HTSC streams over
  train, val and test (the CLN's features, AWL on val, the tables) and over test once more
  (``tables.htsc_scores``), the TV-L1 and RGB-difference streams, conv fusion and C3D over test, the TV-L1
  stream over train and val too and TCLSTA's heads over every video (its conv5 maps); approximate.
- validation (issue 37): each epoch's pass over the validation videos under ``val_protocol`` ("test": S x C views;
  "centre": the stage's K segments, one centre crop, train/stages.validation_config), as FLOPs and as a share of the
  epoch's training FLOPs; the CLN and TCLSTA validate on cached features.
- scoring and validation memory: device = parameters + the eval batch's uint8 input + one forward of at most
  ``views_per_forward`` views (a whole video for conv fusion and TCLSTA), whose live activations are counted on the
  meta device (:class:`LiveBytes`, fp32); host = (workers x 2 prefetch + 1) eval batches in flight.
- memory per batch: parameters + gradients + optimiser state (SGD momentum 1, AdamW 2 fp32 copies) + the
  activations autograd saves for backward (counted by saved-tensor hooks on the meta device, fp32, each
  storage once, parameters excluded), for the whole global batch in one pass: with ``micro_batch`` m the
  activations of one device scale by m / batch_size. bf16 autocast stores most activations in half the bytes; cuDNN
  workspaces and transient buffers are not counted: leave headroom.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from htsc_core.cli_args import add_config_arguments, config_from_args
from htsc_core.plan_passes import GPU_MEMORY_GB, LiveBytes, passes
from htsc_core.utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("spatial", "motion", "temporal", "tvl1", "rgbdiff", "cln", "conv_fusion", "c3d", "tclsta")  # = train/stages
# Dense (no sparsity) tensor-core TFLOP/s, bf16 (fp16 where the GPU has no bf16), NVIDIA spec sheets; H100 = SXM.
# V100 and T4 have no bf16 tensor cores and the trainer autocasts to bf16 on CUDA: their figures hold for fp16 only.
GPUS = {"V100": 125.0, "T4": 65.0, "A10": 125.0, "L4": 121.0, "A100": 312.0, "H100": 989.0, "H200": 989.0}
UTILISATION = 0.35  # sustained share of peak assumed for these convnets
TVL1_FALLBACK = (72.0, 64 * 64)  # ms per pair at 64x64, one thread (flow.csv of the default study) if absent
FLOW_JPEG_BYTES_PER_PIXEL = 0.05  # measured 0.044 on the synthetic set at 224 px (08_table5.json); real flow
# has more texture, so this is a low estimate
RGB_JPEG_BYTES_PER_PIXEL = 0.2  # a 320x240 frame at JPEG quality ~90 is 10-20 KB
FAST_TVL1_SHARE = 22 / 66  # flow/extract.py FAST_TVL1 against OpenCV's defaults, ms per pair (measured there)


@dataclass(frozen=True)
class Subset:
    videos: int
    frames: int  # mean frames per video
    width: int
    height: int


@dataclass(frozen=True)
class DatasetSize:
    classes: int
    train: Subset  # the official training list, before the validation hold-out
    test: Subset
    val: Subset | None  # a separate validation set (THUMOS14); else val is held out of train
    held_out: float  # share of train held out as val (data/registry.py: 20% of the groups or videos)
    source: str


_UCF = Subset(9537, 186, 320, 240)
DATASETS = {
    "ucf101": DatasetSize(101, _UCF, Subset(3783, 186, 320, 240), None, 4 / 18,
                          "UCF101 split 1 (trainlist01 9537, testlist01 3783; Soomro et al. 2012: 7.21 s mean at "
                          "25 fps, 320x240); val = 4 of the 18 training groups"),
    "hmdb51": DatasetSize(51, Subset(3570, 96, 320, 240), Subset(1530, 96, 320, 240), None, 0.2,
                          "HMDB51 split 1 (70 train / 30 test per class; Kuehne et al. 2011); ~3.2 s at 30 fps "
                          "assumed; val = 20% of each class"),
    "thumos14": DatasetSize(101, Subset(13320, 186, 320, 240), Subset(1574, 6000, 320, 180),
                            Subset(1010, 6000, 320, 180), 0.0,
                            "THUMOS14 (Jiang et al. 2014): train = all 13320 UCF101 clips, val 1010 / test 1574 "
                            "untrimmed videos, ~200 s at 30 fps assumed (rough)"),
}


def dataset_size(cfg) -> DatasetSize:
    if cfg.dataset != "synthetic":
        return DATASETS[cfg.dataset]
    classes, s, f = 3 * cfg.synth_classes_per_family, cfg.synth_size, cfg.synth_frames
    return DatasetSize(classes, Subset(classes * cfg.synth_train_per_class, f, s, s),
                       Subset(classes * cfg.synth_test_per_class, f, s, s), None, 0.2,
                       "synthetic set: the profile's synth_* counts")


def train_videos(ds: DatasetSize) -> int:
    return round(ds.train.videos * (1 - ds.held_out))


def _count(cfg, stage: str, classes: int) -> dict:
    """FLOPs of one training step and of one forward per view, parameters, optimiser state and the bytes
    autograd saves for backward, on the meta device (see the module docstring)."""
    import torch  # here, not at the top: `htsc --help` imports this module and must not load torch
    from torch.utils.flop_counter import FlopCounterMode

    from htsc_core.models.c3d import C3D
    from htsc_core.models.cln import CollaborativeLearning, cln_loss
    from htsc_core.models.motionnet import build_motionnet
    from htsc_core.models.tclsta import TCLSTAHeads, conv5_channels, tclsta_loss
    from htsc_core.models.temporal import HiddenTemporalStream
    from htsc_core.models.two_stream_fusion import TwoStreamConvFusion
    from htsc_core.models.vgg import VGG16
    from htsc_core.train.stages import flow_loss, stage_data_config
    from htsc_core.train.streams import classification_loss, consensus

    c = stage_data_config(cfg, stage)
    B, K, S, L = c.batch_size, c.num_segments, c.image_size, c.stack_length
    vgg = lambda ch: VGG16(classes, ch, c.vgg_width, c.vgg_batch_norm, c.dropout)  # noqa: E731
    with torch.device("meta"):
        label = torch.zeros(B, dtype=torch.long)
        views_per_forward = 1  # views one forward of ``view`` covers (conv fusion: one video's segments)
        if stage == "cln":
            d = vgg(3).feature_dim
            model = CollaborativeLearning(d, c.cln_hidden, classes, rounds=c.cln_rounds, dropout=c.dropout_cln)
            view = (torch.empty(1, c.test_segments, d), torch.empty(1, c.test_segments, d))
            feats = (torch.empty(B, c.test_segments, d), torch.empty(B, c.test_segments, d))
        elif stage == "conv_fusion":  # K segments of RGB and TV-L1 stacks per video, fused over the segments
            model = TwoStreamConvFusion(vgg(3), vgg(2 * c.num_flows))
            flow = (2 * c.num_flows, S, S)
            batch = {"rgb": torch.empty(B, K, 3, S, S), "flow": torch.empty(B, K, *flow), "label": label}
            views_per_forward = c.test_segments
            view = (torch.empty(1, c.test_segments, 3, S, S), torch.empty(1, c.test_segments, *flow), c.test_segments)
        elif stage == "tclsta":  # TCLSTA's heads on the two streams' cached conv5 maps, every test-protocol view
            ch, side, V, T = conv5_channels(vgg(3)), S // 16, c.test_segments * c.test_crops, c.test_segments
            model = TCLSTAHeads(ch, classes, c.tclsta_attention, c.tclsta_lstm, c.cln_hidden, c.cln_rounds,
                                c.dropout_tclsta)
            maps = (torch.empty(B, V, ch, side, side), torch.empty(B, V, ch, side, side))
            views_per_forward = T
            view = (torch.empty(1, T, ch, side, side), torch.empty(1, T, ch, side, side), T)
        elif stage == "c3d":  # one clip of c3d_clip_length frames per video (stage_data_config)
            model = C3D(classes, c.vgg_width, c.vgg_batch_norm, c.dropout_c3d)
            batch = {"stack": torch.empty(B, K, L, 3, S, S), "label": label}
            view = (torch.empty(1, L, 3, S, S),)
        else:
            channels = {"spatial": 3, "tvl1": 2 * c.num_flows, "rgbdiff": 3 * (c.rgbdiff_length - 1)}
            model = (build_motionnet(c) if stage == "motion" else
                     HiddenTemporalStream(build_motionnet(c), vgg(2 * c.num_flows)) if stage == "temporal" else
                     vgg(channels[stage]))
            per_view = (L, 3, S, S) if stage in ("motion", "temporal") else (channels[stage], S, S)
            view, x = (torch.empty(1, *per_view),), torch.empty(B * K, *per_view)

    def loss():
        if stage == "cln":
            return cln_loss(model(*feats), label)
        if stage == "tclsta":  # train/tclsta.tclsta_step: every head's loss
            return tclsta_loss(model(*maps, c.test_segments), label)
        if stage == "conv_fusion":  # train/stages.conv_fusion_step: fused + temporal cross-entropy
            out = model(batch["rgb"], batch["flow"], K)
            return classification_loss(out["logits"], label) + classification_loss(out["logits_temporal"], label)
        if stage == "c3d":  # train/stages.image_step on the clips
            return classification_loss(consensus(model(batch["stack"].flatten(0, 1)), B), label)
        out = model(x)
        if stage == "motion":
            return flow_loss(stage)(x, out)[0]
        if stage == "temporal":
            return classification_loss(consensus(out["logits"], B), label) + flow_loss(stage)(x, out["flows"])[0]
        return classification_loss(consensus(out, B), label)

    param_storages = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):  # each storage once (a ReLU's output is also the next conv's input); parameters apart
        key = t.untyped_storage()._cdata
        if key not in param_storages:
            saved[key] = max(saved.get(key, 0), t.untyped_storage().nbytes())
        return t

    model.train()
    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            total = loss()
        total.backward()
    step_flops = int(counter.get_total_flops())
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*view)
    with torch.no_grad(), LiveBytes(model, *[v for v in view if torch.is_tensor(v)]) as live:  # apart: the FLOP
        # counter keeps the tensors it sees alive
        model(*view)
    params = sum(p.numel() for p in model.parameters())
    adam = stage in ("motion", "cln", "tclsta") or c.optimizer == "adam"  # train/stages._optimizer, cln, tclsta
    per_view = counter.get_total_flops() / views_per_forward
    return {"flops_per_step": step_flops, "forward_flops_per_view": int(per_view),
            "inference_peak_bytes_per_view": int(live.peak / views_per_forward),
            "params": params, "optimizer": "adamw" if adam else "sgd", "activation_bytes": sum(saved.values()),
            "param_bytes": 4 * params, "optimizer_bytes": 4 * params * (2 if adam else 1)}


def tvl1_ms_per_pair(results: Path = ROOT / "results" / "synthetic") -> tuple[float, int, str]:
    """(ms per pair, pixels it was measured at, source) of OpenCV TV-L1 at one thread."""
    table = results / "tables" / "flow.csv"
    if table.exists():
        row = next((r for r in csv.DictReader(table.open()) if r["method"] == "tvl1"), None)
        if row:
            w, h = 64, 64
            meta = results / "metrics" / "02_motionnet.json"
            if meta.exists():
                rows = json.loads(meta.read_text()).get("metrics", {}).get("flow_eval", [])
                res = next((r.get("resolution") for r in rows if r.get("method") == "tvl1"), None) or "64x64"
                h, w = (int(v) for v in res.split(",")[0].split("x"))
            return float(row["ms_per_pair"]), w * h, f"{table.relative_to(ROOT)} at {h}x{w}, 1 thread"
    return TVL1_FALLBACK[0], TVL1_FALLBACK[1], "assumed (no flow.csv): 72 ms at 64x64, 1 thread"


def _extraction_pixels(cfg, s: Subset) -> int:
    """Pixels of a frame decoded for extraction: short side = frame_size (0 = native)."""
    if not cfg.frame_size:
        return s.width * s.height
    scale = cfg.frame_size / min(s.width, s.height)
    return round(s.width * scale) * round(s.height * scale)


def make_plan(cfg, gpu: str = "A100", flow_workers: int | None = None) -> dict:
    """The plan as a dict (what ``--json`` writes); see the module docstring for every figure. ``flow_workers``:
    None = the host's cores, what ``htsc flow extract`` uses by default (:func:`~htsc_core.data.dataset.host_cpus`)."""
    from htsc_core.data.dataset import host_cpus  # here: data.dataset loads torch, and `htsc --help` imports plan

    flow_workers = host_cpus() if flow_workers is None else int(flow_workers)
    if gpu not in GPUS:
        raise ValueError(f"--gpu {gpu!r}; expected one of {', '.join(GPUS)}")
    ds, rate = dataset_size(cfg), GPUS[gpu] * 1e12 * UTILISATION
    n_train = train_videos(ds)
    subsets = [ds.train, ds.test] + ([ds.val] if ds.val else [])
    all_videos = sum(s.videos for s in subsets)
    stages, counts = {}, {}
    for stage in STAGES:
        n = counts[stage] = _count(cfg, stage, ds.classes)
        per_epoch = math.ceil(n_train / cfg.batch_size)
        if cfg.max_steps_per_epoch:
            per_epoch = min(per_epoch, cfg.max_steps_per_epoch)
        epochs = getattr(cfg, f"epochs_{stage}")
        flops = n["flops_per_step"] * per_epoch * epochs
        stages[stage] = {"epochs": epochs, "batch_size": cfg.batch_size, "train_videos": n_train,
                         "steps_per_epoch": per_epoch, "steps": per_epoch * epochs, **n, "flops": flops,
                         "gpu_hours": flops / rate / 3600,
                         "memory_bytes": n["activation_bytes"] + 2 * n["param_bytes"] + n["optimizer_bytes"],
                         "disk_bytes": 2 * (n["param_bytes"] + n["optimizer_bytes"])}  # last.pt + best.pt
    ms, px, source = tvl1_ms_per_pair()
    from htsc_core.flow.extract import tvl1_params

    if tvl1_params(cfg):  # the CPU profiles extract with fewer scales and warps: a third of the time (extract.py)
        ms, source = ms * FAST_TVL1_SHARE, f"{source}, x {FAST_TVL1_SHARE:.2f} for the CPU profiles' fast TV-L1"
    pairs = sum(s.videos * (s.frames - 1) for s in subsets)
    ms_pairs = sum(s.videos * (s.frames - 1) * ms * _extraction_pixels(cfg, s) / px for s in subsets)
    flow_bytes = sum(s.videos * (s.frames - 1) * 2 * FLOW_JPEG_BYTES_PER_PIXEL * _extraction_pixels(cfg, s)
                     for s in subsets)
    extraction = {"pairs": pairs, "ms_per_pair_measured": ms, "measured_pixels": px, "source": source,
                  "cpu_hours": ms_pairs / 3.6e6, "workers": flow_workers,
                  "wall_hours": ms_pairs / 3.6e6 / flow_workers, "flow_jpeg_bytes": int(flow_bytes)}
    stages["tvl1"].update(extraction=extraction, disk_bytes=stages["tvl1"]["disk_bytes"] + int(flow_bytes))
    from htsc_core.models.vgg import FC_WIDTH, _scaled

    feature_bytes = 2 * all_videos * cfg.test_segments * _scaled(FC_WIDTH, cfg.vgg_width) * 4  # two streams' fc7
    stages["cln"].update(feature_bytes=feature_bytes, disk_bytes=stages["cln"]["disk_bytes"] + feature_bytes)
    maps_bytes = (2 * all_videos * cfg.test_segments * cfg.test_crops * _scaled(512, cfg.vgg_width)
                  * (cfg.image_size // 16) ** 2 * 2)  # two streams' conv5 maps, float16 (train/tclsta.py)
    stages["tclsta"].update(feature_bytes=maps_bytes, disk_bytes=stages["tclsta"]["disk_bytes"] + maps_bytes)
    views = cfg.test_segments * cfg.test_crops
    f = {k: counts[k]["forward_flops_per_view"] for k in ("spatial", "temporal", "tvl1", "rgbdiff", "conv_fusion",
                                                          "c3d", "tclsta")}
    score_flops = views * ((f["spatial"] + f["temporal"]) * (all_videos + ds.test.videos)
                           + (f["tvl1"] + f["rgbdiff"] + f["conv_fusion"] + f["c3d"]) * ds.test.videos
                           + f["tvl1"] * (all_videos - ds.test.videos) + f["tclsta"] * all_videos)
    scoring = {"views_per_video": views, "videos": all_videos, "flops": score_flops,
               "gpu_hours": score_flops / rate / 3600}
    n_val = ds.val.videos if ds.val else ds.train.videos - n_train
    scored = {"spatial": all_videos + ds.test.videos, "temporal": all_videos + ds.test.videos, "tvl1": all_videos,
              "tclsta": all_videos, "rgbdiff": ds.test.videos, "conv_fusion": ds.test.videos, "c3d": ds.test.videos}
    for stage, s in stages.items():
        s.update(passes(cfg, stage, counts[stage], n_val, scored.get(stage, 0), s, rate))
        s["peak_device_bytes"] = max(s["memory_bytes"] + s["train_input_bytes"], s["scoring"]["device_bytes"],
                                     s["validation"]["device_bytes"])
        s["fits_gpu"] = s["peak_device_bytes"] <= GPU_MEMORY_GB[gpu] * 1e9
    total_flops = sum(s["flops"] for s in stages.values()) + score_flops
    frames_jpeg = sum(s.videos * s.frames * RGB_JPEG_BYTES_PER_PIXEL * _extraction_pixels(cfg, s) for s in subsets)
    return {"profile": cfg.profile, "dataset": cfg.dataset, "config": cfg.to_dict(),
            "data": {**asdict(ds), "train_videos_after_val": n_train, "frames_jpeg_bytes": int(frames_jpeg)},
            "gpu": {"name": gpu, "peak_tflops": GPUS[gpu], "utilisation": UTILISATION,
                    "sustained_tflops": GPUS[gpu] * UTILISATION},
            "stages": stages, "scoring": scoring,
            "total": {"steps": sum(s["steps"] for s in stages.values()), "flops": total_flops,
                      "gpu_hours": total_flops / rate / 3600, "tvl1_cpu_hours": extraction["cpu_hours"],
                      "disk_bytes": sum(s["disk_bytes"] for s in stages.values()),
                      "peak_memory_bytes": max(s["memory_bytes"] for s in stages.values()),
                      "peak_device_bytes": max(s["peak_device_bytes"] for s in stages.values()),
                      "validation_flops": sum(s["validation"]["flops"] for s in stages.values())},
            "how": __doc__.split("\n\n", 2)[2].strip()}



def _flops(n: float) -> str:
    scale = next((e for e in ((1e18, "E"), (1e15, "P"), (1e12, "T")) if n >= e[0]), (1e9, "G"))
    return f"{n / scale[0]:.3g} {scale[1]}"


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(str(r.get(c, "")).rjust(w) for c, w in zip(columns, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def format_plan(plan: dict) -> str:
    """The plan as the table ``htsc plan`` prints."""
    g, data = plan["gpu"], plan["data"]
    rows = [{"stage": k, "epochs": s["epochs"], "steps": f"{s['steps']:,}", "optim": s["optimizer"],
             "params": f"{s['params'] / 1e6:.1f} M", "FLOP/step": _flops(s["flops_per_step"]),
             "FLOPs": _flops(s["flops"]), "GPU h": f"{s['gpu_hours']:.2g}",
             "mem/batch": _gb(s["memory_bytes"]), "disk": _gb(s["disk_bytes"]),
             "val/train": f"{s['validation']['share_of_training']:.0%}",
             "score mem": _gb(s["scoring"]["device_bytes"]), "host": _gb(s["scoring"]["host_bytes"]),
             "fits": "yes" if s["fits_gpu"] else "NO"} for k, s in plan["stages"].items()]
    sc, t = plan["scoring"], plan["total"]
    rows.append({"stage": "scores", "FLOPs": _flops(sc["flops"]), "GPU h": f"{sc['gpu_hours']:.2g}"})
    rows.append({"stage": "total", "steps": f"{t['steps']:,}", "FLOPs": _flops(t["flops"]),
                 "GPU h": f"{t['gpu_hours']:.2g}", "mem/batch": _gb(t["peak_memory_bytes"]) + " max",
                 "disk": _gb(t["disk_bytes"])})
    ex = plan["stages"]["tvl1"]["extraction"]
    lines = [f"htsc plan: profile {plan['profile']}, dataset {plan['dataset']} ({data['source']})",
             f"{data['train_videos_after_val']} training videos after the validation hold-out, "
             f"{data['classes']} classes, batch {plan['config']['batch_size']}, "
             f"{plan['config']['image_size']} px",
             "", _table(rows, ["stage", "epochs", "steps", "optim", "params", "FLOP/step", "FLOPs", "GPU h",
                               "mem/batch", "disk", "val/train", "score mem", "host", "fits"]), "",
             f"GPU hours are an estimate: counted FLOPs / ({g['name']} {g['peak_tflops']:.0f} TFLOP/s dense bf16 peak "
             f"x {g['utilisation']:.0%} assumed utilisation = {g['sustained_tflops']:.0f} TFLOP/s sustained); "
             "scores = the test-protocol forward passes "
             f"({sc['views_per_video']} views per video); assumes the data loader keeps up.",
             "mem/batch = saved activations (fp32; bf16 autocast halves most) + parameters + gradients + "
             "optimiser state; disk = last.pt + best.pt, TV-L1 JPEGs (tvl1), cached fc7 features (cln), cached "
             "conv5 maps (tclsta).",
             f"TV-L1 extraction for the two-stream baseline: {ex['pairs']:,} frame pairs, {ex['cpu_hours']:.0f} CPU "
             f"hours at {ex['ms_per_pair_measured']:.1f} ms per pair measured ({ex['source']}) scaled by pixels to "
             f"the extraction size; `htsc flow extract --workers {ex['workers']}`: about {ex['wall_hours']:.0f} h "
             f"wall; flow JPEGs {_gb(ex['flow_jpeg_bytes'])}. Frames are decoded on the fly (as RGB JPEGs they "
             f"would take {_gb(data['frames_jpeg_bytes'])}).",
             f"val/train = each epoch's validation FLOPs over its training FLOPs (validation protocol "
             f"{plan['config']['val_protocol']!r}); score mem / host = peak device / host memory of the stage's "
             f"test-protocol scoring pass (forwards of at most {plan['config']['views_per_forward']} views, uint8 "
             f"frames until the device, the loader's batches in flight); fits = the stage's peak device memory "
             f"(training, validation, scoring) within the {g['name']}'s {GPU_MEMORY_GB[g['name']]:.0f} GB.",
             "How every figure is derived: htsc_core/plan.py (docstring)."]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--gpu", default="A100", choices=list(GPUS),
                   help="GPU class for the hours estimate (dense bf16 peak x 35%%; default A100)")
    p.add_argument("--flow-workers", type=int, default=None,
                   help="`htsc flow extract --workers` for the TV-L1 estimate (default: this host's cores, as "
                        "`htsc flow extract` uses)")
    p.add_argument("--json", type=Path, default=None, help="also write the plan as JSON to this path")


def command(args: argparse.Namespace) -> int:
    plan = make_plan(config_from_args(args), gpu=args.gpu, flow_workers=args.flow_workers)
    print(format_plan(plan))
    if args.json:
        atomic_write_json(args.json, plan)
        print(f"wrote {args.json}")
    return 0
