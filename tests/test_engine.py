"""The training engine: resume after SIGKILL equals an uninterrupted run; DDP on two CPU processes;
checkpoints that are corrupt or for another stage fail loudly."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from htsc_core.train.engine import CheckpointError, Trainer, load_checkpoint
from launch import ENV, free_port

SCRIPT = Path(__file__).with_name("tiny_training.py")


def _run(args, check=True):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=120, check=check)


def _log(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    _run([tmp_path / "straight", "--epochs", "4"])
    killed = _run([tmp_path / "resumed", "--epochs", "4", "--kill-at-step", "55"], check=False)
    assert killed.returncode == -9  # died mid-epoch 3 (12 train + 12 val steps per epoch)
    assert [r["epoch"] for r in _log(tmp_path / "resumed")] == [1, 2]
    assert not (tmp_path / "resumed" / "final.json").exists()
    _run([tmp_path / "resumed", "--epochs", "4"])
    straight = json.loads((tmp_path / "straight" / "final.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "final.json").read_text())
    assert resumed["digest"] == straight["digest"]
    assert resumed["last"] == straight["last"]
    assert [r["epoch"] for r in _log(tmp_path / "resumed")] == [1, 2, 3, 4]
    assert not list((tmp_path / "resumed").glob("*.tmp"))  # atomic writes leave no debris


def test_torchrun_two_cpu_processes_train_in_step(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(SCRIPT), str(tmp_path / "ddp"), "--epochs", "2"]
    run = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    log = _log(tmp_path / "ddp")
    assert len(log) == 2  # one writer: rank 0
    assert all(r["world_size"] == 2 and r["ranks_in_step"] for r in log)
    assert log[0]["train_count"] == 96  # the two ranks together saw every sample once
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.pt")) == ["best.pt", "last.pt"]


def _tiny_trainer(run_dir, stage="a", width=4, config=None):
    model = nn.Linear(3, width)
    step = lambda m, b: (m(b["x"]).sum() * 0, {"count": 1})  # noqa: E731
    return Trainer(run_dir, stage, model, torch.optim.SGD(model.parameters(), lr=0.1), step,
                   lambda e: [{"x": torch.ones(2, 3)}], 1, device="cpu", monitor="loss", config=config)


def test_corrupt_checkpoint_fails_clearly(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        _tiny_trainer(tmp_path).fit(resume=True)


def test_a_loaded_checkpoint_is_a_private_copy_of_the_file(tmp_path):
    """load_checkpoint memory-maps the file: changing a loaded tensor must not change the file, and the loaded
    tensors must stay valid when the trainer atomically writes the next epoch to the same path."""
    from htsc_core.utils import atomic_torch_save

    path = tmp_path / "last.pt"
    atomic_torch_save({"model": {"w": torch.zeros(1000)}, "stage": "a"}, path)
    ckpt = load_checkpoint(path, stage="a")
    ckpt["model"]["w"].add_(1.0)  # an optimiser's in-place step on a resumed buffer
    atomic_torch_save({"model": {"w": torch.full((1000,), 2.0)}, "stage": "a"}, path)
    assert torch.equal(ckpt["model"]["w"], torch.ones(1000))
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((1000,), 2.0))
    torch.save({"model": {"w": torch.ones(3)}}, path, _use_new_zipfile_serialization=False)  # cannot be mapped
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))


def test_checkpoint_for_other_stage_or_shape_is_refused(tmp_path):
    _tiny_trainer(tmp_path, "a").fit()
    ckpt = load_checkpoint(tmp_path / "last.pt", stage="a")
    assert ckpt["epoch"] == 0 and ckpt["stage"] == "a"
    with pytest.raises(CheckpointError, match="stage"):
        _tiny_trainer(tmp_path, "b").fit(resume=True)
    with pytest.raises(CheckpointError, match="does not match"):
        _tiny_trainer(tmp_path, "a", width=5).fit(resume=True)
    with pytest.raises(FileNotFoundError, match="htsc train"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_refuses_a_checkpoint_trained_with_other_settings(tmp_path):
    _tiny_trainer(tmp_path, config={"epochs_motion": 100, "lr_motion": 1e-3, "device": "cpu"}).fit()
    # where/how a run executes may change on resume; what it learns may not
    _tiny_trainer(tmp_path, config={"epochs_motion": 100, "lr_motion": 1e-3, "device": "cuda"}).fit(resume=True)
    with pytest.raises(CheckpointError, match=r"epochs_motion: 100 -> 250.*--no-resume"):
        _tiny_trainer(tmp_path, config={"epochs_motion": 250, "lr_motion": 1e-3, "device": "cpu"}).fit(resume=True)
