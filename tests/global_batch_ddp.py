"""The spatial stage for a few steps with a given global batch, in one process or under torchrun; run by
tests/test_global_batch.py (issue 41: the global batch is the recipe).

    python tests/global_batch_ddp.py DATA_ROOT RUNS_DIR --batch 4                        # one process, 4 a step
    torchrun --nproc_per_node 2 tests/global_batch_ddp.py DATA_ROOT RUNS_DIR --batch 4 --micro 1
        # 2 ranks x 2 videos, each rank 2 micro-batches of 1 accumulated: the same 4 a step

``--stop-after N`` ends the run after N epochs as a killed run would (the schedule still laid out for
``epochs_spatial``), so a later launch resumes it, at another world size if asked. The data are arranged as in
tests/ddp_stages.py (the same order and per-video augmentation in every launch); dropout is off and VGG16 has no
batch norm, the two things a rank's share changes by construction (docs/DESIGN.md section 6).
"""
from __future__ import annotations

import argparse

import torch

from ddp_stages import _per_video_augmentation, _same_order_loader
from htsc_core.config import from_params
from htsc_core.data.dataset import VideoDataset
from htsc_core.train import engine, stages


def config(data_root: str, runs_dir: str, batch: int, micro: int = 0):
    return from_params(profile="smoke", data_root=data_root, runs_dir=runs_dir, results_dir=runs_dir, device="cpu",
                       amp="off", dropout=0.0, vgg_batch_norm=False, batch_size=batch, micro_batch=micro,
                       max_steps_per_epoch=2, max_train_videos=8, max_eval_videos=3, epochs_spatial=2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_root")
    parser.add_argument("runs_dir")
    parser.add_argument("--batch", type=int, required=True, help="the global batch (batch_size)")
    parser.add_argument("--micro", type=int, default=0, help="micro_batch (0: the whole share at once)")
    parser.add_argument("--stop-after", type=int, default=0, help="end after this many epochs (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    stages._loader = _same_order_loader(stages._loader)
    VideoDataset.__getitem__ = _per_video_augmentation(VideoDataset.__getitem__)
    if args.stop_after:
        fit = engine.Trainer.fit

        def stopped(self, resume=True):
            self.epochs = min(self.epochs, args.stop_after)  # the loop ends early; the schedule keeps its length
            return fit(self, resume)
        engine.Trainer.fit = stopped
    try:
        stages.train(config(args.data_root, args.runs_dir, args.batch, args.micro), "spatial", resume=True)
    finally:
        engine.shutdown_distributed()


if __name__ == "__main__":
    main()
