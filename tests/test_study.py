"""study.py (notebook set-up, tables, claims), plots.py (smoke: a figure and a PNG), report.py (README tables)."""
from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from htsc_core import plots, report, study  # noqa: E402


def params(tmp_path):
    return dict(profile="smoke", data_root=str(tmp_path / "data"), results_dir=str(tmp_path / "results"),
                runs_dir=str(tmp_path / "runs"))


def test_setup_applies_overrides_and_saves_the_config(tmp_path):
    cfg = study.setup(**params(tmp_path), seed=1, overrides={"epochs_spatial": 5, "seed": 2})
    assert (cfg.epochs_spatial, cfg.seed, cfg.profile) == (5, 2, "smoke")
    saved = json.loads((tmp_path / "results" / "metrics" / "config.json").read_text())
    assert saved["epochs_spatial"] == 5
    for sub in ("metrics", "tables", "figures"):
        assert (tmp_path / "results" / sub).is_dir()


def test_relative_paths_are_relative_to_the_repository_root_from_any_folder(tmp_path, monkeypatch):
    """Issue 38: a notebook opened where it lives (its kernel in results/synthetic/) finds the study's folders; the
    paths stay relative (no checkout location in what the notebook prints or records)."""
    import os
    from pathlib import Path

    root_relative = {k: os.path.relpath(tmp_path / k, study.ROOT) for k in ("data", "results", "runs")}
    elsewhere = tmp_path / "results" / "synthetic"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    cfg = study.setup(profile="smoke", data_root=root_relative["data"], results_dir=root_relative["results"],
                      runs_dir=root_relative["runs"])
    assert (tmp_path / "results" / "metrics" / "config.json").exists() and (tmp_path / "runs").is_dir()
    assert not (elsewhere / "results").exists() and not (elsewhere / "runs").exists()
    assert cfg.results_dir == ".." and cfg.runs_dir == os.path.join("..", "..", "runs")  # from the kernel's folder
    assert not Path(cfg.data_root).is_absolute() and Path(cfg.data_root).resolve() == tmp_path / "data"
    assert study.root_path(tmp_path / "x") == str(tmp_path / "x")  # an absolute path stays as it is
    monkeypatch.chdir(study.ROOT)
    assert study.root_path("results/smoke") == "results/smoke"  # htsc reproduce's kernels run in the root


def test_setup_rejects_unknown_override(tmp_path):
    with pytest.raises(ValueError, match="unknown config key.*valid keys"):
        study.setup(**params(tmp_path), overrides={"epoch_spatial": 5})


def test_write_table_and_metrics_roundtrip(tmp_path):
    cfg = study.setup(**params(tmp_path))
    path = study.write_table(cfg, "t", [{"method": "a", "ours": 0.123456}, {"method": "b"}], ["method", "ours"])
    assert path.read_text() == "method,ours\na,0.1235\nb,\n"
    study.write_metrics(cfg, "m", {"x": 1})
    assert study.read_metrics(cfg, "m") == {"x": 1}
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        study.read_metrics(cfg, "absent")


def test_quiet_keeps_bars_in_interactive_kernels_and_off_when_headless(monkeypatch):
    from htsc_core.utils import progress, progress_disabled

    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # JupyterLab: nobody set the switch
    study.quiet()
    assert not progress_disabled() and not progress(range(3)).disable
    monkeypatch.setenv("TQDM_DISABLE", "1")  # papermill (htsc reproduce) and nbval (make test) set it
    study.quiet()
    assert progress_disabled() and progress(range(3)).disable
    assert progress(range(3), disable=False).disable  # the switch wins over a caller's default


@pytest.mark.parametrize("name,args", [
    ("training_curves", ({"spatial": [{"epoch": 0, "train_loss": 1.0, "train_accuracy": 0.2, "val_accuracy": 0.1},
                                      {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.6, "val_accuracy": 0.4}]},)),
    ("confusion", ([[3, 1], [0, 4]], ["a", "b"])),
    ("awl_weights", ([{"class": "a", "w_spatial": 1.0, "w_temporal": 0.0, "family": "appearance"},
                      {"class": "b", "w_spatial": 0.0, "w_temporal": 1.0, "family": "motion"}],)),
    ("coefficient_heatmaps", (np.full((2, 3), 1 / 3), np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]), ["a", "b"])),
])
def test_plots_return_a_figure_and_write_a_png(tmp_path, name, args):
    path = tmp_path / f"{name}.png"
    fig = getattr(plots, name)(*args, path=path)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_method_bars(tmp_path):
    rows = [{"method": "hts", "ours": 0.5, "paper_ucf101": 0.903}, {"method": "htsc", "ours": 0.6, "paper_ucf101": ""}]
    fig = plots.method_bars(rows, "ours", "paper_ucf101", title="t", path=tmp_path / "b.png")
    assert isinstance(fig, matplotlib.figure.Figure) and (tmp_path / "b.png").stat().st_size > 0


def test_update_readme_replaces_only_the_marked_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    (results / "tables" / "table4.csv").write_text("method,ours\nhts,0.5000\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nstale\n{report.END}\noutro\n")
    report.update_readme(results.relative_to(tmp_path), readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{report.END}\noutro\n") and "stale" not in text
    assert "| method | ours |" in text and "| hts | 0.5000 |" in text


def test_small_n_claims_follow_the_exact_test(tmp_path, capsys):
    """4 of 4 classes at chance 0.5: exact p = 0.0625 one-sided (0.125 two-sided), so no verdict (issue 23);
    the same share over 40 items holds. A paired claim on 6 videos with McNemar p >= 0.05 is not resolved."""
    from scipy.stats import binomtest

    cfg = study.setup(**params(tmp_path))
    four = study.proportion(cfg, "four of four", 4, 4, 0.5)
    assert four["verdict"] == "not resolved" and four["p"] == pytest.approx(binomtest(4, 4, 0.5, "greater").pvalue)
    assert four["ci"][0] < 0 < four["ci"][1]  # the exact interval of k/n - 0.5 reaches below 0
    assert study.proportion(cfg, "forty of forty", 40, 40, 0.5)["verdict"] == "holds"
    assert study.proportion(cfg, "nine of nine", 9, 9, 0.5)["verdict"] == "holds"  # exact p 0.004 < 0.05
    a, b = np.array([1, 1, 1, 1, 1, 0]), np.array([0, 0, 0, 1, 1, 0])
    pair = study.compare(cfg, "six videos", a, b)
    assert pair["verdict"] == "not resolved" and pair["p"] == pytest.approx(0.25)
    for rec in json.loads(study.claims_path(cfg).read_text()):
        assert rec["ci"][0] <= rec["estimate"] <= rec["ci"][1]


def test_metrics_meta_records_precision_and_cpu(tmp_path, monkeypatch):
    from htsc_core import precision

    cfg = study.setup(**params(tmp_path))
    for switch, expected_native in (("1", False), ("0", precision.cpu_hardware_bf16())):
        monkeypatch.setenv(precision.FP32_SWITCH, switch)
        study.write_metrics(cfg, "m", {"x": 1})
        meta = json.loads((tmp_path / "results" / "metrics" / "m.json").read_text())["meta"]
        assert meta["bf16_native_cpu"] is expected_native and meta["fp32_forced"] is (switch == "1")
        assert meta["precision"] == ("bf16" if expected_native else "fp32") and meta["cpu_model"]


def test_results_header_states_precision_and_cpu(tmp_path):
    (tmp_path / "metrics").mkdir()
    assert report.precision_note(tmp_path) == ""  # results made before the meta recorded it
    meta = {"precision": "fp32", "cpu_model": "Test CPU", "bf16_native_cpu": False, "fp32_forced": True}
    (tmp_path / "metrics" / "00_data.json").write_text(json.dumps({"metrics": {}, "meta": meta}))
    assert report.precision_note(tmp_path) == "Precision: fp32 on Test CPU (no native bf16, HTSC_FP32=1)."
