"""What the validation split says about each stage's schedule (issue 23: settings chosen on validation only).

For every trained stage, from its per-epoch log (``<runs_dir>/<stage>/log.jsonl``, written by
:class:`htsc_core.train.engine.Trainer`): the epoch ``best.pt`` keeps (the lowest validation loss,
``train/stages.SELECTION_MONITOR``), the validation loss at the first, kept and last epochs, the validation
accuracy at the kept and last epochs, and where in the schedule the minimum falls (:func:`reading`). Notebook 07
writes it to ``tables/schedules.csv``; docs/SYNTHETIC.md section 10 cites it for the epochs each stage trains.
No test-split number enters it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

# every stage the trainer runs, in the notebooks' order (train/stages.STAGES)
STAGES = ("spatial", "motion", "temporal", "tvl1", "rgbdiff", "conv_fusion", "c3d", "tclsta", "cln")
COLUMNS = ("stage", "epochs", "best_epoch", "val_loss_first", "val_loss_best", "val_loss_last",
           "val_accuracy_best", "val_accuracy_last", "val_count", "reading")
LATE, EARLY = 0.75, 0.5  # shares of the schedule: a minimum after LATE still falls, one before EARLY overfits after


def read_run_log(path: str | Path) -> list[dict]:
    """The epochs of a run's ``log.jsonl``: the last contiguous run when a fresh run was appended to an old log."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the stage has not finished an epoch")
    log = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            log.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {i} is not JSON ({exc})") from exc
    starts = [i for i, r in enumerate(log) if r.get("epoch") == 1]
    return log[starts[-1]:] if starts else log


def reading(best_epoch: int, epochs: int) -> str:
    """Where the lowest validation loss falls in a schedule of ``epochs``, in words."""
    if epochs < 4:  # a quarter of the schedule would be less than one epoch
        return f"{epochs} epoch{'s' if epochs > 1 else ''}: too few to read"
    share = best_epoch / epochs
    if share > LATE:
        return "lowest in the last quarter: the validation loss still falls or is flat at the end"
    if share < EARLY:
        return (f"lowest in the first half (epoch {best_epoch} of {epochs}): later epochs do not lower it; "
                "best.pt keeps that epoch")
    return (f"lowest at epoch {best_epoch} of {epochs}, between half and three quarters of the schedule: "
            "flat or rising at the end")


def schedule_row(stage: str, log: list[dict]) -> dict:
    """One stage's row of :data:`COLUMNS` from its log (:func:`read_run_log`); a log without validation raises."""
    losses = [r.get("val_loss", math.nan) for r in log]
    if not log or all(math.isnan(v) for v in losses):
        raise ValueError(f"stage {stage!r}: its log has no validation loss (trained without a validation split?)")
    best = min((i for i, v in enumerate(losses) if not math.isnan(v)), key=lambda i: losses[i])
    epochs = int(log[-1]["epoch"])
    return {"stage": stage, "epochs": epochs, "best_epoch": int(log[best]["epoch"]),
            "val_loss_first": losses[0], "val_loss_best": losses[best], "val_loss_last": losses[-1],
            "val_accuracy_best": log[best].get("val_accuracy", math.nan),
            "val_accuracy_last": log[-1].get("val_accuracy", math.nan),
            "val_count": int(log[-1].get("val_count", 0)), "reading": reading(int(log[best]["epoch"]), epochs)}


def schedule_table(runs_dir: str | Path, stages: tuple[str, ...] = STAGES) -> list[dict]:
    """Rows for every stage of ``stages`` that has a log under ``runs_dir`` (the others are not trained yet)."""
    rows = []
    for stage in stages:
        path = Path(runs_dir) / stage / "log.jsonl"
        if path.is_file():
            rows.append(schedule_row(stage, read_run_log(path)))
    return rows
