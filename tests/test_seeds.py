"""Seed-aware intervals and verdicts (htsc_core.seeds, replicates.seed_aware_interval), issue 23."""
import json

import numpy as np
import pytest
from scipy import stats as sps

from htsc_core import replicates, seeds


def test_seeds_that_agree_give_the_within_run_interval():
    m, lo, hi, df = replicates.seed_aware_interval([0.3, 0.3, 0.3], [0.05, 0.05, 0.05])
    assert df == float("inf") and (m, lo, hi) == pytest.approx((0.3, 0.25, 0.35))


def test_without_test_noise_it_is_the_t_interval_of_the_seeds():
    est = [0.61, 0.52, 0.50]
    m, lo, hi, df = replicates.seed_aware_interval(est, [0.0, 0.0, 0.0])
    ref = sps.t.interval(0.95, 2, loc=np.mean(est), scale=sps.sem(est))  # scipy's one-sample t interval
    assert df == pytest.approx(2.0) and (lo, hi) == pytest.approx(ref)


def test_hand_computed_welch_satterthwaite():
    # between = var([.1,.2,.3]) / 3 = 0.01 / 3; within = (0.05 / 1.959964)^2; df = 2 * se2^2 / between^2
    between, within = 0.01 / 3, (0.05 / 1.959964) ** 2
    se2 = between + within
    df = 2 * se2 ** 2 / between ** 2
    half = sps.t.ppf(0.975, df) * se2 ** 0.5
    m, lo, hi, got_df = replicates.seed_aware_interval([0.1, 0.2, 0.3], [0.05] * 3)
    assert got_df == pytest.approx(df, rel=1e-6) and (lo, hi) == pytest.approx((0.2 - half, 0.2 + half), rel=1e-6)


def test_coverage_when_seeds_and_a_shared_test_set_both_vary():
    """Simulated study: a true difference 0, a per-seed effect (sd 0.04) and ONE test-set error shared by
    the seeds (sd 0.02, known to each run as its 95% half-width). The interval must cover 0 about 95% of
    the time; the within-run interval of one seed alone covers far less."""
    rng = np.random.default_rng(0)
    sims, s, sd_b, sd_w = 2000, 3, 0.04, 0.02
    hw = 1.959964 * sd_w
    covered = alone = 0
    for _ in range(sims):
        est = rng.normal(0, sd_b, s) + rng.normal(0, sd_w)
        _, lo, hi, _ = replicates.seed_aware_interval(est, [hw] * s)
        covered += lo <= 0 <= hi
        alone += est[0] - hw <= 0 <= est[0] + hw
    assert covered / sims >= 0.93
    assert alone / sims < 0.7  # one model's test-set interval: P(|N(0, .045)| < .039) = 0.62


@pytest.mark.parametrize("bad", [([0.1], [0.01]), ([0.1, 0.2], [0.01]), ([0.1, float("nan")], [0.1, 0.1]),
                                 ([0.1, 0.2], [0.1, -0.1])])
def test_bad_input_is_an_error(bad):
    with pytest.raises(ValueError, match="seed_aware_interval"):
        replicates.seed_aware_interval(*bad)


def _claim(name, est, ci, verdict, n=360, kind="greater", **extra):
    return {"claim": name, "detail": "d", "verdict": verdict, "estimate": est, "ci": ci, "p": 0.01, "n": n,
            "strict": False, "kind": kind, "margin": 0.0, **extra}


def test_seed_aware_claims_restate_each_claim_over_the_seeds(tmp_path):
    runs = {
        0: [_claim("steady", 0.10, [0.05, 0.15], "holds"), _claim("lucky", 0.08, [0.02, 0.14], "holds"),
            _claim("timing", 3.0, [2.5, 3.5], "holds", n=6, measure="timing"),
            _claim("four classes", 0.5, [0.2, 0.5], "holds", n=4)],
        1: [_claim("steady", 0.12, [0.07, 0.17], "holds"), _claim("lucky", -0.06, [-0.12, 0.0], "not resolved"),
            _claim("timing", 1.0, [0.5, 1.5], "holds", n=6, measure="timing"),
            _claim("four classes", 0.5, [0.2, 0.5], "not resolved", n=4)],
        2: [_claim("steady", 0.11, [0.06, 0.16], "holds"), _claim("lucky", 0.01, [-0.05, 0.07], "not resolved"),
            _claim("timing", 1.0, [0.5, 1.5], "holds", n=6, measure="timing"),
            _claim("four classes", 0.5, [0.2, 0.5], "holds", n=4)],
    }
    dirs = []
    for seed, claims in runs.items():
        d = tmp_path / f"seed{seed}"
        (d / "metrics").mkdir(parents=True)
        (d / "metrics" / "claims.json").write_text(json.dumps(claims))
        dirs.append(d)
    seeds.seed_aware_claims(dirs, [0, 1, 2])
    out = {c["claim"]: c for c in json.loads((dirs[0] / "metrics" / "claims.json").read_text())}
    assert out["steady"]["verdict"] == "holds" and out["steady"]["seeds"] == 3
    assert out["steady"]["estimate"] == pytest.approx(0.11)
    assert out["lucky"]["verdict"] == "not resolved"  # held for seed 0 only: the reseed spread swallows it
    assert out["lucky"]["per_seed"]["verdicts"] == ["holds", "not resolved", "not resolved"]
    assert out["timing"]["seeds"] == 1 and out["timing"]["estimate"] == 3.0  # its own rule: the main run's record
    assert out["four classes"]["verdict"] == "not resolved"  # n = 4: one seed's exact test did not reach it
    kept = json.loads((dirs[0] / "metrics" / "claims_seed0.json").read_text())
    assert [c["estimate"] for c in kept] == [0.10, 0.08, 3.0, 0.5]


def test_a_seed_without_claims_is_named(tmp_path):
    (tmp_path / "a" / "metrics").mkdir(parents=True)
    (tmp_path / "a" / "metrics" / "claims.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="b/metrics/claims.json"):
        seeds.seed_aware_claims([tmp_path / "a", tmp_path / "b"], [0, 1])


def test_readme_sentence_names_the_claims_that_change_verdict_across_seeds():
    from htsc_core.report import claims_paragraph

    one = claims_paragraph([_claim("a", 0.1, [0.05, 0.15], "holds")])
    assert "one training seed" in one
    seeded = [{**_claim("steady", 0.1, [0.05, 0.15], "holds"), "seeds": 3,
               "per_seed": {"verdicts": ["holds"] * 3}},
              {**_claim("lucky", 0.01, [-0.1, 0.12], "not resolved"), "seeds": 3,
               "per_seed": {"verdicts": ["holds", "not resolved", "not resolved"]}},
              {**_claim("timing", 3.0, [2.5, 3.5], "holds"), "seeds": 1}]
    text = claims_paragraph(seeded)
    assert "2 claims cover 3 training seeds" in text and "1 (data checks, timings)" in text
    assert "lucky (holds, not resolved, not resolved)" in text and "steady (" not in text


def _run(root, name, precision, claims, seeds_=(0,)):
    d = root / name
    (d / "metrics").mkdir(parents=True)
    (d / "metrics" / "claims.json").write_text(json.dumps(claims))
    (d / "metrics" / "01_spatial.json").write_text(json.dumps({"meta": {"precision": precision, "cpu_model": "CPU",
                                                                         "bf16_native_cpu": precision == "bf16"}}))
    (d / "metrics" / "reproduce.json").write_text(json.dumps({"git_commit": "abc", "seeds": list(seeds_)}))
    return d


def test_other_precision_check_lists_the_verdicts_the_other_run_does_not_share(tmp_path):
    here = _run(tmp_path, "bf16", "bf16", [
        {**_claim("same", 0.10, [0.05, 0.15], "holds"), "seeds": 3},
        {**_claim("flips", 0.04, [-0.01, 0.09], "not resolved"), "seeds": 3},
        _claim("only here", 0.1, [0.0, 0.2], "holds")], seeds_=(0, 1, 2))
    there = _run(tmp_path, "fp32", "fp32", [
        _claim("same", 0.20, [0.15, 0.25], "holds"), _claim("flips", 0.07, [0.02, 0.12], "holds"),
        _claim("only there", 0.1, [0.0, 0.2], "holds")])
    out = json.loads(seeds.other_precision_check(here, there).read_text())
    rows = {r["claim"]: r for r in out["claims"]}
    assert rows["same"]["same_verdict"] and rows["same"]["other_inside"] is False  # 0.20 outside [0.05, 0.15]
    assert not rows["flips"]["same_verdict"] and rows["flips"]["other_inside"] is True
    assert out["summary"] == {"compared": 2, "same_verdict": 1, "differ": ["flips"],
                              "other_outside_interval": ["same"]}
    assert out["only_here"] == ["only here"] and out["only_there"] == ["only there"]
    assert out["this"]["precision"] == "bf16" and out["other"]["seeds"] == [0]
    from htsc_core.report import other_precision_sentence
    assert "1 of 2 claims keep their verdict; differ: flips." in other_precision_sentence(here)


def test_other_precision_check_refuses_a_run_in_the_same_precision(tmp_path):
    here = _run(tmp_path, "a", "bf16", [_claim("c", 0.1, [0.0, 0.2], "holds")])
    there = _run(tmp_path, "b", "bf16", [_claim("c", 0.1, [0.0, 0.2], "holds")])
    with pytest.raises(ValueError, match="ran in bf16 like"):
        seeds.other_precision_check(here, there)
    from htsc_core.cli import main
    assert main(["precision-check", "--results", str(here), "--other", str(there)]) == 2


def test_seed_table_has_each_value_once_not_its_interval_or_count(tmp_path):
    head = "method,appearance,appearance_ci_low,appearance_ci_high,appearance_n\n"
    dirs = []
    for k, value in enumerate((0.5, 0.7)):
        d = tmp_path / f"s{k}"
        (d / "tables").mkdir(parents=True)
        (d / "tables" / "per_family.csv").write_text(head + f"spatial,{value},0.4,0.8,120\n")
        dirs.append(d)
    rows = (dirs[0] / "tables" / "seeds.csv").read_text() if seeds.seeds_table(dirs) else ""
    assert rows.splitlines()[1:] == ["per_family,spatial,appearance,2,0.6000,0.1414,0.5000 0.7000"]


def test_results_header_counts_every_seeds_minutes(tmp_path):
    from htsc_core.report import run_minutes

    for k, sec in ((1, 1200.0), (2, 1320.0)):
        d = tmp_path / "seeds" / f"seed{k}" / "metrics"
        d.mkdir(parents=True)
        (d / "reproduce.json").write_text(json.dumps({"total_seconds": sec}))
    meta = {"total_seconds": 2400.0, "seeds": [0, 1, 2]}
    assert run_minutes(tmp_path, meta) == "40.0 min for seed 0, 40.0 + 20.0 + 22.0 = 82.0 min for the 3 seeds"
    assert run_minutes(tmp_path, {"total_seconds": 60.0, "seeds": [0]}) == "1.0 min in all"


def test_seed_table_has_motionnets_errors_not_its_timing(tmp_path):
    dirs = []
    for k, epe in enumerate((0.40, 0.44)):
        d = tmp_path / f"s{k}"
        (d / "tables").mkdir(parents=True)
        (d / "tables" / "flow.csv").write_text("method,epe,epe_background,ms_per_pair\n"
                                               f"motionnet,{epe},0.3,1.5\n")
        dirs.append(d)
    rows = seeds.seeds_table(dirs).read_text().splitlines()[1:]
    assert rows == ["flow,motionnet,epe,2,0.4200,0.0283,0.4000 0.4400",
                    "flow,motionnet,epe_background,2,0.3000,0.0000,0.3000 0.3000"]


T4 = "method,ours,ci_low,ci_high,n_test,paper_ucf101,paper_hmdb51,paper_thumos14\n"


def _three_seed_tables(tmp_path):
    """Three seeds' one-model Table 4, per-family table and AWL weights, as notebooks 05-06 write them."""
    dirs = [tmp_path / "main"] + [tmp_path / "main" / "seeds" / f"seed{k}" for k in (1, 2)]
    fam = "method,interval,seeds,appearance,appearance_ci_low,appearance_ci_high,appearance_n\n"
    for d, (hts, lo, hi), app in zip(dirs, ((0.60, 0.55, 0.65), (0.70, 0.65, 0.75), (0.65, 0.60, 0.70)),
                                     (0.99, 0.98, 1.0)):
        (d / "tables").mkdir(parents=True)
        (d / "metrics").mkdir(parents=True)
        (d / "figures").mkdir(parents=True)
        (d / "tables" / "table4.csv").write_text(T4 + f"hts,{hts},{lo},{hi},360,0.903,0.605,0.746\n"
                                                 "mvsv,,,,360,0.835,0.559,\n")
        high = min(app + 0.01, 1.0)
        (d / "tables" / "per_family.csv").write_text(fam + f"spatial,wilson,1,{app},{app - 0.04},{high},120\n")
        rows = ([{"class": f"m{i}", "family": "motion", "w_temporal": 1.0, "w_spatial": 0.0} for i in range(4)]
                + [{"class": f"a{i}", "family": "appearance", "w_temporal": 0.0, "w_spatial": 1.0} for i in range(4)])
        (d / "metrics" / "05_awl.json").write_text(json.dumps({"metrics": {"rows": rows}}))
        (d / "metrics" / "claims.json").write_text(json.dumps([
            _claim("HTS above spatial", 0.2, [0.1, 0.3], "holds"),
            _claim("AWL gives the motion classes to the temporal stream", 0.5, [0.2, 0.5], "not resolved", n=4,
                   reference=0.5, interval="clopper-pearson"),
            _claim("AWL gives the appearance classes to the spatial stream", 0.5, [0.2, 0.5], "not resolved", n=4,
                   reference=0.5, interval="clopper-pearson")]))
    return dirs


def test_tables_over_the_seeds_carry_the_mean_the_seed_aware_interval_and_each_seed(tmp_path):
    import csv

    dirs = _three_seed_tables(tmp_path)
    seeds.seed_aware_tables(dirs, [0, 1, 2])
    with open(dirs[0] / "tables" / "table4.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    hts = rows["hts"]
    m, lo, hi, _ = replicates.seed_aware_interval([0.60, 0.70, 0.65], [0.05] * 3)  # the claims' interval
    assert float(hts["ours"]) == pytest.approx(0.65, abs=1e-4)  # hand: (0.60 + 0.70 + 0.65) / 3
    assert (float(hts["ci_low"]), float(hts["ci_high"])) == pytest.approx((lo, hi), abs=1e-4)
    assert hts["interval"] == "seed-aware" and hts["seeds"] == "3"
    assert [hts[f"ours_seed{k}"] for k in (0, 1, 2)] == ["0.6000", "0.7000", "0.6500"]
    assert rows["mvsv"]["ours"] == "" and rows["mvsv"]["paper_ucf101"] == "0.835"
    with open(dirs[0] / "tables" / "per_family.csv") as fh:
        spatial = next(csv.DictReader(fh))
    assert float(spatial["appearance"]) == pytest.approx(0.99, abs=1e-4) and float(spatial["appearance_ci_high"]) <= 1
    assert spatial["appearance_seed2"] == "1.0000" and spatial["appearance_n"] == "120"
    assert (dirs[0] / "figures" / "06_table4.png").stat().st_size > 0
    # the main seed's own table stays beside it, and a second pass reads it from there: same output
    assert "0.6,0.55,0.65" in (dirs[0] / "tables" / "table4_seed0.csv").read_text()
    first = (dirs[0] / "tables" / "table4.csv").read_text()
    seeds.seed_aware_tables(dirs, [0, 1, 2])
    assert (dirs[0] / "tables" / "table4.csv").read_text() == first
    assert seeds.seeds_table(dirs, [0, 1, 2]).read_text().splitlines()[1].endswith("0.6000 0.7000 0.6500")


def test_the_awl_assignment_claim_replaces_the_two_four_class_claims_in_every_seed(tmp_path):
    from htsc_core.analysis import AWL_ASSIGNMENT

    dirs = _three_seed_tables(tmp_path)
    for _ in range(2):  # a second pass restates from claims_seed0.json, not from the seed-aware claims.json
        seeds.seed_aware_claims(dirs, [0, 1, 2])
        out = json.loads((dirs[0] / "metrics" / "claims.json").read_text())
        assert [c["claim"] for c in out] == ["HTS above spatial", AWL_ASSIGNMENT]
        awl = out[1]
        assert awl["verdict"] == "holds" and awl["seeds"] == 3 and awl["per_seed"]["verdicts"] == ["holds"] * 3
        assert awl["p"] == pytest.approx(1 / 70) and awl["undecidable"] is False
        assert out[0]["estimate"] == pytest.approx(0.2) and out[0]["per_seed"]["estimates"] == [0.2] * 3
    extra = json.loads((dirs[1] / "metrics" / "claims.json").read_text())
    assert [c["claim"] for c in extra] == ["HTS above spatial", AWL_ASSIGNMENT]


def test_readme_section_leads_with_the_verdicts_and_links_the_seed_table(tmp_path):
    from htsc_core.report import results_markdown

    dirs = _three_seed_tables(tmp_path)
    seeds.seeds_table(dirs, [0, 1, 2])
    seeds.seed_aware_claims(dirs, [0, 1, 2])
    seeds.seed_aware_tables(dirs, [0, 1, 2])
    text = results_markdown(dirs[0])
    lines = text.splitlines()
    assert lines[2].startswith("**Verdicts**") and lines[4] == "| claim | verdict | estimate | 95% interval | seeds |"
    claim_rows = [line for line in lines[6:] if line.startswith("| ")][:2]
    assert claim_rows[0].startswith("| HTS above spatial | **holds** | +0.200 | [") and claim_rows[0].endswith("| 3 |")
    assert claim_rows[1].startswith("| AWL weights the temporal stream") and claim_rows[1].endswith("| 3 |")
    assert "mean over 3 training seeds" in text and "`tables/seeds.csv`" in text
    assert "0.6000 0.7000 0.6500" not in text  # seeds.csv is linked, not printed
    assert "appearance_seed0" not in text and "appearance_n" not in text  # per-family: values and intervals
    assert "Every claim's design can decide it" in text
