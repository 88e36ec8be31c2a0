"""Table 5 benchmark, the networks: the randomly initialised networks the pipelines run, their FLOPs and
parameters, the FLOP/s they achieve against a matrix-product peak, and a ``torch.compile`` trial
(paper section 4.4; docs/DESIGN.md section 7).

Timing does not depend on the weights (no data-dependent control flow), so nothing is trained here.
"""
from __future__ import annotations

import time
from functools import partial
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from htsc_core.bench.common import autocast, sync, time_call
from htsc_core.precision import Precision
from htsc_core.models.c3d import C3D
from htsc_core.models.cln import CollaborativeLearning
from htsc_core.models.htsc import HTSC
from htsc_core.models.motionnet import MotionNet
from htsc_core.models.tclsta import TCLSTA, TCLSTAHeads, conv5_channels
from htsc_core.models.temporal import HiddenTemporalStream
from htsc_core.models.two_stream_fusion import TwoStreamConvFusion
from htsc_core.models.vgg import VGG16
from htsc_core.train.engine import to_channels_last


def build_networks(num_classes: int, stack_length: int, vgg_width: float, motion_width: float,
                   vgg_batch_norm: bool, cln_hidden: int, cln_rounds: int, seed: int = 0,
                   device: torch.device | str = "cpu", rgbdiff_length: int = 5, tclsta_attention: int = 64,
                   tclsta_lstm: int = 64) -> dict:
    """Randomly initialised networks of the three pipelines, eval mode, channels_last, on ``device``.

    The two-stream and HTS temporal VGG16s have the same architecture (20 input channels), so one
    instance serves both; AWL weights W pick one stream per class (the LP's vertex solutions, fusion.py).
    ``htsc`` is the :class:`HTSC` model built from these parts (the HTS and HTSC pipelines);
    ``rgbdiff`` is TSN's 3(D-1)-channel VGG16, D = ``rgbdiff_length`` (the tsn_rgb_diff pipeline).
    ``tclsta``: TCLSTA (Peng et al. 2018) on the same spatial and temporal VGG16s to conv5, then its attention and
    collaborative heads (``tclsta_attention`` and ``tclsta_lstm`` = the config's; the tclsta pipeline).
    """
    torch.manual_seed(seed)
    nf = 2 * (stack_length - 1)
    spatial = VGG16(num_classes, 3, vgg_width, vgg_batch_norm)
    temporal = VGG16(num_classes, nf, vgg_width, vgg_batch_norm)
    motion = MotionNet(stack_length, motion_width)
    cln = CollaborativeLearning(spatial.feature_dim, cln_hidden, num_classes, cln_rounds)
    rgbdiff = VGG16(num_classes, 3 * (rgbdiff_length - 1), vgg_width, vgg_batch_norm)
    nets = {"spatial": spatial, "temporal": temporal, "motion": motion, "cln": cln, "rgbdiff": rgbdiff}
    for k, m in nets.items():
        nets[k] = to_channels_last(m.to(device).eval())
    pick = np.random.default_rng(seed).integers(0, 2, num_classes)
    nets["awl_W"] = np.stack([1.0 - pick, pick.astype(np.float64)], axis=1)  # (M, 2) one stream per class
    # two-stream conv fusion (Feichtenhofer et al. 2016) on the same two VGG16s (the two_stream_fusion pipeline)
    # C3D (Tran et al. 2015) at the same widths (the c3d pipeline); its Conv3d weights stay NCDHW
    nets["c3d"] = C3D(num_classes, vgg_width, vgg_batch_norm).to(device).eval()
    nets["conv_fusion"] = to_channels_last(TwoStreamConvFusion(nets["spatial"], nets["temporal"]).to(device).eval())
    heads = TCLSTAHeads(conv5_channels(spatial), num_classes, tclsta_attention, tclsta_lstm, cln_hidden, cln_rounds)
    nets["tclsta"] = TCLSTA(nets["spatial"], nets["temporal"], heads.to(device).eval()).eval()
    nets["htsc"] = HTSC(nets["spatial"], HiddenTemporalStream(nets["motion"], nets["temporal"]), nets["cln"],
                        nets["awl_W"]).to(device).eval()
    return nets


def count_flops(factory, input_shape: Sequence[int]) -> tuple[int, int]:
    """(FLOPs of one forward, parameters) of ``factory()`` on the meta device (nothing is computed).

    FlopCounterMode counts 2 FLOPs per multiply-add of convolutions and matrix products (ReLU, pooling,
    interpolation are not counted), so VGG16 at 224 px is ~30.9 GFLOPs (= 15.5 G multiply-adds).
    """
    with torch.device("meta"):
        model = factory()
        x = torch.empty(*input_shape)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(x)
    return int(counter.get_total_flops()), int(sum(p.numel() for p in model.parameters()))


def network_specs(num_classes: int, stack_length: int, size: int, vgg_width: float, motion_width: float,
                  vgg_batch_norm: bool) -> dict:
    """name -> (factory, per-sample input shape) for the three networks."""
    nf = 2 * (stack_length - 1)
    return {
        "spatial_vgg16": (lambda: VGG16(num_classes, 3, vgg_width, vgg_batch_norm), (3, size, size)),
        "temporal_vgg16": (lambda: VGG16(num_classes, nf, vgg_width, vgg_batch_norm), (nf, size, size)),
        "motionnet": (lambda: MotionNet(stack_length, motion_width), (stack_length, 3, size, size)),
    }


def network_efficiency(num_classes: int, stack_length: int, size: int, vgg_width: float, motion_width: float,
                       vgg_batch_norm: bool, batch: int, repeats: int, device: torch.device,
                       mm_flops_per_s: float, precision: Precision | None = None) -> list[dict]:
    """Parameters, FLOPs and achieved FLOP/s (inference, channels_last) of each network vs the mm peak,
    run under ``precision`` (the scoring policy; None: fp32). The mm peak is fp32 whatever ``precision`` is."""
    rows = []
    for name, (factory, shape) in network_specs(num_classes, stack_length, size, vgg_width, motion_width,
                                                vgg_batch_norm).items():
        flops, params = count_flops(factory, (1, *shape))
        torch.manual_seed(0)
        model = to_channels_last(factory().to(device).eval())
        x = torch.rand(batch, *shape, device=device)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(precision, device):
            t = time_call(partial(model, x), repeats, device)
        achieved = flops * batch / t["median"]
        rows.append({"network": name, "resolution": size, "batch": batch, "params": params,
                     "flops_per_input": flops, "gflops_per_input": flops / 1e9, "seconds_per_batch": t,
                     "achieved_flops_per_s": achieved, "fraction_of_mm": achieved / mm_flops_per_s,
                     "vgg_width": vgg_width, "motion_width": motion_width, "vgg_batch_norm": vgg_batch_norm,
                     "device": str(device), "torch_threads": torch.get_num_threads(),
                     "channels_last": True, "inference_mode": True,
                     "precision": "fp32" if precision is None else precision.name})
        del model, x
    return rows


def compile_trial(size: int, batch: int, repeats: int, device: torch.device, num_classes: int = 101,
                  precision: Precision | None = None) -> dict:
    """Try ``torch.compile`` on a paper-width VGG16 at ``size``: eager vs compiled seconds per batch
    (both under ``precision``, the scoring policy; None: fp32)."""
    torch.manual_seed(0)
    model = to_channels_last(VGG16(num_classes, 3, 1.0).to(device).eval())
    x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    out: dict = {"resolution": size, "batch": batch, "network": "spatial_vgg16", "device": str(device),
                 "precision": "fp32" if precision is None else precision.name}
    with torch.inference_mode(), autocast(precision, device):
        out["eager_s"] = time_call(lambda: model(x), repeats, device)
    try:
        compiled = torch.compile(model)
        t0 = time.perf_counter()
        with torch.inference_mode(), autocast(precision, device):
            compiled(x)
            sync(device)
            out["compile_s"] = time.perf_counter() - t0
            out["compiled_s"] = time_call(lambda: compiled(x), repeats, device, warmup=0)
        out["speedup"] = out["eager_s"]["median"] / out["compiled_s"]["median"]
        out["helped"] = out["speedup"] > 1.05
        out["error"] = None
    except Exception as exc:  # noqa: BLE001 - the outcome of the trial is recorded, whatever it is
        out.update(error=f"{type(exc).__name__}: {str(exc)[:500]}", helped=False)
    return out
