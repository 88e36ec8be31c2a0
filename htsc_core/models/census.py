"""A census photometric term: beyond the paper, for the labelled ``motionnet_beyond`` trial of issue 24.

The paper's photometric loss (Eq. 1) is the Charbonnier of intensity differences. On the synthetic set's noisy,
H.264-coded, textured background the minimum of Eq. 1 + Eq. 2 lies away from the true flow (docs/SYNTHETIC.md
section 7, "Background diagnosis"). The unsupervised-flow literature replaced it with a census transform, which
compares each pixel's neighbourhood *order* rather than its intensity and so shrugs off noise and brightness
changes (Zabih and Woodfill 1994; in this soft, differentiable form Meister, Hur and Roth 2018, "UnFlow",
AAAI). Nothing here is the paper's method: :class:`htsc_core.models.flow_losses.MotionNetLoss` uses it only when
``photometric="census"`` is asked for (config ``motion_photometric``), and the study's tables keep Eq. 1.

Definitions (UnFlow's constants): grey level g = mean of the colour channels in 0..255 units; for each of the
(2r + 1)^2 neighbours q of p, t_q(p) = d / sqrt(0.81 + d^2) with d = g(q) - g(p) (a soft sign); between a frame
and its reconstruction, the soft Hamming distance h(p) = sum_q e_q^2 / (0.1 + e_q^2), e_q = t_q - t'_q. The loss
is the release's Charbonnier of h, with Eq. 1's border mask and normalisation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CENSUS_RADIUS = 3  # a 7 x 7 neighbourhood (UnFlow)
GREY_SCALE = 255.0  # differences in 0..255 units, as Eq. 1's beta


def census_transform(img: torch.Tensor, radius: int = CENSUS_RADIUS) -> torch.Tensor:
    """(N, C, H, W) -> (N, (2r + 1)^2, H, W): the soft ternary census of each pixel's grey level (the frame's
    edge repeated beyond it)."""
    if img.dim() != 4:
        raise ValueError(f"census_transform: expected (N, C, H, W), got {tuple(img.shape)}")
    n, _, h, w = img.shape
    k = 2 * radius + 1
    grey = img.mean(1, keepdim=True) * GREY_SCALE
    patches = F.unfold(F.pad(grey, (radius,) * 4, mode="replicate"), k).view(n, k * k, h, w)
    d = patches - grey
    return d * torch.rsqrt(0.81 + d * d)


def census_distance(a: torch.Tensor, b: torch.Tensor, radius: int = CENSUS_RADIUS) -> torch.Tensor:
    """(N, C, H, W) x 2 -> (N, H, W): the soft Hamming distance between the two images' census transforms."""
    e = torch.square(census_transform(a, radius) - census_transform(b, radius))
    return (e / (0.1 + e)).sum(1)
