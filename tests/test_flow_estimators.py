"""Flow estimators (htsc_core/flow/estimators.py): synthetic translation, convention, MotionNet wrapper."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from htsc_core.flow import estimators as E

SHIFT = (3.0, -2.0)  # (dx, dy) px


def textured(n=48, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((n, n, 3)).astype(np.float32), (0, 0), 1.5)
    img = (img - img.min()) / (img.max() - img.min())
    return (255 * img).astype(np.uint8)


def translated_pair(n=48, shift=SHIFT):
    a = textured(n)
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    b = cv2.warpAffine(a, m, (n, n), borderMode=cv2.BORDER_REFLECT)  # b(p) = a(p - shift)
    return np.stack([a, b])


def interior(f, frac=0.25):
    m = int(f.shape[1] * frac)
    return f[:, m:-m, m:-m]


@pytest.mark.parametrize("cls", [E.TVL1Estimator, E.DISEstimator, E.FarnebackEstimator])
def test_recovers_translation(cls):
    frames = translated_pair()
    flow = cls(threads=1).estimate(frames)
    assert flow.shape == (1, 48, 48, 2) and flow.dtype == np.float32
    med = np.median(interior(flow).reshape(-1, 2), axis=0)
    np.testing.assert_allclose(med, SHIFT, atol=0.5)


@pytest.mark.parametrize("cls", [E.TVL1Estimator, E.DISEstimator, E.FarnebackEstimator])
def test_convention_matches_backward_warp_and_farneback_sign(cls):
    # frame_t(p) ~= frame_{t+1}(p + flow_t(p)): warping t+1 by the estimate must reconstruct t,
    # and do so better than warping by the negated estimate (the opposite convention).
    frames = translated_pair()
    flow = cls().estimate(frames)[0]
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def warp(f):
        return cv2.remap(frames[1].astype(np.float32), xs + f[..., 0], ys + f[..., 1], cv2.INTER_LINEAR)

    err = lambda f: np.abs(warp(f) - frames[0])[12:-12, 12:-12].mean()  # noqa: E731
    assert err(flow) < 0.25 * err(-flow)
    farn = cv2.calcOpticalFlowFarneback(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY),
                                        cv2.cvtColor(frames[1], cv2.COLOR_RGB2GRAY),
                                        None, 0.5, 3, 15, 3, 5, 1.2, 0)
    assert np.sign(np.median(farn[12:-12, 12:-12], axis=(0, 1))).tolist() == \
        np.sign(np.median(flow[12:-12, 12:-12], axis=(0, 1))).tolist()


def test_zero_estimator_and_multi_frame():
    frames = np.concatenate([translated_pair(32), translated_pair(32)[1:]])  # T = 3
    z = E.ZeroEstimator().estimate(frames)
    assert z.shape == (2, 32, 32, 2) and z.dtype == np.float32 and not z.any()
    tv = E.TVL1Estimator().estimate(frames)
    assert tv.shape == (2, 32, 32, 2)
    assert np.abs(np.median(interior(tv[1:2]).reshape(-1, 2), axis=0)).max() < 0.5  # identical frames


def test_threads_are_set():
    frames = translated_pair(32)
    E.DISEstimator(threads=2).estimate(frames)
    assert cv2.getNumThreads() == 2
    E.DISEstimator(threads=1).estimate(frames)
    assert cv2.getNumThreads() == 1


@pytest.mark.parametrize("bad", [np.zeros((1, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.uint8),
                                 np.zeros((2, 8, 8, 3), np.float32)])
def test_rejects_bad_frames(bad):
    with pytest.raises(ValueError):
        E.TVL1Estimator().estimate(bad)


def test_make_estimator():
    assert isinstance(E.make_estimator("dis", threads=1), E.DISEstimator)
    with pytest.raises(ValueError, match="unknown flow method"):
        E.make_estimator("raft")
    with pytest.raises(ValueError, match="checkpoint"):
        E.make_estimator("motionnet")
    with pytest.raises(ValueError):
        E.DISEstimator(preset="slow")
    with pytest.raises(ValueError):
        E.TVL1Estimator(threads=0)


# ----------------------------------------------------------------------------- MotionNet
try:  # MotionNet is another engineer's module; these tests skip only if it cannot be imported
    import torch

    from htsc_core.models import motionnet
except ImportError:  # pragma: no cover
    motionnet = None
needs_motionnet = pytest.mark.skipif(motionnet is None, reason="htsc_core.models.motionnet not importable")


def constant_flow_net(num_frames, dx, dy):
    """Stand-in with MotionNet's output contract: flow2 = (dx, dy) / FLOW_SCALES[2] / 2 everywhere."""

    class ConstantFlowNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, stack):
            n, L, _, h, w = stack.shape
            assert L == num_frames and h % 32 == 0 and w % 32 == 0
            self.calls.append(tuple(stack.shape))
            # flow2 lives on an (h/2, w/2) grid, so 1 px there = 2 input px
            unit = torch.tensor([dx, dy]).repeat(L - 1) / motionnet.FLOW_SCALES[2] / 2
            return [unit.view(1, -1, 1, 1).expand(n, -1, h // 2, w // 2).clone()]

    return ConstantFlowNet()


def tiny_cfg(**kw):
    from htsc_core.config import from_params

    return from_params({"profile": "smoke", "stack_length": 3, "motion_width": 1 / 32, "device": "cpu", **kw})


@needs_motionnet
def test_motionnet_wrapper_pixels_padding_and_stacks():
    cfg = tiny_cfg()
    net = constant_flow_net(3, 1.5, -0.5)
    est = E.MotionNetEstimator(net, cfg, device="cpu", batch_size=2)
    frames = np.stack([textured(40, s)[:, :36] for s in range(6)])  # T = 6, 40 x 36 (not multiples of 32)
    flow = est.estimate(frames)
    assert flow.shape == (5, 40, 36, 2)
    np.testing.assert_allclose(flow[..., 0], 1.5, atol=1e-5)
    np.testing.assert_allclose(flow[..., 1], -0.5, atol=1e-5)
    assert est.stack_starts(6) == [0, 2, 3]  # pairs 0-1, 2-3, then 3-4 (shifted back)
    assert all(c[-2:] == (64, 64) for c in net.calls)  # centre-padded to multiples of 32
    assert [c[0] for c in net.calls] == [2, 1]  # batched by stacks
    short = est.estimate(frames[:2])  # T < L: last frame repeated, one real pair returned
    assert short.shape == (1, 40, 36, 2)


@needs_motionnet
def test_motionnet_checkpoint_round_trip_and_errors(tmp_path):
    cfg = tiny_cfg()
    model = motionnet.build_motionnet(cfg)
    ckpt = tmp_path / "best.pt"
    torch.save({"model": model.state_dict(), "epoch": 1}, ckpt)
    est = E.make_estimator("motionnet", checkpoint=ckpt, cfg=cfg, device="cpu")
    frames = np.stack([textured(32, s) for s in range(4)])
    flow = est.estimate(frames)
    assert flow.shape == (3, 32, 32, 2) and np.isfinite(flow).all()
    with torch.no_grad():  # same numbers as running the model by hand + flow_in_pixels
        stack = torch.from_numpy(frames[:3]).permute(0, 3, 1, 2).float().div(255)[None]
        ref = motionnet.flow_in_pixels(model.eval()(stack), (32, 32))[0].view(2, 2, 32, 32).permute(0, 2, 3, 1)
    np.testing.assert_allclose(flow[:2], ref.numpy(), atol=1e-4)

    with pytest.raises(E.MotionNetCheckpointError, match="missing.pt"):
        E.MotionNetEstimator(tmp_path / "missing.pt", cfg)
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(E.MotionNetCheckpointError, match="junk.pt"):
        E.MotionNetEstimator(tmp_path / "junk.pt", cfg)
    torch.save({"model": model.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(E.MotionNetCheckpointError, match="other.pt"):
        E.MotionNetEstimator(tmp_path / "other.pt", cfg.replace(stack_length=5))
