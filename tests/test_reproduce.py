"""`htsc reproduce` on a tiny synthetic set (smoke profile), and its failure report."""
import json
import os
import subprocess
import sys
from pathlib import Path


ENV = {**os.environ, "TQDM_DISABLE": "1"}


def _htsc(*args, check=True):
    return subprocess.run([sys.executable, "-m", "htsc_core.cli", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=900, check=check)


def test_reproduce_runs_notebooks_into_html_and_a_record(tmp_path, smoke_set):
    """The driver on the synthetic smoke set: kernels over IPC, one progress line per notebook, the executed
    notebook and its HTML copy (no checkout path in it), the run record. Notebook 00 is enough for the driver;
    what the whole smoke study writes (every table, figure and claim) is checked on the outputs of the nbval
    run of all ten notebooks (tests/test_smoke_outputs.py, after nbval in `make test`), and the full-run
    orchestration with papermill stubbed in tests/test_reproduce_records.py."""
    data, results, runs = smoke_set, tmp_path / "results", tmp_path / "runs"
    out = _htsc("reproduce", "--profile", "smoke", "--data-root", data, "--results-dir", results, "--runs-dir", runs,
                "--only", "00")
    assert "all notebooks done" in out.stdout
    assert "without encryption" not in out.stderr  # kernels over IPC: no plain-TCP warning per notebook
    assert out.stdout.count(".ipynb done in ") == 1  # one progress line per notebook
    assert (results / "00_data.ipynb").exists() and (results / "figures" / "00_sample_frames.png").exists()
    record = json.loads((results / "metrics" / "reproduce.json").read_text())
    assert list(record["seconds_per_notebook"]) == ["00_data.ipynb"] and record["seeds"] == [0]
    html = (results / "00_data.html").read_text()
    assert "<title>00_data</title>" in html and str(Path(__file__).parents[1]) not in html


def test_reproduce_failure_names_notebook_cell_and_error(tmp_path):
    out = _htsc("reproduce", "--dataset", "ucf101", "--profile", "smoke", "--data-root", tmp_path / "missing",
                "--results-dir", tmp_path / "results", "--runs-dir", tmp_path / "runs", "--only", "00", check=False)
    assert out.returncode == 1
    assert "00_data.ipynb failed in cell" in out.stderr and "FileNotFoundError" in out.stderr
    assert (tmp_path / "results" / "00_data.ipynb").exists()  # the partly executed notebook stays
