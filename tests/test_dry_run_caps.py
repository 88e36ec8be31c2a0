"""The dry-run caps and what they rest on (docs/DESIGN.md section 6): each a config key that bounds one count."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dataset_trees import ucf101_tree
from htsc_core.bench.table5 import table5_rows
from htsc_core.config import from_params
from htsc_core.data.records import VideoRecord
from htsc_core.data.registry import cap_records, load_split
from htsc_core.flow.estimators import TVL1_PRESET_PARAMS, make_estimator, tvl1_preset_params
from htsc_core.flow.extract import tvl1_params
from htsc_core.utils import WriteError, atomic_link, atomic_torch_save


def _records(n: int, classes: int) -> list[VideoRecord]:
    return [VideoRecord(path=f"/v{i}.avi", label=i * classes // n, video_id=f"v{i}", split="test") for i in range(n)]


def test_cap_records_spreads_over_a_class_sorted_listing():
    recs = _records(12, 3)  # four videos per class, sorted by class as UCF101's lists are
    capped = cap_records(recs, 3)
    assert [r.label for r in capped] == [0, 1, 2]  # one per class, not the first class three times
    assert capped == sorted(capped, key=recs.index)  # listing order kept
    assert cap_records(recs, 0) == recs and cap_records(recs, 50) == recs


@pytest.mark.filterwarnings("ignore:ucf101 split 1. leaving out")  # the tree's one truncated video
def test_max_eval_and_train_videos_bound_every_subset(tmp_path):
    root, _ = ucf101_tree(tmp_path / "ucf101")
    base = from_params(profile="smoke", dataset="ucf101", data_root=str(root), runs_dir=str(tmp_path / "runs"))
    full = {s: load_split(base, s)[0] for s in ("train", "val", "test")}
    capped_cfg = base.replace(max_eval_videos=1, max_train_videos=2)
    capped = {s: load_split(capped_cfg, s)[0] for s in ("train", "val", "test")}
    assert {s: len(r) for s, r in capped.items()} == {"train": 2, "val": 1, "test": 1}
    assert all(set(capped[s]) <= set(full[s]) for s in capped)
    assert len(full["test"]) == 3 and len(full["train"]) > 2


@pytest.mark.parametrize("key", ["max_eval_videos", "max_train_videos", "bench_repeats", "max_steps_per_epoch"])
def test_negative_caps_are_refused(key):
    with pytest.raises(ValueError, match=key):
        from_params(**{key: -1})


def test_tvl1_preset():
    smoke, paper = from_params(profile="smoke"), from_params(profile="paper")
    assert tvl1_params(smoke) == TVL1_PRESET_PARAMS["fast"] and tvl1_params(paper) == {}  # "auto", as before
    assert tvl1_preset_params(smoke) == {}  # evaluation and Table 5 at OpenCV's defaults under "auto"
    minimal = paper.replace(tvl1_preset="minimal")
    assert tvl1_params(minimal) == tvl1_preset_params(minimal) == TVL1_PRESET_PARAMS["minimal"]
    assert make_estimator("tvl1", cfg=minimal).params == TVL1_PRESET_PARAMS["minimal"]
    frames = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    assert make_estimator("tvl1", cfg=minimal).estimate(frames).shape == (2, 64, 64, 2)  # OpenCV takes the names
    with pytest.raises(ValueError, match="tvl1_preset"):
        from_params(tvl1_preset="fastest")


def test_table5_rows_without_enough_repeats_have_no_interval():
    run = {"resolution": 224, "label": "profile", "vgg_width": 1.0, "motion_width": 1.0, "device": "cpu",
           "stack_length": 11, "precision": "fp32",
           "rows": [{"method": m, "ours_fps": f, "videos_per_s": f / 11, "paper_fps": None, "fps_repeats": [f]}
                    for m, f in (("two_stream", 2.0), ("hts", 6.0))]}
    rows = {r["method"]: r for r in table5_rows(run)}
    assert rows["hts"]["ratio_to_two_stream"] == 3.0 and rows["hts"]["ratio_ci_low"] is None
    run["rows"] = [{**r, "fps_repeats": r["fps_repeats"] * 5} for r in run["rows"]]
    assert table5_rows(run)[1]["ratio_ci_low"] == pytest.approx(3.0)  # five repeats: the bootstrap interval


def test_best_checkpoint_link_survives_the_next_last(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_torch_save({"epoch": 0}, last)
    atomic_link(last, best)
    atomic_torch_save({"epoch": 1}, last)  # the next epoch, not better
    assert torch.load(best, weights_only=True) == {"epoch": 0}
    assert torch.load(last, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary names left


def test_a_write_that_fails_halfway_keeps_the_old_checkpoint_and_names_the_file(tmp_path, monkeypatch):
    """A full disk shows up in torch.save as "[enforce fail at inline_container.cc] unexpected pos": the error must
    name the file and the room left, the previous checkpoint must survive and no temporary file may remain."""
    last = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 0}, last)

    def half_written(obj, fh):
        fh.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 934634432 vs 934634320")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(WriteError, match=r"could not write .*last\.pt \(\d+\.\d\d GB free on its disk\): .*unexpected"):
        atomic_torch_save({"epoch": 1}, last)
    monkeypatch.undo()
    assert torch.load(last, weights_only=True) == {"epoch": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_saved_scores_are_reused_only_for_the_same_checkpoint_and_settings(tmp_path):
    from htsc_core.train.scores import SCORES_KEY, load_scores, scores_current, scores_key, scores_path
    from htsc_core.utils import atomic_save_npz

    cfg = from_params(profile="smoke", runs_dir=str(tmp_path))
    atomic_torch_save({"model": {}}, tmp_path / "spatial" / "best.pt")
    assert not scores_current(cfg, "spatial", "val")  # nothing saved yet
    atomic_save_npz(scores_path(cfg, "val", "spatial"), scores=np.ones((2, 3)), video_ids=np.array(["a", "b"]),
                    **{SCORES_KEY: np.array(scores_key(cfg, "spatial"))})
    assert scores_current(cfg, "spatial", "val")
    assert scores_current(cfg.replace(device="cpu", num_workers=0), "spatial", "val")  # where it runs: same scores
    assert not scores_current(cfg.replace(test_crops=10), "spatial", "val")  # another test protocol
    assert set(load_scores(cfg, "val", "spatial")) == {"scores", "video_ids"}  # the key is not a score array
    atomic_torch_save({"model": {"w": torch.ones(1)}}, tmp_path / "spatial" / "best.pt")  # a new best epoch
    assert not scores_current(cfg, "spatial", "val")
