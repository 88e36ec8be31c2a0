"""The process group under ``torchrun``, shared by training, scoring and the notebooks: initialise it (NCCL on GPUs,
gloo on the CPU), who this process is, its seed in each epoch, how a global batch splits over the processes, the
evaluation sampler that scores every video once, and gathering rows from every rank. Outside ``torchrun`` each
function is the one-process case. Re-exported by :mod:`htsc_core.train.engine`."""
from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    return not is_distributed() or dist.get_rank() == 0


GROUP_ENV = "HTSC_PROCESS_GROUP"  # names one of several process groups made in turn under one torchrun launch


def _group_store(name: str) -> dist.Store:
    """The launch's key-value store (torchrun's on MASTER_ADDR:MASTER_PORT) under the prefix ``name``.

    ``htsc reproduce`` under torchrun runs every notebook in a kernel of its own on every rank, each kernel a new
    process group on the same store: without a prefix per group the second one reads the first one's (gone)
    addresses and never connects (found running ``torchrun ... reproduce``: notebook 01 hung after 00)."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"  # torchrun hosts the store
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=rank == 0 and not agent_store)
    return dist.PrefixStore(f"htsc/{name}/", store)


def init_distributed(device: torch.device) -> bool:
    """Initialise DDP when launched by ``torchrun`` (WORLD_SIZE > 1): NCCL on GPUs, gloo on the CPU. With
    :data:`GROUP_ENV` set (by ``htsc reproduce``, one name per notebook), the group keeps its keys apart from the
    launch's other groups (:func:`_group_store`)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if device.type == "cuda" else "gloo"
    name = os.environ.get(GROUP_ENV)
    if name:
        dist.init_process_group(backend=backend, store=_group_store(name), rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]))
    else:
        dist.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return True


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside ``torchrun``."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def process_seed(seed: int, epoch: int, rank: int | None = None) -> int:
    """The seed of one process's random draws in one epoch (crop offsets, flips, segment offsets, dropout masks,
    DataLoader worker seeds), derived from (seed, rank, epoch): rank 0, and a run outside ``torchrun``, keep
    ``seed * 1000 + epoch``, the seed every run used before ranks had their own (so the committed CPU results
    are unchanged); rank r > 0 takes a 63-bit seed mixed from the three by numpy's ``SeedSequence``, so ranks
    draw differently and a rerun at the same world size repeats every draw. ``rank`` defaults to this process's."""
    rank = rank_and_world()[0] if rank is None else int(rank)
    base = int(seed) * 1000 + int(epoch)
    if rank == 0:
        return base
    return int(np.random.SeedSequence([int(seed), int(epoch), rank]).generate_state(1, np.uint64)[0] >> 1)


def batch_plan(global_batch: int, micro_batch: int = 0, world: int | None = None) -> dict:
    """How W processes take a global batch of ``global_batch`` videos per optimiser step: ``per_process_batch``
    = global / W each, forwarded in ``accumulation`` micro-batches of at most ``micro_batch`` (0: the whole share
    at once) whose gradients add up before the step. The optimiser then sees the same batch, steps and learning
    rate at any world size (docs/DESIGN.md section 6). ``world`` defaults to this run's."""
    world = rank_and_world()[1] if world is None else int(world)
    global_batch, micro_batch = int(global_batch), int(micro_batch)
    if global_batch < 1 or micro_batch < 0:
        raise ValueError(f"batch_size={global_batch}, micro_batch={micro_batch}; expected >= 1 and >= 0")
    if global_batch % world:
        raise ValueError(f"batch_size={global_batch} is the global batch (videos per optimiser step) and does not "
                         f"split over {world} processes: set --set batch_size= a multiple of {world}, or run "
                         f"another number of processes")
    share = global_batch // world
    micro = min(micro_batch, share) if micro_batch else share
    return {"global_batch": global_batch, "world_size": world, "per_process_batch": share, "micro_batch": micro,
            "accumulation": math.ceil(share / micro)}


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation under ``torchrun``: rank r takes items r, r + W, r + 2W, ... of ``n``, with no padding, so that
    the ranks' sums (all-reduced by the trainer) or their gathered scores (:func:`gather_rows`) cover every
    video exactly once. ``DistributedSampler`` pads the last round with repeats: right for training (equal steps
    per rank), wrong for a count of correct videos."""

    def __init__(self, n: int, rank: int | None = None, world: int | None = None):
        r, w = rank_and_world()
        self.n, self.rank, self.world = int(n), r if rank is None else rank, w if world is None else world

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def barrier() -> None:
    """Wait for every rank (nothing outside ``torchrun``)."""
    if is_distributed():
        dist.barrier()


def gather_rows(rows: list) -> list:
    """Every rank's ``rows`` (picklable items), concatenated in rank order, on every rank; ``rows`` itself
    outside ``torchrun``."""
    if not is_distributed():
        return rows
    gathered: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part]


def shutdown_distributed() -> None:
    """Wait for every rank, then tear the process group down (a rank exiting with it alive aborts gloo)."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
