"""`htsc reproduce --profile smoke` end to end on UCF101-, HMDB51- and THUMOS14-shaped trees (issue 11).

The trees (tests/dataset_trees.py) hold generated videos in the real formats with their quirks, one
truncated video listed for training, and no ground-truth flow. Each run must finish, write its tables,
and name the truncated file in results/metrics/skipped.json and in the runs' skipped.jsonl.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from dataset_trees import hmdb51_tree, thumos14_tree, ucf101_tree

ENV = {**os.environ, "TQDM_DISABLE": "1"}
TREES = {"ucf101": ucf101_tree, "hmdb51": hmdb51_tree, "thumos14": thumos14_tree}
# What depends on the dataset's layout, run once each (the suite's time budget; every notebook costs a kernel and
# its imports): THUMOS14 trains on the UCF101 tree (its training videos, lists and quirks) and runs every notebook
# that scores it, 00-05, plus its Tables 3-4 in mAP (06-07; single-label tables are the synthetic run's path, in
# test_reproduce.py and under nbval). UCF101's own part beyond that is its test list and the scoring of its test
# videos: parsing and screening (00) and a stream trained and scored (01). HMDB51's file names (brackets, '#', '&',
# '!', quotes) also name stored flow and MotionNet's inputs: 00-03 (TV-L1 extraction and the temporal streams on
# them); its CLN and AWL (04-05) read the same scores files as every dataset's. 08 (Table 5) times networks on
# generated clips and 09 scores the Hidden Two-Stream release's vendored UCF101 scores, whatever the dataset.
NOTEBOOKS = {"ucf101": ("00", "01"), "hmdb51": ("00", "01", "02", "03"),
             "thumos14": ("00", "01", "02", "03", "04", "05", "06", "07")}


@pytest.mark.parametrize("dataset", [pytest.param(d, marks=pytest.mark.slow(notebooks=len(NOTEBOOKS[d])))
                                     for d in sorted(TREES)])
def test_reproduce_smoke_on_a_real_layout(tmp_path, dataset):
    root, bad = TREES[dataset](tmp_path / dataset)
    results, runs = tmp_path / "results", tmp_path / "runs"
    out = subprocess.run([sys.executable, "-m", "htsc_core.cli", "reproduce", "--dataset", dataset, "--data-root",
                          str(root), "--profile", "smoke", "--results-dir", str(results), "--runs-dir", str(runs),
                          "--only", *NOTEBOOKS[dataset]],
                         env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "all notebooks done" in out.stdout
    if "06" in NOTEBOOKS[dataset]:
        with open(results / "tables" / "table4.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["method"] for r in rows] == ["spatial", "hidden_temporal", "hts", "hts_cln", "hts_cln_awl"]
        assert all(0.0 <= float(r["ours"]) <= 1.0 for r in rows)
    if "05" in NOTEBOOKS[dataset]:
        awl = json.loads((results / "metrics" / "05_awl.json").read_text())["metrics"]
        assert awl["rows"]  # AWL fitted on this dataset's validation scores
    # the truncated training video: found by the screen, recorded for the study and for every training run
    skipped = json.loads((results / "metrics" / "skipped.json").read_text())["metrics"]
    assert [p["path"] for p in skipped["problems"]] == [str(bad)]
    assert skipped["problems"][0]["kind"] == "truncated"
    logged = {json.loads(line)["path"] for f in runs.glob("*/skipped.jsonl") for line in f.read_text().splitlines()}
    assert logged == {str(bad)}
    if "02" in NOTEBOOKS[dataset]:  # no ground-truth flow: photometric error and timing for every method, no EPE
        with open(results / "tables" / "flow.csv") as fh:
            flow = {r["method"]: r for r in csv.DictReader(fh)}
        assert set(flow) == {"motionnet", "tvl1", "dis", "farneback", "zero"}
        assert all(r["epe"] == "" and float(r["photometric"]) > 0 and float(r["ms_per_pair"]) > 0
                   for r in flow.values())
        claims = json.loads((results / "metrics" / "claims.json").read_text())
        assert not any("EPE" in c["claim"] for c in claims)
    if "03" in NOTEBOOKS[dataset]:  # TV-L1 flow stored, complete, under the videos' own names (quirks included)
        stored = {m.parent.name for m in (root / "flow_tvl1").rglob(".complete")}
        assert stored and bad.stem not in stored  # the truncated video is skipped, not half extracted
        if dataset == "hmdb51":
            assert any(set(name) & set("[]#&!'") for name in stored), sorted(stored)
    if dataset == "thumos14":  # multi-label: Tables 3-4 in mAP, as the paper reports THUMOS14
        evaluation = json.loads((runs / "evaluation.json").read_text())
        assert evaluation["metric"] == "mAP"
