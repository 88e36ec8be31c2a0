"""htsc reproduce's run records: root-relative paths, --only merging, the across-seeds table."""
import json

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
