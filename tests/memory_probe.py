"""Peak resident memory of one scoring, validation or TCLSTA pass, in a fresh process; run by test_bounded_views.py.

    python tests/memory_probe.py score|validate DATA_ROOT RUNS_DIR --batch B [--views-per-forward N]
    python tests/memory_probe.py tclsta DATA_ROOT RUNS_DIR --videos N [--in-memory]

Prints one JSON line: ``peak_mb`` (the process's peak resident set, ru_maxrss, after the pass). The network is the
smoke profile's (VGG16 at 1/16 width), the protocol the paper's 25 segments x 10 crops.
"""
from __future__ import annotations

import argparse
import json
import resource

import numpy as np
import torch

from htsc_core.config import from_params


def _config(root: str, runs: str, batch: int, views_per_forward: int):
    return from_params(profile="smoke", data_root=root, runs_dir=runs, results_dir=runs, device="cpu", amp="off",
                       test_segments=25, test_crops=10, batch_size=batch, num_workers=0,
                       views_per_forward=views_per_forward)


def score(cfg) -> None:
    from htsc_core.train.engine import atomic_torch_save
    from htsc_core.train.scores import extract_scores
    from htsc_core.train.streams import build_stream, num_classes, run_dir

    model = build_stream(cfg, "spatial", num_classes(cfg))  # an untrained stream: memory, not accuracy, is measured
    atomic_torch_save({"model": model.state_dict(), "stage": "spatial", "config": cfg.to_dict()},
                      run_dir(cfg, "spatial") / "best.pt")
    extract_scores(cfg, "spatial", "test", reuse=False)


def validate(cfg) -> None:
    """The trainer's validation pass (Trainer._run_epoch without gradients) over the test videos, as a stage runs it."""
    from htsc_core.data.dataset import VideoDataset
    from htsc_core.data.registry import load_split
    from htsc_core.train import stages
    from htsc_core.train.engine import Trainer
    from htsc_core.train.streams import build_stream, num_classes

    model = build_stream(cfg, "spatial", num_classes(cfg))
    data_cfg = stages.validation_config(cfg)
    val_set = VideoDataset(load_split(cfg, "test")[0], data_cfg, mode="test", modalities=("rgb",), uint8_frames=True)
    loader = stages._loader(data_cfg, val_set, 0, False)
    trainer = Trainer(cfg.runs_dir, "spatial", model, torch.optim.SGD(model.parameters(), lr=0.1),
                      stages.stage_step("spatial", data_cfg), lambda e: [], 1, device="cpu", amp="off")
    out = trainer._run_epoch(loader, False, 0)
    assert out["count"] == len(val_set), out


def tclsta(root: str, runs: str, videos: int, in_memory: bool) -> None:
    """TCLSTA's stage on ``videos`` generated conv5 maps per subset (250 views of 32 x 8 x 8), read from disk
    (:class:`MapRows`) or, with ``in_memory``, handed over as whole tensors (the stage before issue 37)."""
    from htsc_core.train import stages, tclsta as tc

    cfg = from_params(profile="smoke", data_root=root, runs_dir=runs, results_dir=runs, device="cpu", amp="off",
                      test_segments=25, test_crops=10, epochs_tclsta=1)
    rng = np.random.default_rng(0)
    files = {}
    for subset in ("train", "val"):
        for stream in tc.TRUNKS:
            path = tc.maps_path(cfg, subset, stream)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(videos, 250, 32, 8, 8)).flush()
            offset = tc.MapRows(path, np.arange(videos)).offset
            with open(path, "r+b") as fh:  # plain writes, as extract_conv5: a memory map would count in the RSS
                fh.seek(offset)
                for _ in range(videos):
                    fh.write(rng.random((250, 32, 8, 8), dtype=np.float32).astype(np.float16).tobytes())
            files[subset, stream] = path
    labels = torch.from_numpy(rng.integers(0, 6, videos))

    def pairs(c, subset, device=None):
        rows = [tc.MapRows(files[subset, s], np.arange(videos)) for s in tc.TRUNKS]
        if in_memory:
            rows = [r[np.arange(videos)] for r in rows]
        return rows[0], rows[1], labels, np.array([f"v{i}" for i in range(videos)])

    tc.conv5_pairs = pairs
    stages.train(cfg, "tclsta", resume=False)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("score", "validate", "tclsta"))
    p.add_argument("data_root")
    p.add_argument("runs_dir")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--views-per-forward", type=int, default=50)
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--in-memory", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.mode == "tclsta":
        tclsta(a.data_root, a.runs_dir, a.videos, a.in_memory)
    else:
        cfg = _config(a.data_root, a.runs_dir, a.batch, a.views_per_forward)
        (score if a.mode == "score" else validate)(cfg)
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
