"""Training-speed benchmark per stage: fp32 against bf16 autocast, FLOPs and achieved FLOP/s
(``htsc bench train``; the precision policy is :func:`htsc_core.train.engine.precision_policy`).

For each stage (spatial, motion, temporal end to end, tvl1, cln) one optimiser step - the trainer's own
step function, forward + loss + backward + optimiser - is timed on random tensors of the profile's
shapes (timing does not depend on the data) in four variants: fp32 / bf16 autocast, each with NCHW and
channels_last conv weights. Warm-up steps are excluded and the variants' repeats are interleaved, so a
load change on a shared machine hits every variant alike; medians are reported. FLOPs per step are
counted by ``torch.utils.flop_counter.FlopCounterMode`` on one fp32 step (2 per multiply-add of the
convolutions and matrix products, forward and backward; elementwise work is not counted). The loader's
ms per batch is measured on the profile's dataset when it exists (null with the reason otherwise).

:func:`precision_comparison` is the safety check: one stage trained in fp32 and in bf16 on the same
data, validation accuracy (with its binomial interval) and time per epoch of both, in one JSON file.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from htsc_core.bench.common import spread, sync, time_call
from htsc_core.config import Config
from htsc_core.train.engine import Precision, machine_info, precision_policy, to_channels_last
from htsc_core.train.stages import flow_loss, stage_data_config, stage_step
from htsc_core.train.stages import train as train_stage
from htsc_core.utils import atomic_write_json, resolve_device, run_metadata
from htsc_core import stats
from htsc_core.data.dataset import VideoDataset
from htsc_core.data.registry import load_split
from htsc_core.data.throughput import measure_loader_throughput
from htsc_core.flow.evaluate import evaluate_flow
from htsc_core.metrics import correct
from htsc_core.models.cln import CollaborativeLearning, cln_loss
from htsc_core.models.motionnet import build_motionnet, SCALES, flow_resolution
from htsc_core.models.temporal import HiddenTemporalStream
from htsc_core.models.vgg import build_vgg16
from htsc_core.stats import ratio_ci, wilson_interval
from htsc_core.train.scores import extract_scores, load_scores
from htsc_core.train.streams import make_optimizer
from htsc_core.schedules import read_run_log

STAGES = ("spatial", "motion", "temporal", "tvl1", "cln")
VARIANTS = ("fp32", "fp32_channels_last", "bf16", "bf16_channels_last")
STAGE_MODALITY = {"spatial": "rgb", "motion": "stack", "temporal": "stack", "tvl1": "flow"}


# ----------------------------------------------------------------------------- FLOPs
def count_step_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (e.g. forward + backward) counted by FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ----------------------------------------------------------------------------- stage set-up
def _optimizer(cfg: Config, stage: str, model: nn.Module) -> torch.optim.Optimizer:
    """The trainer's optimiser for the stage (train/streams.make_optimizer): Adam for MotionNet and the CLN."""
    return make_optimizer(cfg, [{"params": model.parameters(), "lr": 1e-4}],
                          kind="adam" if stage in ("motion", "cln") else None)


def stage_case(cfg: Config, stage: str, num_classes: int, device: torch.device, seed: int = 0):
    """(model, step function, one batch of random tensors) of ``stage`` at the profile's shapes.

    Batches are what the trainer sees: (B, K, ...) with B = cfg.batch_size videos and K = cfg.num_segments
    views per video (1 for MotionNet pre-training, ``stages.stage_data_config``); the CLN trains on (B, S, d)
    fc7 features of S = cfg.test_segments segments.
    """
    torch.manual_seed(seed)
    plain = cfg.replace(pretrained=False)  # timing only: no ImageNet look-up
    cfg = stage_data_config(cfg, stage)  # MotionNet pre-training: one stack per video, as the trainer
    B, K, S, L, nf = cfg.batch_size, cfg.num_segments, cfg.image_size, cfg.stack_length, 2 * cfg.num_flows
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, num_classes, (B,), generator=g)
    if stage == "spatial":
        model, step = build_vgg16(plain, num_classes, 3), stage_step(stage)
        batch = {"rgb": torch.rand(B, K, 3, S, S, generator=g)}
    elif stage == "tvl1":
        model, step = build_vgg16(plain, num_classes, nf), stage_step(stage)
        batch = {"flow": (torch.rand(B, K, nf, S, S, generator=g) - 0.5) * 255.0}  # value - 128 (docs/CONTRACTS.md)
    elif stage == "motion":
        model, step = build_motionnet(plain), stage_step(stage)
        batch = {"stack": torch.rand(B, K, L, 3, S, S, generator=g)}
    elif stage == "temporal":
        model = HiddenTemporalStream(build_motionnet(plain), build_vgg16(plain, num_classes, nf))
        step = stage_step(stage)
        batch = {"stack": torch.rand(B, K, L, 3, S, S, generator=g)}
    elif stage == "cln":
        probe = build_vgg16(plain, num_classes, 3)
        d = probe.feature_dim
        del probe
        model = CollaborativeLearning(d, cfg.cln_hidden, num_classes, rounds=cfg.cln_rounds, dropout=cfg.dropout_cln)
        batch = {"fs": torch.rand(B, cfg.test_segments, d, generator=g),
                 "fo": torch.rand(B, cfg.test_segments, d, generator=g)}

        def step(m: nn.Module, b: dict):
            return cln_loss(m(b["fs"], b["fo"]), b["label"]), {}
    else:
        raise ValueError(f"stage={stage!r}; expected one of {STAGES}")
    batch["label"] = label
    batch = {k: v.to(device) for k, v in batch.items()}
    return model.to(device).train(), step, batch


def _variant_precision(name: str) -> Precision:
    return Precision(torch.bfloat16 if name.startswith("bf16") else None, name.endswith("channels_last"))


def _make_step(cfg: Config, stage: str, model: nn.Module, step, batch: dict, precision: Precision,
               device: torch.device) -> Callable[[], None]:
    """One optimiser step exactly as Trainer._run_epoch runs it."""
    if precision.channels_last:
        to_channels_last(model)
    opt = _optimizer(cfg, stage, model)

    def one() -> None:
        with precision.autocast(device):
            loss, _ = step(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return one


# ----------------------------------------------------------------------------- loader
def loader_ms_per_batch(cfg: Config, stage: str, num_batches: int) -> tuple[float | None, str | None]:
    """(ms per batch of the real training loader, None) or (None, why it was not measured)."""
    if stage == "cln":
        return None, "the CLN trains on cached fc7 features held in memory: no loader"
    root = Path(cfg.data_root)
    if not (root.is_dir() and any(root.iterdir())):
        return None, f"dataset {root} not found (generate it: htsc synth --out {root} --profile {cfg.profile})"
    flow_root = root / "flow_tvl1"
    if stage == "tvl1" and not (flow_root.is_dir() and any(flow_root.iterdir())):
        return None, f"no stored TV-L1 flow under {flow_root} (htsc flow extract)"
    try:
        records, _ = load_split(cfg, "train")
        ds = VideoDataset(records, cfg, mode="train", modalities=(STAGE_MODALITY[stage],),
                          flow_root=flow_root if stage == "tvl1" else None)
        res = measure_loader_throughput(ds, cfg, num_batches=num_batches)
    except (OSError, ValueError, RuntimeError) as exc:
        return None, f"loader failed on {root}: {exc}"
    return 1e3 * res["seconds"] / res["num_batches"], None


# ----------------------------------------------------------------------------- benchmark
def flow_loss_ms(cfg: Config, stage: str, batch: dict, repeats: int, warmup: int, device: torch.device) -> float | None:
    """Median ms of MotionNet's unsupervised losses alone (Eq. 1-6, forward + backward into the flows) on the
    stage's batch; they run in fp32 whatever the precision, so they are the part of a motion / temporal step
    that bf16 cannot speed up. None for the stages without them."""
    if stage not in ("motion", "temporal"):
        return None
    stack = batch["stack"].flatten(0, 1)  # (B*K, L, 3, S, S), as the step functions pass it
    n, L = stack.shape[:2]
    g = torch.Generator().manual_seed(cfg.seed)
    base = [0.1 * torch.randn(n, 2 * (L - 1), *flow_resolution(tuple(stack.shape[-2:]), s), generator=g).to(device)
            for s in SCALES]
    loss_fn = flow_loss(stage)

    def one() -> None:
        loss_fn(stack, [b.clone().requires_grad_() for b in base])[0].backward()
    return 1e3 * time_call(one, repeats, device, warmup=warmup)["median"]


def bench_stage(cfg: Config, stage: str, num_classes: int, repeats: int, warmup: int, device: torch.device,
                variants: tuple[str, ...] = VARIANTS) -> dict:
    """Median ms per optimiser step of each variant (interleaved repeats), FLOPs per step, GFLOP/s."""
    model, step, batch = stage_case(cfg, stage, num_classes, device, seed=cfg.seed)

    def fwd_bwd() -> None:
        loss, _ = step(model, batch)
        loss.backward()
    flops = count_step_flops(fwd_bwd)  # fp32, before any optimiser step
    model.zero_grad(set_to_none=True)
    steps = {v: _make_step(cfg, stage, copy.deepcopy(model), step, batch, _variant_precision(v), device)
             for v in variants}
    model = None  # each variant has its own copy; the original is not needed any more
    for fn in steps.values():
        for _ in range(warmup):  # first calls build oneDNN primitives and allocator caches
            fn()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeats):
        for v, fn in steps.items():  # interleaved: a load change hits every variant alike
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[v].append(time.perf_counter() - t0)
    ms = {v: 1e3 * spread(t)["median"] for v, t in times.items()}
    loss_ms = flow_loss_ms(cfg, stage, batch, repeats, warmup, device)
    policy = precision_policy(device, "bf16")
    bf16_name = "bf16_channels_last" if policy.channels_last else "bf16"
    fp32_ms, bf16_ms = ms["fp32"], ms.get(bf16_name, math.nan)
    gflops = flops / 1e9
    speedup_ci = None
    if bf16_name in times and min(len(times["fp32"]), len(times[bf16_name])) >= 5:  # stats.ratio_ci needs 5 each
        _, lo, hi = ratio_ci(times["fp32"], times[bf16_name], seed=cfg.seed)
        speedup_ci = [lo, hi]
    return {"fp32_ms_per_step": fp32_ms, "bf16_ms_per_step": bf16_ms, "speedup": fp32_ms / bf16_ms,
            "speedup_ci95": speedup_ci,  # bootstrap of the ratio of medians over the repeats (None below 5)
            "gflops_per_step": gflops, "gflops_per_s_fp32": gflops / (fp32_ms / 1e3),
            "gflops_per_s_bf16": gflops / (bf16_ms / 1e3),
            "bf16_layout": "channels_last" if policy.channels_last else "contiguous",
            "ms_per_step": ms, "seconds_spread": {v: spread(t) for v, t in times.items()},
            "flow_loss_ms_per_step": loss_ms,  # MotionNet's losses alone (fp32 in every variant); None elsewhere
            "channels_last_speedup_fp32": ms["fp32"] / ms["fp32_channels_last"]
            if "fp32_channels_last" in ms else None,
            "channels_last_speedup_bf16": ms["bf16"] / ms["bf16_channels_last"]
            if "bf16_channels_last" in ms else None}


def train_benchmark(cfg: Config, stages: tuple[str, ...] = STAGES, repeats: int | None = None,
                    warmup: int | None = None, loader_batches: int | None = None, num_classes: int | None = None,
                    json_path: str | Path | None = None) -> dict:
    """Run :func:`bench_stage` for every stage and the loader; write ``bench_train.json``."""
    smoke = cfg.profile == "smoke"
    repeats = (2 if smoke else 5) if repeats is None else int(repeats)
    warmup = (1 if smoke else 2) if warmup is None else int(warmup)
    loader_batches = (2 if smoke else 5) if loader_batches is None else int(loader_batches)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats}, warmup={warmup}; expected repeats >= 1 and warmup >= 0")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; expected some of {STAGES}")
    device = resolve_device(cfg.device)
    if num_classes is None:
        num_classes = 3 * cfg.synth_classes_per_family if cfg.dataset == "synthetic" else \
            {"ucf101": 101, "hmdb51": 51, "thumos14": 101}[cfg.dataset]
    trainer = precision_policy(device, cfg.amp)
    result: dict = {"stages": {}, "machine": {**machine_info(), "device": str(device)},
                    "profile": cfg.profile, "repeats": repeats, "warmup": warmup, "num_classes": num_classes,
                    "trainer_precision": {"amp": cfg.amp, "dtype": trainer.name,
                                          "channels_last": trainer.channels_last},
                    "definition": "ms per optimiser step (forward, loss, backward, optimiser) on random tensors "
                                  "of the profile's shapes, median of interleaved repeats after warm-up; "
                                  "bf16 = autocast with the policy's layout; FLOPs counted by FlopCounterMode "
                                  "on one fp32 forward + backward (2 per multiply-add)"}
    loader_cache: dict[str, tuple[float | None, str | None]] = {}
    for stage in stages:
        row = bench_stage(cfg, stage, num_classes, repeats, warmup, device)
        modality = STAGE_MODALITY.get(stage, stage)
        if modality not in loader_cache:
            loader_cache[modality] = loader_ms_per_batch(cfg, stage, loader_batches)
        loader_ms, reason = loader_cache[modality]
        row.update({"loader_ms_per_batch": loader_ms, "loader_note": reason, "batch_size": cfg.batch_size,
                    "segments": cfg.test_segments if stage == "cln" else stage_data_config(cfg, stage).num_segments,
                    "resolution": cfg.image_size})
        result["stages"][stage] = row
    result["meta"] = run_metadata(cfg, str(device))
    path = Path(json_path) if json_path is not None else Path(cfg.results_dir) / "metrics" / "bench_train.json"
    atomic_write_json(path, result)
    result["path"] = str(path)
    return result


# ----------------------------------------------------------------------------- fp32 vs bf16 training
def summarise_run(run_dir: str | Path, monitor: str = "val_accuracy") -> dict:
    """Final and best epoch of a run's log.jsonl (the last contiguous run if it was appended to)."""
    log = read_run_log(Path(run_dir) / "log.jsonl")
    last = log[-1]
    out = {"epochs": last["epoch"], "precision": last.get("precision"), "channels_last": last.get("channels_last"),
           "epoch_seconds_median": spread([r["seconds"] for r in log])["median"],
           "total_seconds": sum(r["seconds"] for r in log), "final": last}
    if monitor == "val_accuracy" and monitor in last:
        n = int(last.get("val_count", 0))
        out.update({"val_accuracy": last[monitor], "val_count": n,
                    "val_accuracy_ci95": list(wilson_interval(round(last[monitor] * n), n)) if n else None,
                    "best_val_accuracy": max(r[monitor] for r in log)})
    elif monitor in last:  # a loss: lower is better
        out.update({monitor: last[monitor], f"best_{monitor}": min(r[monitor] for r in log)})
    return out


# Non-inferiority margins of the fp32-vs-bf16 comparison: bf16 may lose at most this much
PRECISION_MARGINS = {"spatial": 0.03, "motion": 0.03}  # top-1 accuracy (3 points); MotionNet EPE (px)


def _test_outcome(run_cfg: Config, stage: str, run: Path, flow_videos: int) -> dict:
    """Per-video test outcome of a trained run: correctness (classifiers) or EPE (MotionNet)."""
    if stage == "motion":
        records = load_split(run_cfg, "test")[0]
        step = max(1, len(records) // flow_videos)  # every step-th video: all classes, fixed across runs
        row = evaluate_flow(run_cfg, ["motionnet"], checkpoint=run / "best.pt",
                            records=records[::step][:flow_videos])[0]
        return {"epe": row["epe"], "epe_moving": row["epe_moving"], "per_video_epe": row["per_video"]["epe"]}
    extract_scores(run_cfg, stage, "test")
    z = load_scores(run_cfg, "test", stage)
    c = correct(z["scores"], z["labels"])
    return {"accuracy": float(c.mean()), "per_video_correct": c.astype(int).tolist()}


def precision_comparison(cfg: Config, stages=("spatial", "motion"), runs_base: str | Path | None = None,
                         json_path: str | Path | None = None, epochs: int | None = None, train_fn=None,
                         flow_videos: int = 60, seeds: int = 1) -> dict:
    """Train each stage in fp32 (amp=off) and in bf16 (amp=bf16), same data, seeds and schedule; compare on test.

    Runs go to ``<runs_base>-fp32[-seedS]/`` and ``<runs_base>-bf16[-seedS]/`` (default
    ``<runs_dir>-precision-*``), for ``seeds`` training seeds cfg.seed, cfg.seed + 1, ... The claim per
    stage is non-inferiority on the test videos, paired per video: bf16's top-1 (each video's correctness
    averaged over the seeds) at least fp32's minus ``PRECISION_MARGINS``, MotionNet's per-video EPE in bf16
    at most fp32's plus the margin (on ``flow_videos`` test videos); paired bootstrap over videos. With one
    seed the interval holds the test set's sampling only, not the spread between training runs; with
    several, ``seed_spread`` gives each precision's per-seed results. The JSON (default
    ``<results_dir>/metrics/bf16_vs_fp32.json``; stages already in it and not rerun are kept) holds the
    runs' validation summaries, the test outcomes and the claims. Speed is ``htsc bench train``'s job: the
    runs share one process, whose state changes epoch times (the bf16 run after 250 fp32 epochs is slower
    than a fresh one; docs/MEASUREMENTS.md).
    ``epochs`` caps the stages' epochs (smoke-size checks).
    """
    if train_fn is None:
        train_fn = train_stage
    unknown = [s for s in stages if s not in PRECISION_MARGINS]
    if unknown:
        raise ValueError(f"precision comparison: stages {unknown} not supported; expected {sorted(PRECISION_MARGINS)}")
    if seeds < 1:
        raise ValueError(f"precision comparison: seeds={seeds}; expected >= 1")
    base = Path(runs_base) if runs_base is not None else Path(cfg.runs_dir + "-precision")
    path = Path(json_path) if json_path is not None else Path(cfg.results_dir) / "metrics" / "bf16_vs_fp32.json"
    kept = json.loads(path.read_text()).get("stages", {}) if path.is_file() else {}
    result = {"profile": cfg.profile, "data_root": cfg.data_root, "machine": machine_info(),
              "margins": PRECISION_MARGINS, "stages": {k: v for k, v in kept.items() if k not in stages}}
    for stage in stages:
        stage_cfg = cfg.replace(**{f"epochs_{stage}": int(epochs)}) if epochs is not None else cfg
        runs: dict[str, list] = {"fp32": [], "bf16": []}
        outcome: dict[str, list] = {"fp32": [], "bf16": []}
        for i in range(seeds):
            for mode, amp in (("fp32", "off"), ("bf16", "bf16")):
                run_cfg = stage_cfg.replace(amp=amp, seed=cfg.seed + i,
                                            runs_dir=f"{base}-{mode}" + (f"-seed{cfg.seed + i}" if seeds > 1 else ""))
                t0 = time.perf_counter()
                out = Path(train_fn(run_cfg, stage, resume=False))
                runs[mode].append({**summarise_run(out, "val_loss" if stage == "motion" else "val_accuracy"),
                                   "seed": run_cfg.seed, "wall_seconds": time.perf_counter() - t0, "run_dir": str(out)})
                outcome[mode].append(_test_outcome(run_cfg, stage, out, flow_videos))
        m = PRECISION_MARGINS[stage]
        key = "per_video_epe" if stage == "motion" else "per_video_correct"
        per_video = {mode: np.mean([np.asarray(o[key], dtype=np.float64) for o in outcome[mode]], axis=0)
                     for mode in outcome}
        seeds_note = f" ({seeds} training seeds, per video averaged)" if seeds > 1 else " (one training seed)"
        if stage == "motion":
            claim = stats.compare_metric(np.mean, (per_video["bf16"],), (per_video["fp32"],), kind="at_most",
                                         margin=m, seed=cfg.seed,
                                         claim=f"MotionNet trained in bf16: test EPE at most fp32's + {m} px"
                                               + seeds_note)
        else:
            claim = stats.compare_metric(np.mean, (per_video["bf16"],), (per_video["fp32"],), kind="at_least",
                                         margin=m, seed=cfg.seed,
                                         claim=f"{stage} trained in bf16: test top-1 at least fp32's - {m:.2f}"
                                               + seeds_note)
        summary = "epe" if stage == "motion" else "accuracy"
        result["stages"][stage] = {
            "epochs": getattr(stage_cfg, f"epochs_{stage}"), "seeds": seeds, "runs": runs, "test": outcome,
            "seed_spread": {mode: [o[summary] for o in outcome[mode]] for mode in outcome}, "claim": claim}
    atomic_write_json(path, result)
    result["path"] = str(path)
    return result
