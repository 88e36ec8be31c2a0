"""A tiny training run through the real Trainer, launched as a subprocess by test_engine.py.

    python tests/tiny_training.py RUN_DIR [--epochs N] [--kill-at-step K]

``--kill-at-step`` SIGKILLs the process in the middle of an epoch (no clean-up runs),
like a pre-empted job. Under ``torchrun`` it trains with DDP (gloo on the CPU).
"""
import argparse
import json
import os
import signal
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, TensorDataset

from htsc_core.train.engine import Trainer, is_distributed, is_main_process, parameter_digest, shutdown_distributed

parser = argparse.ArgumentParser()
parser.add_argument("run_dir")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--kill-at-step", type=int, default=0)
args = parser.parse_args()

torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(96, 8)
y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
dataset = TensorDataset(x, y)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
steps = {"n": 0}


def make_loader(epoch):
    if is_distributed():
        sampler = DistributedSampler(dataset, shuffle=True, seed=0)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(epoch))
    return [{"x": a, "label": b} for a, b in DataLoader(dataset, batch_size=8, sampler=sampler)]


def step(m, batch):
    steps["n"] += 1
    if args.kill_at_step and steps["n"] == args.kill_at_step:
        os.kill(os.getpid(), signal.SIGKILL)
    logits = m(batch["x"])
    loss = nn.functional.cross_entropy(logits, batch["label"])
    return loss, {"correct": float((logits.argmax(1) == batch["label"]).sum()), "count": len(batch["label"])}


trainer = Trainer(args.run_dir, "tiny", model, optimizer, step, make_loader, args.epochs, seed=0, device="cpu",
                  val_loader=make_loader(99), config={"tiny": True})
history = trainer.fit(resume=True)
if is_main_process():
    json.dump({"digest": parameter_digest(trainer.module), "last": history[-1].val if history else None},
              open(os.path.join(args.run_dir, "final.json"), "w"))
shutdown_distributed()
sys.exit(0)
