"""Data-pipeline benchmarks (docs/DESIGN.md section 7): can the loader feed training, and does an epoch scale?

- :func:`data_benchmark`: decoded clips/s of the training loader (spatial: one RGB frame per segment;
  temporal: one L-frame stack per segment) against the clips/s one training step of that stage
  consumes at the profile's size (section 3 stages 1 and 3), and their ratio.
- :func:`scaling_benchmark`: one epoch of the spatial stage at 1x and 4x the videos, each in its own
  subprocess (so the peak RSS is that run's): time should grow linearly, memory stay flat.
"""
from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator, Sequence

import torch

from htsc_core.bench.common import time_call
from htsc_core.config import Config, from_params
from htsc_core.utils import atomic_write_json, resolve_device, run_metadata
from htsc_core.data.dataset import VideoDataset, make_loader
from htsc_core.data.registry import load_split
from htsc_core.data.synthetic import generate
from htsc_core.data.throughput import measure_loader_throughput
from htsc_core.models.motionnet import build_motionnet
from htsc_core.models.temporal import HiddenTemporalStream
from htsc_core.models.vgg import build_vgg16
from htsc_core.train.engine import Trainer
from htsc_core.train.stages import image_step, stage_optimizer, stage_step

STAGE_MODALITY = {"spatial": "rgb", "temporal": "stack"}


@contextlib.contextmanager
def dataset_root(cfg: Config) -> Iterator[tuple[Config, str]]:
    """The profile's dataset if it exists; otherwise (synthetic only) a small set of the profile's frame
    size generated into a temporary directory (a clip's cost does not depend on how many videos there are)."""
    root = Path(cfg.data_root)
    if root.is_dir() and any(root.iterdir()):
        yield cfg, str(root)
        return
    if cfg.dataset != "synthetic":
        raise FileNotFoundError(f"{root}: dataset {cfg.dataset} not found; pass --data-root ROOT")
    with tempfile.TemporaryDirectory(prefix="htsc_bench_synth_") as tmp:
        small = cfg.replace(data_root=tmp, synth_train_per_class=min(cfg.synth_train_per_class, 4),
                            synth_test_per_class=min(cfg.synth_test_per_class, 1))
        generate(tmp, small, workers=1, progress=False)
        yield small, f"generated: {cfg.synth_classes_per_family * 3} classes x " \
                     f"{small.synth_train_per_class + small.synth_test_per_class} videos in a temporary directory"


def _stage_model(cfg: Config, stage: str, num_classes: int):
    plain = cfg.replace(pretrained=False)  # timing only: no ImageNet look-up
    if stage == "spatial":
        return build_vgg16(plain, num_classes, 3)
    if stage == "temporal":
        return HiddenTemporalStream(build_motionnet(plain), build_vgg16(plain, num_classes, 2 * cfg.num_flows))
    raise ValueError(f"stage={stage!r}; expected one of {sorted(STAGE_MODALITY)}")


def training_step_rate(cfg: Config, stage: str, num_classes: int, repeats: int, device: torch.device) -> dict:
    """Clips/s one optimisation step of ``stage`` consumes (this process's share of the global batch
    cfg.batch_size, K segments, profile size): the trainer's own step (:meth:`Trainer._train_step`, issue 41) with
    the stage's step function, optimiser (``cfg.optimizer``, the stage's learning rates), precision policy
    (``cfg.amp``: bf16 autocast where native), channels_last where the policy sets it and the micro-batches of
    ``cfg.micro_batch``, on random inputs of the right shape."""
    torch.manual_seed(cfg.seed)
    model = _stage_model(cfg, stage, num_classes)
    with tempfile.TemporaryDirectory(prefix="htsc_bench_step_") as tmp:  # the Trainer writes nothing until fit
        trainer = Trainer(tmp, stage, model, stage_optimizer(cfg, stage, model), stage_step(stage, cfg),
                          lambda e: [], 0, seed=cfg.seed, device=device, amp=cfg.amp, config=cfg.to_dict())
    trainer.model.train()
    B, K, S, L = trainer.batch["per_process_batch"], cfg.num_segments, cfg.image_size, cfg.stack_length
    if stage == "spatial":
        batch = {"rgb": torch.rand(B, K, 3, S, S, device=device)}
    else:
        batch = {"stack": torch.rand(B, K, L, 3, S, S, device=device)}
    batch["label"] = torch.randint(0, num_classes, (B,), device=device)

    t = time_call(lambda: trainer._train_step(batch, 0), repeats, device)
    return {"stage": stage, "batch_size": B, "global_batch": trainer.batch["global_batch"],
            "micro_batch": trainer.batch["micro_batch"], "accumulation": trainer.batch["accumulation"],
            "segments": K, "resolution": S, "precision": trainer.precision.name,
            "channels_last": trainer.precision.channels_last,
            "optimizer": type(trainer.optimizer).__name__, "seconds_per_step": t,
            "clips_per_s": B / t["median"], "device": str(device), "torch_threads": torch.get_num_threads()}


def data_benchmark(cfg: Config, num_batches: int | None = None, repeats: int | None = None,
                   out: str | Path | None = None, num_workers: int | None = None) -> dict:
    """Loader clips/s vs training-step clips/s per stage; writes ``bench_data.json``."""
    smoke = cfg.profile == "smoke"
    num_batches = (2 if smoke else 10) if num_batches is None else int(num_batches)
    repeats = (1 if smoke else 3) if repeats is None else int(repeats)
    device = resolve_device(cfg.device)
    rows = []
    with dataset_root(cfg) as (dcfg, source):
        records, classes = load_split(dcfg, "train")
        for stage, modality in STAGE_MODALITY.items():
            ds = VideoDataset(records, dcfg, mode="train", modalities=(modality,))
            loader = measure_loader_throughput(ds, dcfg, num_batches=num_batches, num_workers=num_workers)
            train = training_step_rate(dcfg, stage, len(classes), repeats, device)
            rows.append({"stage": stage, "modality": modality, "loader_clips_per_s": loader["clips_per_s"],
                         "train_clips_per_s": train["clips_per_s"],
                         "ratio": loader["clips_per_s"] / train["clips_per_s"],
                         "loader": loader, "train_step": train})
    result = {"rows": rows, "dataset": source, "profile": cfg.profile, "image_size": cfg.image_size,
              "frame_size": cfg.frame_size, "batch_size": cfg.batch_size,
              "num_workers": cfg.num_workers if num_workers is None else num_workers,
              "device": str(device), "torch_threads": torch.get_num_threads(),
              "note": "loader and training step are timed separately; ratio >= 1 means the loader alone "
                      "decodes clips faster than one training process consumes them (they share the CPU)"}
    out_dir = Path(out) if out is not None else Path(cfg.results_dir) / "metrics"
    result["path"] = str(atomic_write_json(out_dir / "bench_data.json",
                                           {"metrics": result, "meta": run_metadata(cfg, device=str(device))}))
    return result


# ----------------------------------------------------------------------------- scaling
def _proc_status_bytes(field: str) -> int | None:
    """``VmHWM`` / ``VmRSS`` of this process from /proc (Linux), in bytes; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    # ru_maxrss survives execve on Linux (it would include the parent's peak), so VmHWM comes first.
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def epoch_worker(config: dict, factor: int, base_videos: int) -> dict:
    """One spatial-stage training epoch over ``base_videos`` records repeated ``factor`` times."""
    cfg = from_params(config)
    device = resolve_device(cfg.device)
    records, classes = load_split(cfg, "train")
    base = records[:base_videos]
    if len(base) < base_videos:
        raise ValueError(f"{cfg.data_root}: {len(records)} training videos, fewer than base_videos={base_videos}")
    ds = VideoDataset(base * factor, cfg, mode="train", modalities=("rgb",))
    torch.manual_seed(cfg.seed)
    model = _stage_model(cfg, "spatial", len(classes)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    step = image_step("rgb")
    reset = _reset_peak_rss()
    rss_before = _proc_status_bytes("VmRSS") or _peak_rss_bytes()
    t0 = time.perf_counter()
    t_first = None
    steps = clips = 0
    for batch in make_loader(ds, cfg, shuffle=True):
        if batch is None:
            continue
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        loss, _ = step(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
        clips += int(batch["label"].shape[0])
        if t_first is None:
            t_first = time.perf_counter() - t0  # loader start-up + first step: a fixed cost per epoch
    seconds = time.perf_counter() - t0
    return {"factor": factor, "videos": len(ds), "steps": steps, "clips": clips, "epoch_s": seconds,
            "first_step_s": t_first or 0.0, "epoch_after_first_step_s": seconds - (t_first or 0.0),
            "peak_rss_bytes": _peak_rss_bytes(), "rss_before_epoch_bytes": rss_before, "peak_reset": reset,
            "peak_rss_workers_bytes": int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024,
            "num_workers": cfg.num_workers, "batch_size": cfg.batch_size, "device": str(device),
            "torch_threads": torch.get_num_threads()}


def scaling_benchmark(cfg: Config, factors: Sequence[int] = (1, 4), base_videos: int | None = None,
                      out: str | Path | None = None, timeout_s: float = 1800.0) -> dict:
    """Epoch time and peak RSS at each dataset size (one subprocess each); writes ``bench_scaling.json``."""
    factors = [int(f) for f in factors]
    if len(factors) < 2 or min(factors) < 1:
        raise ValueError(f"factors={factors}; expected at least two sizes >= 1")
    base_videos = (cfg.batch_size if cfg.profile == "smoke" else 2 * cfg.batch_size) if base_videos is None \
        else int(base_videos)
    device = resolve_device(cfg.device)
    runs = []
    with dataset_root(cfg) as (dcfg, source), tempfile.TemporaryDirectory(prefix="htsc_bench_scale_") as tmp:
        for f in factors:
            res_path = Path(tmp) / f"x{f}.json"
            code = ("import json, sys; from htsc_core.bench.data import epoch_worker; "
                    "a = json.loads(sys.argv[1]); "
                    "r = epoch_worker(a['config'], a['factor'], a['base']); "
                    "open(a['out'], 'w').write(json.dumps(r))")
            arg = json.dumps({"config": dcfg.to_dict(), "factor": f, "base": base_videos, "out": str(res_path)})
            proc = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True,
                                  timeout=timeout_s, cwd=Path(__file__).resolve().parents[2])
            if proc.returncode != 0:
                raise RuntimeError(f"scaling run x{f} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
            runs.append(json.loads(res_path.read_text()))
    first, last = runs[0], runs[-1]
    size_ratio = last["videos"] / first["videos"]
    time_ratio = last["epoch_s"] / first["epoch_s"]
    steady_ratio = (last["epoch_after_first_step_s"] / max(last["steps"] - 1, 1)) / \
        max(first["epoch_after_first_step_s"] / max(first["steps"] - 1, 1), 1e-12)
    result = {
        "runs": runs, "dataset": source, "base_videos": base_videos, "factors": factors,
        "size_ratio": size_ratio, "time_ratio": time_ratio, "time_ratio_over_size_ratio": time_ratio / size_ratio,
        "seconds_per_step_ratio_after_first": steady_ratio,
        "peak_rss_ratio": last["peak_rss_bytes"] / first["peak_rss_bytes"],
        "peak_rss_growth_bytes": last["peak_rss_bytes"] - first["peak_rss_bytes"],
        "epoch_rss_growth_ratio": (max(1, last["peak_rss_bytes"] - last["rss_before_epoch_bytes"])
                                   / max(1, first["peak_rss_bytes"] - first["rss_before_epoch_bytes"])),
        "stage": "spatial", "profile": cfg.profile, "image_size": cfg.image_size, "device": str(device),
        "note": "each size runs in a fresh subprocess; peak RSS is the process's VmHWM, reset to the current "
                "RSS just before the epoch (loader workers apart: peak_rss_workers_bytes); linear time means "
                "time_ratio_over_size_ratio ~ 1 (the first step carries the fixed start-up cost, see "
                "seconds_per_step_ratio_after_first), flat memory peak_rss_ratio ~ 1",
    }
    out_dir = Path(out) if out is not None else Path(cfg.results_dir) / "metrics"
    result["path"] = str(atomic_write_json(out_dir / "bench_scaling.json",
                                           {"metrics": result, "meta": run_metadata(cfg, device=str(device))}))
    return result
