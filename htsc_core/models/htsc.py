"""HTSC: the whole network of the paper, from frames to per-stream and fused class scores.

Built from already built (and trained) parts, it runs one test-time forward (sec. 3, Fig. 1):

    stack (B, V, L, 3, H, W) in [0, 1], V = S segments x C crops (segment-major)
    -> spatial VGG16 on the centre frame of each stack            -> spatial scores       (sec. 3.1.1)
    -> MotionNet -> flow_to_cnn_input -> temporal VGG16 (hidden)   -> hidden temporal scores (sec. 3.1.2)
    -> HTS late fusion: spatial + 1.5 x temporal                   -> Table 4 "HTS"
    -> CLN on the segment fc7 features F^s, F^o (Eq. 7-9)          -> two CLN heads, "HTS + CLN"
    -> AWL with per-class weights W (Eq. 14-15)                    -> "HTS + CLN + AWL" = HTSC

Video scores follow TSN's consensus over segments (and crops): the mean of the per-view softmax
probabilities (:func:`video_scores`); the CLN's segment features are each segment's fc7 averaged
over its crops (:func:`segment_features`). Evaluation (:mod:`htsc_core.tables`) and the Table 5
benchmark (:mod:`htsc_core.bench.table5`) both run this module, so the benchmark times what the
evaluation computes.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from htsc_core.fusion import TEMPORAL_WEIGHT  # spatial + 1.5 x temporal, the HTS protocol
from htsc_core.models.cln import CollaborativeLearning
from htsc_core.models.temporal import HiddenTemporalStream
from htsc_core.models.vgg import VGG16
from htsc_core.models.views import in_chunks


Timer = Callable[[str], AbstractContextManager]


def _no_timer(name: str) -> AbstractContextManager:
    return nullcontext()


def video_scores(logits: torch.Tensor, videos: int) -> torch.Tensor:
    """Per-view logits (B*V, M) -> video scores (B, M): softmax per view, then the mean over the V views."""
    return logits.float().softmax(-1).view(videos, -1, logits.shape[-1]).mean(1)


def segment_features(fc7: torch.Tensor, videos: int, segments: int) -> torch.Tensor:
    """Per-view fc7 (B*S*C, d), segment-major -> per-segment features (B, S, d), the mean over the C crops."""
    return fc7.float().view(videos, segments, -1, fc7.shape[-1]).mean(2)


def as_model_input(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``x`` (N, C, H, W) in the memory format of ``model``'s first conv weights (channels_last on GPUs)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and not conv.weight.is_contiguous() and conv.weight.is_contiguous(
            memory_format=torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()


class HTSC(nn.Module):
    """Spatial stream + hidden temporal stream + CLN + AWL (paper sec. 3), one forward pass.

    Args:
        spatial: the RGB VGG16 (3 input channels).
        hidden_temporal: MotionNet stacked on the 2(L-1)-channel VGG16.
        cln: the collaborative learning network on both streams' fc7 features, or None (HTS only).
        awl_weights: per-class fusion weights W (M, 2) = [w_spatial, w_temporal] fitted on validation
            scores of the CLN heads (:func:`htsc_core.fusion.fit_awl`), or None (no HTSC score).
    """

    def __init__(self, spatial: VGG16, hidden_temporal: HiddenTemporalStream,
                 cln: CollaborativeLearning | None = None, awl_weights=None) -> None:
        super().__init__()
        temporal_vgg = hidden_temporal.vgg
        if spatial.in_channels != 3:
            raise ValueError(f"HTSC: the spatial VGG16 takes {spatial.in_channels} channels; expected 3 (RGB)")
        if spatial.num_classes != temporal_vgg.num_classes:
            raise ValueError(f"HTSC: spatial stream has {spatial.num_classes} classes, temporal "
                             f"{temporal_vgg.num_classes}")
        if spatial.feature_dim != temporal_vgg.feature_dim:
            raise ValueError(f"HTSC: fc7 widths differ: spatial {spatial.feature_dim}, temporal "
                             f"{temporal_vgg.feature_dim} (the CLN pools both in one space)")
        if cln is not None and (cln.feature_dim != spatial.feature_dim or cln.num_classes != spatial.num_classes):
            raise ValueError(f"HTSC: CLN (d={cln.feature_dim}, M={cln.num_classes}) does not match the streams "
                             f"(d={spatial.feature_dim}, M={spatial.num_classes})")
        if awl_weights is not None and cln is None:
            raise ValueError("HTSC: AWL weights fuse the CLN heads (Eq. 14-15); give a cln too")
        self.spatial = spatial
        self.hidden_temporal = hidden_temporal
        self.cln = cln
        self.num_classes = spatial.num_classes
        self.stack_length = hidden_temporal.motion.num_frames
        if awl_weights is not None:
            w = torch.as_tensor(np.asarray(awl_weights, dtype=np.float64))
            if w.shape != (self.num_classes, 2):
                raise ValueError(f"HTSC: awl_weights must be (M, 2) = ({self.num_classes}, 2); got {tuple(w.shape)}")
            self.register_buffer("awl_weights", w)
        else:
            self.awl_weights = None

    def _views(self, flat: torch.Tensor, timer: Timer | None) -> tuple[torch.Tensor, ...]:
        """Both streams on views ``flat`` (N, L, 3, H, W): (fc7_s, logits_s, fc7_o, logits_o), N rows each."""
        step = timer or _no_timer
        with step("input"):
            rgb = as_model_input(flat[:, flat.shape[1] // 2], self.spatial)  # centre frame (CONTRACTS: "rgb")
        with step("spatial_cnn"):
            fc7_s = self.spatial.features(rgb)  # (N, d)
            logits_s = self.spatial.classifier_head(fc7_s)  # (N, M)
        hidden = self.hidden_temporal(flat, timer=timer)  # MotionNet -> flow_to_cnn_input -> VGG16
        return fc7_s, logits_s, hidden["fc7"], hidden["logits"]

    def forward(self, stack: torch.Tensor, segments: int, with_cln: bool = True,
                timer: Timer | None = None, views_per_forward: int = 0) -> dict[str, torch.Tensor]:
        """stack (B, V, L, 3, H, W) in [0, 1] (float, or uint8 in [0, 255]), V = ``segments`` x crops -> a dict of
        (B, M) video scores

        ``spatial``, ``temporal``, ``hts`` (always), and with a CLN (unless ``with_cln=False``) ``cln_s``,
        ``cln_o`` (the two heads' softmax), ``cln`` (their 1:1.5 late fusion), ``c_s``, ``c_o`` (B, S)
        (the coefficients of Eq. 8), and ``htsc`` (AWL, Eq. 15) when AWL weights were given; also the
        segment features ``fc7_s``, ``fc7_o`` (B, S, d). ``timer(name)`` (a context manager factory)
        times each step for the benchmark. ``views_per_forward`` > 0: the B x V views go through both streams
        in chunks of at most that many (:func:`~htsc_core.models.views.in_chunks`; 0 = all at once).
        """
        step = timer or _no_timer
        if stack.dim() != 6 or stack.shape[2] != self.stack_length or stack.shape[3] != 3:
            raise ValueError(f"HTSC: expected stack (B, V, L={self.stack_length}, 3, H, W); got {tuple(stack.shape)}")
        B, V = stack.shape[:2]
        if segments < 1 or V % segments:
            raise ValueError(f"HTSC: {V} views per video is not a multiple of segments={segments}")
        # per view (B*V rows): spatial VGG16 on the centre frame, MotionNet -> temporal VGG16 on the stack
        fc7_s, logits_s, fc7_o, logits_o = in_chunks(lambda v: self._views(v, timer), stack.flatten(0, 1),
                                                     views_per_forward)
        with step("fusion"):
            s, o = video_scores(logits_s, B), video_scores(logits_o, B)  # (B, M) each
            out = {"spatial": s, "temporal": o, "hts": s + TEMPORAL_WEIGHT * o}
        if self.cln is None or not with_cln:
            return out
        with step("cln"):
            fs = segment_features(fc7_s, B, segments)  # (B, S, d)
            fo = segment_features(fc7_o, B, segments)  # (B, S, d)
            with torch.autocast(fs.device.type, enabled=False):  # trained in fp32 (train/cln.py): scored in fp32
                heads = self.cln(fs.float(), fo.float())  # Eq. 7-9
            cs, co = heads["logits_s"].float().softmax(-1), heads["logits_o"].float().softmax(-1)
            out.update(cln_s=cs, cln_o=co, cln=cs + TEMPORAL_WEIGHT * co, c_s=heads["c_s"], c_o=heads["c_o"],
                       fc7_s=fs, fc7_o=fo)
        if self.awl_weights is not None:
            with step("awl"):
                w = self.awl_weights.to(cs.dtype)
                out["htsc"] = w[:, 0] * cs + w[:, 1] * co  # Eq. 14-15: class a scores w_1a s_a + w_2a o_a
        return out
