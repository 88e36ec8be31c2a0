"""Every training stage for a few steps on the smoke set, in one process or under torchrun; run by test_ddp_stages.py.

    python tests/ddp_stages.py DATA_ROOT RUNS_DIR --batch 2              # one process, global batch 2
    torchrun --nproc_per_node 2 tests/ddp_stages.py DATA_ROOT RUNS_DIR --batch 2   # 2 ranks x 1 = the same 2

``--batch`` is the global batch (``batch_size``, docs/DESIGN.md section 6): each of W ranks takes batch / W.

The stages run through their real recipes (``stages.train``: spatial, motion, temporal, tvl1, rgbdiff, cln) with
the settings of :func:`ddp_config`, then the whole HTSC network scores "val" (``tables.htsc_scores``). Two things
are arranged so that both launches see the same data, which is the premise of "DDP equals one process with the
same global batch":

- the one-process run draws its training order from ``DistributedSampler`` with one replica, i.e. the same
  permutation torchrun's two ranks split (rank r takes positions r, r + 2, ...; a global batch of the two ranks
  is then the same contiguous slice of that permutation as the one process's batch);
- augmentation (segment offsets, crops, flips) is seeded per video, not from the process that happens to load it
  (``VideoDataset`` draws from one generator per process, seeded per rank: ``engine.process_seed``).

Dropout is off and VGG16 has no batch norm (as in the paper), the two things that differ by construction
(masks drawn per rank; BN statistics over each rank's half batch; docs/DESIGN.md section 6).
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from htsc_core.config import from_params
from htsc_core.data.dataset import VideoDataset, make_loader
from htsc_core.train import stages
from htsc_core.train.engine import is_distributed, shutdown_distributed

STAGES = ("spatial", "motion", "temporal", "tvl1", "rgbdiff", "cln")


def ddp_config(data_root: str, runs_dir: str, batch: int):
    return from_params(profile="smoke", data_root=data_root, runs_dir=runs_dir, results_dir=runs_dir, device="cpu",
                       amp="off", dropout=0.0, dropout_c3d=0.0, dropout_cln=0.0, dropout_tclsta=0.0,
                       vgg_batch_norm=False, batch_size=batch, max_steps_per_epoch=2, max_train_videos=4,
                       max_eval_videos=3, epochs_cln=1)


def _same_order_loader(original):
    def loader(cfg, dataset, epoch, shuffle):
        if not shuffle or is_distributed():
            return original(cfg, dataset, epoch, shuffle)
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
        return make_loader(dataset, cfg, shuffle=False, sampler=sampler, seed=cfg.seed * 1000 + epoch)
    return loader


def _per_video_augmentation(original):
    def getitem(self, index):  # the same draws for a video whichever rank loads it
        self._rng = np.random.default_rng([12345, int(index)])
        self._rng_key = (os.getpid(), torch.initial_seed())
        return original(self, index)
    return getitem


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_root")
    parser.add_argument("runs_dir")
    parser.add_argument("--batch", type=int, required=True, help="the global batch (batch_size)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    stages._loader = _same_order_loader(stages._loader)
    VideoDataset.__getitem__ = _per_video_augmentation(VideoDataset.__getitem__)
    cfg = ddp_config(args.data_root, args.runs_dir, args.batch)
    for stage in STAGES:
        stages.train(cfg, stage, resume=False)
    # the whole HTSC network over "val" (tables.htsc_scores, as Tables 3-4 score "test"): every rank's videos,
    # gathered once, in the listing's order; AWL weights 1:1 for every class
    from htsc_core.tables import htsc_scores
    from htsc_core.train.streams import num_classes

    htsc_scores(cfg, np.full((num_classes(cfg), 2), 0.5), "val", device="cpu")
    shutdown_distributed()


if __name__ == "__main__":
    main()
