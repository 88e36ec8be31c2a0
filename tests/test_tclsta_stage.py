"""The ``tclsta`` stage (htsc_core/train/tclsta.py): trained on the cached conv5 maps of ``train`` and ``val`` only,
selected on validation loss, scored on test as a Table 3 row; and the test split stays sealed while it trains."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from htsc_core.config import from_params
from htsc_core.data import registry
from htsc_core.train import stages, tclsta


@pytest.fixture
def cfg(smoke_set, tmp_path):
    return from_params({"profile": "smoke", "data_root": str(smoke_set), "runs_dir": str(tmp_path / "runs"),
                        "results_dir": str(tmp_path / "results")})


def test_tclsta_reads_train_and_val_maps_only_and_selects_on_validation_loss(cfg, monkeypatch):
    seen, monitors = [], []

    def fake_pairs(c, subset, device=None):  # stands in for the conv5 extraction: it reads the subset's listing
        registry.load_split(c, subset)
        seen.append(subset)
        g = torch.Generator().manual_seed(len(seen))
        n, v = 8, c.test_segments * c.test_crops
        maps = lambda: torch.rand(n, v, 8, 2, 2, generator=g).half()  # noqa: E731
        return maps(), maps(), torch.randint(0, 6, (n,), generator=g), np.array([f"v{i}" for i in range(n)])

    real = tclsta.Trainer

    def spy(*args, **kw):
        monitors.append(kw["monitor"])
        return real(*args, **kw)

    monkeypatch.setattr(tclsta, "conv5_pairs", fake_pairs)
    monkeypatch.setattr(tclsta, "Trainer", spy)
    out = stages.train(cfg, "tclsta", resume=False)
    assert seen == ["train", "val"] and monitors == [stages.SELECTION_MONITOR]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == cfg.epochs_tclsta and all(np.isfinite(r["val_loss"]) for r in log)
    assert (out / "best.pt").exists()


def test_tclsta_stage_trains_on_the_streams_and_is_scored_as_a_table3_row(tmp_path):
    """`htsc train tclsta` after spatial and tvl1 on a tiny UCF101-shaped tree with its TV-L1 flow: the conv5 maps
    of train and val (none of test) cached, one epoch, then the test scores and the tclsta row."""
    from dataset_trees import ucf101_smoke_config
    from htsc_core.flow.extract import extract_flow
    from htsc_core.tables import FUSED_BASELINES, baseline_scores
    from htsc_core.train.scores import load_scores

    cfg = ucf101_smoke_config(tmp_path, max_steps_per_epoch=1).replace(epochs_tclsta=1)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tree's truncated video is screened out with a warning
        extract_flow(cfg, workers=1)
        stages.train(cfg, "spatial", resume=False)
        stages.train(cfg, "tvl1", resume=False)
        out = stages.train(cfg, "tclsta", resume=False)
        for stream in tclsta.TRUNKS:
            assert tclsta.conv5_path(cfg, "train", stream).exists() and tclsta.conv5_path(cfg, "val", stream).exists()
            assert not tclsta.conv5_path(cfg, "test", stream).exists()  # training never read the test videos
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert len(log) == 1 and log[0]["stage"] == "tclsta" and np.isfinite(log[0]["val_loss"])
        result = tclsta.tclsta_scores(cfg, "test", device="cpu")
    s = load_scores(cfg, "test", "tclsta")
    assert s["scores"].shape == (3, 3) and s["beta_s"].shape == (3, cfg.test_segments)
    np.testing.assert_allclose(s["scores"].sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(result["scores"], s["scores"])
    with np.load(tclsta.conv5_path(cfg, "test", "spatial")) as z:
        rows = z["rows"]
    maps = np.load(tclsta.maps_path(cfg, "test", "spatial"))  # one row per video of the listing
    assert len(rows) == 3 and maps.dtype == np.float16 and maps.shape[1] == cfg.test_segments * cfg.test_crops
    np.testing.assert_array_equal(tclsta.MapRows(tclsta.maps_path(cfg, "test", "spatial"), rows)[[2, 0]].numpy(),
                                  maps[rows[[2, 0]]])  # rows read from disk = the array's rows
    # Table 3's tclsta row: the saved scores themselves, in the HTSC pass's video order
    assert FUSED_BASELINES["tclsta"] == "tclsta"
    order = np.argsort(s["video_ids"])[::-1]
    test = {"spatial": np.full((3, 3), 1 / 3), "labels": s["labels"][order], "video_ids": s["video_ids"][order]}
    rows = baseline_scores(cfg, test)
    assert sorted(rows) == ["tclsta"]
    np.testing.assert_allclose(rows["tclsta"], s["scores"][order])
