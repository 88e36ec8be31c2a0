"""The CLN cue analysis (htsc_core.cue_analysis): per-class contrasts, the cue-aligned view, the linear probe."""
import numpy as np
import pytest

from htsc_core import cue_analysis, plots


def _cue():
    # class A: cue segments higher by 0.1 in every video; class B: lower by 0.05 (opposite effects)
    ids = [f"A/v{i}" for i in range(4)] + [f"B/v{i}" for i in range(4)]
    on = [0.30, 0.32, 0.28, 0.30, 0.15, 0.15, 0.16, 0.14]
    rest = [0.20, 0.22, 0.18, 0.20, 0.20, 0.20, 0.21, 0.19]
    return {"video_ids": ids, "c_o_cue": on, "c_o_rest": rest}


def test_per_class_rows_keep_opposite_effects_apart():
    rows = {r["class"]: r for r in cue_analysis.cue_by_class(_cue())}
    assert list(rows) == ["A", "B", "all"]
    assert rows["A"]["difference"] == pytest.approx(0.10) and rows["A"]["ci_low"] == pytest.approx(0.10)
    assert rows["B"]["difference"] == pytest.approx(-0.05) and rows["B"]["ci_high"] == pytest.approx(-0.05)
    assert rows["all"]["difference"] == pytest.approx(0.025) and rows["all"]["n"] == 8  # the pooled mean hides both
    assert rows["all"]["ci_low"] < 0.025 < rows["all"]["ci_high"]
    assert set(rows["A"]) == set(cue_analysis.CUE_COLUMNS)


def test_aligned_offsets_hand_computed():
    # S = 4: video 1 sees the cue at segments 1-2 (offset 0 = segment 1), video 2 at segment 0 only
    cue = {"c_o_segments": [[0.1, 0.4, 0.3, 0.2], [0.5, 0.2, 0.2, 0.1]],
           "cue_segments": [[0, 1, 1, 0], [1, 0, 0, 0]]}
    a = cue_analysis.cue_aligned(cue)
    assert a["offset"] == [-1, 0, 1, 2, 3]
    assert a["n"] == [1, 2, 2, 2, 1]
    assert a["mean"] == pytest.approx([0.4, (1.6 + 2.0) / 2, (1.2 + 0.8) / 2, (0.8 + 0.8) / 2, 0.4])
    assert a["cue_share"] == pytest.approx([0.0, 1.0, 0.5, 0.0, 0.0])
    fig = plots.cue_aligned({"temporal $c^o$": a})
    assert len(fig.axes[0].lines) >= 2  # the errorbar line and the uniform reference


def test_probe_finds_a_linear_cue_and_not_noise():
    rng = np.random.default_rng(0)
    n, d = 240, 16
    y = rng.random(n) < 0.35
    x = rng.normal(size=(n, d))
    direction = rng.normal(size=d)
    signal = x + np.outer(np.where(y, 1.0, -1.0), direction) * 1.0  # cue segments shifted along one direction
    predict = cue_analysis.fit_probe(signal[:160], y[:160])
    assert (predict(signal[160:]) == y[160:]).mean() > 0.95
    noise = cue_analysis.fit_probe(x[:160], y[:160])  # no information: about the majority rate at best
    assert (noise(x[160:]) == y[160:]).mean() < 0.75


def test_probe_needs_matching_shapes():
    with pytest.raises(ValueError, match="fit_probe"):
        cue_analysis.fit_probe(np.zeros((3, 2)), np.zeros(4))


def test_awl_cross_fit_leaves_each_validation_group_out(monkeypatch):
    """Two classes, three validation groups: class 0 is told by the temporal head only (the spatial one is
    flat on its videos), class 1 by the spatial head only, so every fold must give class 0 to the temporal
    stream and class 1 to the spatial one, and the cross-fitted AWL is right on every held-out video."""
    from types import SimpleNamespace

    from htsc_core import analysis

    labels = np.array([0, 1] * 6)
    groups = np.repeat(["g08", "g09", "g10"], 4)
    flat = np.full((12, 2), 0.5)
    scores_o = np.where(labels[:, None] == 0, [[0.9, 0.1]], flat)
    scores_s = np.where(labels[:, None] == 1, [[0.1, 0.9]], flat)
    ids = [f"C{y}/v{k}" for k, y in enumerate(labels)]
    monkeypatch.setattr(analysis, "cln_scores", lambda cfg, subset: {"scores_s": scores_s, "scores_o": scores_o,
                                                                     "labels": labels, "video_ids": ids})
    records = [SimpleNamespace(video_id=v, group=g) for v, g in zip(ids, groups)]
    monkeypatch.setattr(analysis, "load_split", lambda cfg, subset: (records, ["C0", "C1"]))
    out = analysis.awl_cross_fit(SimpleNamespace(awl_c=5e-3))
    assert out["groups"] == 3 and out["videos_per_class_min"] == 6
    assert np.array(out["w_temporal_folds"]).shape == (2, 3)
    assert (np.array(out["w_temporal_folds"])[0] > 0.5).all() and (np.array(out["w_temporal_folds"])[1] < 0.5).all()
    assert out["classes_same_stream_every_fold"] == 2
    assert out["accuracy_awl"] == 1.0 and out["correct_awl"] == [True] * 12
