"""The paper profile's scoring and validation passes at their real counts on a GPU (issue 37, item 7).

    python -m htsc_core.bench.gpu_check --out gpu_check.json                       # one GPU (make gpu-check)
    torchrun --nproc_per_node N -m htsc_core.bench.gpu_check --out gpu_check.json  # several

Generates a small synthetic tree in the UCF101 layout (``--videos`` test videos of 256-px frames), builds the paper
profile's networks (VGG16 and MotionNet at full width; untrained weights: memory and speed, not accuracy, are
measured), and runs for each stage the test-protocol scoring pass (25 segments x 10 crops = 250 views a video, batch
32 as configured, forwards of ``views_per_forward``) and the validation pass of ``val_protocol``. Per stage it writes
the peak device memory (``torch.cuda.max_memory_allocated``, every rank) and views per second to the JSON, beside
the plan's estimate (``htsc plan``) of the same pass. ``--set KEY=VALUE`` overrides the config, for a CPU trial at
small widths (``--device cpu --set vgg_width=0.0625 ...``); the figures that count come from CUDA.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from htsc_core.cli_args import parse_overrides
from htsc_core.config import from_params
from htsc_core.data import synthetic
from htsc_core.data.dataset import VideoDataset
from htsc_core.data.registry import load_split
from htsc_core.plan import make_plan
from htsc_core.precision import machine_info
from htsc_core.train import stages as stages_mod
from htsc_core.train.engine import (Trainer, barrier, gather_rows, init_distributed, is_main_process, rank_and_world,
                                    shutdown_distributed)
from htsc_core.train.scores import extract_scores
from htsc_core.train.streams import MODALITY, build_stream, num_classes, run_dir
from htsc_core.utils import atomic_torch_save, atomic_write_json, resolve_device

STAGES = ("spatial", "temporal", "c3d")  # the streams that read frames only (no stored TV-L1 flow to extract)


def _peak(dev: torch.device) -> int:
    return int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else 0


def _reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def check(cfg, stage: str, dev: torch.device) -> dict:
    """Scoring and validation of ``stage`` on this rank: seconds, views per second, peak device memory."""
    if stage == "temporal" and is_main_process():  # end-to-end stacking starts from a MotionNet checkpoint
        motion = build_stream(cfg, "motion", num_classes(cfg))
        atomic_torch_save({"model": motion.state_dict(), "stage": "motion", "config": cfg.to_dict()},
                          run_dir(cfg, "motion") / "best.pt")
    barrier()
    model = build_stream(cfg, stage, num_classes(cfg))
    if is_main_process():
        atomic_torch_save({"model": model.state_dict(), "stage": stage, "config": cfg.to_dict()},
                          run_dir(cfg, stage) / "best.pt")
    barrier()
    out = {}
    n_test = len(load_split(cfg, "test")[0])
    _reset(dev)
    t0 = time.time()
    extract_scores(cfg, stage, "test", device=str(dev), reuse=False)
    seconds = time.time() - t0
    views = n_test * cfg.test_segments * cfg.test_crops
    out["scoring"] = {"videos": n_test, "views": views, "seconds": seconds, "views_per_second": views / seconds,
                      "peak_device_bytes": _peak(dev)}
    data_cfg = stages_mod.validation_config(stages_mod.stage_data_config(cfg, stage))
    val_set = VideoDataset(load_split(cfg, "val")[0], data_cfg, mode="test", modalities=MODALITY[stage],
                           uint8_frames=True)
    trainer = Trainer(run_dir(cfg, stage), stage, model, torch.optim.SGD(model.parameters(), lr=0.0),
                      stages_mod.stage_step(stage, data_cfg), lambda e: [], 1, device=dev, amp=cfg.amp)
    _reset(dev)
    t0 = time.time()
    stats = trainer._run_epoch(stages_mod._loader(data_cfg, val_set, 0, False), False, 0)
    seconds = time.time() - t0
    views = int(stats["count"]) * data_cfg.test_segments * data_cfg.test_crops
    out["validation"] = {"videos": int(stats["count"]), "views": views, "seconds": seconds,
                         "views_per_second": views / seconds, "peak_device_bytes": _peak(dev)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    p.add_argument("--videos", type=int, default=20, help="test videos of the generated tree (train and val: half)")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--work", type=Path, default=None, help="folder for the tree and runs (default: a temporary one)")
    a = p.parse_args(argv)
    dev = resolve_device(a.device)
    init_distributed(dev)
    rank, world = rank_and_world()
    work = a.work or Path(tempfile.gettempdir()) / "htsc-gpu-check"
    root = work / "tree"
    per_class = max(1, a.videos // 6)
    if is_main_process() and not (root / "classes.json").exists():
        synthetic.generate(root, synthetic.synth_config("smoke", 0, synth_size=256, synth_frames=48,
                                                        synth_classes_per_family=2, synth_test_per_class=per_class,
                                                        synth_train_per_class=per_class),
                           workers=1, progress=False)
    if world > 1:
        torch.distributed.barrier()
    cfg = from_params(profile="paper", dataset="synthetic", data_root=str(root), runs_dir=str(work / "runs"),
                      results_dir=str(work / "results"), pretrained=False, device=str(dev),
                      **parse_overrides(a.set))
    plan = make_plan(cfg)
    result = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "world_size": world,
              "config": cfg.to_dict(), "machine": machine_info(), "stages": {}}
    for stage in STAGES:
        mine = check(cfg, stage, dev)
        ranks = gather_rows([(rank, mine)])
        result["stages"][stage] = {
            "per_rank": {str(r): m for r, m in ranks},
            "peak_device_bytes": max(m[k]["peak_device_bytes"] for _, m in ranks for k in m),
            "plan_scoring_device_bytes": plan["stages"][stage]["scoring"]["device_bytes"],
            "plan_validation_device_bytes": plan["stages"][stage]["validation"]["device_bytes"]}
        if is_main_process():
            print(json.dumps({stage: {k: {"views_per_second": round(v["views_per_second"], 1),
                                          "peak_GB": round(v["peak_device_bytes"] / 1e9, 2)}
                                      for k, v in mine.items()}}), flush=True)
    if is_main_process():
        atomic_write_json(a.out, result)
        print(f"wrote {a.out}")
    shutdown_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
