"""VGG16 for both streams (paper section 3.1.1 and 4.2.1, Table 1).

13 3x3 convolutions in five blocks (64-128-256-512-512), a 2x2 max-pool
after each block, fc6 (4096), fc7 (4096), fc8 (M). ``width`` scales every
conv and fc width with the same topology, so the smoke/default profiles run
on CPU; at ``width=1.0`` the parameter shapes and (after the one renaming
``features.`` -> ``body.``) the state-dict keys equal torchvision's
``vgg16`` / ``vgg16_bn``, so its ImageNet weights load.

Input conventions (docs/CONTRACTS.md, "Models"):

- ``in_channels == 3``: RGB in [0, 1]; ImageNet mean/std are applied inside.
- otherwise (the temporal stream): flow in the [-128, 127] CNN range (stored
  JPEG value - 128, or :func:`htsc_core.models.temporal.flow_to_cnn_input`).
  It is divided inside by ``FLOW_INPUT_DIVISOR = 255 * 0.226`` (0.226 = the
  mean ImageNet std). This is the same as rescaling conv1's weights, and it
  puts flow in the units an ImageNet conv1 sees for RGB: TSN's
  cross-modality initialisation (Wang et al. 2016) feeds flow in raw pixel
  intensity units to a conv1 trained on intensity units, and torchvision's
  conv1 sees intensity / (255 * std). Flow inputs come out in about [-2.2, 2.2].
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Flow (CNN range, [-128, 127]) is divided by this inside VGG16.forward; see the module docstring.
FLOW_INPUT_DIVISOR = 255.0 * sum(IMAGENET_STD) / 3.0

# Table 1: conv widths per block, "M" = 2x2 max-pool stride 2 (torchvision's cfg "D").
_CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
FC_WIDTH = 4096  # fc6 / fc7 (Table 1)

# torchvision weight files (the names torch.hub caches them under, the basenames of
# torchvision.models.VGG16_Weights.IMAGENET1K_V1.url and VGG16_BN_Weights's); looked up, never downloaded.
IMAGENET_WEIGHTS = "IMAGENET1K_V1"
_TORCHVISION_FILES = {False: "vgg16-397923af.pth", True: "vgg16_bn-6c64b313.pth"}


def _scaled(channels: int, width: float) -> int:
    """A layer's channels under a width multiplier (at least 1): VGG16, C3D and MotionNet share it."""
    return max(1, int(round(channels * width)))


def check_network_args(name: str, num_classes: int, width: float, dropout: float) -> None:
    """The arguments every classification network of the study checks (VGG16, C3D), named in the error."""
    if num_classes < 1:
        raise ValueError(f"{name}: num_classes={num_classes} must be >= 1")
    if not width > 0:
        raise ValueError(f"{name}: width={width} must be > 0")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout={dropout} must be in [0, 1)")


class VGG16(nn.Module):
    """VGG16 of Table 1 with a width multiplier.

    ``features(x) -> fc7 (N, feature_dim)``, ``classifier_head(fc7) -> logits``,
    ``forward(x) = classifier_head(features(x))``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0,
                 batch_norm: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        check_network_args("VGG16", num_classes, width, dropout)
        if in_channels < 1:
            raise ValueError(f"VGG16: in_channels={in_channels} must be >= 1")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.width = float(width)
        self.batch_norm = bool(batch_norm)

        layers: list[nn.Module] = []
        c_in = in_channels
        for v in _CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            c_out = _scaled(int(v), width)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        # Named "body" (not torchvision's "features") because features() is the fc7 method of the contract.
        self.body = nn.Sequential(*layers)
        # torchvision's adaptive pooling to 7x7, so inputs smaller than 224 px work (Table 1: 7x7x512).
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        fc = _scaled(FC_WIDTH, width)
        self.feature_dim = fc
        # Same indices as torchvision's classifier: fc6=0, fc7=3, fc8=6.
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 7 * 7, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation, except fc6/fc7: He (fan_in) instead of N(0, 0.01). The small
        # normal init assumes ImageNet weights replace it; from scratch it shrinks the signal ~30x through
        # the three fc layers and the CPU profiles barely learned in their epoch budget (measured: 25% vs
        # chance 8% after 15 epochs on the synthetic set). fc8 keeps N(0, 0.01).
        fc8 = self.classifier[-1] if isinstance(self.classifier, nn.Sequential) else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                if m is fc8:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def conv1(self) -> nn.Conv2d:
        return self.body[0]

    @property
    def fc8(self) -> nn.Linear:
        return self.classifier[6]

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"VGG16: expected input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"VGG16: input side {tuple(x.shape[-2:])} is below 32 px (five 2x2 pools)")
        if self.in_channels == 3:
            return (x - self.mean) / self.std
        return x / FLOW_INPUT_DIVISOR

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input (N, C, H, W) -> fc7 activations (N, feature_dim) (after ReLU, before dropout)."""
        h = self.avgpool(self.body(self._normalise(x)))  # (N, c5, 7, 7)
        return self.classifier[:5](torch.flatten(h, 1))  # fc6, relu, dropout, fc7, relu

    def classifier_head(self, fc7: torch.Tensor) -> torch.Tensor:
        """fc7 (N, feature_dim) -> logits (N, num_classes): dropout + fc8."""
        if fc7.dim() != 2 or fc7.shape[1] != self.feature_dim:
            raise ValueError(f"VGG16.classifier_head: expected (N, {self.feature_dim}), got {tuple(fc7.shape)}")
        return self.classifier[5:](fc7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier_head(self.features(x))


def from_torchvision_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision vgg16 / vgg16_bn state dict to this module's keys."""
    return {("body." + k[len("features."):] if k.startswith("features.") else k): v for k, v in state.items()}


def _cross_modality_conv1(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    # Wang et al. 2016 (TSN) cross-modality init, docs/DESIGN.md section 2: mean over RGB, repeated.
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1).clone()


def _load_compatible(model: VGG16, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``state`` into ``model``; conv1 by cross-modality when the channels differ,
    fc8 only when its shape matches. Returns the keys copied."""
    own = model.state_dict()
    conv1_w = "body.0.weight"
    copied: list[str] = []
    new: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            continue
        if key == conv1_w and value.shape != own[key].shape:
            value = _cross_modality_conv1(value, model.in_channels)
        if value.shape != own[key].shape:
            if key.startswith("classifier.6."):
                continue  # fc8: a different class count keeps its fresh initialisation
            raise ValueError(f"VGG16 weights: {key} has shape {tuple(value.shape)}, model expects "
                             f"{tuple(own[key].shape)} (width/batch_norm mismatch?)")
        new[key] = value
        copied.append(key)
    model.load_state_dict(new, strict=False)
    return copied


def cross_modality_init(flow_vgg: VGG16, rgb_vgg: VGG16) -> VGG16:
    """Initialise the temporal VGG16 from an RGB one (TSN cross-modality init, docs/DESIGN.md section 2).

    Every layer is copied except conv1, whose weights become the mean over the 3 RGB input
    channels repeated to ``flow_vgg.in_channels``; fc8 is copied only if its shape matches.
    """
    if rgb_vgg.in_channels != 3:
        raise ValueError(f"cross_modality_init: rgb_vgg has {rgb_vgg.in_channels} input channels, expected 3")
    if (flow_vgg.width, flow_vgg.batch_norm) != (rgb_vgg.width, rgb_vgg.batch_norm):
        raise ValueError(f"cross_modality_init: width/batch_norm differ (flow {flow_vgg.width}/{flow_vgg.batch_norm}"
                         f", rgb {rgb_vgg.width}/{rgb_vgg.batch_norm})")
    with torch.no_grad():
        _load_compatible(flow_vgg, rgb_vgg.state_dict())
    return flow_vgg


def imagenet_weights_path(batch_norm: bool) -> str:
    """Where torch.hub caches torchvision's VGG16(_BN) ImageNet weights (the file may not exist)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", _TORCHVISION_FILES[bool(batch_norm)])


class MissingPretrainedWeights(FileNotFoundError):
    """The config asks for ImageNet VGG16 weights (``pretrained=true``) that are not available: not in the
    torch hub cache, or the VGG16 is not full width. Raised before any training starts."""


def missing_weights_message(cfg) -> str | None:
    """Why ``cfg`` cannot get its ImageNet weights (what to do about it), or None when it can or does not ask."""
    if not cfg.pretrained:
        return None
    builder = "vgg16_bn" if cfg.vgg_batch_norm else "vgg16"
    opt_out = ("or train from scratch explicitly with --set pretrained=false (recorded in the run's config.json "
               "and stated in the results)")
    if cfg.vgg_width != 1.0:
        return (f"pretrained=true but vgg_width={cfg.vgg_width}: ImageNet VGG16 weights exist only for "
                f"vgg_width=1.0; set vgg_width=1.0, {opt_out}.")
    path = imagenet_weights_path(cfg.vgg_batch_norm)
    if os.path.isfile(path):
        return None
    return (f"pretrained=true needs torchvision's ImageNet {builder} weights ({IMAGENET_WEIGHTS}), looked for at "
            f"{path} (torch.hub.get_dir()/checkpoints; set by TORCH_HOME); nothing is ever downloaded. On a machine "
            f"with internet run: python -c \"import torchvision; torchvision.models.{builder}(weights="
            f"'{IMAGENET_WEIGHTS}')\" which saves {os.path.basename(path)} in that machine's torch hub cache "
            f"(default ~/.cache/torch/hub/checkpoints/), then copy the file to {path}; {opt_out}.")


def require_pretrained(cfg) -> str | None:
    """The ImageNet weights file ``cfg`` will load (None when ``pretrained`` is off);
    raises :class:`MissingPretrainedWeights` when they are not available."""
    message = missing_weights_message(cfg)
    if message:
        raise MissingPretrainedWeights(message)
    return imagenet_weights_path(cfg.vgg_batch_norm) if cfg.pretrained else None


def build_vgg16(cfg, num_classes: int, in_channels: int = 3, imagenet: bool = True) -> VGG16:
    """VGG16 from the config (vgg_width, vgg_batch_norm, dropout, pretrained).

    With ``cfg.pretrained`` (and ``imagenet``: False when trained weights will replace them anyway),
    torchvision's ImageNet weights are loaded from the torch hub cache; for ``in_channels != 3`` conv1
    gets the cross-modality init. Nothing is ever downloaded: weights that are not there, or a width
    other than 1.0, raise :class:`MissingPretrainedWeights` saying how to get them or opt out
    (``pretrained=false``). There is no silent from-scratch fallback.
    """
    path = require_pretrained(cfg) if imagenet else None  # first: a missing file costs no model build
    model = VGG16(num_classes, in_channels=in_channels, width=cfg.vgg_width,
                  batch_norm=cfg.vgg_batch_norm, dropout=cfg.dropout)
    if path is None:
        return model
    state = torch.load(path, map_location="cpu", weights_only=True)
    copied = _load_compatible(model, from_torchvision_state_dict(state))
    log.info("vgg.py: loaded %d ImageNet tensors from %s (in_channels=%d)", len(copied), path, in_channels)
    return model
