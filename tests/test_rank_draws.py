"""Randomness per process, reproducible (issue 41): seeds from (seed, rank, epoch) (``engine.process_seed``), so
the ranks of torchrun draw their own crops and dropout masks, a rerun at the same world size repeats them, and rank
0 / one process keeps the seeds of before (the committed CPU results).

The rank is set by patching ``rank_and_world`` where the loader and the trainer read it: what each rank of a
torchrun launch computes, without launching one (tests/test_global_batch.py launches torchrun).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import RandomSampler

from htsc_core.config import from_params
from htsc_core.data.dataset import VideoDataset, make_loader
from htsc_core.data.registry import load_split
from htsc_core.train import distributed, engine, stages
from htsc_core.train.engine import Trainer, process_seed


def test_process_seed_is_the_old_seed_at_rank_0_and_differs_per_rank():
    assert [process_seed(3, e, 0) for e in range(3)] == [3000, 3001, 3002]  # seed x 1000 + epoch, as before
    seeds = {process_seed(3, 1, r) for r in range(8)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    assert process_seed(3, 1, 5) == process_seed(3, 1, 5) != process_seed(3, 2, 5) != process_seed(4, 1, 5)


@pytest.fixture
def one_video(smoke_set):
    cfg = from_params(profile="smoke", data_root=str(smoke_set), batch_size=2, num_workers=0)
    records, _ = load_split(cfg, "train")
    return cfg, VideoDataset(records[:1], cfg, mode="train", modalities=("rgb",))


def _first_batch(cfg, ds, rank, world, epoch, monkeypatch):
    """The first training batch of ``rank`` of ``world`` in ``epoch``, from a fresh dataset (a fresh process)."""
    ds = VideoDataset(ds.records, cfg, mode="train", modalities=ds.modalities)
    monkeypatch.setattr(stages, "rank_and_world", lambda: (rank, world))
    torch.manual_seed(process_seed(cfg.seed, epoch, rank))  # what Trainer.fit does before each epoch
    batch = next(iter(stages._loader(cfg, ds, epoch, True)))
    return batch["rgb"], batch["index"]


@pytest.mark.parametrize("workers", [0, 1])  # draws in the main process, or in a worker seeded by the loader
def test_two_ranks_draw_different_crops_and_a_rerun_repeats_them(one_video, monkeypatch, workers):
    cfg, ds = one_video
    cfg = cfg.replace(num_workers=workers)
    # one video and two ranks: DistributedSampler pads, so both ranks load the same video
    r0, i0 = _first_batch(cfg, ds, 0, 2, 1, monkeypatch)
    r1, i1 = _first_batch(cfg, ds, 1, 2, 1, monkeypatch)
    assert i0.tolist() == i1.tolist() == [0]
    assert not torch.equal(r0, r1)  # another crop, offset or flip of the same video
    again, _ = _first_batch(cfg, ds, 1, 2, 1, monkeypatch)
    assert torch.equal(again, r1)  # the same seed and world size repeat it


def test_one_process_loads_as_before_issue_41(one_video, monkeypatch):
    """World size 1: the sampler and the loader's seeds of before (seed x 1000 + epoch), rebuilt here by hand."""
    cfg, ds = one_video
    ours, _ = _first_batch(cfg, ds, 0, 1, 2, monkeypatch)
    torch.manual_seed(cfg.seed * 1000 + 2)
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(cfg.seed * 1000 + 2))
    before = next(iter(make_loader(ds, cfg, shuffle=False, sampler=sampler, seed=cfg.seed * 1000 + 2)))["rgb"]
    assert torch.equal(ours, before)


def _dropout_masks(tmp_path, rank, monkeypatch):
    """The dropout mask of the first training step of a Trainer at ``rank`` of 2 (its per-epoch seeding)."""
    for module in (engine, distributed):  # the trainer's seeds and batch plan (train/distributed.py) see rank of 2
        monkeypatch.setattr(module, "rank_and_world", lambda: (rank, 2))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(64, 1))
    masks = []
    model[0].register_forward_hook(lambda m, args, out: masks.append(out.ne(0)))

    def step(m, batch):
        return m(batch["x"]).mean(), {"count": 1}

    tr = Trainer(tmp_path / f"r{rank}", "toy", model, torch.optim.SGD(model.parameters(), lr=0.1), step,
                 lambda e: [{"x": torch.ones(1, 64)}], 1, device="cpu", amp="off", config={"batch_size": 2})
    tr.fit(resume=False)
    return masks[0]


def test_two_ranks_draw_different_dropout_masks_and_a_rerun_repeats_them(tmp_path, monkeypatch):
    m0, m1 = _dropout_masks(tmp_path, 0, monkeypatch), _dropout_masks(tmp_path, 1, monkeypatch)
    assert not torch.equal(m0, m1)
    assert torch.equal(_dropout_masks(tmp_path / "again", 1, monkeypatch), m1)
    torch.manual_seed(0)  # rank 0 draws what one process drew before: seed 0 x 1000 + epoch 0
    assert torch.equal(m0, nn.functional.dropout(torch.ones(1, 64), 0.5, training=True).ne(0))
