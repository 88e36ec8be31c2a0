"""Shared timing helpers of the benchmarks (docs/DESIGN.md section 7: every figure states
resolution, batch, threads and device; ratios are measured in one run)."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import AbstractContextManager, contextmanager, nullcontext
from collections.abc import Sequence

import numpy as np
import torch


def autocast(precision, device: torch.device) -> AbstractContextManager:
    """The autocast context of a :class:`htsc_core.precision.Precision` (the scoring policy: bf16 where the
    CPU has it natively, fp32 elsewhere); ``None``: fp32, no context."""
    return nullcontext() if precision is None else precision.autocast(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Accumulates wall time per named step: ``with timer("tvl1"): ...``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.times[name] += time.perf_counter() - t0


def spread(values: Sequence[float]) -> dict[str, float]:
    """median, min, max, q1, q3 of repeated measurements."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("spread: no measurements")
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "min": float(v.min()), "max": float(v.max()), "q1": float(q1), "q3": float(q3),
            "n": int(v.size)}


def time_call(fn, repeats: int, device: torch.device, warmup: int = 1) -> dict[str, float]:
    """Seconds per call of ``fn()``: ``warmup`` untimed calls, then the spread of ``repeats`` timed ones."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats}; expected >= 1")
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return spread(out)


def matmul_throughput(n: int, repeats: int, device: torch.device) -> dict:
    """Measured fp32 ``torch.mm`` (n x n) FLOP/s on ``device``: the machine's attainable peak for dense maths."""
    if n < 1:
        raise ValueError(f"matmul size n={n}; expected >= 1")
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    with torch.inference_mode():
        t = time_call(lambda: torch.mm(a, b), repeats, device)
    flops = 2.0 * n ** 3
    return {"n": n, "dtype": "float32", "flop_per_call": flops, "seconds": t, "flops_per_s": flops / t["median"],
            "flops_per_s_best": flops / t["min"], "device": str(device), "torch_threads": torch.get_num_threads()}


def conv1x1_throughput(channels: int, side: int, repeats: int, device: torch.device) -> dict:
    """Measured fp32 FLOP/s of a 1x1 convolution (a GEMM run by oneDNN, the library the networks' convs use).

    A second dense-maths reference besides ``torch.mm``: on CPUs where MKL's sgemm takes a slow path
    (e.g. AMD EPYC), oneDNN convolutions can exceed the ``torch.mm`` figure.
    """
    if channels < 1 or side < 1:
        raise ValueError(f"conv1x1 channels={channels}, side={side}; expected >= 1")
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(1, channels, side, side, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 1, 1, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        t = time_call(lambda: torch.nn.functional.conv2d(x, w), repeats, device)
    flops = 2.0 * channels * channels * side * side
    return {"channels": channels, "side": side, "dtype": "float32", "flop_per_call": flops, "seconds": t,
            "flops_per_s": flops / t["median"], "device": str(device), "torch_threads": torch.get_num_threads()}
