"""One training loop for every stage (spatial, MotionNet, temporal, TV-L1 temporal, CLN).

What differs between stages is a ``step`` function ``step(model, batch) -> (loss, stats)``
where ``stats`` holds sums (``correct``, ``count`` and any loss parts); the engine does
the rest: device placement, the precision policy (:func:`precision_policy`: bf16 autocast where
the device computes bf16 natively - CUDA, or a CPU with AVX512-BF16 / AMX - and channels_last),
DDP under ``torchrun``, a JSONL log per epoch, ``last.pt`` / ``best.pt`` written atomically,
resume from ``last.pt``, and progress bars.

Reproducibility: every epoch reseeds torch (and the data order) from
``seed + epoch``, so a run killed and resumed from the last epoch checkpoint ends
with exactly the metrics of an uninterrupted run on the CPU.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn

from htsc_core.precision import (  # noqa: F401 - re-exported: the trainers' precision policy
    AMP_MODES, CPU_BF16_FLAGS, FP32_SWITCH, Precision, cpu_hardware_bf16, cpu_has_native_bf16, fp32_forced,
    machine_info, normalise_amp, precision_policy)
from htsc_core.utils import atomic_link, atomic_torch_save, atomic_write_text, resolve_device
from htsc_core.utils import progress as utils_progress

StepFn = Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, or made for another model/stage."""


# Config fields that say where or how fast a run executes, not what it learns: a run may resume with
# them changed (another machine, device, worker count, cache size or output folder).
RESUMABLE_CHANGES = frozenset({"device", "num_workers", "clip_cache_mb", "runs_dir", "results_dir", "data_root",
                               "amp"})


def config_changes(saved: dict, current: dict) -> list[str]:
    """``key: saved -> current`` for every training setting that differs (``RESUMABLE_CHANGES`` aside)."""
    keys = sorted((set(saved) | set(current)) - RESUMABLE_CHANGES)
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys
            if k in saved and k in current and saved[k] != current[k]]


def progress(iterable: Iterable, **kw: Any):
    """:func:`htsc_core.utils.progress` (off with TQDM_DISABLE=1), and off on every rank but the first."""
    return utils_progress(iterable, disable=not is_main_process(), **kw)


# --- precision policy: htsc_core/precision.py (re-exported here for the trainers) ---------------
def to_channels_last(model: nn.Module) -> nn.Module:
    """Conv weights in channels_last (in place); 5-D buffers such as MotionNet's input mean stay as they are
    (``model.to(memory_format=...)`` would fail on them). Conv outputs then follow the weights' layout."""
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            mod.to(memory_format=torch.channels_last)
    return model


# --- distributed ------------------------------------------------------------
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    return not is_distributed() or dist.get_rank() == 0


def init_distributed(device: torch.device) -> bool:
    """Initialise DDP when launched by ``torchrun`` (WORLD_SIZE > 1): NCCL on GPUs, gloo on the CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return True


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside ``torchrun``."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


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


def _param_checksum(model: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.detach().double().sum().item() for p in model.parameters()))


# --- checkpoints --------------------------------------------------------------
def load_checkpoint(path: str | Path, stage: str | None = None) -> dict:
    """Load a checkpoint with ``weights_only=True``; clear errors for missing/corrupt/mismatched files.

    Memory-mapped (copy-on-write: nothing writes back to the file): the tensors are read from the page cache as
    ``load_state_dict`` copies them, not read once more into fresh memory first; a 1 GB paper-width VGG16 file
    loads in a third of the time. A later atomic write of the same path makes a new file; this one stays valid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train the stage first: `htsc train ...`)")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # torch's legacy (non-zip) format cannot be mapped: read it whole
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"checkpoint {path} has no 'model' entry; not written by htsc")
    if stage is not None and ckpt.get("stage") != stage:
        raise CheckpointError(f"checkpoint {path} is for stage {ckpt.get('stage')!r}, expected {stage!r}")
    return ckpt


def load_state(model: nn.Module, ckpt: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match the model (different config?): {exc}") from exc


@dataclass
class EpochResult:
    epoch: int
    train: dict[str, float]
    val: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Train ``model`` with ``step`` for ``epochs`` epochs, writing into ``run_dir``.

    ``make_loader(epoch)`` returns the training loader for that epoch (so the data
    order is seeded per epoch); ``val_loader`` is optional; ``monitor`` names the
    validation (or, without one, training) statistic that decides ``best.pt``
    (higher is better unless it ends in "loss").
    """

    def __init__(self, run_dir: str | Path, stage: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                 step: StepFn, make_loader: Callable[[int], Iterable], epochs: int, *, seed: int = 0,
                 device: str | torch.device = "auto", amp: Any = "auto", val_loader: Iterable | None = None,
                 monitor: str = "accuracy", max_steps_per_epoch: int = 0, config: dict | None = None,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None):
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.distributed = init_distributed(self.device)
        self.precision = precision_policy(self.device, amp)
        self.scaler = self.precision.grad_scaler(self.device)  # enabled for fp16 autocast only (pre-Ampere GPUs)
        self.model = model.to(self.device)
        if self.precision.channels_last:
            to_channels_last(self.model)
        self.module = self.model  # unwrapped, for state dicts
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer, self.scheduler, self.step = optimizer, scheduler, step
        self.make_loader, self.val_loader = make_loader, val_loader
        self.epochs, self.seed, self.monitor = epochs, seed, monitor
        self.max_steps = max_steps_per_epoch
        self.config = config or {}
        self.start_epoch = 0
        self.best: float | None = None

    # -- checkpoints --------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def _state(self, epoch: int, metrics: dict) -> dict:
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "epoch": epoch, "best": self.best, "stage": self.stage, "config": self.config,
                "metrics": metrics}

    def resume(self) -> bool:
        """Continue from ``last.pt`` if it exists; a corrupt or mismatched one raises, never restarts."""
        if not self.last_path.exists():
            return False
        ckpt = load_checkpoint(self.last_path, stage=self.stage)
        changed = config_changes(ckpt.get("config") or {}, self.config)
        if changed:  # continuing would mix two recipes (e.g. a schedule laid out for other epochs)
            raise CheckpointError(
                f"{self.last_path} was trained with other settings ({'; '.join(changed)}): start afresh "
                f"(`htsc train ... --no-resume`, or delete {self.run_dir}) or restore those settings")
        load_state(self.module, ckpt, self.last_path)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler and ckpt.get("scheduler"):
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.scaler.is_enabled() and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"optimizer state in {self.last_path} does not match: {exc}") from exc
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best = ckpt.get("best")
        return True

    # -- loop ---------------------------------------------------------------
    def _run_epoch(self, loader: Iterable, train: bool, epoch: int) -> dict[str, float]:
        self.model.train(train)
        sums: dict[str, float] = {}
        steps = 0
        desc = f"{self.stage} {'train' if train else 'val'} {epoch + 1}/{self.epochs}"
        with torch.set_grad_enabled(train):
            for batch in progress(loader, desc=desc, leave=False):
                if batch is None:  # every video of the batch was unreadable (logged by the dataset)
                    continue
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                         for k, v in batch.items()}
                with self.precision.autocast(self.device):
                    loss, stats = self.step(self.model, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.stage}: non-finite loss {loss.item()} at epoch {epoch + 1}")
                if train:
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scaler.scale(loss).backward()  # fp16: scaled loss, unscaled step skipped on inf/nan
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                n = float(stats.get("count", 1.0))
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                steps += 1
                if train and self.max_steps and steps >= self.max_steps:
                    break
        if self.distributed:
            keys = sorted(sums)
            t = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self.device)
            dist.all_reduce(t)
            sums = dict(zip(keys, t.tolist()))
        count = max(sums.pop("count", 0.0), 1e-12) if sums else 1.0
        out = {"loss": sums.pop("loss", math.nan) / count}
        correct = sums.pop("correct", None)
        if correct is not None:
            out["accuracy"] = correct / count
        out.update({k: v / count for k, v in sums.items()})
        out["count"] = count
        return out

    def fit(self, resume: bool = True) -> list[EpochResult]:
        if resume:
            self.resume()
        if is_main_process():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.json", json.dumps(self.config, indent=2, sort_keys=True))
        history = []
        for epoch in range(self.start_epoch, self.epochs):
            torch.manual_seed(self.seed * 1000 + epoch)  # per-epoch seed: resume == uninterrupted
            t0 = time.time()
            train_stats = self._run_epoch(self.make_loader(epoch), True, epoch)
            val_stats = self._run_epoch(self.val_loader, False, epoch) if self.val_loader is not None else {}
            lrs = [g["lr"] for g in self.optimizer.param_groups]
            lr = lrs[0] if len(lrs) == 1 else lrs  # temporal stage: [MotionNet, VGG16]
            if self.scheduler:
                self.scheduler.step()
            score_src = val_stats or train_stats
            score = score_src.get(self.monitor, math.nan)
            sign = -1.0 if self.monitor.endswith("loss") else 1.0
            improved = self.best is None or (not math.isnan(score) and sign * score > sign * self.best)
            if improved:
                self.best = score
            record = {"epoch": epoch + 1, "stage": self.stage, "lr": lr, "seconds": round(time.time() - t0, 3),
                      "precision": self.precision.name, "channels_last": self.precision.channels_last,
                      **{f"train_{k}": v for k, v in train_stats.items()},
                      **{f"val_{k}": v for k, v in val_stats.items()}}
            if self.distributed:
                sums = torch.tensor([_param_checksum(self.module)], dtype=torch.float64, device=self.device)
                gathered = [torch.zeros_like(sums) for _ in range(dist.get_world_size())]
                dist.all_gather(gathered, sums)
                record["ranks_in_step"] = bool(all(torch.allclose(g, gathered[0]) for g in gathered))
                record["world_size"] = dist.get_world_size()
            if is_main_process():
                state = self._state(epoch, record)
                atomic_torch_save(state, self.last_path)
                if improved:  # the same state: a second name for last.pt's bytes, not a second write
                    atomic_link(self.last_path, self.best_path)
                with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            history.append(EpochResult(epoch + 1, train_stats, val_stats))
        return history


def parameter_digest(model: nn.Module) -> str:
    """A short hash of every parameter, for comparing runs exactly."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
