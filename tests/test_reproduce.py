"""`htsc reproduce` end to end on a tiny synthetic set (smoke profile), and its failure report."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from htsc_core.bench.table5 import TABLE5_COLUMNS
from htsc_core.tables import TABLE3_COLUMNS, TABLE_COLUMNS

ENV = {**os.environ, "TQDM_DISABLE": "1"}
# Every notebook that depends on the dataset (09 does not: it scores the release's vendored UCF101 scores).
NOTEBOOKS = [p.name[:2] for p in sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
             if not p.name.startswith("09")]


def _htsc(*args, check=True):
    return subprocess.run([sys.executable, "-m", "htsc_core.cli", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=900, check=check)


@pytest.mark.slow(notebooks=len(NOTEBOOKS))
def test_reproduce_smoke_writes_tables_figures_and_html(tmp_path, smoke_set):
    data, results, runs = smoke_set, tmp_path / "results", tmp_path / "runs"
    # Notebook 09 scores the release's vendored UCF101 scores whatever the dataset: nbval runs it once, and
    # tests/test_reproduce_records.py checks that reproduce points it at --results-dir.
    out = _htsc("reproduce", "--profile", "smoke", "--data-root", data, "--results-dir", results, "--runs-dir", runs,
                "--only", *NOTEBOOKS)
    assert "all notebooks done" in out.stdout
    assert "without encryption" not in out.stderr  # kernels over IPC: no plain-TCP warning per notebook
    notebooks = len(NOTEBOOKS)
    assert out.stdout.count(".ipynb done in ") == notebooks  # one progress line per notebook
    expected = {
        "table3": list(TABLE3_COLUMNS),
        "table4": list(TABLE_COLUMNS),
        "table5": list(TABLE5_COLUMNS),
        "table5_profile": list(TABLE5_COLUMNS),
        "per_family": None,
        "flow": None,
    }
    for name, columns in expected.items():
        with open(results / "tables" / f"{name}.csv") as fh:
            rows = list(csv.reader(fh))
        assert columns is None or rows[0] == columns, name
        assert len(rows) > 1
    with open(results / "tables" / "table4.csv") as fh:
        methods = [r["method"] for r in csv.DictReader(fh)]
    assert methods == ["spatial", "hidden_temporal", "hts", "hts_cln", "hts_cln_awl"]
    for fig in ("00_sample_frames", "02_flow_methods", "04_cln_coefficients", "05_awl_weights", "06_table4"):
        assert (results / "figures" / f"{fig}.png").stat().st_size > 1000
    assert len(list(results.glob("*.html"))) == notebooks
    assert (results / "metrics" / "reproduce.json").exists()
    with open(results / "tables" / "table4.csv") as fh:
        for row in csv.DictReader(fh):
            assert float(row["ci_low"]) <= float(row["ours"]) <= float(row["ci_high"])
    claims = json.loads((results / "metrics" / "claims.json").read_text())
    assert all(c["verdict"] in ("holds", "reversed", "not resolved") for c in claims)
    html = (results / "06_table4.html").read_text()
    assert "<title>06_table4</title>" in html and str(Path(__file__).parents[1]) not in html


def test_reproduce_failure_names_notebook_cell_and_error(tmp_path):
    out = _htsc("reproduce", "--dataset", "ucf101", "--profile", "smoke", "--data-root", tmp_path / "missing",
                "--results-dir", tmp_path / "results", "--runs-dir", tmp_path / "runs", "--only", "00", check=False)
    assert out.returncode == 1
    assert "00_data.ipynb failed in cell" in out.stderr and "FileNotFoundError" in out.stderr
    assert (tmp_path / "results" / "00_data.ipynb").exists()  # the partly executed notebook stays
