"""The census photometric term (models/census.py), beyond the paper: issue 24's labelled motionnet_beyond trial."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from htsc_core.models import flow_losses as fl
from htsc_core.models.census import census_distance, census_transform


def _census_by_loops(img: np.ndarray, r: int) -> np.ndarray:
    """UnFlow's soft census written out pixel by pixel: grey = channel mean x 255, edge repeated."""
    grey = img.mean(0) * 255.0
    h, w = grey.shape
    out = np.zeros(((2 * r + 1) ** 2, h, w))
    for y in range(h):
        for x in range(w):
            k = 0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    d = grey[min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)] - grey[y, x]
                    out[k, y, x] = d / np.sqrt(0.81 + d * d)
                    k += 1
    return out


def test_census_transform_matches_a_pixel_by_pixel_reading():
    img = np.random.default_rng(0).random((3, 6, 5))
    ours = census_transform(torch.from_numpy(img)[None], radius=2)[0].numpy()  # float64 throughout
    np.testing.assert_allclose(ours, _census_by_loops(img, 2), atol=1e-12)


def test_census_distance_ignores_a_brightness_offset_that_eq1_does_not():
    img = torch.rand(1, 3, 16, 16)
    brighter = img + 0.2
    assert float(census_distance(img, brighter).abs().max()) < 1e-4
    assert float(fl.photometric_loss(img, brighter)) > 1.0  # Eq. 1 charges the offset everywhere
    assert float(census_distance(img, torch.rand(1, 3, 16, 16)).mean()) > 5.0  # another image: far


def test_census_loss_is_lowest_at_the_true_shift_of_a_noisy_textured_frame():
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 40, 40, generator=gen)
    frame0 = base[..., 4:36, 4:36]
    frame1 = base[..., 4:36, 3:35] + 0.02 * torch.randn(1, 3, 32, 32, generator=gen)  # frame1(x + 1) = frame0(x)
    losses = {}
    for u in (-1.0, 0.0, 1.0, 2.0):  # frame 1 sampled at x + u reconstructs frame 0: the truth is u = 1
        flow = torch.zeros(1, 2, 32, 32)
        flow[:, 0] = u
        recon = fl.warp(frame1, flow)
        losses[u] = float(fl.census_photometric_loss(frame0, recon, weighting="release", batch=1))
    assert min(losses, key=losses.get) == 1.0 and losses[1.0] < 0.2 * losses[0.0], losses


def test_the_loss_takes_the_census_term_only_when_asked():
    from htsc_core.config import from_params
    from htsc_core.models.motionnet import MotionNet
    from htsc_core.train.stages import stage_step

    torch.manual_seed(0)
    stack = torch.rand(2, 5, 3, 32, 32)
    flows = MotionNet(num_frames=5, width=1 / 16)(stack)
    paper, census = fl.MotionNetLoss(), fl.MotionNetLoss(photometric="census")
    assert paper.photometric == "charbonnier" and from_params(profile="default").motion_photometric == "charbonnier"
    lp, lc = paper(stack, flows)[1], census(stack, flows)[1]
    assert lp["smooth2"] == lc["smooth2"] and lp["photo2"] != lc["photo2"]  # only Eq. 1's term changes
    step = stage_step("motion", from_params(profile="smoke", motion_photometric="census"))
    assert step is not None
    with pytest.raises(ValueError, match="photometric='ssd'"):
        fl.MotionNetLoss(photometric="ssd")
    with pytest.raises(ValueError, match="motion_photometric='ssd'"):
        from_params(profile="smoke", motion_photometric="ssd")
