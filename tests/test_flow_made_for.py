"""Flow belongs to a run (issue 41): `htsc flow extract` records what each video's flow was made for (method, frame
size, TV-L1 preset) in its ``.complete``; a stage that reads flow made for another size or preset stops before
training, naming the command that makes the right flow; a re-extraction for another size or preset redoes the
videos complete for the other one; markers from before these fields pass when their stored size matches, with a
warning; `htsc flow extract --help` and the README show the profile."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from htsc_core import cli
from htsc_core.config import from_params
from htsc_core.data import flow_storage as storage
from htsc_core.flow.extract import FlowMismatchError, check_stored_flow, dataset_records, extract_flow
from htsc_core.train import stages
from htsc_core.train.streams import flow_root

README = Path(__file__).resolve().parents[1] / "README.md"


def _cfg(root, tmp_path, **kw):
    return from_params(profile="smoke", data_root=str(root), runs_dir=str(tmp_path / "runs"),
                       results_dir=str(tmp_path / "results"), device="cpu", max_train_videos=2, max_eval_videos=1,
                       epochs_tvl1=1, max_steps_per_epoch=1, **kw)


def _markers(cfg) -> list[dict]:
    return [storage.read_complete_info(flow_root(cfg), r.video_id) for r in dataset_records(cfg)]


def test_stage_stops_before_training_on_flow_made_for_another_size(smoke_set, tmp_path, capsys):
    made = _cfg(smoke_set, tmp_path)  # smoke: 40 px frames, the "fast" TV-L1 preset of the CPU profiles
    summary = extract_flow(made, workers=1)
    assert summary["done"] == summary["videos"] == 4 and summary["made_for"] == {"frame_size": 40,
                                                                                   "tvl1_preset": "fast"}
    assert all(m["frame_size"] == 40 and m["tvl1_preset"] == "fast" and m["method"] == "tvl1"
               for m in _markers(made))
    other = _cfg(smoke_set, tmp_path, frame_size=48)
    command = (f"htsc flow extract --profile smoke --data-root {smoke_set} --set frame_size=48 "
               f"--set max_train_videos=2 --set max_eval_videos=1")
    with pytest.raises(FlowMismatchError, match="frame_size: 40 -> 48") as err:
        stages.train(other, "tvl1", resume=False)
    assert command in str(err.value)
    assert not (tmp_path / "runs" / "tvl1" / "last.pt").exists()  # stopped before training
    assert not (tmp_path / "runs" / "tvl1" / "log.jsonl").exists()
    # the command line says the same, in one line, and fails
    code = cli.main(["train", "tvl1", "--profile", "smoke", "--data-root", str(smoke_set), "--runs-dir",
                     str(tmp_path / "runs"), "--set", "frame_size=48", "--set", "max_train_videos=2",
                     "--set", "max_eval_videos=1"])
    assert code == 2 and command in capsys.readouterr().err
    # that command's extraction redoes every video made for 40 px (none skipped), and the stage may start
    redo = extract_flow(other, workers=1)
    assert redo["skipped"] == 0 and redo["replaced"] == redo["done"] == 4
    assert all(m["frame_size"] == 48 for m in _markers(other))
    assert check_stored_flow(other, dataset_records(other), flow_root(other))["videos"] == 4
    assert extract_flow(other, workers=1)["skipped"] == 4  # now complete for this run: kept


def test_another_preset_is_refused_and_redone(smoke_set, tmp_path):
    fast = _cfg(smoke_set, tmp_path)
    extract_flow(fast, workers=1)
    minimal = _cfg(smoke_set, tmp_path, tvl1_preset="minimal")
    with pytest.raises(FlowMismatchError, match=r"tvl1_preset: 'fast' -> 'minimal'.*--set tvl1_preset=minimal"):
        check_stored_flow(minimal, dataset_records(minimal), flow_root(minimal))
    assert extract_flow(minimal, workers=1)["replaced"] == 4
    check_stored_flow(minimal, dataset_records(minimal), flow_root(minimal))


def test_markers_from_before_issue_41(smoke_set, tmp_path, caplog):
    """Decision: a marker without frame_size / tvl1_preset is accepted with a logged warning when its stored size is
    the run's frame size (its preset cannot be told), refused with the command when it is not."""
    cfg = _cfg(smoke_set, tmp_path)
    extract_flow(cfg, workers=1)
    for rec in dataset_records(cfg):
        marker = storage.video_dir(flow_root(cfg), rec.video_id) / storage.COMPLETE_MARKER
        info = json.loads(marker.read_text())
        marker.write_text(json.dumps({k: v for k, v in info.items() if k not in storage.MADE_FOR_KEYS}))
    with caplog.at_level(logging.WARNING):
        assert check_stored_flow(cfg, dataset_records(cfg), flow_root(cfg))["legacy"] == 4
    assert "predates the recorded TV-L1 preset" in caplog.text
    assert extract_flow(cfg, workers=1)["skipped"] == 4  # kept, as the reader keeps it
    bigger = _cfg(smoke_set, tmp_path, frame_size=48)
    with pytest.raises(FlowMismatchError, match="frame_size: 40 -> 48"):
        check_stored_flow(bigger, dataset_records(bigger), flow_root(bigger))


def test_no_flow_at_all_names_the_command(smoke_set, tmp_path):
    cfg = _cfg(smoke_set, tmp_path)
    with pytest.raises(FlowMismatchError, match=r"none of its .* videos has extracted flow.*htsc flow extract "
                                                r"--profile smoke"):
        stages.train(cfg, "tvl1", resume=False)


def test_extract_help_and_readme_show_the_profile(capsys):
    with pytest.raises(SystemExit):
        cli.main(["flow", "extract", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--profile {smoke,default,paper}" in text and "--set KEY=VALUE" in text
    assert "the host's cores" in text
    assert "htsc flow extract --profile paper --dataset ucf101 --data-root /data/ucf101" in README.read_text()
