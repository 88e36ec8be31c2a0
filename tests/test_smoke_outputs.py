"""What the smoke study writes, checked on the outputs of nbval's run of all ten notebooks (``results/smoke``).

`make test` runs the notebooks under nbval (their default parameters: the synthetic smoke set, ``runs/smoke``,
``results/smoke``) and then this file (marker ``smoke_outputs``), so the ten notebooks are executed once per
test run, not once for nbval and once more for these checks.
"""
import csv
import json
from pathlib import Path

import pytest

from htsc_core.bench.table5 import TABLE5_COLUMNS
from htsc_core import schedules
from htsc_core.tables import TABLE3_COLUMNS, TABLE_COLUMNS

pytestmark = pytest.mark.smoke_outputs
RESULTS = Path(__file__).resolve().parents[1] / "results" / "smoke"


@pytest.fixture(scope="module")
def results() -> Path:
    if not (RESULTS / "metrics" / "claims.json").exists():
        pytest.fail(f"{RESULTS} holds no smoke study: `make test` runs the notebooks under nbval first "
                    f"(or `make notebooks`)")
    return RESULTS


def _rows(path: Path) -> list[list[str]]:
    with open(path) as fh:
        return list(csv.reader(fh))


def test_every_table_with_its_columns(results):
    expected = {"table3": list(TABLE3_COLUMNS), "table4": list(TABLE_COLUMNS), "table5": list(TABLE5_COLUMNS),
                "table5_profile": list(TABLE5_COLUMNS), "per_family": None, "flow": None, "cln_cue": None}
    for name, columns in expected.items():
        rows = _rows(results / "tables" / f"{name}.csv")
        assert columns is None or rows[0] == columns, name
        assert len(rows) > 1, name
    with open(results / "tables" / "table4.csv") as fh:
        table4 = list(csv.DictReader(fh))
    assert [r["method"] for r in table4] == ["spatial", "hidden_temporal", "hts", "hts_cln", "hts_cln_awl"]
    assert all(float(r["ci_low"]) <= float(r["ours"]) <= float(r["ci_high"]) for r in table4)
    with open(results / "tables" / "table3.csv") as fh:
        trained = {r["method"] for r in csv.DictReader(fh) if r["ours"] != ""}
    assert {"two_stream", "two_stream_fusion", "c3d", "tsn_rgb_diff", "hts", "htsc"} <= trained
    with open(results / "tables" / "flow.csv") as fh:
        flow = {r["method"]: r for r in csv.DictReader(fh)}
    assert {"epe", "epe_moving", "epe_background", "epe_border"} <= set(flow["motionnet"])
    # notebook 07: every trained stage's schedule read on validation (htsc_core/schedules.py)
    with open(results / "tables" / "schedules.csv") as fh:
        schedule = {r["stage"]: r for r in csv.DictReader(fh)}
    assert list(schedule) == list(schedules.STAGES)
    assert all(1 <= int(r["best_epoch"]) <= int(r["epochs"]) and r["val_loss_best"] != "" for r in schedule.values())


def test_figures_claims_and_the_release_study(results):
    for fig in ("00_sample_frames", "02_flow_methods", "04_cln_coefficients", "04_cln_cue_aligned", "05_awl_weights",
                "06_table4"):
        assert (results / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    claims = json.loads((results / "metrics" / "claims.json").read_text())
    assert claims and all(c["verdict"] in ("holds", "reversed", "not resolved") for c in claims)
    assert any("cue" in c["claim"] for c in claims)
    assert "cue_probe_accuracy" in json.loads((results / "metrics" / "04_cln.json").read_text())["metrics"]
    assert (results / "hts_release" / "tables" / "fusion.csv").exists()  # notebook 09 under the smoke results


def test_a_results_notebook_reruns_from_its_own_folder(results, tmp_path):
    """Issue 38: an executed results notebook opened where it lives (JupyterLab starts its kernel in
    results/synthetic/) reads the study's runs: its paths are relative to the repository root, whatever the
    working directory. Executed here with papermill from that folder at the smoke profile (the smoke study nbval
    just made), into a temporary copy; nothing may appear under results/synthetic/results or .../runs."""
    import papermill as pm

    from htsc_core.reproduce import _ipc_kernel_manager

    root = RESULTS.parents[1]
    folder = root / "results" / "synthetic"
    before = json.loads((results / "metrics" / "claims.json").read_text())
    out = tmp_path / "07_table3.ipynb"
    pm.execute_notebook(str(folder / "07_table3.ipynb"), str(out), cwd=str(folder), kernel_name="python3",
                        kernel_manager_class=_ipc_kernel_manager(), progress_bar=False,
                        parameters=dict(dataset="synthetic", data_root="data/synthetic-smoke", profile="smoke", seed=0,
                                        device="cpu", results_dir="results/smoke", runs_dir="runs/smoke",
                                        overrides={}))
    assert not (folder / "results").exists() and not (folder / "runs").exists()
    text = out.read_text()
    assert "htsc" in text and any(v in text for v in ("[HOLDS] HTSC above HTS", "[NOT RESOLVED] HTSC above HTS",
                                                      "[REVERSED] HTSC above HTS"))
    after = {c["claim"]: c for c in json.loads((results / "metrics" / "claims.json").read_text())}
    # the same study's runs read again: the same verdicts on the same test videos
    assert all(after[c["claim"]]["estimate"] == c["estimate"] for c in before if c["claim"] in after
               and c["claim"].startswith("HTSC above"))
