"""C3D (Tran, Bourdev, Fergus, Torresani and Paluri 2015, "Learning Spatiotemporal Features with 3D Convolutional
Networks", ICCV): one network on RGB clips, a Table 3 / Table 5 baseline (issue 26, item 3).

The paper's net (its Sec. 3.3, Fig. 3): 8 convolutions, all 3x3x3 with stride 1 and padding 1, of 64, 128,
256, 256, 512, 512, 512, 512 filters (conv1a | conv2a | conv3a, 3b | conv4a, 4b | conv5a, 5b); max pooling
after conv1a (1x2x2, "not to merge the temporal signal too early") and after conv2a, 3b, 4b, 5b (2x2x2);
fc6 and fc7 of 4096 with dropout 0.5; softmax. Input: clips of 16 frames, 112 x 112 crops.

Where ours departs (docs/DESIGN.md, "C3D"): ``width`` scales every conv and fc width (as the study's VGG16,
so the CPU profiles train it), and optional batch normalisation after each conv (as the CPU profiles' VGG16:
trained from scratch here, where the paper trains on Sports-1M first); pooling rounds up (Caffe's rule,
under which the paper's pool5 gives 512 x 1 x 4 x 4 from a 16 x 112 x 112 clip) and a temporal extent of 1
is not pooled further, so shorter clips work; an adaptive average pool to 1 x 4 x 4 before fc6 (the
paper's pool5 size at its input) lets other input sizes keep the fc6 shape, as the study's VGG16 pools to 7 x 7.
The RGB is normalised with the ImageNet mean and std, as the spatial VGG16 (the paper subtracts its mean clip).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from htsc_core.models.conv3d import Conv3d
from htsc_core.models.vgg import FC_WIDTH, IMAGENET_MEAN, IMAGENET_STD, _scaled, check_network_args

# (filters of each conv in a block); a pool after every block, 1x2x2 after the first, 2x2x2 after the others
C3D_BLOCKS = ((64,), (128,), (256, 256), (512, 512), (512, 512))
POOL5 = (1, 4, 4)  # pool5's output at the paper's 16 x 112 x 112 input (fc6 takes 512 x 1 x 4 x 4 = 8192)


class C3D(nn.Module):
    """C3D with a width multiplier. ``forward(clip (N, T, 3, H, W) in [0, 1]) -> logits (N, M)``;
    ``features`` gives fc7 (N, feature_dim). The clip layout is the dataset's "stack" (docs/CONTRACTS.md)."""

    def __init__(self, num_classes: int, width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        check_network_args("C3D", num_classes, width, dropout)
        self.num_classes, self.width, self.batch_norm = num_classes, float(width), bool(batch_norm)
        blocks = []
        c_in = 3
        for filters in C3D_BLOCKS:
            layers: list[nn.Module] = []
            for f in filters:
                c_out = _scaled(f, width)
                layers.append(Conv3d(c_in, c_out, kernel_size=3, padding=1))  # fp32 where CPU bf16 is wrong
                if batch_norm:
                    layers.append(nn.BatchNorm3d(c_out))
                layers.append(nn.ReLU(inplace=True))
                c_in = c_out
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.pool5 = nn.AdaptiveAvgPool3d(POOL5)
        fc = _scaled(FC_WIDTH, width)
        self.feature_dim = fc
        self.classifier = nn.Sequential(
            nn.Linear(c_in * POOL5[0] * POOL5[1] * POOL5[2], fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1), persistent=False)
        for m in self.modules():  # He initialisation (from scratch), fc8 small, as the study's VGG16
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv3d) else "fan_in",
                                        nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier[-1].weight, 0.0, 0.01)

    @staticmethod
    def _pool(x: torch.Tensor, first: bool) -> torch.Tensor:
        """pool1 1x2x2, the others 2x2x2 (a temporal extent of 1 stays 1); rounding up, as Caffe's."""
        kt = 1 if first or x.shape[2] == 1 else 2
        return F.max_pool3d(x, (kt, 2, 2), (kt, 2, 2), ceil_mode=True)

    def features(self, clip: torch.Tensor) -> torch.Tensor:
        """clip (N, T, 3, H, W) in [0, 1] -> fc7 (N, feature_dim) (after ReLU, before dropout)."""
        if clip.dim() != 5 or clip.shape[2] != 3:
            raise ValueError(f"C3D: expected a clip (N, T, 3, H, W); got {tuple(clip.shape)}")
        if min(clip.shape[-2:]) < 16:
            raise ValueError(f"C3D: frame side {tuple(clip.shape[-2:])} is below 16 px (four 2x2 pools)")
        x = (clip.transpose(1, 2) - self.mean) / self.std  # (N, 3, T, H, W)
        for i, block in enumerate(self.blocks):
            x = self._pool(block(x), first=i == 0)
        return self.classifier[:5](torch.flatten(self.pool5(x), 1))

    def classifier_head(self, fc7: torch.Tensor) -> torch.Tensor:
        """fc7 (N, feature_dim) -> logits (N, M): dropout + fc8."""
        return self.classifier[5:](fc7)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.classifier_head(self.features(clip))
