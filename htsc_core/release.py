"""Real UCF101 evidence: the fusion half of Table 4 on the Hidden Two-Stream release's per-video scores.

The Hidden Two-Stream release (Zhu et al. 2018; GitHub bryanyzhu/Hidden-Two-Stream, folder
``test/``, commit f7f684a, BSD 2-clause) publishes the UCF101 split-1 test scores of its three
streams, 3783 videos x 101 classes each: spatial VGG16, the hidden temporal stream (MotionNet +
VGG16, the network HTSC builds on) and a TV-L1 temporal stream. They are vendored in
``data/external/hts_release_ucf101_split1/`` and verified against ``SHA256SUMS`` on every load.

What notebook 09 does with them, every name importable from here (loading and parity live in
:mod:`htsc_core.release_data`, fitting in :mod:`htsc_core.release_fit`, the study in this module):

- ``load_release``: the three score matrices, labels from ``testlist01.txt`` (class of row i =
  its folder, class index = order of first appearance = classInd order), UCF101 groups g01..g07.
- ``convert``: the release's score convention (``test/late_fusion.m``: clip negatives to 0,
  normalise each row to sum 1) or softmax.
- ``parity``: our fusion code (``htsc_core.fusion``) reproduces the release's five published
  accuracies (a strict, arithmetic check).
- ``cross_fit``: AWL (Eq. 10-15) needs held-out scores to fit on, and the release has test scores
  only, so AWL is cross-fitted: for each test group g, fit on the other six groups and score g.
  UCF101 groups hold clips cut from the same long video, so leaving whole groups out keeps the
  fit and the scored videos apart, as the paper's train/test split does.
- ``fit_class_weights_grid`` (beyond the paper): a per-class weight that may take interior
  values, chosen on a grid by accuracy on the fitting folds.
- ``fusion_study``: every row of ``tables/fusion.csv`` with intervals and the paired comparisons
  (``htsc_core.stats``) that decide the claims; ``write_results`` writes them.

Intervals of cross-fitted rows are over test videos with the fitted weights held fixed; they do
not include the variation of the weights themselves.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np

from htsc_core import fusion, paper, stats
from htsc_core.release_data import (CHECKSUMS, CONVENTIONS, FILES, PAIRS, PUBLISHED, RELEASE_DIR, ROOT, SOURCE,
                                    TESTLIST, ReleaseDataError, ReleaseScores, convert, load_release, parity,
                                    parse_testlist, verify_checksums)
from htsc_core.release_fit import WEIGHT_GRID, _weights_fused, cross_fit, fit_class_weights_grid, fit_global_weight
from htsc_core.utils import atomic_write_json, atomic_write_text, run_metadata

__all__ = [  # the study's names and those of its parts (release_data: loading, release_fit: fitting)
    "CHECKSUMS", "CLAIMS", "COLUMNS", "CONVENTIONS", "FIGURE_ROWS", "FILES", "PAIRS", "PUBLISHED", "RELEASE_DIR",
    "ROOT", "SOURCE", "TESTLIST", "WEIGHT_GRID", "ReleaseDataError", "ReleaseScores", "conclusion", "convert",
    "cross_fit", "figure_inputs", "figure_path", "fit_class_weights_grid", "fit_global_weight", "fusion_study",
    "load_release", "parity", "parse_testlist", "table_rows", "verify_checksums", "write_results",
]


def _mca(pred, labels, num_classes: int) -> float:
    """Mean class accuracy from predictions (as ``metrics.mean_class_accuracy``; fast for the bootstrap)."""
    support = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=(pred == labels).astype(np.float64), minlength=num_classes)
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def _row(method: str, fused: np.ndarray, rel: ReleaseScores, n_boot: int, seed: int, **info) -> dict:
    pred = fused.argmax(axis=1)
    correct = pred == rel.labels
    k, n = int(correct.sum()), rel.n
    lo, hi = stats.wilson_interval(k, n)
    m = rel.num_classes
    mca, mca_lo, mca_hi = stats.bootstrap_ci(lambda p, y: _mca(p, y, m), pred, rel.labels, n_boot=n_boot, seed=seed)
    return {"method": method, "top1": k / n, "ci_low": lo, "ci_high": hi, "mean_class_acc": mca, "n": n,
            "mca_ci_low": mca_lo, "mca_ci_high": mca_hi, **info, "_correct": correct}


def _stream_picks(w: np.ndarray) -> dict[str, int]:
    """How many classes give (almost) all weight to the first stream, to the second, or split it."""
    w1 = np.asarray(w)[:, 0] if np.ndim(w) == 2 else np.asarray(w)
    return {"first": int(np.sum(w1 > 1 - 1e-3)), "second": int(np.sum(w1 < 1e-3)),
            "mixed": int(np.sum((w1 >= 1e-3) & (w1 <= 1 - 1e-3)))}


def fusion_study(rel: ReleaseScores, n_boot: int = 2000, seed: int = 0, c: float = 5e-3,
                 grid: Sequence[float] = WEIGHT_GRID) -> dict:
    """Every fusion row (both conventions, three stream pairs) with intervals, AWL and grid weights
    cross-fitted over the groups, and the paired comparisons that decide the claims.

    Returns {"rows": [...], "claims": [...], "awl": {...}, "class_weights": {...}, "parity": [...]}.
    Row ``info`` columns: streams, convention, fit ("none" or "leave-one-group-out"), beyond_paper.
    """
    rows: list[dict] = []
    awl_info: dict[str, Any] = {}
    grid_info: dict[str, Any] = {}
    for stream in FILES:
        rows.append(_row(stream, convert(rel.scores[stream]), rel, n_boot, seed, streams=stream,
                         convention="release", fit="none", beyond_paper=False))
    for conv in CONVENTIONS:
        sfx = "" if conv == "release" else "_softmax"
        for pair_sfx, first, second, baseline in PAIRS:
            a, b = convert(rel.scores[first], conv), convert(rel.scores[second], conv)
            info = dict(streams=f"{first} + {second}", convention=conv)
            if baseline:
                rows.append(_row(baseline + sfx, fusion.hts_fusion(a, b), rel, n_boot, seed, **info,
                                 fit="none", beyond_paper=False))
            rows.append(_row(f"equal{pair_sfx}{sfx}", fusion.equal_fusion(a, b), rel, n_boot, seed, **info,
                             fit="none", beyond_paper=False))
            fused, folds = cross_fit(rel.groups, lambda tr, a=a, b=b: fusion.fit_awl(a[tr], b[tr], rel.labels[tr], c=c),
                                     lambda W, te, a=a, b=b: fusion.awl_scores(W, a[te], b[te]), rel.num_classes)
            name = f"awl{pair_sfx}{sfx}"
            rows.append(_row(name, fused, rel, n_boot, seed, **info, fit="leave-one-group-out", beyond_paper=False))
            awl_info[name] = {"streams": [first, second], "convention": conv,
                              "picks_per_fold": {f["group"]: _stream_picks(f["params"]) for f in folds},
                              "w_first_per_fold": {f["group"]: f["params"][:, 0].tolist() for f in folds},
                              "train_groups": {f["group"]: f["train_groups"] for f in folds}}
            fused, folds = cross_fit(rel.groups,
                                     lambda tr, a=a, b=b: fit_global_weight(a[tr], b[tr], rel.labels[tr], grid),
                                     lambda w, te, a=a, b=b: _weights_fused(w, a[te], b[te]), rel.num_classes)
            rows.append(_row(f"global_weight{pair_sfx}{sfx}", fused, rel, n_boot, seed, **info,
                             fit="leave-one-group-out", beyond_paper=True))
            grid_info[f"global_weight{pair_sfx}{sfx}"] = {f["group"]: f["params"] for f in folds}
            fused, folds = cross_fit(rel.groups,
                                     lambda tr, a=a, b=b: fit_class_weights_grid(a[tr], b[tr], rel.labels[tr], grid),
                                     lambda w, te, a=a, b=b: _weights_fused(w, a[te], b[te]), rel.num_classes)
            name = f"class_weights{pair_sfx}{sfx}"
            rows.append(_row(name, fused, rel, n_boot, seed, **info, fit="leave-one-group-out", beyond_paper=True))
            grid_info[name] = {"streams": [first, second], "convention": conv,
                               "picks_per_fold": {f["group"]: _stream_picks(f["params"]) for f in folds},
                               "w_first_per_fold": {f["group"]: f["params"].tolist() for f in folds}}
    claims = _claims({r["method"]: r for r in rows}, n_boot, seed)
    return {"rows": rows, "claims": claims, "awl": awl_info, "class_weights": grid_info, "parity": parity(rel),
            "checksums": dict(rel.checksums), "n_boot": n_boot, "seed": seed, "c": c, "grid": [float(g) for g in grid]}


# (claim, A, B, kind, question): every comparison is paired on the same 3783 videos; ``question`` is the key of
# the same question asked of every release (release_questions.QUESTIONS), None for this release's own
_W = f"{fusion.TEMPORAL_WEIGHT:g}"  # the 1.5 of the HTS protocol's late fusion
CLAIMS = (
    (f"AWL (cross-fitted) above the 1:{_W} fusion, spatial + hidden temporal", "awl", "hts", "greater",
     "awl_learned_w15"),
    ("AWL (cross-fitted) above equal fusion, spatial + hidden temporal", "awl", "equal", "greater",
     "awl_learned_equal"),
    (f"AWL (cross-fitted) above the 1:{_W} fusion, spatial + hidden temporal, softmax scores",
     "awl_softmax", "hts_softmax", "greater", None),
    (f"AWL (cross-fitted) above the 1:{_W} fusion, spatial + TV-L1 temporal", "awl_tvl1", "two_stream", "greater",
     "awl_tvl1_w15"),
    ("AWL (cross-fitted) above equal fusion, spatial + TV-L1 temporal", "awl_tvl1", "equal_tvl1", "greater",
     "awl_tvl1_equal"),
    (f"HTS (spatial + {_W} hidden temporal) above two-stream (spatial + {_W} TV-L1 temporal)", "hts", "two_stream",
     "greater", "learned_vs_tvl1_w15"),
    ("Equal fusion: spatial + hidden temporal above spatial + TV-L1 temporal", "equal", "equal_tvl1", "greater",
     "learned_vs_tvl1_equal"),
    ("AWL (cross-fitted) above equal fusion, hidden + TV-L1 temporal", "awl_hidden_tvl1", "equal_hidden_tvl1",
     "greater", None),
    (f"Late fusion (spatial + {_W} hidden) above the hidden temporal stream alone", "hts", "hidden_temporal",
     "greater", None),
    (f"Beyond the paper: per-class grid weights (cross-fitted) above the 1:{_W} fusion, spatial + hidden temporal",
     "class_weights", "hts", "greater", None),
    ("Beyond the paper: per-class grid weights above one cross-fitted global weight, spatial + hidden temporal",
     "class_weights", "global_weight", "greater", None),
)
# The paper's numbers beside a claim. Its Table 3 "two-stream" (UCF101 0.880, HMDB51 0.594) is Simonyan and
# Zisserman's 2014 two-stream network (SVM fusion of two CNN-M streams), not this release's spatial + 1.5 TV-L1
# fusion of two VGG16 streams, which is the two-stream the release compares HTS with.
PAPER = {("hts", "two_stream"): f"Table 3: HTS vs two-stream, {paper.versus('hts', 'two_stream')}; the paper's "
                                "two-stream 0.880 (UCF101) is the 2014 two-stream of Simonyan and Zisserman, not "
                                f"this spatial + {_W} TV-L1 fusion"}


def _claims(by_name: Mapping[str, dict], n_boot: int, seed: int) -> list[dict]:
    out = []
    for claim, a, b, kind, question in CLAIMS:
        rec = stats.compare_accuracy(by_name[a]["_correct"], by_name[b]["_correct"], kind=kind, claim=claim,
                                     n_boot=n_boot, seed=seed)
        lo, hi = rec["ci"]
        rec["detail"] = (f"top-1 {a} {rec['accuracy_a']:.4f} vs {b} {rec['accuracy_b']:.4f}: difference "
                         f"{rec['estimate']:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}] (paired bootstrap over "
                         f"{rec['n']} videos), McNemar p = {rec['p']:.3g}")
        tags = {"dataset": "ucf101", "split": 1, "question": question} if question else {}
        if (a, b) in PAPER:
            tags["paper"] = PAPER[(a, b)]
        out.append({**rec, "a": a, "b": b, "source": "hts_release", **tags})
    return out


COLUMNS = ("method", "top1", "ci_low", "ci_high", "mean_class_acc", "n", "mca_ci_low", "mca_ci_high",
           "streams", "convention", "fit", "beyond_paper")


def table_rows(study: Mapping[str, Any]) -> list[dict]:
    """The rows of fusion.csv (without the per-video correctness kept for the comparisons)."""
    return [{k: r[k] for k in COLUMNS} for r in study["rows"]]


def write_results(results_dir: str | Path, study: Mapping[str, Any], more_claims: Sequence[dict] = ()
                  ) -> dict[str, Path]:
    """``tables/fusion.csv``, ``metrics/claims.json`` (replaced whole: this folder is the notebook's; this
    release's claims, then ``more_claims``, the other release's), ``metrics/hts_release.json`` (parity, stream
    picks, weights per fold, source, checksums, run metadata)."""
    results_dir = Path(results_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in table_rows(study):
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    paths = {"fusion": atomic_write_text(results_dir / "tables" / "fusion.csv", buf.getvalue()),
             "claims": atomic_write_json(results_dir / "metrics" / "claims.json",
                                                list(study["claims"]) + list(more_claims))}
    details = {k: study[k] for k in ("parity", "awl", "class_weights", "n_boot", "seed", "c", "grid")}
    details["source"] = SOURCE
    details["checksums"] = dict(study.get("checksums", {}))
    details["meta"] = run_metadata()
    paths["details"] = atomic_write_json(results_dir / "metrics" / "hts_release.json", details)
    return paths


def conclusion(study: Mapping[str, Any]) -> str:
    """Markdown sentences, one per claim, built from the verdicts and intervals (never typed ahead)."""
    rows = {r["method"]: r for r in study["rows"]}
    lines = []
    ok = all(p["match"] for p in study["parity"])
    lines.append(f"- Parity: our fusion code {'reproduces' if ok else '**does not reproduce**'} the release's five "
                 "published accuracies to 4 decimals ("
                 + ", ".join(f"{p['method']} {p['ours']:.4f}" for p in study["parity"]) + ").")
    for c in study["claims"]:
        lo, hi = c["ci"]
        lines.append(f"- **{c['verdict']}**: {c['claim']}: {c['accuracy_a']:.4f} vs {c['accuracy_b']:.4f}, "
                     f"difference {c['estimate']:+.4f} [{lo:+.4f}, {hi:+.4f}], McNemar p = {c['p']:.3g}."
                     + (f" ({c['paper']}.)" if c.get("paper") else ""))
    picks = study["awl"]["awl"]["picks_per_fold"]
    first = [p["first"] for p in picks.values()]
    second = [p["second"] for p in picks.values()]
    lines.append(f"- AWL (spatial + hidden) selects one stream per class, as the LP's vertex solution predicts: "
                 f"per fold {min(first)}-{max(first)} classes take the spatial stream, {min(second)}-{max(second)} "
                 f"the hidden temporal stream, {sum(p['mixed'] for p in picks.values())} split the weight.")
    best = max((r for r in rows.values() if r["fit"] != "none"), key=lambda r: r["top1"])
    lines.append(f"- Best cross-fitted row: {best['method']} ({best['streams']}, {best['convention']} scores) "
                 f"{best['top1']:.4f} [{best['ci_low']:.4f}, {best['ci_high']:.4f}].")
    return "\n".join(lines)


FIGURE_ROWS = ("spatial", "hidden_temporal", "tvl1_temporal", "equal", "hts", "awl", "global_weight",
               "class_weights", "equal_tvl1", "two_stream", "awl_tvl1", "awl_softmax")


def figure_inputs(study: Mapping[str, Any]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """What ``plots.release_fusion`` draws: the main rows (with the release's published value where it
    has one) and the spatial weight per class of AWL and of the grid weights (spatial + hidden,
    release scores), averaged over the cross-fitting folds."""
    by_name = {r["method"]: r for r in study["rows"]}
    rows = [{**{k: by_name[m][k] for k in ("method", "top1", "ci_low", "ci_high")},
             "published": PUBLISHED.get(m)} for m in FIGURE_ROWS if m in by_name]
    weights = {"class_weights (beyond the paper)": np.mean(list(study["class_weights"]["class_weights"]
                                                                ["w_first_per_fold"].values()), axis=0),
               "awl (Eq. 10-15)": np.mean(list(study["awl"]["awl"]["w_first_per_fold"].values()), axis=0)}
    return rows, weights


def figure_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "figures" / "09_hts_release.png"
