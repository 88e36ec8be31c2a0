"""htsc_core.flow.diagnose: the pieces of the background diagnosis against hand-computed values."""
import numpy as np
import pytest
import torch

from htsc_core.flow import diagnose as dg


def test_downsample_area_and_release_hand_values():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    out, spacing = dg.downsample(x, 2, "area")
    np.testing.assert_allclose(out[0], [[2.5, 4.5], [10.5, 12.5]])
    assert spacing == 2.0
    # release Downsample, 4 -> 2: outputs at 0 and 3 (corners), tent radius 3: column weights
    # (1, 2/3, 1/3, 0) / 2 and (0, 1/3, 2/3, 1) / 2; x[i, j] = 4 i + j is separable
    out, spacing = dg.downsample(x, 2, "release")
    lo = (0 * 1 + 1 * 2 / 3 + 2 * 1 / 3) / 2  # weighted position of output 0
    hi = 3 - lo
    np.testing.assert_allclose(out[0], [[4 * lo + lo, 4 * lo + hi], [4 * hi + lo, 4 * hi + hi]], rtol=1e-6)
    assert spacing == 3.0
    with pytest.raises(ValueError, match="mode"):
        dg.downsample(x, 2, "nearest")


def test_background_cells_hand_values():
    bg = torch.ones(1, 20, 20, dtype=torch.bool)
    bg[0, 6:8, 6:8] = False  # an object inside cell (3, 3) of the 10 x 10 grid
    cells = dg.background_cells(bg, 2)
    # border mask of a 10 x 10 grid: round(0.1 x 10) = 1 cell on each side -> 8 x 8 = 64, minus the object's cell
    assert cells.shape == (1, 10, 10) and int(cells.sum()) == 63 and not bool(cells[0, 3, 3])


def test_loss_maps_hand_values():
    # two constant frames differing by d in every channel, zero flow: photometric = 3 F(255 d), alpha 0.4;
    # smoothness of zero flow = F(0) = (eps^2)^0.3 per difference: 4 where a right and a lower neighbour exist
    d, eps = 0.1, 1e-3
    frames = torch.zeros(1, 2, 3, 3, 3)
    frames[:, 1] += d
    m = dg.loss_maps(frames, torch.zeros(1, 1, 2, 3, 3))
    photo = 3 * ((255 * d) ** 2 + eps ** 2) ** 0.4
    f0 = (eps ** 2) ** 0.3
    assert float(m[0, 0, 0, 0]) == pytest.approx(photo + 4 * f0, rel=1e-5)
    assert float(m[0, 0, 2, 2]) == pytest.approx(photo, rel=1e-5)  # no neighbour to the right or below
    assert float(m[0, 0, 0, 2]) == pytest.approx(photo + 2 * f0, rel=1e-5)
    m2 = dg.loss_maps(frames, torch.zeros(1, 1, 2, 3, 3), smooth=2.0)
    assert float(m2[0, 0, 0, 0]) == pytest.approx(photo + 8 * f0, rel=1e-5)
    # the census term (beyond the paper): a uniform brightness offset leaves every census unchanged, F(0) only
    mc = dg.loss_maps(frames, torch.zeros(1, 1, 2, 3, 3), photo="census")
    assert float(mc[0, 0, 0, 0]) == pytest.approx((eps ** 2) ** 0.4 + 4 * f0, rel=1e-4)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # 30 tiny Adam steps: 0.6 s on one thread, 12 s on two beside a busy process
    yield
    torch.set_num_threads(before)


def test_drift_stays_at_an_exact_integer_shift(one_thread):
    # a smooth image shifted by exactly 1 px: the truth reconstructs it exactly, so the loss's minimum is there
    ys, xs = np.mgrid[0:16, 0:18].astype(np.float32)
    img = lambda s: 0.5 + 0.3 * np.sin(0.5 * (xs + s)) * np.cos(0.4 * ys)  # noqa: E731
    frames = torch.from_numpy(np.stack([img(0), img(-1)])).repeat(3, 1, 1, 1).permute(1, 0, 2, 3)[None, :, :, :, :16]
    truth = torch.zeros(1, 1, 2, 16, 16)
    truth[:, :, 0] = 1.0
    for photo in ("charbonnier", "census"):
        out = dg._drift(frames, truth, grid=2, smooth=1.0, steps=30, lr=0.03, photo=photo)
        inner = (out - truth)[..., 3:13, 3:13].norm(dim=2)
        assert float(inner.mean()) < 0.05, photo


def test_diagnose_region_moving_scores_the_objects_cells(smoke_set_source, one_thread):
    from htsc_core.config import from_params

    cfg = from_params({"profile": "smoke", "data_root": str(smoke_set_source)})
    with pytest.raises(ValueError, match="region"):
        dg.diagnose_background(cfg, region="object")
    rows = {r["region"]: r for r in (
        *dg.diagnose_background(cfg, max_videos=2, variants=["release"], grids=[1], steps=0),
        *dg.diagnose_background(cfg, max_videos=2, variants=["release"], grids=[1], steps=0, region="moving"))
        if r["variant"] == "release"}
    # the object covers a small part of the frame, the background most of it
    assert 0 < rows["moving"]["bg_cells"] < 0.2 < rows["background"]["bg_cells"]
    assert rows["moving"]["loss_truth"] != rows["background"]["loss_truth"]
