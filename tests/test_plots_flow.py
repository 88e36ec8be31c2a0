"""plots.flow_images: one colour scale per index across methods (torchvision as the reference)."""
import numpy as np
import pytest
import torch
from torchvision.utils import flow_to_image

from htsc_core import plots


def _saturation(img: np.ndarray) -> float:
    """Mean distance from white: the Middlebury wheel fades to white as magnitude goes to zero."""
    return float((255 - img.astype(float)).mean())


@pytest.fixture
def flow():
    rng = np.random.RandomState(0)
    return (rng.randn(3, 16, 20, 2) * 4).astype(np.float32)


def test_single_method_matches_torchvision(flow):
    # alone, the shared scale is the flow's own maximum: exactly what flow_to_image does per call
    imgs = plots.flow_images({"a": flow})["a"]
    for i in range(len(flow)):
        ref = flow_to_image(torch.from_numpy(flow[i].transpose(2, 0, 1).copy())).permute(1, 2, 0).numpy()
        assert imgs[i].dtype == np.uint8 and imgs[i].shape == (16, 20, 3)
        assert np.abs(imgs[i].astype(int) - ref.astype(int)).max() <= 1


def test_ten_times_smaller_flow_is_paler(flow):
    imgs = plots.flow_images({"big": flow, "small": flow / 10})
    for big, small in zip(imgs["big"], imgs["small"]):
        assert _saturation(small) < 0.3 * _saturation(big)
    # torchvision alone would colour both identically (its per-call normalisation)
    t = torch.from_numpy(flow[0].transpose(2, 0, 1).copy())
    assert torch.equal(flow_to_image(t), flow_to_image(t / 10))


def test_scale_is_per_index(flow):
    scaled = flow.copy()
    scaled[1] *= 100  # only index 1 of method b is large
    imgs = plots.flow_images({"a": flow, "b": scaled})
    assert _saturation(imgs["a"][1]) < 0.1 * _saturation(imgs["b"][1])
    assert np.array_equal(imgs["a"][0], imgs["b"][0])  # index 0 unaffected


def test_mismatched_lengths_raise(flow):
    with pytest.raises(ValueError, match="same number"):
        plots.flow_images({"a": flow, "b": flow[:2]})


def test_flow_grid_writes_png(tmp_path, flow):
    frames = np.zeros((3, 16, 20, 3), dtype=np.uint8)
    plots.flow_grid(frames, {"truth": flow, "zero": np.zeros_like(flow)}, path=tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
