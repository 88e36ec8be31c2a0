"""Two-stream conv fusion (Feichtenhofer, Pinz and Zisserman 2016, "Convolutional Two-Stream Network Fusion
for Video Action Recognition", CVPR), on the study's VGG16 streams: a Table 3 / Table 5 baseline (issue 26).

The paper's best model (its Fig. 4, Sec. 3.5 and 4.6):

    spatial VGG16 (RGB)  ─ conv5_3 + ReLU ─┐
                                           ├─ concatenate (2D channels) ─ conv fusion (Sec. 3.1, Eq. 3:
    temporal VGG16 (TV-L1) ─ conv5_3 + ReLU┘   1x1 conv, 2D -> D) ─ 3D conv over the T frames (Sec. 3.2)
        │                                      ─ 3D max pooling over T x 2 x 2 (Sec. 3.2) ─ fc6, fc7, fc8
        └─ (the temporal stream is kept) ─ its own pool5, fc6-fc8 ─ temporal scores
    test: the spatiotemporal (fused) and the temporal predictions averaged.

Where ours departs (docs/DESIGN.md, "Two-stream conv fusion"): T is the study's segments (K in training,
S at test; the paper samples T = 5 frames tau = 10 apart), so the 3D pooling is a max over all T and a
2x2 spatial max (the paper's 3D pool has a fixed T), and the fused maps continue in the spatial VGG16's
fc6-fc8 after that pooling (the paper continues them in one of the two towers);
the conv fusion is the 1x1 conv of Eq. 3 followed by a 3x3x3 3D conv (the paper folds both into one
3x3x3x2DxD filter), initialised so that at the start the fused maps are the sum of the two streams' maps
(1x1: [I I]; 3D conv: identity at the centre tap), which keeps the trained streams' features usable
(our choice of start, not the paper's).
The temporal stream keeps the study's TSN consensus (mean of per-segment softmax), as two-stream does.

Inputs follow the dataset's views (docs/CONTRACTS.md): ``rgb`` (B, V, 3, H, W) in [0, 1] and ``flow``
(B, V, 2(L-1), H, W) in the [-128, 127] CNN range, V = segments x crops, segment-major; each crop is fused
over the segments as one T-sequence.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from htsc_core.models.conv3d import Conv3d
from htsc_core.models.vgg import VGG16


def conv5_maps(vgg: VGG16, x: torch.Tensor) -> torch.Tensor:
    """conv5_3 after its ReLU, before pool5 (where the paper fuses): (N, C, H, W) -> (N, c5, H/16, W/16)."""
    body = vgg.body
    if not isinstance(body[-1], nn.MaxPool2d):
        raise ValueError("conv5_maps: expected the VGG16 body to end with pool5")
    return body[:-1](vgg._normalise(x))


class TwoStreamConvFusion(nn.Module):
    """Spatial and TV-L1 temporal VGG16s fused at conv5 (Feichtenhofer et al. 2016, conv fusion + 3D conv +
    3D pooling), the temporal stream kept beside it.

    ``forward(rgb, flow, segments)`` -> ``logits`` (B, M) of the fused (spatiotemporal) head, one per video
    (mean over crops), ``logits_temporal`` (B, M) (TSN consensus of the temporal stream's per-view logits,
    the mean over views) and ``scores`` (B, M): the mean of the two heads' softmax (video scores).
    """

    def __init__(self, spatial: VGG16, temporal: VGG16) -> None:
        super().__init__()
        if spatial.in_channels != 3:
            raise ValueError(f"TwoStreamConvFusion: the spatial VGG16 takes {spatial.in_channels} channels; "
                             "expected 3 (RGB)")
        if (spatial.num_classes, spatial.width, spatial.batch_norm) != (
                temporal.num_classes, temporal.width, temporal.batch_norm):
            raise ValueError("TwoStreamConvFusion: the streams differ in classes, width or batch norm "
                             f"({spatial.num_classes}/{spatial.width}/{spatial.batch_norm} vs "
                             f"{temporal.num_classes}/{temporal.width}/{temporal.batch_norm})")
        self.spatial = spatial
        self.temporal = temporal
        self.num_classes = spatial.num_classes
        d = next(m for m in reversed(spatial.body) if isinstance(m, nn.Conv2d)).out_channels
        self.channels = d
        # Eq. 3 "conv fusion": y = f * [x_s, x_o] + b, f a 1x1 filter of 2D -> D channels
        self.fuse = nn.Conv2d(2 * d, d, kernel_size=1)
        # Sec. 3.2: 3D convolution over (T, H, W) of the fused maps, then 3D max pooling
        self.fuse3d = Conv3d(d, d, kernel_size=3, padding=1)  # fp32 where CPU bf16 is wrong (models/conv3d.py)
        self._init_fusion()

    def _init_fusion(self) -> None:
        """Start as the sum of the two streams' maps: 1x1 f = [I I], 3D conv = identity at its centre tap."""
        d = self.channels
        eye = torch.eye(d)
        with torch.no_grad():
            self.fuse.weight.copy_(torch.cat([eye, eye], 1)[:, :, None, None])
            self.fuse.bias.zero_()
            self.fuse3d.weight.zero_()
            self.fuse3d.weight[:, :, 1, 1, 1] = eye
            self.fuse3d.bias.zero_()

    def _fused_logits(self, xs: torch.Tensor, xo: torch.Tensor, sequences: int) -> torch.Tensor:
        """conv5 maps xs, xo (N = sequences x T, D, h, w), sequence-major -> fused logits (sequences, M)."""
        y = F.relu(self.fuse(torch.cat([xs, xo], 1)))  # (N, D, h, w)
        n, d, h, w = y.shape
        t = n // sequences
        y = y.reshape(sequences, t, d, h, w).transpose(1, 2)  # (seq, D, T, h, w)
        y = F.relu(self.fuse3d(y.contiguous()))
        # 3D max pooling over all T and 2x2 in space (the paper's pool is T x 2 x 2 with fixed T)
        y = F.max_pool2d(y.amax(2), kernel_size=2, stride=2)  # (seq, D, h/2, w/2), as after pool5
        h6 = torch.flatten(self.spatial.avgpool(y), 1)
        return self.spatial.classifier(h6)  # the spatial VGG16's fc6, fc7, fc8

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor, segments: int) -> dict[str, torch.Tensor]:
        if rgb.dim() != 5 or flow.dim() != 5 or rgb.shape[:2] != flow.shape[:2]:
            raise ValueError(f"TwoStreamConvFusion: expected rgb (B, V, 3, H, W) and flow (B, V, C, H, W) with the "
                             f"same B, V; got {tuple(rgb.shape)} and {tuple(flow.shape)}")
        B, V = rgb.shape[:2]
        if segments < 1 or V % segments:
            raise ValueError(f"TwoStreamConvFusion: {V} views per video is not a multiple of segments={segments}")
        crops = V // segments

        def sequences(x: torch.Tensor) -> torch.Tensor:  # (B, S*C, ...) segment-major -> (B*C*S, ...) crop-major
            return x.reshape(B, segments, crops, *x.shape[2:]).transpose(1, 2).reshape(B * V, *x.shape[2:])

        xs = conv5_maps(self.spatial, sequences(rgb))  # (B*C*S, D, h, w), crop-major
        xo = conv5_maps(self.temporal, sequences(flow))
        fused = self._fused_logits(xs, xo, B * crops).view(B, crops, -1)  # per crop
        # the temporal stream goes on from the same conv5 maps (pool5, fc6-fc8): its convs run once
        h = self.temporal.avgpool(self.temporal.body[-1](xo))
        logits_o = self.temporal.classifier(torch.flatten(h, 1)).view(B, V, -1)  # per view (crop-major order)
        # video scores: each head's softmax averaged over its views (TSN consensus), then the two heads averaged
        scores = 0.5 * (fused.float().softmax(-1).mean(1) + logits_o.float().softmax(-1).mean(1))
        return {"logits": fused.mean(1), "logits_temporal": logits_o.mean(1), "scores": scores}
