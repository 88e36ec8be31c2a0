"""Unsupervised MotionNet losses (paper section 3.1.2, Eq. 1-6).

Conventions every caller must know (values from the Hidden Two-Stream release,
``models/multiframe_MotionNet/train.prototxt`` and its Caffe layers, unless the
comment says otherwise):

- Frames are RGB in [0, 1]. Flow passed to :func:`warp`, :func:`smoothness_loss`
  is in pixels of its own grid; :class:`MotionNetLoss` converts MotionNet's output
  with ``flowK * FLOW_SCALES[K]`` (see ``motionnet.py``).
- Warping is backward (Eq. 1): frame i+1 sampled at p + flow_i(p) reconstructs
  frame i. ``grid_sample`` bilinear, pixel-centre coordinates (align_corners=True),
  ``padding_mode="border"`` (out-of-frame samples repeat the edge pixel; the 10 %
  border mask keeps the photometric loss off that region anyway).
- Charbonnier F(x) = (x^2 + eps^2)^alpha, eps = 1e-3; alpha 0.4 on photometric
  differences expressed in 0..255 intensity units (release: beta = 255 pre-scale),
  alpha 0.3 on flow gradients in pixels (release: beta = FLOW_SCALES[K]).
- SSIM (Eq. 3-4) on 8x8 blocks at stride 8 with c1 = 1e-4, c2 = 1e-3 added to the
  [0, 1]-range statistics (= the usual K1 = 0.01, K2 = 0.0316, data range 1);
  weighted by an 8x8 Gaussian (sigma = 16/12, the release's SSIMLoss layer) or,
  with ``window="uniform"``, plain block means. Ragged edge blocks are truncated
  and renormalised.
- Weighting (``weighting="release"``, the default), as the release's layers compute it:
  the Charbonnier layer sums over every element of its input, frame pairs and colour
  channels included, and divides by batch x valid (border-mask) pixels; the smoothness
  terms likewise sum over flow fields and divide by batch x valid pixels (the release
  multiplies the flow gradients by its 10 % border mask too); the SSIM layer returns
  (number of block-channel entries - sum of SSIM) / batch, i.e. it *sums* 1 - SSIM over
  frame pairs, channels and blocks. Before the photometric and SSIM terms the frames are
  normalised as the release's ``imgNNorm`` layers do: the BGR means 104/117/123 are
  subtracted (frames in [0, 1], so /255) and a cross-channel LRN (local_size 9, alpha 1,
  beta 0.7, k 1) is applied. ``weighting="mean"`` is the paper's per-pixel normalisation
  (means over pixels, channels and blocks; no frame normalisation), kept for comparison
  (docs/SYNTHETIC.md has the measured effect). One reading of the release's CUDA code is
  left out on purpose: its "valid pixels" come from a mask blob shaped like the whole batch
  (N x 30 channels), which would divide both Charbonnier terms by a further N x 30; we take
  the layer's stated intent (batch x valid pixels), as the issue describing it does.
- Pyramid: with ``pyramid="release"`` (the default, chosen on validation: docs/SYNTHETIC.md section 7) the
  release's ``WarpDownsampleK`` layers: FlowNet's Caffe ``Downsample``, a tent filter of radius
  (S - 1) / (s - 1) with corners aligned, from the full frames (:func:`release_downsample`); with
  ``pyramid="area"`` (our first reading, kept for comparison) 2 x 2 area means of the next finer scale.
- Per scale (Eq. 5): L_s = Lp + Lsm + w_s * Lss with w_s = 0.16, 0.08, 0.04, 0.02,
  0.01 for scales 6..2 (release loss_weight of SSIMLoss6..2) times
  ``ssim_weight_scale`` (0.1 during end-to-end training, docs/DESIGN.md section 2).
  Eq. 6: delta_s = 1 at every scale (the release gives PhotometricLossK and
  SmoothnessLossK loss_weight 1 at all five scales; scale dependence is only in w_s).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from htsc_core.models.census import census_distance
from htsc_core.models.loss_pyramid import PYRAMIDS, _halve, release_downsample
from htsc_core.models.motionnet import FLOW_SCALES, SCALES, flow_in_pixels, flow_resolution

__all__ = ["warp", "charbonnier", "charbonnier_sum", "border_mask", "photometric_loss", "smoothness_loss", "ssim_map",
           "ssim_loss", "MotionNetLoss", "scale_terms", "release_normalise", "WEIGHTINGS", "FLOW_SCALES",
           "flow_in_pixels", "SSIM_WEIGHTS", "census_photometric_loss", "census_distance", "PHOTOMETRICS"]

EPS = 1e-3  # release CharbonnierLoss epsilon
ALPHA_PHOTO = 0.4  # release PhotometricLossK alpha
ALPHA_SMOOTH = 0.3  # release SmoothnessLossK alpha
PHOTO_BETA = 255.0  # release PhotometricLossK beta: differences in 0..255 units
SSIM_C1, SSIM_C2 = 1e-4, 1e-3  # paper section 3.1.2 (and release ssim_loss_param)
SSIM_BLOCK = 8  # paper: 8x8 local blocks; release: stride 8
SSIM_WEIGHTS: dict[int, float] = {6: 0.16, 5: 0.08, 4: 0.04, 3: 0.02, 2: 0.01}  # release SSIMLoss6..2 loss_weight
BORDER_RATIO = 0.1  # release BorderMask border_ratio
WEIGHTINGS = ("release", "mean")
RELEASE_MEAN_RGB = (123.0 / 255.0, 117.0 / 255.0, 104.0 / 255.0)  # release mean_value 104, 117, 123 (BGR)
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 9, 1.0, 0.7, 1.0  # release imgNNorm: LRN across channels


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}; expected one of {WEIGHTINGS}")


def release_normalise(frames: torch.Tensor) -> torch.Tensor:
    """The release's frame normalisation before its photometric and SSIM losses.

    frames (N, 3, H, W) RGB in [0, 1] -> mean-subtracted (the data layer's mean_value, /255 as its
    scale) and LRN across channels: x_c / (k + alpha / n * sum_{|c' - c| <= 4} x_c'^2)^beta, n = 9
    (Caffe ``LRN`` ACROSS_CHANNELS = ``torch.nn.functional.local_response_norm``).
    """
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"release_normalise: expected (N, 3, H, W) RGB frames, got {tuple(frames.shape)}")
    x = frames - frames.new_tensor(RELEASE_MEAN_RGB).view(1, 3, 1, 1)
    # local_size 9 spans all 3 channels from each channel, so the window sum is the sum over the channels: this
    # closed form equals F.local_response_norm (which pools a padded 5-D copy: 20 ms per call at the default
    # profile's batch on 2 cores, the largest cost in the loss)
    return x / (LRN_K + LRN_ALPHA / LRN_SIZE * (x * x).sum(1, keepdim=True)) ** LRN_BETA


def warp(img: torch.Tensor, flow_px: torch.Tensor) -> torch.Tensor:
    """Backward warp: out(p) = img(p + flow(p)), bilinear, border padding.

    img (N, C, H, W); flow_px (N, 2, H, W) with (dx, dy) in pixels of this grid.
    """
    if img.dim() != 4 or flow_px.dim() != 4 or flow_px.shape[1] != 2:
        raise ValueError(f"warp: expected img (N, C, H, W) and flow (N, 2, H, W), got {tuple(img.shape)} "
                         f"and {tuple(flow_px.shape)}")
    if img.shape[0] != flow_px.shape[0] or img.shape[-2:] != flow_px.shape[-2:]:
        raise ValueError(f"warp: img {tuple(img.shape)} and flow {tuple(flow_px.shape)} differ in N or H, W")
    n, _, h, w = img.shape
    # Coordinates and sampling in at least float32: in bf16 a coordinate near 100 px is only good to 0.5 px.
    dt = torch.promote_types(torch.promote_types(img.dtype, flow_px.dtype), torch.float32)
    img, flow_px = img.to(dt), flow_px.to(dt)
    # align_corners=True: -1 and +1 are the centres of the first and last pixel, so pixel (x, y) sits at
    # (2x / (w - 1) - 1, 2y / (h - 1) - 1) and a displacement of d pixels moves it by 2d / (w - 1) (or h - 1)
    sx, sy = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dt, device=flow_px.device) * sy - 1.0,
                            torch.arange(w, dtype=dt, device=flow_px.device) * sx - 1.0, indexing="ij")
    grid = torch.stack([xs, ys], dim=-1) + flow_px.permute(0, 2, 3, 1) * flow_px.new_tensor([sx, sy])
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def charbonnier(x: torch.Tensor, alpha: float, eps: float = EPS) -> torch.Tensor:
    """F(x) = (x^2 + eps^2)^alpha, elementwise (Eq. 1, from LapSRN)."""
    return (x * x + eps * eps) ** alpha


class _CharbonnierSum(torch.autograd.Function):
    """sum F(beta x) with the closed-form gradient d/dx = 2 alpha beta^2 x F / (beta^2 x^2 + eps^2).

    Autograd through :func:`charbonnier` would evaluate a second power in the backward pass (pow's
    derivative) and keep three intermediates; here the backward reuses F from the forward pass, and beta
    (the photometric loss's 255) is folded in rather than a separate pass over the differences.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float, eps: float, beta: float) -> torch.Tensor:
        base = torch.square(x).mul_(beta * beta).add_(eps * eps)
        value = base.pow(alpha)
        ctx.save_for_backward(x, value, base)
        ctx.factor = 2.0 * alpha * beta * beta
        return value.sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, value, base = ctx.saved_tensors
        return (value / base).mul_(x).mul_(grad * ctx.factor), None, None, None


def charbonnier_sum(x: torch.Tensor, alpha: float, eps: float = EPS, beta: float = 1.0) -> torch.Tensor:
    """``charbonnier(beta * x, alpha, eps).sum()``, with a cheaper backward pass (what the losses use)."""
    return _CharbonnierSum.apply(x, float(alpha), float(eps), float(beta))


def _interior(h: int, w: int, ratio: float = BORDER_RATIO) -> tuple[slice, slice]:
    """Rows and columns where :func:`border_mask` is 1."""
    b = int(math.floor(ratio * min(h, w) + 0.5))
    if 2 * b >= min(h, w):
        b = 0
    return slice(b, h - b), slice(b, w - b)


def border_mask(h: int, w: int, ratio: float = BORDER_RATIO, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, 1, h, w) mask, 0 on a border round(ratio * min(h, w)) wide (release "borderMask" filler)."""
    m = torch.zeros(1, 1, h, w, device=device, dtype=dtype)
    rows, cols = _interior(h, w, ratio)  # tiny maps (smoke sizes): every pixel rather than none
    m[..., rows, cols] = 1.0
    return m


def photometric_loss(target: torch.Tensor, reconstruction: torch.Tensor, border_ratio: float = BORDER_RATIO,
                     alpha: float = ALPHA_PHOTO, eps: float = EPS, weighting: str = "mean",
                     batch: int | None = None) -> torch.Tensor:
    """Eq. 1: Charbonnier of 255 * (f1 - warped f2) over the pixels inside the border mask.

    ``weighting="mean"``: mean over masked pixels, channels and images. ``"release"``: the sum over every
    masked element (images and channels) / (``batch`` x masked pixels); ``batch`` = number of stacks
    (default: the number of images, i.e. one frame pair per stack).
    """
    _check_weighting(weighting)
    if target.shape != reconstruction.shape or target.dim() != 4:
        raise ValueError(f"photometric_loss: shapes {tuple(target.shape)} and {tuple(reconstruction.shape)} differ "
                         "or are not (N, C, H, W)")
    rows, cols = _interior(*target.shape[-2:], border_ratio)  # the border mask's ones, as slices
    err = charbonnier_sum(target[..., rows, cols] - reconstruction[..., rows, cols], alpha, eps, beta=PHOTO_BETA)
    pixels = (rows.stop - rows.start) * (cols.stop - cols.start)
    if weighting == "release":
        return err / (pixels * (target.shape[0] if batch is None else batch))
    return err / (pixels * target.shape[0] * target.shape[1])


def census_photometric_loss(target: torch.Tensor, reconstruction: torch.Tensor, border_ratio: float = BORDER_RATIO,
                            alpha: float = ALPHA_PHOTO, eps: float = EPS, weighting: str = "mean",
                            batch: int | None = None) -> torch.Tensor:
    """Beyond the paper (issue 24's ``motionnet_beyond``; :mod:`htsc_core.models.census`): Eq. 1 with the soft
    Hamming distance of the two images' census transforms in place of the intensity differences, one value per
    pixel (not per channel); the border mask, Charbonnier and normalisation are :func:`photometric_loss`'s."""
    _check_weighting(weighting)
    if target.shape != reconstruction.shape or target.dim() != 4:
        raise ValueError(f"census_photometric_loss: shapes {tuple(target.shape)} and {tuple(reconstruction.shape)} "
                         "differ or are not (N, C, H, W)")
    rows, cols = _interior(*target.shape[-2:], border_ratio)
    err = charbonnier_sum(census_distance(target, reconstruction)[..., rows, cols], alpha, eps)
    pixels = (rows.stop - rows.start) * (cols.stop - cols.start)
    return err / (pixels * (target.shape[0] if weighting == "mean" or batch is None else batch))


def smoothness_loss(flow_px: torch.Tensor, alpha: float = ALPHA_SMOOTH, eps: float = EPS, weighting: str = "mean",
                    border_ratio: float = BORDER_RATIO) -> torch.Tensor:
    """Eq. 2: F(d/dx u) + F(d/dy u) + F(d/dx v) + F(d/dy v).

    flow_px (N, 2K, H, W), channels x0, y0, x1, y1, ... in pixels. Forward differences (the release's
    FlowDeltaWeights kernels [1, -1]). ``weighting="mean"``: each term a mean over pixels and flow fields,
    no mask (Eq. 2 has none). ``"release"``: the differences are multiplied by the 10 % border mask (taken
    at the difference's left/upper pixel) and each term is the sum over flow fields and pixels / (N x
    border-mask pixels); the release's zeroed last column/row would add (eps^2)^alpha = 0.016 per pixel
    there, a constant we leave out.
    """
    _check_weighting(weighting)
    if flow_px.dim() != 4 or flow_px.shape[1] % 2:
        raise ValueError(f"smoothness_loss: expected flow (N, 2K, H, W), got {tuple(flow_px.shape)}")
    total = flow_px.new_zeros(())
    h, w = flow_px.shape[-2:]
    rows, cols = _interior(h, w, border_ratio)
    norm = (rows.stop - rows.start) * (cols.stop - cols.start) * flow_px.shape[0]
    for dim in (-1, -2):  # d/dx, d/dy of every channel: u and v of every flow field at once
        if flow_px.shape[dim] < 2:
            continue
        n = flow_px.shape[dim] - 1
        d = flow_px.narrow(dim, 1, n) - flow_px.narrow(dim, 0, n)
        if weighting == "release":  # the mask at the difference's left/upper pixel = these slices
            total = total + charbonnier_sum(d[..., rows, cols], alpha, eps) / norm
        else:  # the mean over u's fields plus the mean over v's (equal counts) = 2 x the mean over all
            total = total + 2.0 * charbonnier_sum(d, alpha, eps) / d.numel()
    return total


def _window_1d(block: int, kind: str, dtype, device) -> torch.Tensor:
    """The 1-D factor g of the separable block window g g^T (both windows are products of a row and a column)."""
    if kind == "uniform":
        g = torch.ones(block, dtype=dtype, device=device)
    elif kind == "gaussian":
        # Release SSIMLoss: sigma = (kh + kw) / 12, "the kernel encloses +/- 3 sigma". Centred on the block centre
        # ((block - 1) / 2); the release centres at block / 2, half a pixel off.
        sigma = 2.0 * block / 12.0
        r = torch.arange(block, dtype=dtype, device=device) - (block - 1) / 2.0
        g = torch.exp(-(r * r) / (2.0 * sigma * sigma))
    else:
        raise ValueError(f"ssim: window={kind!r}; expected 'gaussian' or 'uniform'")
    return g


@functools.lru_cache(maxsize=64)
def _block_weights(size: int, block: int, stride: int, window: str, dtype, device) -> torch.Tensor:
    """(size, blocks) matrix whose column i holds the 1-D window on pixels i * stride .. i * stride + block - 1,
    normalised to sum 1.

    A block reaching past the edge keeps only its pixels inside the image (truncated, renormalised); ``t @ R``
    is the window-weighted mean of each row of ``t`` over every block. Cached: the loss asks for the same few
    every step.
    """
    blocks = max(0, math.ceil((size - block) / stride)) + 1
    with torch.inference_mode(False):  # a normal tensor even when first asked for under inference_mode, so that
        # a later training step may save it for its backward pass
        g = _window_1d(block, window, dtype, device)
        r = g.new_zeros(size, blocks)
        for i in range(blocks):
            start = i * stride
            stop = min(start + block, size)
            r[start:stop, i] = g[:stop - start] / g[:stop - start].sum()  # truncated blocks renormalised
    return r


def ssim_map(x: torch.Tensor, y: torch.Tensor, block: int = SSIM_BLOCK, stride: int = SSIM_BLOCK,
             window: str = "gaussian", c1: float = SSIM_C1, c2: float = SSIM_C2) -> torch.Tensor:
    """Eq. 3 on local blocks: SSIM per block and channel, (N, C, Hb, Wb).

    Blocks start every ``stride`` pixels; as in the release, there are ceil((H - block) / stride) + 1 rows of
    blocks, and a block reaching past the image edge is truncated (its weights renormalised over the valid
    pixels). Variances and covariance are the window-weighted population moments.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim: shapes {tuple(x.shape)} and {tuple(y.shape)} differ or are not (N, C, H, W)")
    if block < 1 or stride < 1:
        raise ValueError(f"ssim: block={block} and stride={stride} must be >= 1")
    c, h, w = x.shape[1:]
    # The window is separable (g g^T), so a block's weighted mean is rows(h)^T . t . cols(w) with each column
    # normalised: two small matrix products per image and channel, several times cheaper on CPU than a pooled
    # or convolved 8x8 window
    rows = _block_weights(h, block, stride, window, x.dtype, x.device)
    cols = _block_weights(w, block, stride, window, x.dtype, x.device)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return rows.t() @ (t @ cols)

    # the window means of each image and of its square in one pass each (a loss's target needs no gradient)
    mu_x, exx = mean(torch.cat([x, x * x], dim=1)).split(c, dim=1)
    mu_y, eyy = mean(torch.cat([y, y * y], dim=1)).split(c, dim=1)
    exy = mean(x * y)
    mxx, myy, mxy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    # (2 mu_x mu_y + c1)(2 s_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(s_x^2 + s_y^2 + c2)), s = population moments
    return ((2 * mxy + c1) * (2 * (exy - mxy) + c2)) / ((mxx + myy + c1) * (exx - mxx + eyy - myy + c2))


def ssim_loss(reconstruction: torch.Tensor, target: torch.Tensor, window: str = "gaussian", weighting: str = "mean",
              batch: int | None = None) -> torch.Tensor:
    """Eq. 4: 1 - SSIM(f1 block, f1' block) over blocks and channels.

    ``weighting="mean"``: the paper's 1/I normalisation, a mean over blocks, channels and images.
    ``"release"``: the release's SSIMLoss, (entries - sum SSIM) / ``batch``, i.e. the sum over images,
    channels and blocks divided by the number of stacks (default: the number of images).
    """
    _check_weighting(weighting)
    d = 1.0 - ssim_map(reconstruction, target, window=window)
    if weighting == "release":
        return d.sum() / (reconstruction.shape[0] if batch is None else batch)
    return d.mean()


PHOTOMETRICS = ("charbonnier", "census")  # Eq. 1 (the paper's) or the census term (beyond it, issue 24)


def scale_terms(frames: torch.Tensor, flow_px: torch.Tensor, weighting: str = "release",
                border_ratio: float = BORDER_RATIO, ssim_window: str = "gaussian", photometric: str = "charbonnier"
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 1, 2 and 4 at one scale: (photometric, smoothness, SSIM loss).

    frames (N, L, 3, h, w) at this scale (normalised as the weighting wants); flow_px (N, 2(L-1), h, w) in
    pixels of this grid, pair i warping frame i + 1 back onto frame i. ``photometric="census"`` puts
    :func:`census_photometric_loss` in Eq. 1's place (not the paper's method).
    """
    if photometric not in PHOTOMETRICS:
        raise ValueError(f"photometric={photometric!r}; expected one of {PHOTOMETRICS}")
    n, L, c, h, w = frames.shape
    target = frames[:, :-1].reshape(n * (L - 1), c, h, w)  # frame i
    nxt = frames[:, 1:].reshape(n * (L - 1), c, h, w)  # frame i + 1
    recon = warp(nxt, flow_px.reshape(n * (L - 1), 2, h, w))
    photo = census_photometric_loss if photometric == "census" else photometric_loss
    lp = photo(target, recon, border_ratio=border_ratio, weighting=weighting, batch=n)
    lsm = smoothness_loss(flow_px, weighting=weighting, border_ratio=border_ratio)
    lss = ssim_loss(recon, target, window=ssim_window, weighting=weighting, batch=n)
    return lp, lsm, lss


class MotionNetLoss(nn.Module):
    """Eq. 5-6 over MotionNet's five scales.

    ``forward(stack (N, L, 3, H, W) in [0, 1], flows [flow6 .. flow2]) -> (total, parts)``; parts holds detached
    0-d tensors ``photo{s}``, ``smooth{s}``, ``ssim{s}``, ``scale{s}`` for s = 6..2 (``scale{s}`` = L_s, already
    SSIM-weighted).
    """

    def __init__(self, ssim_weight_scale: float = 1.0, border_ratio: float = BORDER_RATIO,
                 ssim_window: str = "gaussian", weighting: str = "release", pyramid: str = "release",
                 smooth_weight: float = 1.0, photometric: str = "charbonnier", coarse_weight: float = 1.0) -> None:
        super().__init__()
        _check_weighting(weighting)
        if photometric not in PHOTOMETRICS:
            raise ValueError(f"MotionNetLoss: photometric={photometric!r}; expected one of {PHOTOMETRICS}")
        self.photometric = photometric  # "census": beyond the paper (issue 24's motionnet_beyond)
        if pyramid not in PYRAMIDS:
            raise ValueError(f"MotionNetLoss: pyramid={pyramid!r}; expected one of {PYRAMIDS}")
        self.pyramid = pyramid
        self.weighting = weighting
        if ssim_weight_scale < 0:
            raise ValueError(f"MotionNetLoss: ssim_weight_scale={ssim_weight_scale} must be >= 0")
        _window_1d(2, ssim_window, torch.float32, "cpu")  # validates the name
        self.ssim_weight_scale = float(ssim_weight_scale)
        if not smooth_weight >= 0:
            raise ValueError(f"MotionNetLoss: smooth_weight={smooth_weight} must be >= 0")
        self.smooth_weight = float(smooth_weight)  # Eq. 5's lambda on L_smooth (release and default: 1)
        self.border_ratio = float(border_ratio)
        self.ssim_window = ssim_window
        if not coarse_weight >= 0:
            raise ValueError(f"MotionNetLoss: coarse_weight={coarse_weight} must be >= 0")
        # Eq. 6 delta_s; release: 1 at every scale; ``coarse_weight`` for s = 6..3 (issue 24's trial)
        self.scale_weights = {s: (1.0 if s == 2 else float(coarse_weight)) for s in SCALES}

    def forward(self, stack: torch.Tensor, flows: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if stack.dim() != 5 or stack.shape[2] != 3:
            raise ValueError(f"MotionNetLoss: expected stack (N, L, 3, H, W), got {tuple(stack.shape)}")
        n, L, _, H, W = stack.shape
        if len(flows) != len(SCALES):
            raise ValueError(f"MotionNetLoss: expected {len(SCALES)} flows [flow6 .. flow2], got {len(flows)}")
        # The losses run in float32 even under bf16 autocast: block variances E[x^2] - mu^2 and warp
        # coordinates lose everything in bf16. (The meta device, where `htsc plan` counts FLOPs, has no autocast.)
        if stack.device.type == "meta":
            return self._forward(stack.float(), [f.float() for f in flows])
        with torch.autocast(device_type=stack.device.type, enabled=False):
            return self._forward(stack.float(), [f.float() for f in flows])

    def _forward(self, stack: torch.Tensor, flows: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n, L, _, H, W = stack.shape
        frames = stack.reshape(n * L, 3, H, W)
        if self.weighting == "release":  # the release's imgNNorm layers, before downsampling and warping
            frames = release_normalise(frames)
        wt = self.weighting
        # The frames at every scale's size, each an area average of the next finer one: with sizes that halve
        # (multiples of 32) this equals area-resizing the full frames, at a fraction of the cost
        pyramid = {(H, W): frames}
        for s in reversed(SCALES):
            size = flow_resolution((H, W), s)
            if size not in pyramid and self.pyramid == "release":  # each scale from the full frames, tent filter
                pyramid[size] = release_downsample(frames, size)
            elif size not in pyramid:
                finer = pyramid[min((k for k in pyramid if k[0] >= size[0]), key=lambda k: k[0])]
                exact_half = finer.shape[-2] == 2 * size[0] and finer.shape[-1] == 2 * size[1]
                pyramid[size] = _halve(finer) if exact_half else F.interpolate(finer, size=size, mode="area")
        total = stack.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        for s, flow in zip(SCALES, flows):
            h, w = flow_resolution((H, W), s)
            if tuple(flow.shape) != (n, 2 * (L - 1), h, w):
                raise ValueError(f"MotionNetLoss: flow{s} has shape {tuple(flow.shape)}, expected "
                                 f"{(n, 2 * (L - 1), h, w)} for a {H}x{W} stack of {L} frames")
            lp, lsm, lss = scale_terms(pyramid[(h, w)].reshape(n, L, 3, h, w), flow * FLOW_SCALES[s], wt,
                                       self.border_ratio, self.ssim_window, self.photometric)
            l_s = lp + self.smooth_weight * lsm + SSIM_WEIGHTS[s] * self.ssim_weight_scale * lss  # Eq. 5, lambda1 = 1
            total = total + self.scale_weights[s] * l_s  # Eq. 6
            parts.update({f"photo{s}": lp.detach(), f"smooth{s}": lsm.detach(), f"ssim{s}": lss.detach(),
                          f"scale{s}": l_s.detach()})
        return total, parts
