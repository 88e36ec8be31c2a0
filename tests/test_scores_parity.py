"""One path from frames to scores (issue 27, item 1): the per-stream scores and fc7 features that
``train/scores.py`` saves for validation, AWL and the CLN equal what the whole network of
``models/htsc.py`` (Tables 3-5) computes from the same videos of the real test-protocol loader."""
import numpy as np
import torch

from htsc_core.config import from_params
from htsc_core.data.dataset import VideoDataset, make_loader
from htsc_core.data.registry import load_split
from htsc_core.models.cln import CollaborativeLearning
from htsc_core.models.htsc import HTSC, segment_features, video_scores
from htsc_core.models.motionnet import build_motionnet
from htsc_core.models.temporal import HiddenTemporalStream
from htsc_core.models.vgg import build_vgg16
from htsc_core.train import scores
from htsc_core.train.streams import build_stream, num_classes


def test_saved_scores_path_equals_the_htsc_forward(smoke_set, tmp_path):
    cfg = from_params({"profile": "smoke", "data_root": str(smoke_set), "runs_dir": str(tmp_path / "runs"),
                       "batch_size": 2, "num_workers": 0})
    m = num_classes(cfg)
    torch.manual_seed(0)
    spatial = build_stream(cfg, "spatial", m).eval()
    # the hidden temporal stream as stage 3 builds it, from an untrained MotionNet (no stage-2 checkpoint here)
    temporal = HiddenTemporalStream(build_motionnet(cfg), build_vgg16(cfg, m, 2 * cfg.num_flows, imagenet=False)).eval()
    records = load_split(cfg, "val")[0][:2]
    # the loader scores.extract_scores uses, asked for both inputs: the RGB frame and the stack it centres
    dataset = VideoDataset(records, cfg, mode="test", modalities=("rgb", "stack"))
    batch = next(iter(make_loader(dataset, cfg, shuffle=False)))
    b = batch["index"].shape[0]
    L = cfg.stack_length
    assert torch.equal(batch["rgb"], batch["stack"][:, :, L // 2])  # the spatial input is the stack's centre frame
    with torch.inference_mode():
        logits_s, fc7_s = scores._forward("spatial", spatial, batch, 0)
        logits_o, fc7_o = scores._forward("temporal", temporal, batch, 0)
        cln = CollaborativeLearning(spatial.feature_dim, 8, m).eval()
        out = HTSC(spatial, temporal, cln)(batch["stack"], cfg.test_segments)
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["spatial"].numpy(), video_scores(logits_s.float(), b).numpy(), **tol)
    np.testing.assert_allclose(out["temporal"].numpy(), video_scores(logits_o.float(), b).numpy(), **tol)
    # the fc7 features the CLN trains on (S segments, mean over crops) are the ones HTSC feeds its CLN
    np.testing.assert_allclose(segment_features(fc7_s.float(), b, cfg.test_segments).numpy(), out["fc7_s"].numpy(),
                               **tol)
    np.testing.assert_allclose(segment_features(fc7_o.float(), b, cfg.test_segments).numpy(), out["fc7_o"].numpy(),
                               **tol)
