"""tables/schedules.csv (issue 23): what validation says about each stage's schedule, from the runs' logs."""
import json
import math

import pytest
import torch
from torch import nn

from htsc_core import schedules
from htsc_core.train.engine import Trainer


def write_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def epochs(losses, accuracies=None):
    accuracies = accuracies or [0.5] * len(losses)
    return [{"epoch": i + 1, "val_loss": v, "val_accuracy": a, "val_count": 60.0}
            for i, (v, a) in enumerate(zip(losses, accuracies))]


def test_row_by_hand_and_the_readings(tmp_path):
    # lowest at epoch 3 of 8 (first half), accuracy highest at epoch 7: the loss decides
    log = epochs([2.0, 1.5, 1.2, 1.3, 1.4, 1.6, 1.8, 1.9], [0.2, 0.4, 0.5, 0.55, 0.6, 0.6, 0.65, 0.6])
    row = schedules.schedule_row("spatial", log)
    assert row == {"stage": "spatial", "epochs": 8, "best_epoch": 3, "val_loss_first": 2.0, "val_loss_best": 1.2,
                   "val_loss_last": 1.9, "val_accuracy_best": 0.5, "val_accuracy_last": 0.6, "val_count": 60,
                   "reading": row["reading"]}
    assert row["reading"].startswith("lowest in the first half (epoch 3 of 8)")
    assert schedules.reading(8, 8).startswith("lowest in the last quarter")
    assert schedules.reading(7, 8).startswith("lowest in the last quarter")  # 7/8 > 0.75
    assert schedules.reading(6, 8).startswith("lowest at epoch 6 of 8, between half")  # 0.75 is not after it
    assert schedules.reading(4, 8).startswith("lowest at epoch 4 of 8")  # 0.5 is not before the half
    assert schedules.reading(1, 1) == "1 epoch: too few to read"
    assert schedules.reading(1, 3) == "3 epochs: too few to read"
    # a NaN validation loss (an epoch without validation videos) is skipped, not the minimum
    assert schedules.schedule_row("x", epochs([3.0, math.nan, 2.0]))["best_epoch"] == 3


def test_table_reads_the_last_run_of_each_log_and_skips_untrained_stages(tmp_path):
    write_log(tmp_path / "spatial" / "log.jsonl", epochs([0.1, 0.05]) + epochs([2.0, 1.0, 1.5]))  # re-run appended
    write_log(tmp_path / "cln" / "log.jsonl", epochs([1.0, 0.9, 0.8, 0.7]))
    rows = schedules.schedule_table(tmp_path)
    assert [r["stage"] for r in rows] == ["spatial", "cln"]  # in the notebooks' order; motion etc. absent
    assert rows[0]["epochs"] == 3 and rows[0]["best_epoch"] == 2 and rows[0]["val_loss_first"] == 2.0


def test_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="log.jsonl is missing"):
        schedules.read_run_log(tmp_path / "nope" / "log.jsonl")
    bad = tmp_path / "motion" / "log.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"epoch": 1, "val_loss": 1.0}\n{"epoch": 2, "val_lo\n')
    with pytest.raises(ValueError, match=r"motion/log.jsonl: line 2 is not JSON"):
        schedules.read_run_log(bad)
    with pytest.raises(ValueError, match="no validation loss"):
        schedules.schedule_row("spatial", [{"epoch": 1, "train_loss": 1.0}])


def test_best_epoch_is_the_epoch_the_trainer_kept(tmp_path):
    """On a real Trainer run whose validation loss falls then rises (a fixed input the model is pushed away
    from after epoch 2 by a growing learning rate), the row's best_epoch is the epoch best.pt holds."""
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 0.0)
    target = torch.ones(4, 1)

    def step(m, batch):
        loss = ((m(batch["x"]) - target) ** 2).mean()
        return loss, {"count": 4}

    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 if e < 2 else 6.0)  # overshoots from epoch 3
    trainer = Trainer(tmp_path / "spatial", "spatial", model, opt, step, lambda e: [{"x": torch.ones(4, 1)}], 5,
                      device="cpu", amp="off", monitor="loss", scheduler=sched,
                      val_loader=[{"x": torch.ones(4, 1)}])
    trainer.fit(resume=False)
    row = schedules.schedule_table(tmp_path)[0]
    kept = torch.load(tmp_path / "spatial" / "best.pt", map_location="cpu", weights_only=False)
    assert kept["epoch"] + 1 == row["best_epoch"]  # the checkpoint's epoch is 0-based, the log's 1-based
    assert 1 < row["best_epoch"] < 5 and row["val_loss_last"] > row["val_loss_best"]
