"""Every stage under torchrun (2 CPU processes, gloo) equals one process with the same global batch (issue 25).

tests/ddp_stages.py trains spatial, motion, temporal (end to end), tvl1, rgbdiff and cln for two steps on the
smoke set, once in one process and once under ``torchrun --nproc_per_node 2``, both with the global batch 2
(``batch_size``; 2 ranks x 1 under torchrun). Both see the
same videos in the same global batches with the same augmentation (the script's docstring says how), dropout is
off and VGG16 has no batch norm (the paper's): so every stage's weights after its steps must agree to float
tolerance, the only difference being the order of the sums (DDP averages two half-batch gradients). Validation
under torchrun must count every video exactly once, and the CLN's features, scored on two ranks, must cover
every video of the subset exactly once.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddp_stages import STAGES, ddp_config
from launch import ENV, free_port

SCRIPT = Path(__file__).with_name("ddp_stages.py")


@pytest.fixture(scope="module")
def two_runs(smoke_set_source, tmp_path_factory):
    from htsc_core.flow.extract import extract_flow

    tmp = tmp_path_factory.mktemp("ddp-stages")
    root = Path(shutil.copytree(smoke_set_source, tmp / "synthetic-smoke"))
    extract_flow(ddp_config(str(root), str(tmp / "flow-runs"), 2), workers=1)  # the capped videos' TV-L1 flow
    single = subprocess.run([sys.executable, str(SCRIPT), str(root), str(tmp / "single"), "--batch", "2"],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                          "127.0.0.1", "--master_port", str(free_port()), str(SCRIPT), str(root), str(tmp / "ddp"),
                          "--batch", "2"], env=ENV, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    return root, tmp / "single", tmp / "ddp"


def _log(run: Path, stage: str) -> list[dict]:
    return [json.loads(line) for line in (run / stage / "log.jsonl").read_text().splitlines()]


def _weights(run: Path, stage: str) -> dict[str, torch.Tensor]:
    return torch.load(run / stage / "last.pt", map_location="cpu", weights_only=True)["model"]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_under_torchrun_equals_one_process(two_runs, stage):
    _, single, ddp = two_runs
    one, two = _log(single, stage), _log(ddp, stage)
    assert two[0]["world_size"] == 2 and two[0]["ranks_in_step"], stage
    assert two[0]["train_count"] == one[0]["train_count"] == 4  # the same global batches: 2 steps of 2 videos
    assert two[0]["train_loss"] == pytest.approx(one[0]["train_loss"], rel=1e-4, abs=1e-6)
    a, b = _weights(single, stage), _weights(ddp, stage)
    assert a.keys() == b.keys()
    worst = max(((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1e-3)).item() for k in a)
    assert worst < 1e-3, f"{stage}: weights differ by {worst:.2e} of their scale"


@pytest.mark.parametrize("stage", STAGES)
def test_validation_under_torchrun_counts_every_video_once(two_runs, stage):
    _, single, ddp = two_runs
    n_val = _log(single, stage)[0]["val_count"]
    assert n_val == 3  # max_eval_videos: odd, so that a padding sampler would count one twice
    assert _log(ddp, stage)[0]["val_count"] == n_val  # not padded to 4 by a DistributedSampler
    assert _log(ddp, stage)[0]["val_loss"] == pytest.approx(_log(single, stage)[0]["val_loss"], rel=1e-4, abs=1e-6)


def test_scores_gathered_under_torchrun_cover_every_video_once(two_runs):
    from htsc_core.data.registry import load_split

    root, single, ddp = two_runs
    for subset in ("train", "val"):
        expected = [r.video_id for r in load_split(ddp_config(str(root), str(ddp), 2), subset)[0]]
        for stream in ("spatial", "temporal"):
            with np.load(ddp / "scores" / f"{subset}_{stream}.npz") as z, \
                    np.load(single / "scores" / f"{subset}_{stream}.npz") as y:
                assert z["video_ids"].tolist() == expected  # each once, in the listing's order
                np.testing.assert_allclose(z["scores"], y["scores"], rtol=1e-3, atol=1e-5)
    # the HTSC pass of Tables 3-4 (tables.htsc_scores), on "val" here: gathered from both ranks too
    expected = [r.video_id for r in load_split(ddp_config(str(root), str(ddp), 2), "val")[0]]
    with np.load(ddp / "scores" / "val_htsc.npz") as z, np.load(single / "scores" / "val_htsc.npz") as y:
        assert z["video_ids"].tolist() == y["video_ids"].tolist() == expected
        for key in ("spatial", "temporal", "hts", "htsc"):
            np.testing.assert_allclose(z[key], y[key], rtol=1e-3, atol=1e-5)


def _evaluate(run: Path, *launcher: str) -> subprocess.CompletedProcess:
    """``htsc evaluate`` on a copy of ``run`` (its spatial stage's config.json: the settings it was trained with)."""
    return subprocess.run([sys.executable, *launcher, "-m", "htsc_core.cli", "evaluate", "--config",
                           str(run / "spatial" / "config.json"), "--runs-dir", str(run), "--device", "cpu",
                           "--streams", "spatial,temporal,tvl1,rgbdiff"],
                          env=ENV, capture_output=True, text=True, timeout=300)


def test_htsc_evaluate_under_torchrun_writes_the_scores_of_one_process(two_runs, tmp_path):
    """Issue 37: `htsc evaluate` joins the process group under torchrun: each video is scored on one rank, the scores
    gathered, rank 0 writes; every scores file equals the one-process run's (same videos, same order)."""
    from htsc_core.data.registry import load_split

    root, single, _ = two_runs
    one, two = tmp_path / "one", tmp_path / "two"
    for run in (one, two):
        shutil.copytree(single, run, ignore=shutil.ignore_patterns("scores", "evaluation.json"))
    r1 = _evaluate(one)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = _evaluate(two, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                   "--master_port", str(free_port()))
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stdout.count("hts_cln_awl") == 1  # one rank prints the table
    cfg = ddp_config(str(root), str(two), 2)
    listing = {s: [r.video_id for r in load_split(cfg, s)[0]] for s in ("val", "test")}
    for name, subset in (("val_spatial", "val"), ("val_temporal", "val"), ("test_tvl1", "test"),
                         ("test_rgbdiff", "test"), ("val_cln", "val"), ("test_htsc", "test"), ("test_methods", "test")):
        with np.load(one / "scores" / f"{name}.npz") as a, np.load(two / "scores" / f"{name}.npz") as b:
            assert b["video_ids"].tolist() == a["video_ids"].tolist() == listing[subset], name  # each video once
            for key in set(a.files) - {"video_ids", "made_from"}:
                np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-6, err_msg=f"{name}: {key}")
    assert json.loads((two / "evaluation.json").read_text())["test"] == pytest.approx(
        json.loads((one / "evaluation.json").read_text())["test"])
