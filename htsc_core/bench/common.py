"""Shared timing helpers of the benchmarks (docs/DESIGN.md section 7: every figure states
resolution, batch, threads and device; ratios are measured in one run)."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import AbstractContextManager, contextmanager, nullcontext
from collections.abc import Sequence

import numpy as np
import torch

from htsc_core import stats

RATIO_TOLERANCE = 0.05  # issue 26: the interval of HTSC / HTS narrower than +-5 % of its estimate


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


def matmul_throughput(n: int, repeats: int, device: torch.device, precision=None) -> dict:
    """Measured ``torch.mm`` (n x n) FLOP/s on ``device``: the machine's attainable peak for dense maths in
    ``precision`` (a :class:`htsc_core.precision.Precision`: the mm runs under its autocast, as the networks do,
    so a bf16 network is compared with a bf16 product on the same device; None: fp32)."""
    if n < 1:
        raise ValueError(f"matmul size n={n}; expected >= 1")
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    with torch.inference_mode(), autocast(precision, device):
        dtype = str(torch.mm(a[:2, :2], b[:2, :2]).dtype).removeprefix("torch.")  # what autocast computes in
        t = time_call(lambda: torch.mm(a, b), repeats, device)
    flops = 2.0 * n ** 3
    return {"n": n, "dtype": dtype, "precision": "fp32" if precision is None else precision.name,
            "flop_per_call": flops, "seconds": t, "flops_per_s": flops / t["median"],
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


# ----------------------------------------------------------------------------- repeats and ratios
def resolve_ratio(values_a, values_b, tolerance: float = RATIO_TOLERANCE, seed: int = 0) -> dict:
    """The ratio of medians A / B of interleaved repeats with its 95 % bootstrap interval
    (:func:`htsc_core.stats.ratio_ci`) and whether it is resolved: both ends within ``tolerance`` of the
    estimate (``half_width`` = the larger relative distance of an end from the estimate). Fewer than
    :data:`stats.MIN_TIMINGS` repeats of either: no interval, not resolved."""
    if tolerance <= 0:
        raise ValueError(f"tolerance={tolerance}; expected > 0")
    n = min(len(values_a), len(values_b))
    if n < stats.MIN_TIMINGS:
        est = float(np.median(values_a) / np.median(values_b)) if n else float("nan")
        return {"estimate": est, "ci_low": None, "ci_high": None, "half_width": None, "tolerance": tolerance,
                "n": n, "resolved": False}
    est, lo, hi = stats.ratio_ci(values_a, values_b, seed=seed)
    half = max(hi / est - 1.0, 1.0 - lo / est)
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "half_width": half, "tolerance": tolerance,
            "n": n, "resolved": bool(half <= tolerance)}


def flow_field_ratio(steps_tvl1: list[dict], steps_motion: list[dict], fields_per_video: int, seed: int = 0) -> dict:
    """MotionNet against TV-L1 per flow field (issue 26, item 5): seconds per field of each (median over the
    repeats; both make L-1 fields per stack) and the speedup TV-L1 / MotionNet with its 95 % interval."""
    tvl1 = [s["tvl1"] / fields_per_video for s in steps_tvl1]
    motion = [s["motionnet"] / fields_per_video for s in steps_motion]
    r = resolve_ratio(tvl1, motion, seed=seed)
    return {"tvl1_s_per_field": float(np.median(tvl1)), "motionnet_s_per_field": float(np.median(motion)),
            "motionnet_speedup_per_field": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "repeats_tvl1": len(tvl1), "repeats_motionnet": len(motion)}
