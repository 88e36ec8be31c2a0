"""Data-pipeline throughput: clips/s and decoded frames/s of a VideoDataset loader.

Used by ``htsc bench data`` (docs/DESIGN.md section 7: efficiency figures state batch,
workers and device). Times ``num_batches`` batches after the first one, which
pays for worker start-up and is reported separately.
"""
from __future__ import annotations

import time

from htsc_core.data.dataset import make_loader


def measure_loader_throughput(dataset, cfg, num_batches: int = 10, num_workers: int | None = None) -> dict:
    """Iterate a loader over ``dataset`` and return throughput figures.

    Keys: clips_per_s, frames_per_s (frame indices requested per clip x clips/s; repeated
    indices of short videos are decoded once, so this is an upper bound), batch_size,
    num_workers, num_batches, clips, seconds, startup_s, frames_per_clip.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches={num_batches}; expected >= 1")
    workers = cfg.num_workers if num_workers is None else int(num_workers)
    loader = make_loader(dataset, cfg.replace(num_workers=workers), shuffle=True)
    t0 = time.perf_counter()
    it = iter(loader)
    clips = batches = 0
    startup = None
    t_start = None
    while batches < num_batches + 1:
        try:
            batch = next(it)
        except StopIteration:
            if batches == 0:
                raise ValueError("the dataset yielded no batch") from None
            it = iter(loader)
            continue
        size = 0 if batch is None else int(batch["index"].shape[0])
        if startup is None:
            startup = time.perf_counter() - t0  # first batch: worker start-up + first decode
            t_start = time.perf_counter()
            batches += 1
            continue
        clips += size
        batches += 1
    seconds = time.perf_counter() - t_start
    per_clip = dataset.frames_per_item() if hasattr(dataset, "frames_per_item") else 0
    del it, loader
    return {
        "clips_per_s": clips / seconds if seconds > 0 else float("inf"),
        "frames_per_s": clips * per_clip / seconds if seconds > 0 else float("inf"),
        "batch_size": cfg.batch_size,
        "num_workers": workers,
        "num_batches": num_batches,
        "clips": clips,
        "seconds": seconds,
        "startup_s": startup,
        "frames_per_clip": per_clip,
    }
