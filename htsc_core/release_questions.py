"""The paper's fusion questions asked of every release of per-video scores, per dataset and split.

Two releases replace TV-L1 flow by a learned, cheap motion input and publish, on the same test videos,
an RGB stream, a TV-L1 stream and the learned-motion stream: Hidden Two-Stream (UCF101 split 1;
:mod:`htsc_core.release_data`) and DMC-Net (UCF101 and HMDB51, splits 1-3; :mod:`htsc_core.release_dmc`).
On each release, dataset and split (:data:`QUESTIONS`):

(a) RGB + learned motion above RGB + TV-L1, the paper's "HTS above two-stream" (Table 3), at the HTS
    protocol's 1:1.5 late fusion (``fusion.TEMPORAL_WEIGHT``) and at equal weights;
(b) AWL (Eq. 10-15), cross-fitted as notebook 09 does (:func:`htsc_core.release_fit.cross_fit`: fitted
    on all but one group, scored on that group, for every group), above the 1:1.5 and the equal fusion,
    for RGB + learned motion and for RGB + TV-L1 (Table 4's "+ AWL" row);

each a paired comparison on the same videos (paired bootstrap interval, exact McNemar test, verdict from
the interval: ``stats.compare_accuracy``). (c) Across a dataset's three splits, one verdict per question
(``replicates.compare_accuracy_pooled``): the estimate is the mean over splits of the per-split difference
(what papers report as "mean over three splits"), its interval a bootstrap over the test videos of all
three splits (a video tested in two HMDB51 splits is drawn in both at once), the p-value the exact
McNemar test on the discordant videos of all three splits together; the verdict comes from the interval,
as every other verdict of the study. The Hidden Two-Stream release's questions are claims of
:func:`htsc_core.release.fusion_study` (tagged with the same question keys).

Scores: DMC-Net releases logits averaged over test crops; they are fused as softmax probabilities (the
paper's Eq. 14 fuses "the SoftMax layer output", and AWL's LP needs scores in [0, 1]). DMC-Net's own
``combine.py`` adds raw logits with weights; its numbers are not the ones asked here.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from htsc_core import fusion, metrics, paper, replicates, stats
from htsc_core.release_data import ROOT, ReleaseScores, convert
from htsc_core.release_dmc import DATASETS, SOURCE, SPLITS, STREAMS
from htsc_core.release_fit import cross_fit
from htsc_core.utils import atomic_write_json, atomic_write_text, run_metadata

_W = f"{fusion.TEMPORAL_WEIGHT:g}"
# key -> (the question, method A, method B); methods: <motion>_<rule>, motion "learned" or "tvl1"
QUESTIONS = {
    "learned_vs_tvl1_w15": (f"RGB + learned motion above RGB + TV-L1, 1:{_W} fusion (HTS vs two-stream)",
                            "learned_w15", "tvl1_w15"),
    "learned_vs_tvl1_equal": ("RGB + learned motion above RGB + TV-L1, equal weights", "learned_equal",
                              "tvl1_equal"),
    "awl_learned_w15": (f"AWL (cross-fitted) above the 1:{_W} fusion, RGB + learned motion", "learned_awl",
                        "learned_w15"),
    "awl_learned_equal": ("AWL (cross-fitted) above equal fusion, RGB + learned motion", "learned_awl",
                          "learned_equal"),
    "awl_tvl1_w15": (f"AWL (cross-fitted) above the 1:{_W} fusion, RGB + TV-L1", "tvl1_awl", "tvl1_w15"),
    "awl_tvl1_equal": ("AWL (cross-fitted) above equal fusion, RGB + TV-L1", "tvl1_awl", "tvl1_equal"),
}
RELEASES = {"hts_release": "Hidden Two-Stream", "dmc_net": "DMC-Net"}
DATASET_NAMES = {"ucf101": "UCF101", "hmdb51": "HMDB51"}
POOLED = "1-3"  # the split field of an across-splits record
CONVENTION = "softmax"
METHODS = ("rgb", "tvl1", "learned", "learned_w15", "learned_equal", "learned_awl", "tvl1_w15", "tvl1_equal",
           "tvl1_awl")


def _correct(fused: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return fused.argmax(axis=1) == labels


def split_study(rel: ReleaseScores, dataset: str, split: int, n_boot: int = 2000, seed: int = 0,
                c: float = 5e-3) -> dict:
    """Every method of :data:`METHODS` on one DMC-Net dataset and split (softmax scores), and the claims of
    :data:`QUESTIONS`. Returns {"rows", "correct" (method -> (n,) bool), "claims", "awl"}."""
    role = {r: convert(rel.scores[s], CONVENTION) for s, r in STREAMS.items()}
    m = rel.num_classes
    fused = {k: role[k] for k in ("rgb", "tvl1", "learned")}
    awl = {}
    for motion in ("learned", "tvl1"):
        a, b = role["rgb"], role[motion]
        fused[f"{motion}_w15"] = fusion.hts_fusion(a, b)
        fused[f"{motion}_equal"] = fusion.equal_fusion(a, b)
        fused[f"{motion}_awl"], folds = cross_fit(
            rel.groups, lambda tr, a=a, b=b: fusion.fit_awl(a[tr], b[tr], rel.labels[tr], c=c),
            lambda W, te, a=a, b=b: fusion.awl_scores(W, a[te], b[te]), m)
        awl[f"{motion}_awl"] = {f["group"]: {"n_test": f["n_test"], "rgb_classes": int(np.sum(f["params"][:, 0] > 0.5)),
                                             "motion_classes": int(np.sum(f["params"][:, 0] < 0.5)),
                                             "tied": int(np.sum(f["params"][:, 0] == 0.5))} for f in folds}
    correct = {k: _correct(v, rel.labels) for k, v in fused.items()}
    rows = []
    for k in METHODS:
        hits, n = int(correct[k].sum()), rel.n
        lo, hi = stats.wilson_interval(hits, n)
        rows.append({"dataset": dataset, "split": split, "method": k, "top1": hits / n, "ci_low": lo, "ci_high": hi,
                     "mean_class_acc": metrics.mean_class_accuracy(fused[k], rel.labels, m), "n": n,
                     "fit": "leave-one-group-out" if k.endswith("_awl") else "none", "convention": CONVENTION})
    claims = [question_claim("dmc_net", dataset, split, key, correct[a], correct[b], n_boot, seed)
              for key, (_, a, b) in QUESTIONS.items()]
    return {"rows": rows, "correct": correct, "claims": claims, "awl": awl, "video_ids": list(rel.video_ids)}


def claim_name(release: str, dataset: str, split: int | str, key: str) -> str:
    where = f"splits {split} pooled" if split == POOLED else f"split {split}"
    return f"{RELEASES[release]} release, {DATASET_NAMES[dataset]} {where}: {QUESTIONS[key][0]}"


def question_claim(release: str, dataset: str, split: int, key: str, correct_a, correct_b, n_boot: int,
                   seed: int) -> dict:
    """The paired claim of question ``key`` on one split (``stats.compare_accuracy``), tagged."""
    _, a, b = QUESTIONS[key]
    rec = stats.compare_accuracy(correct_a, correct_b, kind="greater", claim=claim_name(release, dataset, split, key),
                                 n_boot=n_boot, seed=seed)
    lo, hi = rec["ci"]
    rec["detail"] = (f"top-1 {a} {rec['accuracy_a']:.4f} vs {b} {rec['accuracy_b']:.4f}: difference "
                     f"{rec['estimate']:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}] (paired bootstrap over {rec['n']} "
                     f"videos), exact McNemar p = {rec['p']:.3g}")
    return {**rec, "a": a, "b": b, "source": release, "dataset": dataset, "split": split, "question": key}


def pooled_claims(release: str, dataset: str, per_split: Mapping[int, Mapping[str, Any]], n_boot: int,
                  seed: int) -> list[dict]:
    """(c): one claim per question over the splits of ``per_split`` (split -> :func:`split_study` result)."""
    splits = sorted(per_split)
    out = []
    for key, (_, a, b) in QUESTIONS.items():
        rec = replicates.compare_accuracy_pooled([per_split[s]["correct"][a] for s in splits],
                                            [per_split[s]["correct"][b] for s in splits],
                                            [per_split[s]["video_ids"] for s in splits], kind="greater",
                                            claim=claim_name(release, dataset, POOLED, key), n_boot=n_boot, seed=seed)
        lo, hi = rec["ci"]
        verdicts = [c["verdict"] for s in splits for c in per_split[s]["claims"] if c["question"] == key]
        rec["detail"] = (f"mean over splits {', '.join(map(str, splits))} of top-1 {a} - {b}: "
                         f"{rec['estimate']:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}] (bootstrap over the "
                         f"{rec['n_unique']} distinct test videos of the splits), exact McNemar on the "
                         f"discordant videos of all splits p = {rec['p']:.3g}; per split "
                         + ", ".join(f"{d:+.4f} ({v})" for d, v in zip(rec["per_stratum"], verdicts)))
        out.append({**rec, "a": a, "b": b, "source": release, "dataset": dataset, "split": POOLED,
                    "question": key, "splits": splits, "per_split_verdicts": verdicts})
    return out


def dmc_study(data: Mapping[tuple[str, int], ReleaseScores], n_boot: int = 2000, seed: int = 0,
              c: float = 5e-3) -> dict:
    """Every dataset and split of the DMC-Net release (``release_dmc.load_all()``): rows, per-split claims,
    then the across-splits claims of each dataset. Returns {"rows", "claims", "awl", "checksums", "folds"}."""
    per: dict[str, dict[int, dict]] = {}
    rows, claims, awl, sums, folds = [], [], {}, {}, {}
    for (dataset, split), rel in data.items():
        res = split_study(rel, dataset, split, n_boot=n_boot, seed=seed, c=c)
        per.setdefault(dataset, {})[split] = res
        rows += res["rows"]
        claims += res["claims"]
        awl[f"{dataset}_split{split}"] = res["awl"]
        sums.update(rel.checksums)
        names, counts = np.unique(rel.groups, return_counts=True)
        folds[f"{dataset}_split{split}"] = dict(zip(names.tolist(), counts.tolist()))
    for dataset, splits in per.items():
        if len(splits) > 1:
            claims += pooled_claims("dmc_net", dataset, splits, n_boot, seed)
    return {"rows": rows, "claims": claims, "awl": awl, "checksums": sums, "folds": folds,
            "n_boot": n_boot, "seed": seed, "c": c}


# ---- what the notebook, the README and the figure show


def columns(claims: Iterable[Mapping]) -> list[tuple[str, str, int | str]]:
    """(release, dataset, split) of every question claim, in the order: release, dataset, splits, pooled."""
    keys = {(c["source"], c["dataset"], c["split"]) for c in claims if c.get("question")}
    order = {r: i for i, r in enumerate(RELEASES)}
    dorder = {d: i for i, d in enumerate(DATASETS)}
    return sorted(keys, key=lambda k: (order[k[0]], dorder[k[1]], str(k[2]) == POOLED, str(k[2])))


def column_label(col: tuple[str, str, int | str]) -> str:
    release, dataset, split = col
    where = "pooled" if split == POOLED else f"s{split}"
    return f"{'HTS' if release == 'hts_release' else 'DMC'} {DATASET_NAMES[dataset]} {where}"


def verdict_table(claims: Sequence[Mapping]) -> tuple[list[str], list[dict]]:
    """One row per question, one column per (release, dataset, split): "verdict (+0.012)". Returns
    (columns, rows), the first column "question"."""
    cols = columns(claims)
    by = {(c["source"], c["dataset"], c["split"], c["question"]): c for c in claims if c.get("question")}
    header = ["question"] + [column_label(k) for k in cols]
    rows = []
    for key, (text, _, _) in QUESTIONS.items():
        row = {"question": text}
        for col, label in zip(cols, header[1:]):
            rec = by.get((*col, key))
            row[label] = "" if rec is None else f"{rec['verdict']} ({rec['estimate']:+.3f})"
        rows.append(row)
    return header, rows


def figure_inputs(claims: Sequence[Mapping]) -> list[dict]:
    """What ``plots.release_questions`` draws: per question, its claims' difference and interval per column."""
    cols = columns(claims)
    by = {(c["source"], c["dataset"], c["split"], c["question"]): c for c in claims if c.get("question")}
    panels = []
    for key, (text, _, _) in QUESTIONS.items():
        entries = [{"label": column_label(col), "estimate": by[(*col, key)]["estimate"],
                    "ci": by[(*col, key)]["ci"], "verdict": by[(*col, key)]["verdict"], "pooled": col[2] == POOLED}
                   for col in cols if (*col, key) in by]
        panels.append({"title": text, "entries": entries})
    return panels


def conclusion(claims: Sequence[Mapping]) -> str:
    """Markdown, one sentence per question: on which release, dataset and split it holds, is reversed, or is
    not resolved, and the pooled verdict of each dataset (built from the records, never typed ahead)."""
    cols = columns(claims)
    by = {(c["source"], c["dataset"], c["split"], c["question"]): c for c in claims if c.get("question")}
    lines = []
    for key, (text, _, _) in QUESTIONS.items():
        parts = []
        for verdict in stats.VERDICTS:
            where = [f"{column_label(col)} {by[(*col, key)]['estimate']:+.3f}" for col in cols
                     if (*col, key) in by and by[(*col, key)]["verdict"] == verdict]
            if where:
                parts.append(f"{verdict} on {', '.join(where)}")
        lines.append(f"- {text}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def synthetic_counterpart(claim: str, path: str | Path | None = None) -> dict | None:
    """The synthetic study's record of ``claim`` (``results/synthetic/metrics/claims.json``), or None."""
    path = Path(path) if path is not None else ROOT / "results" / "synthetic" / "metrics" / "claims.json"
    if not path.exists():
        return None
    return next((c for c in json.loads(path.read_text()) if c.get("claim") == claim), None)


# Table 3 / Table 4 rows of the released streams beside the paper's (method, paper table row, what is fused)
TABLE34 = (
    ("spatial", "spatial", "rgb"),
    ("hidden temporal (learned motion)", "hidden_temporal", "learned"),
    ("TV-L1 temporal", None, "tvl1"),
    (f"HTS (RGB + {_W} learned motion)", "hts", "learned_w15"),
    (f"two-stream (RGB + {_W} TV-L1)", "two_stream", "tvl1_w15"),
    ("HTS + AWL, no CLN (cross-fitted)", None, "learned_awl"),
    ("two-stream + AWL (cross-fitted)", None, "tvl1_awl"),
)
# the Hidden Two-Stream release's rows (release.fusion_study, release convention) for the same methods
HTS_METHODS = {"rgb": "spatial", "learned": "hidden_temporal", "tvl1": "tvl1_temporal", "learned_w15": "hts",
               "tvl1_w15": "two_stream", "learned_awl": "awl", "tvl1_awl": "awl_tvl1", "learned_equal": "equal",
               "tvl1_equal": "equal_tvl1"}
TABLE34_COLUMNS = ("source", "dataset", "method", "paper", "split1", "split2", "split3", "mean_3_splits")


def table34_rows(dmc: Mapping[str, Any], hts: Mapping[str, Any] | None = None) -> list[dict]:
    """Table 3 / 4 style rows of the released streams (top-1 per split and their mean), each beside the
    paper's value for that dataset (its Table 4, or Table 3 for two-stream, whose 0.880 / 0.594 are
    Simonyan and Zisserman's 2014 two-stream); ``source`` says whose scores they are: released, not ours."""
    col = {"ucf101": 0, "hmdb51": 1}
    out = []
    by = {(r["dataset"], r["split"], r["method"]): r for r in dmc["rows"]}
    hts_rows = {r["method"]: r for r in hts["rows"]} if hts else {}
    for dataset in DATASETS:
        for name, paper_row, method in TABLE34:
            ref = (paper.TABLE4.get(paper_row) or paper.TABLE3.get(paper_row)) if paper_row else None
            base = {"dataset": DATASET_NAMES[dataset], "method": name,
                    "paper": "" if ref is None or ref[col[dataset]] is None else f"{ref[col[dataset]]:.3f}"}
            if dataset == "ucf101" and hts_rows:
                r = hts_rows[HTS_METHODS[method]]
                out.append({"source": "released scores: Hidden Two-Stream", **base, "split1": f"{r['top1']:.4f}",
                            "split2": "", "split3": "", "mean_3_splits": ""})
            vals = [by[(dataset, s, method)]["top1"] for s in SPLITS if (dataset, s, method) in by]
            if vals:
                cells = {f"split{s}": f"{by[(dataset, s, method)]['top1']:.4f}" for s in SPLITS
                         if (dataset, s, method) in by}
                out.append({"source": "released scores: DMC-Net", **base, "split1": "", "split2": "", "split3": "",
                            **cells, "mean_3_splits": f"{np.mean(vals):.4f}" if len(vals) == len(SPLITS) else ""})
    return out


ROW_COLUMNS = ("dataset", "split", "method", "top1", "ci_low", "ci_high", "mean_class_acc", "n", "fit", "convention")


def _csv(rows: Sequence[Mapping], cols: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_results(results_dir: str | Path, dmc: Mapping[str, Any], hts: Mapping[str, Any] | None = None) -> dict:
    """``tables/dmc_fusion.csv`` (every method, dataset and split), ``tables/released_table34.csv`` (Table 3 / 4
    style rows of both releases) and ``metrics/dmc_net.json`` (AWL's stream per class per fold, the
    cross-fitting folds, source, checksums, run metadata). The claims go to ``metrics/claims.json`` with
    the Hidden Two-Stream release's (``release.write_results``)."""
    results_dir = Path(results_dir)
    paths = {"dmc_fusion": atomic_write_text(results_dir / "tables" / "dmc_fusion.csv", _csv(dmc["rows"], ROW_COLUMNS)),
             "table34": atomic_write_text(results_dir / "tables" / "released_table34.csv",
                                          _csv(table34_rows(dmc, hts), TABLE34_COLUMNS))}
    details = {k: dmc[k] for k in ("awl", "folds", "n_boot", "seed", "c")}
    details.update(source=SOURCE, convention=CONVENTION, checksums=dict(dmc["checksums"]), meta=run_metadata())
    paths["details"] = atomic_write_json(results_dir / "metrics" / "dmc_net.json", details)
    return paths


def figure_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "figures" / "09_release_questions.png"
