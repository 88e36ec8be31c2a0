"""htsc_core.release: the Hidden Two-Stream release's UCF101 scores, loader, parity, cross-fitting."""
import shutil

import numpy as np
import pytest

from htsc_core import fusion, metrics, release


@pytest.fixture(scope="module")
def rel():
    return release.load_release()


def test_shapes_labels_groups(rel):
    assert set(rel.scores) == {"spatial", "hidden_temporal", "tvl1_temporal"}
    for x in rel.scores.values():
        assert x.shape == (3783, 101) and x.dtype == np.float64
    assert rel.n == 3783 and rel.num_classes == 101
    # classInd order: 1 ApplyEyeMakeup ... 101 YoYo; rows are grouped by class in that order
    assert rel.class_names[0] == "ApplyEyeMakeup" and rel.class_names[-1] == "YoYo"
    assert rel.class_names[:3] == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert np.all(np.diff(rel.labels) >= 0) and rel.labels[0] == 0 and rel.labels[-1] == 100
    assert rel.video_ids[0] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"
    assert sorted(set(rel.groups.tolist())) == [f"g0{i}" for i in range(1, 8)]
    for vid, g, y in zip(rel.video_ids[::97], rel.groups[::97], rel.labels[::97]):
        assert f"_{g}_" in vid and vid.split("/")[0] == rel.class_names[y]


def test_parse_testlist_by_hand(tmp_path):
    p = tmp_path / "testlist01.txt"
    p.write_text("B/v_B_g02_c01.avi\nA/v_A_g01_c03.avi\nB/v_B_g07_c02.avi\n\n")
    ids, labels, names, groups = release.parse_testlist(p)
    assert ids == ["B/v_B_g02_c01", "A/v_A_g01_c03", "B/v_B_g07_c02"]
    assert names == ["B", "A"] and labels.tolist() == [0, 1, 0] and groups.tolist() == ["g02", "g01", "g07"]
    p.write_text("B/v_B_c01.avi\n")
    with pytest.raises(release.ReleaseDataError, match=r"testlist01.txt:1: no UCF101 group"):
        release.parse_testlist(p)


def _copy(tmp_path):
    dst = tmp_path / "release"
    shutil.copytree(release.RELEASE_DIR, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_checksum_mismatch_names_the_file(tmp_path):
    dst = _copy(tmp_path)
    target = dst / "temporal_hidden_split01.mat"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    target.write_bytes(bytes(data))
    with pytest.raises(release.ReleaseDataError, match=r"temporal_hidden_split01\.mat: checksum mismatch"):
        release.load_release(dst)


def test_missing_file_and_missing_sums(tmp_path):
    dst = _copy(tmp_path)
    (dst / "testlist01.txt").unlink()
    with pytest.raises(release.ReleaseDataError, match=r"testlist01\.txt is missing"):
        release.load_release(dst)
    (dst / "SHA256SUMS").unlink()
    with pytest.raises(release.ReleaseDataError, match="SHA256SUMS is missing"):
        release.load_release(dst)


def test_conventions():
    raw = np.array([[-1.0, 1.0, 3.0], [2.0, 2.0, -5.0]])
    assert np.allclose(release.convert(raw, "release"), [[0, 0.25, 0.75], [0.5, 0.5, 0]])
    sm = release.convert(raw, "softmax")
    assert np.allclose(sm.sum(1), 1) and np.allclose(sm[0], np.exp(raw[0]) / np.exp(raw[0]).sum())
    with pytest.raises(ValueError, match="no positive score"):
        release.convert(np.array([[-1.0, -2.0]]), "release")
    with pytest.raises(ValueError, match="convention"):
        release.convert(raw, "probit")


def test_parity_with_published_accuracies(rel):
    """The release's late_fusion.m recipe on its files: five published accuracies to 4 decimals (arithmetic)."""
    ours = {r["method"]: r["ours"] for r in release.parity(rel)}
    assert round(ours["spatial"], 4) == 0.8097
    assert round(ours["hidden_temporal"], 4) == 0.8406
    assert round(ours["tvl1_temporal"], 4) == 0.8580
    assert round(ours["hts"], 4) == 0.8900
    assert round(ours["two_stream"], 4) == 0.9130


def test_cross_fit_never_fits_on_the_held_out_group(rel):
    seen = []

    def fit(train_idx):
        seen.append(train_idx)
        return set(rel.groups[train_idx].tolist())

    def score(train_groups, test_idx):
        held_out = set(rel.groups[test_idx].tolist())
        assert len(held_out) == 1 and not held_out & train_groups
        return np.zeros((test_idx.size, rel.num_classes))

    out, folds = release.cross_fit(rel.groups, fit, score, rel.num_classes)
    assert len(folds) == 7 and out.shape == (rel.n, rel.num_classes)
    for f, tr in zip(folds, seen):
        assert f["group"] not in f["train_groups"] and len(f["train_groups"]) == 6
        assert not np.any(rel.groups[tr] == f["group"])
        assert f["n_train"] + f["n_test"] == rel.n


def test_cross_fitted_awl_equals_fold_by_fold_fit(rel):
    """Cross-fitted AWL scores of group g are those of an AWL fitted without g (a check on the wiring)."""
    s, h = release.convert(rel.scores["spatial"]), release.convert(rel.scores["hidden_temporal"])
    fused, folds = release.cross_fit(rel.groups, lambda tr: fusion.fit_awl(s[tr], h[tr], rel.labels[tr]),
                                     lambda W, te: fusion.awl_scores(W, s[te], h[te]), rel.num_classes)
    g = rel.groups == "g03"
    W = fusion.fit_awl(s[~g], h[~g], rel.labels[~g])
    assert np.allclose(fused[g], fusion.awl_scores(W, s[g], h[g]))
    assert np.allclose(folds[2]["params"], W)


def test_grid_weights_beat_any_single_weight_on_a_planted_case():
    """Class 0 is known only to stream a, which b mistakes for class 2; class 1 only to b, which a mistakes
    for class 3. No single weight serves both (class 0 needs w > 0.56, class 1 w < 0.44); per-class
    weights do."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], 50)
    a = rng.random((y.size, 4)) * 0.1
    b = rng.random((y.size, 4)) * 0.1
    a[y == 0, 0] += 1.0
    b[y == 0, 0] += 0.2
    b[y == 0, 2] += 1.5
    b[y == 1, 1] += 1.0
    a[y == 1, 1] += 0.2
    a[y == 1, 3] += 1.5
    for k in (2, 3):
        a[y == k, k] += 1.0
        b[y == k, k] += 1.0
    w = release.fit_class_weights_grid(a, b, y)
    best_global = max(metrics.top1(g * a + (1 - g) * b, y) for g in release.WEIGHT_GRID)
    assert best_global <= 0.75 and metrics.top1(w * a + (1 - w) * b, y) == 1.0
    assert release.fit_global_weight(a, b, y) in release.WEIGHT_GRID


def test_mca_helper_matches_metrics(rel):
    s = release.convert(rel.scores["spatial"])
    assert release._mca(s.argmax(1), rel.labels, 101) == pytest.approx(
        metrics.mean_class_accuracy(s, rel.labels, 101))


def test_committed_results_and_readme_section():
    """results/hts_release (written by notebook 09): parity rows to 4 decimals, an awl row inside its interval,
    a verdict for AWL vs the 1:1.5 fusion, and the README section rendered from them."""
    import csv
    import json

    from htsc_core import report, stats

    base = release.ROOT / "results" / "hts_release"
    rows = {r["method"]: r for r in csv.DictReader((base / "tables" / "fusion.csv").open())}
    for method, published in release.PUBLISHED.items():
        assert float(rows[method]["top1"]) == published, method
    awl = rows["awl"]
    assert float(awl["ci_low"]) <= float(awl["top1"]) <= float(awl["ci_high"]) and awl["n"] == "3783"
    claims = {(c["a"], c["b"]): c for c in json.loads((base / "metrics" / "claims.json").read_text())}
    assert claims[("awl", "hts")]["verdict"] in stats.VERDICTS
    text = report.release_markdown(base)
    assert "### Real UCF101 scores (Hidden Two-Stream release)" in text
    assert "| awl | spatial + hidden_temporal |" in text and claims[("awl", "hts")]["claim"] in text
