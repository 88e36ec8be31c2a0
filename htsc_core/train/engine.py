"""One training loop for every stage (spatial, MotionNet, temporal, TV-L1 temporal, CLN).

What differs between stages is a ``step`` function ``step(model, batch) -> (loss, stats)``
where ``stats`` holds sums (``correct``, ``count`` and any loss parts); the engine does
the rest: device placement, the precision policy (:func:`precision_policy`: bf16 autocast where
the device computes bf16 natively - CUDA, or a CPU with AVX512-BF16 / AMX - and channels_last),
DDP under ``torchrun``, a JSONL log per epoch, ``last.pt`` / ``best.pt`` written atomically,
resume from ``last.pt``, and progress bars.

Reproducibility: every epoch reseeds torch (and the data order) from
(seed, rank, epoch) (:func:`process_seed`), so a run killed and resumed from the last epoch checkpoint ends
with exactly the metrics of an uninterrupted run on the CPU, and the ranks of ``torchrun`` draw their own
crops and dropout masks.

The global batch is the recipe (docs/DESIGN.md section 6): ``cfg.batch_size`` videos per optimiser step at any
world size; each of W processes takes ``batch_size / W`` of them, in micro-batches of at most
``cfg.micro_batch`` whose gradients are accumulated before the step (:func:`batch_plan`).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn

from htsc_core.precision import (  # noqa: F401 - re-exported: the trainers' precision policy
    AMP_MODES, CPU_BF16_FLAGS, FP32_SWITCH, Precision, cpu_hardware_bf16, cpu_has_native_bf16, fp32_forced,
    machine_info, normalise_amp, precision_policy)
from htsc_core.train.distributed import (  # noqa: F401 - re-exported: every trainer and scorer imports them here
    ShardSampler, barrier, batch_plan, gather_rows, init_distributed, is_distributed, is_main_process, process_seed,
    rank_and_world, shutdown_distributed)
from htsc_core.utils import atomic_link, atomic_torch_save, atomic_write_text, resolve_device
from htsc_core.utils import progress as utils_progress

StepFn = Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, or made for another model/stage."""


# Config fields that say where or how fast a run executes, not what it learns: a run may resume with
# them changed (another machine, device, worker count, cache size or output folder).
# micro_batch: how many videos one device holds per forward, not how many the optimiser sees (the global batch).
RESUMABLE_CHANGES = frozenset({"device", "num_workers", "clip_cache_mb", "runs_dir", "results_dir", "data_root",
                               "amp", "micro_batch"})
# compared as the global batch, whatever the world size (Trainer.resume; checkpoints from before the global batch
# recorded a per-process batch_size and, under torchrun, the world size in their metrics)
BATCH_KEYS = frozenset({"batch_size"})


def config_changes(saved: dict, current: dict) -> list[str]:
    """``key: saved -> current`` for every training setting that differs (``RESUMABLE_CHANGES`` and the batch,
    which :meth:`Trainer.resume` compares as the global batch, aside)."""
    keys = sorted((set(saved) | set(current)) - RESUMABLE_CHANGES - BATCH_KEYS)
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


def _saved_global_batch(ckpt: dict) -> tuple[int | None, str]:
    """(global batch, how it is known) of a checkpoint: its recorded batch plan, else (checkpoints from before the
    global batch) its per-process ``batch_size`` x the world size its log recorded (1 outside torchrun)."""
    plan = ckpt.get("batch")
    if plan:
        return int(plan["global_batch"]), (f"{plan['world_size']} process(es) x {plan['per_process_batch']}")
    size = (ckpt.get("config") or {}).get("batch_size")
    if size is None:
        return None, "not recorded"
    world = int((ckpt.get("metrics") or {}).get("world_size", 1))
    return int(size) * world, f"{world} process(es) x batch_size {size}, before the global batch"


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
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, batch: dict | None = None):
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
        # the batch plan (batch_plan): given, or from the config's global batch and micro-batch; None: the loader's
        # batches as they come (a Trainer without a config), one forward per step
        if batch is None and "batch_size" in self.config:
            batch = batch_plan(self.config["batch_size"], self.config.get("micro_batch", 0))
        self.batch = batch
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
                "batch": self.batch, "metrics": metrics}

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
        saved, how = _saved_global_batch(ckpt)
        current = self.batch["global_batch"] if self.batch else self.config.get("batch_size")
        if saved is not None and current is not None and saved != current:  # another recipe: refused
            w = self.batch["world_size"] if self.batch else 1
            raise CheckpointError(
                f"{self.last_path} was trained with a global batch of {saved} videos per optimiser step ({how}); "
                f"this run would take {current} (batch_size={self.config.get('batch_size')} over {w} process(es)). "
                f"The global batch is the recipe: resume with --set batch_size={saved} (any number of processes "
                f"that divides it), or start afresh (`htsc train ... --no-resume`, or delete {self.run_dir})")
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
    def _micro_batches(self, batch: dict) -> list[tuple[dict, float]]:
        """The process's batch as (micro-batch, its share of the batch's videos): one part when it fits."""
        micro = self.batch["micro_batch"] if self.batch else 0
        sizes = {v.shape[0] for v in batch.values() if torch.is_tensor(v) and v.dim()}
        n = max(sizes) if sizes else 0
        if not micro or n <= micro:
            return [(batch, 1.0)]
        return [({k: v[i:i + micro] if torch.is_tensor(v) and v.dim() and v.shape[0] == n else v
                  for k, v in batch.items()}, min(micro, n - i) / n) for i in range(0, n, micro)]

    def _check_finite(self, loss: torch.Tensor, epoch: int) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.stage}: non-finite loss {loss.item()} at epoch {epoch + 1}")

    def _train_step(self, batch: dict, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimiser step on the process's share of the global batch: every micro-batch's loss, weighted by
        its share of the videos (the stages' losses are means over videos), adds its gradients; DDP all-reduces
        them once, on the last micro-batch; then one step. One micro-batch: the plain step, bit for bit."""
        parts = self._micro_batches(batch)
        self.optimizer.zero_grad(set_to_none=True)
        total, sums = None, {}
        for i, (part, share) in enumerate(parts):
            last = i == len(parts) - 1
            with self.model.no_sync() if self.distributed and not last else nullcontext():
                with self.precision.autocast(self.device):
                    loss, stats = self.step(self.model, part)
                self._check_finite(loss, epoch)
                scaled = loss if len(parts) == 1 else loss * share
                self.scaler.scale(scaled).backward()  # fp16: scaled loss, unscaled step skipped on inf/nan
            total = scaled.detach() if total is None else total + scaled.detach()
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total, sums

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
                if train:  # one optimiser step, over micro-batches where one device cannot hold the share
                    loss, stats = self._train_step(batch, epoch)
                else:
                    with self.precision.autocast(self.device):
                        loss, stats = self.step(self.model, batch)
                    self._check_finite(loss, epoch)
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
            # the settings, and how this run's processes take the global batch (config.RUN_RECORD_KEYS: not a
            # setting; `--config` reads the file back without it)
            record = {**self.config, "batch_plan": self.batch} if self.batch else self.config
            atomic_write_text(self.run_dir / "config.json", json.dumps(record, indent=2, sort_keys=True))
        history = []
        for epoch in range(self.start_epoch, self.epochs):
            # per-epoch, per-rank seed: resume == uninterrupted; ranks draw their own crops and dropout masks
            torch.manual_seed(process_seed(self.seed, epoch))
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
