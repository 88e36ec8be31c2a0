"""TCLSTA (Peng, Zhao and Zhang 2018, "Two-stream collaborative learning with spatial-temporal attention for
video classification", IEEE TCSVT), on the study's VGG16 streams: a Table 3 / Table 5 baseline (issue 26;
docs/TCLSTA.md says what is the paper's and where ours departs).

The release (PKU-ICST-MIPL/TCLSTA_TCSVT2018) has, per stream (static RGB, motion TV-L1 flow), a ResNet-50 and

* spatial-level attention on the last conv maps (``configure/resnet50_cvgj_train_test_spatial_temporal_sp01
  .prototxt``: ``CAM_conv`` 3x3 to 1024 channels in 2 groups, ReLU, pooled over the locations, ``CAM_fc``, its
  own softmax loss ``loss_s``);
* temporal-level attention: an LSTM of 512 units (``lstm1``) over the frames, per-frame scores, its own loss
  ``loss_t``, beside the frame classifier on the global pool (``score_ucf_frame``, ``loss_c``);
* then (Lua Torch, ``CollaborativeLearning/misc/attention.lua``) the static-motion collaborative model: each
  stream's frame features pooled with attention guided by the other stream's video feature (the co-attention
  our :class:`~htsc_core.models.cln.CollaborativeLearning` implements, Eq. 7-9 of the HTSC paper).

Ours (:class:`TCLSTAHeads`) runs on the frozen conv5_3 maps (after ReLU, before pool5) of the study's trained
spatial and TV-L1 VGG16s (:func:`~htsc_core.models.two_stream_fusion.conv5_maps`), per stream:

    conv5 (C, h, w) ─ 3x3 conv C -> A, 2 groups, ReLU (CAM_conv) ─ 1x1 conv A -> 1 ─ softmax over the h*w
        locations = alpha ─ f = sum_l alpha_l x_l (C) ─ fc (loss_s, per segment, mean over segments)
    conv5 ─ global average pool ─ fc (loss_c, the frame classifier, mean over segments)
    f_1 .. f_S ─ LSTM(H) ─ linear H -> 1 ─ softmax over the S segments = beta ─ v = sum_t beta_t f_t ─ fc (loss_t)

and across the streams the collaborative co-attention on the two streams' attended segment features
f^s_1..S, f^o_1..S (two heads, the CLN's loss). Video scores: the collaborative heads fused
spatial + 1.5 x motion (:data:`htsc_core.fusion.TEMPORAL_WEIGHT`, as the HTS + CLN row), so this row differs
from ours only in the streams' inputs (TV-L1 vs MotionNet) and TCLSTA's spatial-temporal attention.

Inputs follow the dataset's views (docs/CONTRACTS.md): maps (B, V, C, h, w), V = segments x crops,
segment-major; each crop is one S-sequence and the crops' outputs are averaged (as two-stream conv fusion).
``attend=False`` replaces both attentions by mean pooling (uniform alpha and beta): the ablation of the
capability test (tests/test_tclsta.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from htsc_core.fusion import TEMPORAL_WEIGHT
from htsc_core.models.cln import CollaborativeLearning, cln_loss
from htsc_core.models.losses import classification_loss
from htsc_core.models.two_stream_fusion import conv5_maps
from htsc_core.models.vgg import VGG16

STREAM_HEADS = ("frame", "spatial", "temporal")  # loss_c, loss_s, loss_t of the release, per stream


class SpatialAttention(nn.Module):
    """Attention over the conv locations of one map (N, C, h, w) -> (attended feature (N, C), alpha (N, h*w))."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        groups = 2 if channels % 2 == 0 and hidden % 2 == 0 else 1  # the release's CAM_conv: group 2
        self.cam_conv = nn.Conv2d(channels, hidden, kernel_size=3, padding=1, groups=groups)
        self.score = nn.Conv2d(hidden, 1, kernel_size=1)

    def forward(self, x: torch.Tensor, attend: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x.shape
        if attend:
            alpha = self.score(F.relu(self.cam_conv(x))).flatten(1).softmax(1)  # (N, h*w)
        else:
            alpha = x.new_full((n, h * w), 1.0 / (h * w))
        return torch.einsum("nl,ncl->nc", alpha, x.flatten(2)), alpha


class TemporalAttention(nn.Module):
    """LSTM over the segments' features (B, S, d) -> per-segment weights beta (B, S), softmax over S, and the
    weighted sum (B, d) (release: ``lstm1``, 512 units, over 10 frames)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.score = nn.Linear(hidden, 1)

    def forward(self, f: torch.Tensor, attend: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        if attend:
            h, _ = self.lstm(f)  # (B, S, H)
            beta = self.score(h).squeeze(-1).softmax(1)
        else:
            beta = f.new_full(f.shape[:2], 1.0 / f.shape[1])
        return torch.einsum("bt,btd->bd", beta, f), beta


class StreamAttention(nn.Module):
    """One stream's spatial- and temporal-level attention with the release's three classifiers."""

    def __init__(self, channels: int, num_classes: int, attention_hidden: int, lstm_hidden: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.spatial = SpatialAttention(channels, attention_hidden)
        self.temporal = TemporalAttention(channels, lstm_hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc_frame = nn.Linear(channels, num_classes)  # score_ucf_frame on the global pool (loss_c)
        self.fc_spatial = nn.Linear(channels, num_classes)  # CAM_fc_ucf_frame (loss_s)
        self.fc_temporal = nn.Linear(channels, num_classes)  # the LSTM level's classifier (loss_t)

    def forward(self, maps: torch.Tensor, attend: bool = True) -> dict[str, torch.Tensor]:
        """maps (N, S, C, h, w) -> logits of the three heads (N, M), f (N, S, C), alpha (N, S, h*w), beta (N, S)."""
        n, s = maps.shape[:2]
        x = maps.flatten(0, 1)
        f, alpha = self.spatial(x, attend)
        frame = self.fc_frame(self.dropout(x.mean((2, 3)))).view(n, s, -1).mean(1)
        spatial = self.fc_spatial(self.dropout(f)).view(n, s, -1).mean(1)
        f = f.view(n, s, -1)
        v, beta = self.temporal(f, attend)
        return {"frame": frame, "spatial": spatial, "temporal": self.fc_temporal(self.dropout(v)),
                "f": f, "alpha": alpha.view(n, s, -1), "beta": beta}


class TCLSTAHeads(nn.Module):
    """TCLSTA's attention levels and static-motion collaborative model on the two streams' conv5 maps.

    ``forward(xs, xo, segments)`` with maps (B, V, C, h, w) -> per-video (B, ...) outputs, the mean over crops:
    ``static_<head>``, ``motion_<head>`` logits (heads :data:`STREAM_HEADS`), ``collab_static``,
    ``collab_motion`` logits, ``scores`` (the collaborative heads' softmax, spatial + 1.5 x motion, / 2.5),
    ``alpha_s``, ``alpha_o`` (B, crops, S, h*w), ``beta_s``, ``beta_o``, ``c_s``, ``c_o`` (B, crops, S).
    """

    def __init__(self, channels: int, num_classes: int, attention_hidden: int, lstm_hidden: int,
                 cln_hidden: int, cln_rounds: int = 2, dropout: float = 0.0, attend: bool = True) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("num_classes", num_classes),
                            ("attention_hidden", attention_hidden), ("lstm_hidden", lstm_hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"tclsta.py: {name}={value!r} must be a positive int")
        self.channels, self.num_classes, self.attend = channels, num_classes, attend
        self.static = StreamAttention(channels, num_classes, attention_hidden, lstm_hidden, dropout)
        self.motion = StreamAttention(channels, num_classes, attention_hidden, lstm_hidden, dropout)
        self.collab = CollaborativeLearning(channels, cln_hidden, num_classes, rounds=cln_rounds, dropout=dropout)

    def forward(self, xs: torch.Tensor, xo: torch.Tensor, segments: int) -> dict[str, torch.Tensor]:
        if xs.dim() != 5 or xs.shape != xo.shape or xs.shape[2] != self.channels:
            raise ValueError(f"TCLSTAHeads: expected two maps (B, V, {self.channels}, h, w) of one shape; got "
                             f"{tuple(xs.shape)} and {tuple(xo.shape)}")
        B, V = xs.shape[:2]
        if segments < 1 or V % segments:
            raise ValueError(f"TCLSTAHeads: {V} views per video is not a multiple of segments={segments}")
        crops = V // segments

        def sequences(x: torch.Tensor) -> torch.Tensor:  # (B, S*C, ...) segment-major -> (B*C, S, ...) crop-major
            return x.float().reshape(B, segments, crops, *x.shape[2:]).transpose(1, 2).flatten(0, 1)

        s = self.static(sequences(xs), self.attend)
        o = self.motion(sequences(xo), self.attend)
        co = self.collab(s["f"], o["f"])  # static-motion co-attention on the attended segment features

        def video(t: torch.Tensor) -> torch.Tensor:  # (B*crops, ...) -> (B, ...), the mean over crops
            return t.view(B, crops, *t.shape[1:]).mean(1)

        out = {f"static_{k}": video(s[k]) for k in STREAM_HEADS}
        out.update({f"motion_{k}": video(o[k]) for k in STREAM_HEADS})
        out.update(collab_static=video(co["logits_s"]), collab_motion=video(co["logits_o"]))
        p = co["logits_s"].softmax(-1) + TEMPORAL_WEIGHT * co["logits_o"].softmax(-1)
        out["scores"] = video(p / (1.0 + TEMPORAL_WEIGHT))
        for k, t in (("alpha_s", s["alpha"]), ("alpha_o", o["alpha"]), ("beta_s", s["beta"]),
                     ("beta_o", o["beta"]), ("c_s", co["c_s"]), ("c_o", co["c_o"])):
            out[k] = t.view(B, crops, *t.shape[1:])
        return out


def tclsta_loss(out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """The sum of every head's loss, each of weight 1 as in the release: loss_c, loss_s, loss_t of both streams
    and the collaborative model's two heads (:func:`htsc_core.models.cln.cln_loss`)."""
    total = cln_loss({"logits_s": out["collab_static"], "logits_o": out["collab_motion"]}, target)
    for stream in ("static", "motion"):
        for head in STREAM_HEADS:
            total = total + classification_loss(out[f"{stream}_{head}"], target)
    return total


class TCLSTA(nn.Module):
    """The whole TCLSTA at test time: spatial and TV-L1 VGG16s to conv5, then :class:`TCLSTAHeads` (in fp32,
    as scored from the cached maps). ``forward(rgb, flow, segments)``: views (B, V, ...) as the dataset's."""

    def __init__(self, spatial: VGG16, temporal: VGG16, heads: TCLSTAHeads) -> None:
        super().__init__()
        self.spatial, self.temporal, self.heads = spatial, temporal, heads

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor, segments: int) -> dict[str, torch.Tensor]:
        B, V = rgb.shape[:2]
        xs = conv5_maps(self.spatial, rgb.flatten(0, 1))
        xo = conv5_maps(self.temporal, flow.flatten(0, 1))
        with torch.autocast(xs.device.type, enabled=False):  # the heads in fp32, as tclsta_scores runs them
            return self.heads(xs.float().view(B, V, *xs.shape[1:]), xo.float().view(B, V, *xo.shape[1:]), segments)


def conv5_channels(vgg: VGG16) -> int:
    """C of a VGG16's conv5_3 maps (the heads' ``channels``)."""
    return next(m for m in reversed(vgg.body) if isinstance(m, nn.Conv2d)).out_channels
