"""The fusion questions asked of both releases: the pooled (across-splits) statistics, the per-split wiring,
and the committed results / README table they produce."""
import csv
import json

import numpy as np
import pytest
from scipy import stats as sps

from htsc_core import fusion, release, release_questions as rq, replicates, stats
from htsc_core.release_data import ROOT, ReleaseScores

RESULTS = ROOT / "results" / "hts_release"


# ---- replicates.pooled_paired_difference / compare_accuracy_pooled


def test_one_stratum_is_the_paired_bootstrap():
    rng = np.random.default_rng(3)
    a, b = rng.random(400) < 0.7, rng.random(400) < 0.6
    pooled = replicates.pooled_paired_difference([a], [b], [[f"v{i}" for i in range(400)]], n_boot=500, seed=4)
    plain = stats.paired_difference(np.mean, (a.astype(float),), (b.astype(float),), n_boot=500, seed=4)
    assert pooled == pytest.approx(plain, abs=1e-12)


def test_pooled_estimate_and_exact_p_by_hand():
    # split 1: A right / B wrong on 3 videos, the reverse on 1; split 2: 2 and 0; split 3: 0 and 1
    a1, b1 = [1, 1, 1, 0, 1, 1], [0, 0, 0, 1, 1, 1]
    a2, b2 = [1, 1, 0, 0], [0, 0, 0, 0]
    a3, b3 = [0, 1, 1], [1, 1, 1]
    names = [[f"s1_{i}" for i in range(6)], [f"s2_{i}" for i in range(4)], [f"s3_{i}" for i in range(3)]]
    rec = replicates.compare_accuracy_pooled([a1, a2, a3], [b1, b2, b3], names, n_boot=300)
    assert rec["estimate"] == pytest.approx(((3 - 1) / 6 + 2 / 4 + (0 - 1) / 3) / 3)
    assert rec["per_stratum"] == pytest.approx([2 / 6, 2 / 4, -1 / 3])
    assert rec["p"] == pytest.approx(sps.binomtest(5, 7, 0.5).pvalue)  # 5 of the 7 discordant favour A
    assert rec["n"] == 13 and rec["n_unique"] == 13 and rec["ci"][0] <= rec["estimate"] <= rec["ci"][1]


def test_a_video_in_two_strata_is_resampled_as_one():
    """The same 300 videos in both strata with the same differences: the mean over strata is each stratum's
    difference, and its interval is as wide as one stratum's (the videos are not two independent samples);
    with distinct names it narrows by about 1/sqrt(2)."""
    rng = np.random.default_rng(5)
    a, b = rng.random(300) < 0.7, rng.random(300) < 0.6
    shared = [f"v{i}" for i in range(300)]
    width = lambda r: r[2] - r[1]  # noqa: E731
    one = replicates.pooled_paired_difference([a], [b], [shared], n_boot=1000, seed=1)
    same = replicates.pooled_paired_difference([a, a], [b, b], [shared, shared], n_boot=1000, seed=1)
    apart = replicates.pooled_paired_difference([a, a], [b, b], [shared, [f"w{i}" for i in range(300)]], n_boot=1000,
                                           seed=1)
    assert same == pytest.approx(one)
    assert width(apart) == pytest.approx(width(one) / np.sqrt(2), rel=0.15)


def test_pooled_refuses_bad_input():
    with pytest.raises(ValueError, match="one .A, B, names. triple"):
        replicates.pooled_paired_difference([[1]], [], [["a"]])
    with pytest.raises(ValueError, match="lists a video twice"):
        replicates.pooled_paired_difference([[1, 0]], [[0, 0]], [["a", "a"]])
    with pytest.raises(ValueError, match="stratum 0: 2 and 1 videos"):
        replicates.pooled_paired_difference([[1, 0]], [[0]], [["a", "b"]])


# ---- the per-split questions on a planted release


def _planted(n_per_class=40, m=4, seed=0) -> ReleaseScores:
    """RGB knows classes 0-1, TV-L1 classes 2-3, the learned motion class 2 only: RGB + TV-L1 is right more
    often than RGB + learned motion. RGB mistakes class 2 for class 3 and TV-L1 (and the learned motion)
    class 0 for class 1, each with more confidence than the other stream's right answer: a fixed fusion
    follows the mistake, AWL (one stream per class: 0-1 RGB, 2-3 TV-L1) does not."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(m), n_per_class)
    noise = lambda: rng.normal(0, 1.0, (y.size, m))  # noqa: E731
    rgb, tv, learned = noise(), noise(), noise()
    for k in (0, 1):
        rgb[y == k, k] += 4
    for k in (2, 3):
        tv[y == k, k] += 6
    learned[y == 2, 2] += 6
    rgb[y == 2, 3] += 9
    tv[y == 0, 1] += 9
    learned[y == 0, 1] += 9
    ids = [f"C{k}/v_C{k}_g{g:02d}_c{i:02d}" for i, (k, g) in enumerate(zip(y, 1 + np.arange(y.size) % 7))]
    groups = np.array([f"g{g:02d}" for g in 1 + np.arange(y.size) % 7])
    return ReleaseScores(scores={"rgb_iframe": rgb, "tvl1_flow": tv, "dmc_generated": learned}, labels=y,
                         class_names=[f"C{k}" for k in range(m)], groups=groups, video_ids=ids)


def test_split_study_by_hand_on_a_planted_release():
    rel = _planted()
    res = rq.split_study(rel, "ucf101", 2, n_boot=200)
    sm = {k: np.exp(v) / np.exp(v).sum(1, keepdims=True) for k, v in rel.scores.items()}
    w15 = (sm["rgb_iframe"] + fusion.TEMPORAL_WEIGHT * sm["tvl1_flow"]).argmax(1) == rel.labels
    assert np.array_equal(res["correct"]["tvl1_w15"], w15)
    rows = {r["method"]: r for r in res["rows"]}
    assert rows["tvl1_w15"]["top1"] == pytest.approx(w15.mean())
    claims = {c["question"]: c for c in res["claims"]}
    assert set(claims) == set(rq.QUESTIONS)
    q = claims["learned_vs_tvl1_w15"]
    assert q["verdict"] == "reversed" and q["split"] == 2 and q["source"] == "dmc_net"
    assert q["p"] == pytest.approx(stats.mcnemar_exact(res["correct"]["learned_w15"], w15))
    assert claims["awl_tvl1_equal"]["verdict"] == "holds" and claims["awl_tvl1_w15"]["verdict"] == "holds"
    for fold in res["awl"]["tvl1_awl"].values():
        assert fold["rgb_classes"] == 2 and fold["motion_classes"] == 2


def test_pooled_claims_and_verdict_table():
    per = {s: rq.split_study(_planted(seed=s), "hmdb51", s, n_boot=200) for s in (1, 2, 3)}
    pooled = rq.pooled_claims("dmc_net", "hmdb51", per, n_boot=200, seed=0)
    assert len(pooled) == len(rq.QUESTIONS) and all(c["split"] == rq.POOLED for c in pooled)
    q = next(c for c in pooled if c["question"] == "learned_vs_tvl1_w15")
    assert q["estimate"] == pytest.approx(np.mean([c["estimate"] for s in per for c in per[s]["claims"]
                                                   if c["question"] == "learned_vs_tvl1_w15"]))
    claims = [c for s in per for c in per[s]["claims"]] + pooled
    header, rows = rq.verdict_table(claims)
    assert header == ["question", "DMC HMDB51 s1", "DMC HMDB51 s2", "DMC HMDB51 s3", "DMC HMDB51 pooled"]
    assert rows[0]["DMC HMDB51 pooled"] == f"{q['verdict']} ({q['estimate']:+.3f})"
    panels = rq.figure_inputs(claims)
    assert [p["title"] for p in panels] == [t for t, _, _ in rq.QUESTIONS.values()]
    assert [e["pooled"] for e in panels[0]["entries"]] == [False, False, False, True]


def test_hts_claims_answer_the_same_questions():
    tagged = {q for *_, q in release.CLAIMS if q}
    assert tagged == set(rq.QUESTIONS)
    for claim, a, b, _, q in release.CLAIMS:
        if q:  # the HTS release's methods are the question's methods under their notebook-09 names
            _, qa, qb = rq.QUESTIONS[q]
            assert (rq.HTS_METHODS[qa], rq.HTS_METHODS[qb]) == (a, b), claim


# ---- the committed results (notebook 09)


def test_committed_claims_cover_every_release_dataset_and_split():
    claims = json.loads((RESULTS / "metrics" / "claims.json").read_text())
    keys = {(c["source"], c["dataset"], c["split"], c["question"]) for c in claims if c.get("question")}
    expected = {("hts_release", "ucf101", 1, q) for q in rq.QUESTIONS}
    expected |= {("dmc_net", d, s, q) for d in ("ucf101", "hmdb51") for s in (1, 2, 3, rq.POOLED)
                 for q in rq.QUESTIONS}
    assert keys == expected
    for c in claims:
        assert c["verdict"] in stats.VERDICTS and c["ci"][0] <= c["estimate"] <= c["ci"][1] and c["p"] is not None
    hts = next(c for c in claims if (c["a"], c["b"]) == ("hts", "two_stream"))
    assert "2014" in hts["paper"] and round(hts["accuracy_a"], 4) == release.PUBLISHED["hts"] and hts["n"] == 3783
    rows = list(csv.DictReader((RESULTS / "tables" / "released_table34.csv").open()))
    hmdb = [r for r in rows if r["dataset"] == "HMDB51"]
    assert hmdb and all(r["source"].startswith("released scores") for r in rows)
    spatial = next(r for r in hmdb if r["method"] == "spatial")
    assert spatial["paper"] == "0.514" and float(spatial["split1"]) == pytest.approx(0.5392, abs=1e-4)


def test_readme_verdict_table_is_generated_from_the_claims():
    from htsc_core import report

    text = report.release_markdown(RESULTS)
    claims = json.loads((RESULTS / "metrics" / "claims.json").read_text())
    header, rows = rq.verdict_table(claims)
    assert "| " + " | ".join(header) + " |" in text
    assert "| " + " | ".join(rows[0][h] for h in header) + " |" in text
    readme = (ROOT / "README.md").read_text()
    assert "| " + " | ".join(header) + " |" in readme


def test_figure_edges(tmp_path):
    from htsc_core import plots

    panels = [{"title": "a", "entries": [{"label": "x", "estimate": 0.01, "ci": [0.02, 0.03], "verdict": "holds",
                                          "pooled": False},
                                         {"label": "y", "estimate": float("nan"), "ci": None, "verdict": "?",
                                          "pooled": True}]},
              {"title": "empty", "entries": []}]
    for subset in (panels, panels[:1], []):
        path = tmp_path / f"q{len(subset)}.png"
        plots.release_questions(subset, path=path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
