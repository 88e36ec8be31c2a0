"""`htsc reproduce` end to end on a tiny synthetic set (smoke profile), and its failure report."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "TQDM_DISABLE": "1"}


def _htsc(*args, check=True):
    return subprocess.run([sys.executable, "-m", "htsc_core.cli", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=900, check=check)


@pytest.mark.slow
def test_reproduce_smoke_writes_tables_figures_and_html(tmp_path):
    data, results, runs = tmp_path / "data", tmp_path / "results", tmp_path / "runs"
    _htsc("synth", "--out", data, "--profile", "smoke", "--seed", "1")
    out = _htsc("reproduce", "--profile", "smoke", "--data-root", data, "--results-dir", results, "--runs-dir", runs)
    assert "all notebooks done" in out.stdout
    assert out.stdout.count(".ipynb done in ") == 9  # one progress line per notebook
    expected = {
        "table3": ["method", "ours", "paper_ucf101", "paper_hmdb51", "paper_thumos14"],
        "table4": ["method", "ours", "paper_ucf101", "paper_hmdb51", "paper_thumos14"],
        "table5": ["method", "ours_fps", "paper_fps"],
        "flow": ["method", "epe", "photometric", "ms_per_pair"],
    }
    for name, columns in expected.items():
        with open(results / "tables" / f"{name}.csv") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == columns, name
        assert len(rows) > 1
    with open(results / "tables" / "table4.csv") as fh:
        methods = [r["method"] for r in csv.DictReader(fh)]
    assert methods == ["spatial", "hidden_temporal", "hts", "hts_cln", "hts_cln_awl"]
    for fig in ("00_sample_frames", "02_flow_methods", "04_cln_coefficients", "05_awl_weights", "06_table4"):
        assert (results / "figures" / f"{fig}.png").stat().st_size > 1000
    assert len(list(results.glob("*.html"))) == 9
    assert (results / "metrics" / "reproduce.json").exists()


def test_reproduce_failure_names_notebook_cell_and_error(tmp_path):
    out = _htsc("reproduce", "--profile", "smoke", "--data-root", tmp_path / "missing", "--results-dir",
                tmp_path / "results", "--runs-dir", tmp_path / "runs", "--only", "00", check=False)
    assert out.returncode == 1
    assert "00_data.ipynb failed in cell" in out.stderr and "FileNotFoundError" in out.stderr
    assert (tmp_path / "results" / "00_data.ipynb").exists()  # the partly executed notebook stays
