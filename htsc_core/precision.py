"""The precision policy: which dtype and memory layout the networks run in, and what the CPU can do.

"auto" runs bf16 autocast where the device computes bf16 natively (CUDA, or a CPU with AVX512-BF16,
AMX-BF16 or Arm BF16), fp32 elsewhere. ``HTSC_FP32=1`` makes a CPU with native bf16 answer as one without,
so anyone can run the suite or the study as the other kind of machine runs it (README, "Tests").
:func:`precision_metadata` is what every result records about it. torch is imported inside the functions
so that ``htsc --help`` stays free of it.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


def resolve_device(name: str = "auto"):
    """"auto" -> CUDA when available, else the CPU; any other name -> ``torch.device(name)``. Under ``torchrun``
    (``LOCAL_RANK`` set) "auto" and "cuda" without an index name this process's own GPU, ``cuda:LOCAL_RANK``: every
    rank its device, never all of them on GPU 0."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


AMP_MODES = ("auto", "bf16", "off")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 /proc/cpuinfo flags; "bf16" is aarch64's Features


def normalise_amp(amp: Any) -> str:
    """Config ``amp`` -> one of :data:`AMP_MODES` (``True`` -> "auto", ``False`` -> "off", for old configs)."""
    if amp is True or amp is None:
        return "auto"
    if amp is False:
        return "off"
    value = str(amp).strip().lower()
    if value not in AMP_MODES:
        raise ValueError(f"amp={amp!r}; expected one of {AMP_MODES} (or true/false)")
    return value


FP32_SWITCH = "HTSC_FP32"  # set to 1: this machine runs as one without native bf16 (README, "Tests")


def fp32_forced() -> bool:
    """Is the documented switch ``HTSC_FP32=1`` on? Then the CPU is treated as having no native bf16, so
    "auto" precision runs fp32 everywhere, exactly as on an AVX2-only CPU (the suite can be run as the
    other kind of machine runs it). An explicit ``amp=bf16`` still forces bf16."""
    return os.environ.get(FP32_SWITCH, "").strip().lower() not in ("", "0", "false", "no", "off")


def cpu_has_native_bf16() -> bool:
    """Does this CPU compute bf16 natively (AVX512-BF16, AMX-BF16, or Arm BF16), and is ``HTSC_FP32`` off?

    Without such instructions oneDNN emulates bf16 with fp32 conversions, which is slower than fp32,
    so autocast stays off there; :func:`fp32_forced` makes a bf16 CPU answer as one without.
    """
    return cpu_hardware_bf16() and not fp32_forced()


@lru_cache(maxsize=1)
def cpu_hardware_bf16() -> bool:
    """The hardware's answer alone (cached). Sources: torch's dispatch capability (``AMX*`` levels) and the
    kernel's CPU flags in ``/proc/cpuinfo`` (torch 2.x reports AVX512-BF16 CPUs as plain "AVX512")."""
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if "AMX" in capability or "BF16" in capability:
        return True
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False  # not Linux: no way to tell here, so fp32 (the safe side)
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return any(f in flags for f in CPU_BF16_FLAGS)


def cuda_bf16_native(device) -> bool:
    """Does this CUDA device compute bf16 natively (compute capability 8.0 and up: Ampere, Hopper, ...)?

    Asked of the device when CUDA is there; without CUDA (planning a GPU run on a CPU machine, the tests)
    the answer is yes, for the GPUs the paper profile is planned on (``htsc plan``: A100, H100)."""
    import torch

    if not torch.cuda.is_available():
        return True
    index = device.index if getattr(device, "index", None) is not None else torch.cuda.current_device()
    return tuple(torch.cuda.get_device_capability(index)) >= (8, 0)


@dataclass(frozen=True)
class Precision:
    """How a network runs in training: autocast dtype (``None`` = fp32) and memory layout."""

    autocast_dtype: Any  # torch.dtype, or None for fp32
    channels_last: bool

    @property
    def name(self) -> str:
        import torch

        return {None: "fp32", torch.float16: "fp16"}.get(self.autocast_dtype, "bf16")

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 autocast needs loss scaling (its 5-bit exponent underflows small gradients); bf16 has fp32's."""
        import torch

        return self.autocast_dtype == torch.float16

    def grad_scaler(self, device):
        """A ``torch.amp.GradScaler`` for ``device``, enabled only where :attr:`needs_grad_scaler` (a disabled
        scaler passes ``scale``/``step``/``update`` straight through, so the trainer always uses one)."""
        import torch

        return torch.amp.GradScaler(device.type, enabled=self.needs_grad_scaler)

    def autocast(self, device):
        """The autocast context for ``device`` (a disabled one in fp32)."""
        import torch

        return torch.autocast(device.type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)


def precision_policy(device, amp: Any = "auto") -> Precision:
    """The one place that decides precision and layout for training (and anything that runs the networks).

    ``amp`` is a config's ``amp`` value (or the Config itself): "auto" -> bf16 autocast where the device
    has native bf16 (a CUDA device of compute capability 8.0+, :func:`cuda_bf16_native`; a CPU per
    :func:`cpu_has_native_bf16`), fp16 autocast with a GradScaler on an older CUDA device (V100, T4: no
    bf16 units, fp16 tensor cores), else fp32; "bf16" -> bf16 autocast even where it is emulated;
    "off" -> fp32. The flow losses, warping and flow normalisation leave autocast and run in fp32
    themselves (models/flow_losses.py, models/temporal.py).
    channels_last: on CUDA and on CPUs with oneDNN, where conv kernels run in NHWC without the
    reorders NCHW needs (measured by ``htsc bench train``: VGG16 faster, MotionNet on par).
    """
    import torch

    device = resolve_device(device) if isinstance(device, str) else device
    mode = normalise_amp(getattr(amp, "amp", amp))
    cuda = device.type == "cuda"
    native = (cuda and cuda_bf16_native(device)) or (device.type == "cpu" and cpu_has_native_bf16())
    dtype = None
    if mode == "bf16" and device.type in ("cuda", "cpu"):  # other backends: no bf16 autocast guarantee
        dtype = torch.bfloat16
    elif mode == "auto" and native:
        dtype = torch.bfloat16
    elif mode == "auto" and cuda:
        dtype = torch.float16  # pre-Ampere GPU: fp16 with loss scaling (Precision.grad_scaler)
    cl = cuda or (device.type == "cpu" and torch.backends.mkldnn.is_available())
    return Precision(dtype, cl)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, torch version and native-bf16 support: stated beside every timing."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:  # no /proc/cpuinfo (macOS, Windows): platform's name stands
        model = platform.processor() or platform.machine()
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
            "bf16_native_cpu": cpu_has_native_bf16(), "bf16_hardware_cpu": cpu_hardware_bf16(),
            "fp32_forced": fp32_forced(), "mkldnn": torch.backends.mkldnn.is_available(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform()}


def precision_metadata(cfg=None, device: Any = None) -> dict[str, Any]:
    """What every metrics file records about precision: the precision the networks run in under ``cfg``
    (its ``amp``) on ``device``, and the CPU with its native-bf16 flag (hardware, and as the switch sets it)."""
    import torch

    dev = resolve_device(device if device is not None else (getattr(cfg, "device", None) or "auto"))
    if isinstance(dev, str):
        dev = torch.device(dev)
    policy = precision_policy(dev, getattr(cfg, "amp", "auto") if cfg is not None else "auto")
    info = machine_info()
    return {"precision": policy.name, "channels_last": policy.channels_last, "cpu_model": info["cpu_model"],
            "bf16_native_cpu": info["bf16_native_cpu"], "bf16_hardware_cpu": info["bf16_hardware_cpu"],
            "fp32_forced": info["fp32_forced"]}
