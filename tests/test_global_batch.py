"""The global batch is the recipe (issue 41; docs/DESIGN.md section 6): ``batch_size`` videos per optimiser step at
any world size, each of W processes taking batch_size / W in micro-batches of at most ``micro_batch`` whose
gradients are accumulated; recorded in the run's config.json; a resume that would change the global batch is
refused naming both, one at another world size with the same global batch goes on.

In process: the batch plan's arithmetic, accumulation against one pass, the single-micro-batch step against the
trainer's loop before micro-batches (bit for bit), the resume rule on recorded and on older checkpoints. Under
torchrun (2 CPU processes, gloo; tests/global_batch_ddp.py): the spatial stage with global batch 4 (2 ranks x 2
micro-batches of 1) against one process with batch 4, and a run stopped under torchrun resumed in one process.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from htsc_core.config import Config, from_params
from htsc_core.train import engine
from htsc_core.train.engine import CheckpointError, Trainer, batch_plan
from launch import ENV, free_port

SCRIPT = Path(__file__).with_name("global_batch_ddp.py")


# --- in process -----------------------------------------------------------------------------------------------------
def test_batch_plan_splits_the_global_batch():
    assert batch_plan(32, 0, 1) == {"global_batch": 32, "world_size": 1, "per_process_batch": 32, "micro_batch": 32,
                                    "accumulation": 1}
    assert batch_plan(32, 0, 8)["per_process_batch"] == 4  # eight GPUs: 4 each, the same 32 a step
    p = batch_plan(128, 8, 2)  # the release's end-to-end 8 x iter_size 16 on two processes: 64 each, 8 passes
    assert (p["per_process_batch"], p["micro_batch"], p["accumulation"]) == (64, 8, 8)
    assert batch_plan(10, 4, 1)["accumulation"] == 3  # 4 + 4 + 2
    with pytest.raises(ValueError, match="batch_size=6 .* 4 processes"):
        batch_plan(6, 0, 4)


def _data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, 5, generator=g), "y": torch.randn(n, 1, generator=g),
            "index": torch.arange(n)}


def _step(model, batch):  # a mean over the batch's items, as every stage's loss
    loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
    return loss, {"count": batch["x"].shape[0]}


def _trainer(tmp, config, epochs=1, batches=None, opt="sgd"):
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt == "sgd"
                 else torch.optim.AdamW(model.parameters(), lr=0.01))
    batches = batches or [_data(8, 0), _data(8, 1)]
    return Trainer(tmp, "toy", model, optimizer, _step, lambda e: batches, epochs, device="cpu", amp="off",
                   config=config)


def test_micro_batches_accumulate_to_the_one_pass_step(tmp_path):
    one = _trainer(tmp_path / "one", {"batch_size": 8})
    acc = _trainer(tmp_path / "acc", {"batch_size": 8, "micro_batch": 3})  # 3 + 3 + 2, weighted by their share
    assert acc.batch["accumulation"] == 3
    h1, h2 = one.fit(resume=False), acc.fit(resume=False)
    for a, b in zip(one.module.parameters(), acc.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert h1[0].train["count"] == h2[0].train["count"] == 16  # the same videos
    assert h1[0].train["loss"] == pytest.approx(h2[0].train["loss"], rel=1e-5)
    assert one.optimizer.state_dict()["state"][0]["momentum_buffer"] is not None
    saved = json.loads((tmp_path / "acc" / "config.json").read_text())
    assert saved["batch_plan"] == acc.batch and saved["batch_plan"]["world_size"] == 1


def test_one_micro_batch_is_the_step_of_before_bit_for_bit(tmp_path):
    """The CPU profiles at world size 1 (micro_batch 0) train exactly as before micro-batches: the old loop."""
    tr = _trainer(tmp_path / "t", {"batch_size": 8}, epochs=2, opt="adam")
    tr.fit(resume=False)
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    for epoch in range(2):
        torch.manual_seed(epoch)  # seed 0 x 1000 + epoch, as the trainer before issue 41
        for batch in (_data(8, 0), _data(8, 1)):
            loss, _ = _step(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    for a, b in zip(tr.module.parameters(), model.parameters()):
        assert torch.equal(a, b)


def _stopped_run(tmp_path, config) -> Trainer:
    tr = _trainer(tmp_path, config, epochs=1)
    tr.fit(resume=False)
    return tr


def _rewrite(path: Path, **changes):
    ckpt = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            ckpt.pop(key, None)
        else:
            ckpt[key] = value
    torch.save(ckpt, path)


def test_resume_keeps_the_global_batch_at_another_world_size(tmp_path):
    _stopped_run(tmp_path, {"batch_size": 4})
    # as if trained under torchrun on 2 processes with the same global batch
    _rewrite(tmp_path / "last.pt", batch={**batch_plan(4, 0, 2)})
    again = _trainer(tmp_path, {"batch_size": 4}, epochs=2)
    assert again.resume() and again.start_epoch == 1
    refused = _trainer(tmp_path, {"batch_size": 2}, epochs=2)
    with pytest.raises(CheckpointError, match=r"global batch of 4 .*2 process\(es\) x 2.*would take 2 "
                                              r"\(batch_size=2 over 1 process\(es\)\).*--set batch_size=4"):
        refused.resume()


def test_resume_of_a_checkpoint_from_before_the_global_batch(tmp_path):
    """Older checkpoints recorded batch_size per process and, under torchrun, the world size in their log."""
    _stopped_run(tmp_path, {"batch_size": 2})
    _rewrite(tmp_path / "last.pt", batch=None, metrics={"world_size": 2})  # 2 processes x 2 = 4 a step
    assert _trainer(tmp_path, {"batch_size": 4}, epochs=2).resume()  # the same global batch: goes on
    with pytest.raises(CheckpointError, match=r"global batch of 4 .*before the global batch.*would take 2"):
        _trainer(tmp_path, {"batch_size": 2}, epochs=2).resume()


def test_config_json_with_the_batch_plan_reads_back_as_a_config(tmp_path):
    cfg = from_params(profile="smoke")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**cfg.to_dict(), "batch_plan": batch_plan(cfg.batch_size, 0, 1)}))
    assert Config.load(path) == cfg
    assert engine.RESUMABLE_CHANGES >= {"micro_batch"}  # how many a device holds is not the recipe


# --- under torchrun -------------------------------------------------------------------------------------------------
def _launch(root, runs, *args, ranks=1):
    head = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr",
             "127.0.0.1", "--master_port", str(free_port())] if ranks > 1 else [sys.executable])
    return subprocess.run([*head, str(SCRIPT), str(root), str(runs), *args], env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(smoke_set_source, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("global-batch")
    root = smoke_set_source
    out = {}
    for name, args, ranks in (("single", ("--batch", "4"), 1), ("ddp", ("--batch", "4", "--micro", "1"), 2),
                              ("stopped", ("--batch", "4", "--micro", "1", "--stop-after", "1"), 2)):
        done = _launch(root, tmp / name, *args, ranks=ranks)
        assert done.returncode == 0, done.stderr[-3000:]
        out[name] = tmp / name
    shutil.copytree(tmp / "stopped", tmp / "refused")
    out["refused"] = _launch(root, tmp / "refused", "--batch", "2")  # another global batch: refused
    resumed = _launch(root, tmp / "stopped", "--batch", "4")  # one process resumes the torchrun run
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return out


def _ckpt(run: Path) -> dict:
    return torch.load(run / "spatial" / "last.pt", map_location="cpu", weights_only=True)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "spatial" / "log.jsonl").read_text().splitlines()]


def _worst(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1e-3)).item() for k in a)


def test_torchrun_with_the_global_batch_equals_one_process(runs):
    one, two = _ckpt(runs["single"]), _ckpt(runs["ddp"])
    assert one["batch"] == batch_plan(4, 0, 1)
    assert two["batch"] == {"global_batch": 4, "world_size": 2, "per_process_batch": 2, "micro_batch": 1,
                            "accumulation": 2}
    assert json.loads((runs["ddp"] / "spatial" / "config.json").read_text())["batch_plan"] == two["batch"]
    steps = {k: int(v["step"]) for k, v in one["optimizer"]["state"].items()}
    assert set(steps.values()) == {4}  # 2 epochs x 2 steps of 4 videos
    assert {int(v["step"]) for v in two["optimizer"]["state"].values()} == {4}  # the same optimiser steps
    for a, b in zip(_log(runs["single"]), _log(runs["ddp"])):
        assert a["train_count"] == b["train_count"] == 8 and b["world_size"] == 2 and b["ranks_in_step"]
        assert a["lr"] == b["lr"]  # the same schedule
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4, abs=1e-6)
    worst = _worst(one["model"], two["model"])
    assert worst < 1e-3, f"weights differ by {worst:.2e} of their scale"


def test_resume_at_another_world_size_keeps_the_global_batch(runs):
    resumed, whole = _ckpt(runs["stopped"]), _ckpt(runs["single"])
    log = _log(runs["stopped"])
    assert [r["epoch"] for r in log] == [1, 2] and log[0]["world_size"] == 2 and "world_size" not in log[1]
    assert resumed["batch"] == batch_plan(4, 0, 1)  # epoch 2 in one process, the same 4 videos a step
    worst = _worst(whole["model"], resumed["model"])
    assert worst < 1e-3, f"resumed weights differ by {worst:.2e} of their scale"


def test_resume_with_another_global_batch_is_refused_naming_both(runs):
    refused = runs["refused"]
    assert refused.returncode != 0
    message = " ".join(refused.stderr.split())
    assert "global batch of 4 videos per optimiser step (2 process(es) x 2)" in message
    assert "this run would take 2 (batch_size=2 over 1 process(es))" in message
