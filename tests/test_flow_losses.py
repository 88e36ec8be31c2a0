"""Tests for htsc_core/models/flow_losses.py (Eq. 1-6) against OpenCV, scipy, scikit-image and hand values."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from htsc_core.models.flow_losses import (FLOW_SCALES, MotionNetLoss, SSIM_WEIGHTS, border_mask, charbonnier,
                                          photometric_loss, smoothness_loss, ssim_loss, ssim_map, warp)
from htsc_core.models.motionnet import MotionNet, flow_in_pixels, flow_resolution


# ---------------------------------------------------------------- Charbonnier, masks
def test_charbonnier_hand_values():
    x = torch.tensor([0.0, 1.0, -3.0], dtype=torch.float64)
    got = charbonnier(x, alpha=0.4, eps=1e-3)
    want = [(v * v + 1e-6) ** 0.4 for v in (0.0, 1.0, -3.0)]
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert got[0].item() == pytest.approx(1e-6 ** 0.4)  # = 0.00398..., the floor of the loss
    assert charbonnier(torch.tensor(2.0), alpha=0.5, eps=0.0).item() == pytest.approx(2.0)


def test_border_mask_excludes_ten_percent():
    m = border_mask(20, 30)
    assert m.shape == (1, 1, 20, 30)
    assert m[0, 0, :2].sum() == 0 and m[0, 0, -2:].sum() == 0  # round(0.1 * 20) = 2 rows/cols each side
    assert m[0, 0, :, :2].sum() == 0 and m[0, 0, :, -2:].sum() == 0
    assert m.sum().item() == 16 * 26
    assert border_mask(4, 4).sum().item() == 16  # round(0.4) = 0: tiny maps keep every pixel


# ---------------------------------------------------------------- warping (Eq. 1)
def _random_case(seed, n=2, c=3, h=17, w=23, max_flow=3.0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, c, h, w, generator=g, dtype=torch.float64)
    flow = (torch.rand(n, 2, h, w, generator=g, dtype=torch.float64) * 2 - 1) * max_flow
    return img, flow


def test_warp_matches_scipy_map_coordinates_everywhere():
    img, flow = _random_case(0)
    out = warp(img, flow).numpy()
    h, w = img.shape[-2:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for b in range(img.shape[0]):
        coords = [ys + flow[b, 1].numpy(), xs + flow[b, 0].numpy()]
        for ch in range(img.shape[1]):
            # order-1 spline with edge replication == bilinear with border padding
            ref = ndimage.map_coordinates(img[b, ch].numpy(), coords, order=1, mode="nearest")
            np.testing.assert_allclose(out[b, ch], ref, atol=1e-10)


def test_warp_matches_opencv_remap_interior():
    img, flow = _random_case(1, n=1, h=24, w=24)
    out = warp(img.float(), flow.float())[0].permute(1, 2, 0).numpy()
    src = img[0].permute(1, 2, 0).numpy().astype(np.float32)
    h, w = src.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xs + flow[0, 0].numpy().astype(np.float32)
    map_y = ys + flow[0, 1].numpy().astype(np.float32)
    ref = cv2.remap(src, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(4, -4), slice(4, -4))
    # OpenCV quantises the interpolation weights to 1/32 px, hence the tolerance.
    np.testing.assert_allclose(out[inner], ref[inner], atol=0.02)
    assert np.abs(out[inner] - ref[inner]).mean() < 5e-3


def test_warp_is_backward_integer_shift():
    img = torch.arange(2 * 8 * 9, dtype=torch.float32).reshape(1, 2, 8, 9)
    flow = torch.zeros(1, 2, 8, 9)
    flow[:, 0], flow[:, 1] = 2.0, 1.0  # dx = 2, dy = 1
    out = warp(img, flow)
    # out(y, x) = img(y + 1, x + 2): frame i+1 sampled at p + flow reconstructs frame i.
    torch.testing.assert_close(out[..., :-1, :-2], img[..., 1:, 2:])


def test_warp_validates_shapes():
    with pytest.raises(ValueError, match="warp"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="differ"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 7))


# ---------------------------------------------------------------- SSIM (Eq. 3-4)
def _np_window(block, kind):
    if kind == "uniform":
        return np.ones((block, block))
    sigma = 16.0 / 12.0  # release: (kernel_h + kernel_w) / 12
    r = np.arange(block) - (block - 1) / 2.0
    return np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))


def _np_block_ssim(a, b, wgt, c1=1e-4, c2=1e-3):
    """SSIM of one block from the definition, with (truncated, renormalised) weights."""
    wgt = wgt / wgt.sum()
    mx, my = (wgt * a).sum(), (wgt * b).sum()
    vx, vy = (wgt * (a - mx) ** 2).sum(), (wgt * (b - my) ** 2).sum()
    cxy = (wgt * (a - mx) * (b - my)).sum()
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


@pytest.mark.parametrize("window", ["uniform", "gaussian"])
@pytest.mark.parametrize("size", [(16, 24), (13, 20), (4, 6)])  # ragged edge blocks; (4, 6): smaller than one
def test_ssim_blocks_match_numpy_definition(window, size):
    rng = np.random.default_rng(3)
    h, w = size
    x = rng.random((2, 3, h, w))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    got = ssim_map(torch.from_numpy(x), torch.from_numpy(y), window=window).numpy()
    hb, wb = math.ceil((h - 8) / 8) + 1, math.ceil((w - 8) / 8) + 1
    assert got.shape == (2, 3, hb, wb)
    win = _np_window(8, window)
    for n in range(2):
        for c in range(3):
            for i in range(hb):
                for j in range(wb):
                    a = x[n, c, 8 * i:8 * i + 8, 8 * j:8 * j + 8]
                    b = y[n, c, 8 * i:8 * i + 8, 8 * j:8 * j + 8]
                    ref = _np_block_ssim(a, b, win[:a.shape[0], :a.shape[1]])
                    assert got[n, c, i, j] == pytest.approx(ref, abs=1e-9)


def test_ssim_uniform_dense_matches_skimage():
    # skimage's uniform-window SSIM with C1 = (K1 * 1)^2 = 1e-4 and C2 = (K2 * 1)^2 = 1e-3 is our block SSIM
    # with a 7x7 uniform block at stride 1 (skimage needs an odd window); its interior map must agree exactly.
    rng = np.random.default_rng(4)
    x = rng.random((20, 26))
    y = np.clip(0.7 * x + 0.3 * rng.random(x.shape), 0, 1)
    mssim, full = structural_similarity(x, y, win_size=7, gaussian_weights=False, use_sample_covariance=False,
                                        data_range=1.0, K1=0.01, K2=math.sqrt(1e-3), full=True)
    ours = ssim_map(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None], block=7, stride=1,
                    window="uniform")[0, 0].numpy()
    np.testing.assert_allclose(ours[:20 - 6, :26 - 6], full[3:-3, 3:-3], atol=1e-9)
    assert ours[:14, :20].mean() == pytest.approx(mssim, abs=1e-9)


def test_ssim_loss_zero_for_identical_and_positive_otherwise():
    x = torch.rand(2, 3, 16, 16)
    assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert ssim_loss(torch.rand(2, 3, 16, 16), x).item() > 0.5


# ---------------------------------------------------------------- photometric and smoothness losses
def test_photometric_loss_hand_value_and_mask():
    target = torch.rand(2, 3, 20, 20, dtype=torch.float64)
    recon = target - 0.1
    assert photometric_loss(target, recon).item() == pytest.approx((25.5 ** 2 + 1e-6) ** 0.4, rel=1e-9)
    # Differences confined to the 2-pixel border are masked out: loss stays at the floor eps^0.8.
    recon = target.clone()
    recon[..., :2, :] += 0.5
    assert photometric_loss(target, recon).item() == pytest.approx(1e-6 ** 0.4, rel=1e-6)


def test_smoothness_loss_hand_values():
    floor = 1e-6 ** 0.3
    const = torch.full((1, 4, 6, 7), 3.0, dtype=torch.float64)
    assert smoothness_loss(const).item() == pytest.approx(4 * floor, rel=1e-9)  # four terms of Eq. 2
    ramp = torch.zeros(1, 2, 6, 7, dtype=torch.float64)
    ramp[:, 0] = 0.5 * torch.arange(7, dtype=torch.float64)  # u = 0.5 x: only d/dx u is nonzero
    assert smoothness_loss(ramp).item() == pytest.approx((0.25 + 1e-6) ** 0.3 + 3 * floor, rel=1e-9)


# ---------------------------------------------------------------- MotionNetLoss (Eq. 5-6)
def _shifted_pair(size=32, shift=(2, 1), seed=0):
    """Two frames of a smooth random texture; content moves by shift = (dx, dy) px from frame 0 to frame 1."""
    rng = np.random.default_rng(seed)
    pad = 8
    canvas = ndimage.gaussian_filter(rng.random((3, size + 2 * pad, size + 2 * pad)), sigma=(0, 2, 2))
    canvas = (canvas - canvas.min()) / (canvas.max() - canvas.min())
    dx, dy = shift
    f0 = canvas[:, pad:pad + size, pad:pad + size]
    f1 = canvas[:, pad - dy:pad - dy + size, pad - dx:pad - dx + size]  # f1(p + shift) = f0(p)
    return torch.from_numpy(np.stack([f0, f1])[None]).float()  # (1, 2, 3, H, W)


def test_known_translation_recovered_by_minimising_the_losses():
    torch.manual_seed(0)
    stack = _shifted_pair()
    flows = [torch.zeros(1, 2, *flow_resolution((32, 32), s), requires_grad=True) for s in FLOW_SCALES]
    loss_fn = MotionNetLoss()
    opt = torch.optim.Adam(flows, lr=0.005)
    first = None
    for _ in range(300):
        total, parts = loss_fn(stack, flows)
        first = parts["photo2"].item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert parts["photo2"].item() < 0.3 * first  # finest-scale reconstruction error fell by > 3x
    px = flow_in_pixels(flows, (32, 32))[0, :, 6:-6, 6:-6]  # full-resolution pixels, interior
    assert px[0].mean().item() == pytest.approx(2.0, abs=0.3)
    assert px[1].mean().item() == pytest.approx(1.0, abs=0.3)
    assert px.std(dim=(1, 2)).max().item() < 0.5  # a uniform field, not a right mean of noise


def test_every_motionnet_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = MotionNet(num_frames=3, width=1 / 16)
    stack = torch.rand(2, 3, 3, 32, 32)
    total, parts = MotionNetLoss(ssim_weight_scale=0.1)(stack, net(stack))
    total.backward()
    assert torch.isfinite(total)
    assert set(parts) == {f"{k}{s}" for k in ("photo", "smooth", "ssim", "scale") for s in (6, 5, 4, 3, 2)}
    assert all(torch.isfinite(v) and not v.requires_grad for v in parts.values())
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # total = sum of the per-scale losses (delta_s = 1)
    assert total.item() == pytest.approx(sum(parts[f"scale{s}"].item() for s in (6, 5, 4, 3, 2)), rel=1e-5)


def test_ssim_weights_and_scale():
    stack = torch.rand(1, 2, 3, 32, 32)
    flows = [torch.zeros(1, 2, *flow_resolution((32, 32), s)) for s in FLOW_SCALES]
    t1, p1 = MotionNetLoss(1.0)(stack, flows)
    t0, p0 = MotionNetLoss(0.0)(stack, flows)
    ssim_part = sum(SSIM_WEIGHTS[s] * p1[f"ssim{s}"].item() for s in SSIM_WEIGHTS)
    assert ssim_part > 0
    assert (t1 - t0).item() == pytest.approx(ssim_part, rel=1e-4)
    assert list(SSIM_WEIGHTS.values()) == [0.16, 0.08, 0.04, 0.02, 0.01]


def test_motionnet_loss_rejects_bad_flows():
    stack = torch.rand(1, 3, 3, 32, 32)
    good = [torch.zeros(1, 4, *flow_resolution((32, 32), s)) for s in FLOW_SCALES]
    with pytest.raises(ValueError, match="expected 5 flows"):
        MotionNetLoss()(stack, good[:4])
    with pytest.raises(ValueError, match="flow2 has shape"):
        MotionNetLoss()(stack, good[:4] + [torch.zeros(1, 4, 8, 8)])
    with pytest.raises(ValueError, match="window"):
        MotionNetLoss(ssim_window="box")


def test_flow_in_pixels_unit_chain():
    # flow2 lives at H/2; flow2 * FLOW_SCALES[2] = px at H/2, x2 for input pixels: flow2 * 20 in total.
    flow2 = torch.zeros(1, 4, 16, 16)
    flow2[:, 0], flow2[:, 1], flow2[:, 2], flow2[:, 3] = 0.1, -0.05, 0.2, 0.0
    px = flow_in_pixels([flow2], (32, 32))
    assert px.shape == (1, 4, 32, 32)
    torch.testing.assert_close(px.mean(dim=(2, 3))[0], torch.tensor([2.0, -1.0, 4.0, 0.0]))
    assert FLOW_SCALES == {6: 0.625, 5: 1.25, 4: 2.5, 3: 5.0, 2: 10.0}
    for s, f in FLOW_SCALES.items():  # every scale's unit is 20 input pixels
        assert f * 2 ** (s - 1) == 20.0


def test_loss_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    stack = torch.rand(1, 2, 3, 32, 32)
    flows = [torch.randn(1, 2, *flow_resolution((32, 32), s)) * 0.05 for s in FLOW_SCALES]
    ref, _ = MotionNetLoss()(stack, flows)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, parts = MotionNetLoss()(stack, [f.bfloat16() for f in flows])
    assert got.dtype == torch.float32 and parts["ssim2"].dtype == torch.float32
    # only the bf16 rounding of the flow inputs themselves remains
    assert got.item() == pytest.approx(ref.item(), rel=1e-2)


# ---------------------------------------------------------------- release weighting (hand-computed values)
def test_release_photometric_sums_channels_and_pairs_over_batch_times_valid_pixels():
    # 2 stacks x 2 frame pairs = 4 images, 3 channels, 10 x 10: border round(0.1 * 10) = 1 px -> 8 x 8 valid.
    target = torch.rand(4, 3, 10, 10, dtype=torch.float64)
    recon = target - 0.1
    e = (25.5 ** 2 + 1e-6) ** 0.4  # one element, 255 * 0.1 = 25.5
    # release: sum over 4 x 3 x 64 elements / (2 stacks x 64 pixels) = 6 e; mean: e
    assert photometric_loss(target, recon, weighting="release", batch=2).item() == pytest.approx(6 * e, rel=1e-9)
    assert photometric_loss(target, recon, weighting="mean").item() == pytest.approx(e, rel=1e-9)


def test_release_smoothness_sums_fields_over_batch_times_border_masked_pixels():
    c, f = (0.25 + 1e-6) ** 0.3, 1e-6 ** 0.3
    flow = torch.zeros(1, 4, 6, 7, dtype=torch.float64)  # two flow fields (u0, v0, u1, v1)
    flow[:, 0] = 0.5 * torch.arange(7, dtype=torch.float64)  # u0 = 0.5 x: d/dx u0 = 0.5, everything else 0
    # border round(0.1 * 6) = 1 px -> rows 1..4, columns 1..5: 20 valid pixels; every difference's left/upper
    # pixel inside them counts. d/dx u: 20 c (field 0) + 20 f (field 1); the other three terms 40 f each.
    expected = (20 * c + 20 * f + 3 * 40 * f) / 20
    assert smoothness_loss(flow, weighting="release").item() == pytest.approx(expected, rel=1e-9)
    assert smoothness_loss(flow, weighting="mean").item() == pytest.approx((c + f) / 2 + 3 * f, rel=1e-9)


def test_release_ssim_sums_blocks_and_channels_over_batch():
    # Constant images: every 8 x 8 block has zero variance, SSIM = (2ab + c1) / (a^2 + b^2 + c1).
    a, b = 0.5, 0.3
    x = torch.full((4, 3, 16, 16), a, dtype=torch.float64)
    y = torch.full((4, 3, 16, 16), b, dtype=torch.float64)
    s = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    # 4 images x 3 channels x 2 x 2 blocks = 48 entries, / 2 stacks
    assert ssim_loss(x, y, weighting="release", batch=2).item() == pytest.approx(48 * (1 - s) / 2, rel=1e-9)
    assert ssim_loss(x, y, weighting="mean").item() == pytest.approx(1 - s, rel=1e-9)


def test_release_normalise_is_mean_subtraction_and_cross_channel_lrn():
    from htsc_core.models.flow_losses import release_normalise

    rgb = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    x = rgb.numpy() - np.array([123.0, 117.0, 104.0]).reshape(1, 3, 1, 1) / 255.0
    # Caffe LRN ACROSS_CHANNELS, local_size 9 covers all 3 channels: x / (1 + (1/9) sum_c x_c^2)^0.7
    expected = x / (1.0 + (x ** 2).sum(axis=1, keepdims=True) / 9.0) ** 0.7
    np.testing.assert_allclose(release_normalise(rgb).numpy(), expected, rtol=1e-12)
    # and PyTorch's own cross-channel LRN (Caffe's ACROSS_CHANNELS) gives the same
    lrn = torch.nn.functional.local_response_norm(torch.from_numpy(x), size=9, alpha=1.0, beta=0.7, k=1.0)
    np.testing.assert_allclose(release_normalise(rgb).numpy(), lrn.numpy(), rtol=1e-12)


def test_loss_pyramid_equals_area_resizing_the_full_frames():
    # MotionNetLoss(pyramid="area") area-averages each scale from the next finer one; resizing the full frames
    # to every scale's size (the direct definition) must give the same loss
    import htsc_core.models.flow_losses as fl

    torch.manual_seed(0)
    stack = torch.rand(2, 3, 3, 64, 64, dtype=torch.float64)
    flows = [0.05 * torch.randn(2, 4, 64 // 2 ** (s - 1), 64 // 2 ** (s - 1), dtype=torch.float64)
             for s in (6, 5, 4, 3, 2)]
    got, parts = MotionNetLoss(pyramid="area")(stack, flows)
    frames = fl.release_normalise(stack.reshape(6, 3, 64, 64))
    want = 0.0
    for s, flow in zip((6, 5, 4, 3, 2), flows):
        h = 64 // 2 ** (s - 1)
        fr = torch.nn.functional.interpolate(frames, size=(h, h), mode="area").reshape(2, 3, 3, h, h)
        tgt, nxt = fr[:, :-1].reshape(4, 3, h, h), fr[:, 1:].reshape(4, 3, h, h)
        px = flow * fl.FLOW_SCALES[s]
        rec = fl.warp(nxt, px.reshape(4, 2, h, h))
        want = want + (fl.photometric_loss(tgt, rec, weighting="release", batch=2)
                       + fl.smoothness_loss(px, weighting="release")
                       + fl.SSIM_WEIGHTS[s] * fl.ssim_loss(rec, tgt, weighting="release", batch=2))
    assert got.item() == pytest.approx(want.item(), rel=1e-6)  # the loss runs in float32


def test_weighting_names_are_checked():
    with pytest.raises(ValueError, match="weighting"):
        MotionNetLoss(weighting="sum")
    with pytest.raises(ValueError, match="weighting"):
        ssim_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), weighting="x")


def test_ssim_after_inference_mode_still_trains():
    # the block weights are cached: ones first built under inference_mode must still work in a training step
    x, y = torch.rand(2, 3, 24, 40), torch.rand(2, 3, 24, 40)
    with torch.inference_mode():
        ssim_loss(x, y)
    r = y.clone().requires_grad_()
    ssim_loss(r, x).backward()
    assert r.grad is not None and torch.isfinite(r.grad).all()


def test_charbonnier_sum_gradient_matches_autograd_of_the_definition():
    from htsc_core.models.flow_losses import charbonnier_sum

    x = (3 * torch.randn(5, 7, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: charbonnier_sum(t, 0.4, 1e-3), (x,))
    charbonnier(x, 0.3).sum().backward()
    want = x.grad.clone()
    x.grad = None
    charbonnier_sum(x, 0.3).backward()
    torch.testing.assert_close(x.grad, want)
    assert charbonnier_sum(x, 0.3).item() == pytest.approx(charbonnier(x, 0.3).sum().item())
    # beta scales the argument (the photometric loss's 255), gradient included
    x.grad = None
    charbonnier(255.0 * x, 0.4).sum().backward()
    want = x.grad.clone()
    x.grad = None
    charbonnier_sum(x, 0.4, beta=255.0).backward()
    torch.testing.assert_close(x.grad, want)


def test_release_downsample_hand_values_and_pyramid_option():
    from htsc_core.models.flow_losses import release_downsample

    # 3 -> 2: outputs at 0 and 2, tent radius 2: weights (1, 1/2, 0) / 1.5 and (0, 1/2, 1) / 1.5
    row = release_downsample(torch.tensor([[[0.0, 3.0, 6.0], [0.0, 3.0, 6.0], [0.0, 3.0, 6.0]]]), (2, 2))
    np.testing.assert_allclose(row[0, 0], [1.5 / 1.5, (1.5 + 6.0) / 1.5], rtol=1e-6)
    with pytest.raises(ValueError, match="output size"):
        release_downsample(torch.zeros(1, 4, 4), (5, 5))
    # no 1-pixel output in the release (it divides by out - 1): the mean, as the area pyramid
    x = torch.arange(16.0).reshape(1, 4, 4)
    assert release_downsample(x, (1, 1)).item() == pytest.approx(7.5)
    assert MotionNetLoss().pyramid == "release"  # the default (docs/SYNTHETIC.md section 7)
    with pytest.raises(ValueError, match="pyramid"):
        MotionNetLoss(pyramid="box")
    # a constant stack with zero flow: both pyramids give the same (zero-photometric) loss
    stack = torch.full((1, 3, 3, 64, 64), 0.4)
    flows = [torch.zeros(1, 4, 64 // 2 ** (s - 1), 64 // 2 ** (s - 1)) for s in (6, 5, 4, 3, 2)]
    a, _ = MotionNetLoss(pyramid="area")(stack, flows)
    b, _ = MotionNetLoss(pyramid="release")(stack, flows)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_smooth_weight_adds_the_smoothness_terms_once_more():
    torch.manual_seed(0)
    stack = torch.rand(1, 3, 3, 64, 64)
    flows = [0.1 * torch.randn(1, 4, 64 // 2 ** (s - 1), 64 // 2 ** (s - 1)) for s in (6, 5, 4, 3, 2)]
    t1, parts = MotionNetLoss()(stack, flows)
    t2, _ = MotionNetLoss(smooth_weight=2.0)(stack, flows)
    assert float(t2 - t1) == pytest.approx(sum(float(parts[f"smooth{s}"]) for s in (6, 5, 4, 3, 2)), rel=1e-4)
    with pytest.raises(ValueError, match="smooth_weight"):
        MotionNetLoss(smooth_weight=-1.0)


def test_coarse_weight_scales_eq6_delta_of_flow6_to_flow3_only():
    torch.manual_seed(0)
    stack = torch.rand(1, 3, 3, 64, 64)
    flows = [0.1 * torch.randn(1, 4, 64 // 2 ** (s - 1), 64 // 2 ** (s - 1)) for s in (6, 5, 4, 3, 2)]
    t1, parts = MotionNetLoss()(stack, flows)
    coarse = sum(float(parts[f"scale{s}"]) for s in (6, 5, 4, 3))
    assert float(t1) == pytest.approx(coarse + float(parts["scale2"]), rel=1e-5)
    t0, _ = MotionNetLoss(coarse_weight=0.0)(stack, flows)
    assert float(t0) == pytest.approx(float(parts["scale2"]), rel=1e-5)  # flow2's L_s alone
    tq, _ = MotionNetLoss(coarse_weight=0.25)(stack, flows)
    assert float(tq) == pytest.approx(0.25 * coarse + float(parts["scale2"]), rel=1e-5)
    with pytest.raises(ValueError, match="coarse_weight"):
        MotionNetLoss(coarse_weight=-0.5)


def test_config_coarse_weight_reaches_the_training_loss():
    from htsc_core.config import from_params
    from htsc_core.train.stages import stage_step

    for stage in ("motion", "temporal"):
        step = stage_step(stage, from_params(profile="smoke", motion_coarse_weight=0.25))
        (loss_fn,) = [c.cell_contents for c in step.__closure__ if isinstance(c.cell_contents, MotionNetLoss)]
        assert loss_fn.scale_weights == {6: 0.25, 5: 0.25, 4: 0.25, 3: 0.25, 2: 1.0}
    assert from_params(profile="default").motion_coarse_weight == 1.0  # the release's delta_s = 1
    with pytest.raises(ValueError, match="motion_coarse_weight"):
        from_params(profile="smoke", motion_coarse_weight=-1.0)
