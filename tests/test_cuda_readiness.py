"""The CUDA branch's decisions, checked on a CPU with the device mocked (issue 25, item 4).

What the policy picks on a GPU (bf16 on compute capability 8.0+, fp16 with a GradScaler before it, channels_last),
the DataLoader a paper-profile run gets on a GPU server (workers from the host, pinned memory), and the trainer's
fp16 path with loss scaling, run for real on the CPU. What needs a GPU to check is listed in docs/DESIGN.md
section 6 ("CUDA readiness").
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from htsc_core.config import from_params
from htsc_core.data import dataset as dataset_mod
from htsc_core.precision import Precision, precision_policy
from htsc_core.train import engine


@pytest.fixture
def gpu(monkeypatch):
    """A CUDA device as the policy sees it: available, with the capability the test sets (torch.cuda is not
    initialised: nothing here touches a real GPU)."""
    state = {"capability": (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: state["capability"])
    return state


@pytest.mark.parametrize("capability, dtype, scaler", [((9, 0), torch.bfloat16, False), ((8, 0), torch.bfloat16, False),
                                                       ((7, 5), torch.float16, True), ((7, 0), torch.float16, True)])
def test_cuda_precision_follows_the_compute_capability(gpu, capability, dtype, scaler):
    gpu["capability"] = capability
    policy = precision_policy(torch.device("cuda", 0), from_params(profile="paper"))
    assert policy.autocast_dtype == dtype and policy.needs_grad_scaler == scaler
    assert policy.name == ("fp16" if scaler else "bf16")
    assert policy.channels_last  # NHWC convolutions on every GPU
    assert precision_policy(torch.device("cuda", 0), "off") == Precision(None, True)  # amp=off: fp32
    assert precision_policy(torch.device("cuda", 0), "bf16").autocast_dtype == torch.bfloat16  # forced


def test_grad_scaler_only_for_fp16():
    cpu = torch.device("cpu")
    assert Precision(torch.float16, False).grad_scaler(cpu).is_enabled()
    assert not Precision(torch.bfloat16, False).grad_scaler(cpu).is_enabled()
    assert not Precision(None, False).grad_scaler(cpu).is_enabled()


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # the mocked 32 cores are 2 here
def test_paper_loader_on_a_gpu_server(monkeypatch, gpu):
    """32 cores and CUDA: the paper profile's 8 workers, its batch of 32 videos, pinned memory; 2 cores: 1 worker
    (the other core trains); 8 ranks on 32 cores (torchrun): 3 workers each."""
    cfg = from_params(profile="paper")
    data = list(range(64))
    monkeypatch.setattr(dataset_mod, "host_cpus", lambda: 32)
    loader = dataset_mod.make_loader(data, cfg, shuffle=True)
    assert (loader.num_workers, loader.batch_size, loader.pin_memory) == (8, 32, True)
    monkeypatch.setattr(dataset_mod, "host_cpus", lambda: 2)
    assert dataset_mod.make_loader(data, cfg, shuffle=True).num_workers == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setattr(dataset_mod, "host_cpus", lambda: 32)
    assert dataset_mod.make_loader(data, cfg, shuffle=True).num_workers == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not dataset_mod.make_loader(data, cfg, shuffle=True).pin_memory  # nothing to pin for on a CPU


def test_trainer_moves_batches_non_blocking(monkeypatch, tmp_path):
    """Every tensor of a batch reaches the device with ``non_blocking=True`` (overlaps the copy from pinned
    memory with compute on a GPU; a plain copy on the CPU)."""
    calls = []
    original = torch.Tensor.to

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("non_blocking", False))
        return original(self, *args, **kwargs)

    model = nn.Linear(3, 2)
    step = lambda m, b: (nn.functional.cross_entropy(m(b["x"]), b["label"]), {"count": 2})  # noqa: E731
    batches = [{"x": torch.ones(2, 3), "label": torch.zeros(2, dtype=torch.long)}]
    trainer = engine.Trainer(tmp_path, "t", model, torch.optim.SGD(model.parameters(), lr=0.1), step,
                             lambda e: batches, 1, device="cpu", amp="off", monitor="loss")
    monkeypatch.setattr(torch.Tensor, "to", spy)
    trainer._run_epoch(batches, True, 0)
    assert calls == [True, True]


def test_trainer_fp16_path_scales_the_loss(monkeypatch, tmp_path):
    """The fp16 branch (a pre-Ampere GPU) run on the CPU: fp16 autocast, a GradScaler that scales the loss and
    whose state goes into the checkpoint, so that a resumed run continues with the scale it had reached."""
    monkeypatch.setattr(engine, "precision_policy", lambda device, amp: Precision(torch.float16, False))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    scaled = []

    def step(m, b):
        out = m(b["x"])
        scaled.append(out.dtype)
        return nn.functional.cross_entropy(out.float(), b["label"]), {"count": len(b["label"])}

    batches = [{"x": x[i:i + 8], "label": y[i:i + 8]} for i in range(0, 32, 8)]
    trainer = engine.Trainer(tmp_path, "fp16", model, torch.optim.SGD(model.parameters(), lr=0.1), step,
                             lambda e: batches, 2, device="cpu", monitor="loss")
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(resume=False)
    assert trainer.scaler.is_enabled() and set(scaled) == {torch.float16}
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the unscaled steps were taken
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["scaler"]["scale"] == trainer.scaler.get_scale()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["precision"] for r in log] == ["fp16", "fp16"]
