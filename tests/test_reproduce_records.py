"""htsc reproduce's run records: root-relative paths, --only merging, the across-seeds table."""
import json
from pathlib import Path

from htsc_core import reproduce


def test_project_relative_inside_and_outside(tmp_path):
    assert reproduce.project_relative(reproduce.ROOT / "results" / "synthetic") == "results/synthetic"
    assert reproduce.project_relative(tmp_path) == str(tmp_path.resolve())


def test_only_merges_into_the_full_record(tmp_path):
    path = tmp_path / "reproduce.json"
    full = {"parameters": {"seed": 0}, "seconds_per_notebook": {"00_data.ipynb": 5.0, "01_spatial.ipynb": 9.0},
            "total_seconds": 14.0, "git_commit": "aaa"}
    path.write_text(json.dumps(full))
    partial = {"parameters": {"seed": 0}, "seconds_per_notebook": {"01_spatial.ipynb": 7.0},
               "total_seconds": 7.0, "git_commit": "bbb"}
    merged = reproduce._merge_record(path, partial, only=["01"])
    assert merged["total_seconds"] == 14.0 and merged["git_commit"] == "aaa"  # the full run's record stands
    assert merged["seconds_per_notebook"] == {"00_data.ipynb": 5.0, "01_spatial.ipynb": 7.0}
    assert merged["partial_reruns"] == [{"only": ["01"], "git_commit": "bbb", "seconds": 7.0,
                                         "notebooks": ["01_spatial.ipynb"]}]
    assert reproduce._merge_record(path, partial, only=None) == partial  # a full run replaces it


def test_aggregate_seeds_mean_and_std(tmp_path):
    dirs = []
    for k, (a, b) in enumerate([(0.5, 0.7), (0.6, 0.9), (0.7, 0.8)]):
        d = tmp_path / f"s{k}"
        (d / "tables").mkdir(parents=True)
        (d / "tables" / "table4.csv").write_text(f"method,ours,ci_low,ci_high\nspatial,{a},0,1\nhts,{b},0,1\n")
        dirs.append(d)
    (tmp_path / "s0" / "metrics").mkdir()
    (tmp_path / "s0" / "metrics" / "reproduce.json").write_text("{}")
    out = reproduce.aggregate_seeds(dirs[0], dirs, [0, 1, 2])
    rows = {line.split(",")[1]: line.split(",") for line in out.read_text().splitlines()[1:]}
    assert rows["spatial"][3:6] == ["3", "0.6000", "0.1000"]  # mean 0.6, sample std 0.1 (hand-computed)
    assert rows["hts"][4] == "0.8000"
    assert json.loads((dirs[0] / "metrics" / "reproduce.json").read_text())["seeds"] == [0, 1, 2]


def _git_state():
    import subprocess

    run = lambda *a: subprocess.run(["git", *a], cwd=reproduce.ROOT, capture_output=True, text=True).stdout  # noqa: E731
    return run("status", "--porcelain", "--untracked-files=all"), run("stash", "list")


def test_a_default_run_into_another_folder_exits_0_and_leaves_the_clone_alone(tmp_path, monkeypatch):
    """``--results-dir`` outside the clone at the default profile (issue 27, item 7): every notebook runs
    (papermill stubbed: the orchestration is what is tested), exit 0, README untouched, notebook 09 told to
    write under the run's own folder, and git sees no change in the clone."""
    import papermill as pm

    data = tmp_path / "data"
    data.mkdir()
    (data / "classes.json").write_text("{}")  # an existing synthetic set: nothing is generated
    seen = {}

    def fake_execute(src, out, parameters=None, **kw):
        seen[src] = parameters
        Path(out).write_text(Path(src).read_text())

    monkeypatch.setattr(pm, "execute_notebook", fake_execute)
    monkeypatch.setattr(reproduce, "_to_html", lambda out: out)
    readme = (reproduce.ROOT / "README.md").read_text()
    before = _git_state()
    results = tmp_path / "elsewhere" / "run"
    rc = reproduce.reproduce("synthetic", str(data), "default", results, tmp_path / "runs")
    assert rc == 0
    assert len(seen) == len(reproduce.notebook_paths())
    release = [p["release_results_dir"] for p in seen.values() if "release_results_dir" in p]
    assert release == [str((results / "hts_release").resolve())]
    assert (reproduce.ROOT / "README.md").read_text() == readme
    assert _git_state() == before
    assert (results / "metrics" / "reproduce.json").exists()
    assert not reproduce.is_main_results(results)
    assert reproduce.is_main_results(reproduce.ROOT / "results" / "synthetic")


def test_extra_seeds_skip_the_seed_independent_notebooks():
    names = reproduce.seed_dependent_notebooks()
    assert [n[:2] for n in names] == ["01", "02", "03", "04", "05", "06", "07"]
    assert reproduce.seed_dependent_notebooks(["06", "08"]) == [n for n in names if n.startswith("06")]


def test_an_extra_seed_run_replaces_an_earlier_record(tmp_path, monkeypatch):
    """A ``--seeds N`` run's extra seed runs notebooks 01-07 (``only`` = those), but as a run of its own: its record
    names this commit and these seconds, not an earlier run's with a "partial rerun" (seen in a fresh clone whose
    committed seed records were merged into); ``--only`` still merges."""
    import papermill as pm

    data = tmp_path / "data"
    data.mkdir()
    (data / "classes.json").write_text("{}")
    monkeypatch.setattr(pm, "execute_notebook", lambda src, out, **kw: Path(out).write_text(Path(src).read_text()))
    monkeypatch.setattr(reproduce, "_to_html", lambda out: out)
    monkeypatch.setattr(reproduce, "git_commit", lambda: "new")
    results = tmp_path / "seeds" / "seed1"
    record = results / "metrics" / "reproduce.json"
    record.parent.mkdir(parents=True)
    old = {"git_commit": "old", "total_seconds": 999.0, "seconds_per_notebook": {"01_spatial.ipynb": 99.0}}
    record.write_text(json.dumps(old))
    only = reproduce.seed_dependent_notebooks()
    assert reproduce.reproduce("synthetic", str(data), "default", results, tmp_path / "runs", 1, only=only,
                               partial=False) == 0
    fresh = json.loads(record.read_text())
    assert fresh["git_commit"] == "new" and "partial_reruns" not in fresh and fresh["total_seconds"] < 999
    assert sorted(fresh["seconds_per_notebook"]) == only
    assert reproduce.reproduce("synthetic", str(data), "default", results, tmp_path / "runs", 1, only=["06"]) == 0
    merged = json.loads(record.read_text())
    assert merged["git_commit"] == "new" and [r["only"] for r in merged["partial_reruns"]] == [["06"]]
