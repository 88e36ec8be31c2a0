"""Real UCF101 evidence: the fusion half of Table 4 on the Hidden Two-Stream release's per-video scores.

The Hidden Two-Stream release (Zhu et al. 2018; GitHub bryanyzhu/Hidden-Two-Stream, folder
``test/``, commit f7f684a, BSD 2-clause) publishes the UCF101 split-1 test scores of its three
streams, 3783 videos x 101 classes each: spatial VGG16, the hidden temporal stream (MotionNet +
VGG16, the network HTSC builds on) and a TV-L1 temporal stream. They are vendored in
``data/external/hts_release_ucf101_split1/`` and verified against ``SHA256SUMS`` on every load.

What this module does with them (notebook 09):

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
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from htsc_core import fusion, metrics, stats

ROOT = Path(__file__).resolve().parents[1]
RELEASE_DIR = ROOT / "data" / "external" / "hts_release_ucf101_split1"
SOURCE = "bryanyzhu/Hidden-Two-Stream, folder test/, commit f7f684a (BSD 2-clause)"
# stream name -> (file, MATLAB variable)
FILES = {
    "spatial": ("spatial_quality100_split01.mat", "spatial_prediction"),
    "hidden_temporal": ("temporal_hidden_split01.mat", "hidden_prediction"),
    "tvl1_temporal": ("temporal_tvl1_split01.mat", "temporal_prediction"),
}
TESTLIST = "testlist01.txt"
CHECKSUMS = "SHA256SUMS"
# Accuracies the release publishes from these files with its late_fusion.m recipe.
PUBLISHED = {"spatial": 0.8097, "hidden_temporal": 0.8406, "tvl1_temporal": 0.8580, "hts": 0.8900,
             "two_stream": 0.9130}
# The release's (and TSN's) late-fusion weight of the temporal stream: spatial + 1.5 x temporal.
TEMPORAL_WEIGHT = 1.5
CONVENTIONS = ("release", "softmax")
# Stream pairs fused: (name suffix, first stream, second stream, has a 1:1.5 baseline and its row name).
PAIRS = (
    ("", "spatial", "hidden_temporal", "hts"),
    ("_tvl1", "spatial", "tvl1_temporal", "two_stream"),
    ("_hidden_tvl1", "hidden_temporal", "tvl1_temporal", None),
)
WEIGHT_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))  # weight of the first stream, beyond the paper
_GROUP = re.compile(r"_g(\d\d)_c\d+\.\w+$")


class ReleaseDataError(ValueError):
    """A release file is missing, altered (checksum) or malformed; the message names the file."""


@dataclass(frozen=True)
class ReleaseScores:
    """The release's raw per-video scores (n, M) per stream, with labels and groups (n,)."""

    scores: Mapping[str, np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    groups: np.ndarray
    video_ids: list[str]
    checksums: Mapping[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksums(root: str | Path = RELEASE_DIR, names: Sequence[str] | None = None) -> dict[str, str]:
    """Check each release file against ``SHA256SUMS``; returns name -> sha256.

    Raises ``ReleaseDataError`` naming the file when it is missing, not listed, or altered.
    """
    root = Path(root)
    sums_path = root / CHECKSUMS
    if not sums_path.exists():
        raise ReleaseDataError(f"{sums_path} is missing: the release folder must carry its checksums")
    expected = {}
    for i, line in enumerate(sums_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise ReleaseDataError(f"{sums_path}:{i}: expected '<sha256>  <file>', got {line!r}")
        expected[parts[1].lstrip("*")] = parts[0]
    names = list(names) if names is not None else [f for f, _ in FILES.values()] + [TESTLIST]
    out = {}
    for name in names:
        path = root / name
        if name not in expected:
            raise ReleaseDataError(f"{path}: not listed in {sums_path}")
        if not path.exists():
            raise ReleaseDataError(f"{path} is missing (listed in {sums_path})")
        got = _sha256(path)
        if got != expected[name]:
            raise ReleaseDataError(f"{path}: checksum mismatch (sha256 {got}, {sums_path} says {expected[name]}); "
                                   "the file is altered or truncated: restore it from the release")
        out[name] = got
    return out


def parse_testlist(path: str | Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(video_ids, labels (n,), class_names, groups (n,) "g01".."g07") from a UCF101 test list.

    The class of a line is its folder; class indices follow the order of first appearance
    (the release's order, which is classInd's order for testlist01).
    """
    path = Path(path)
    ids, folders, groups = [], [], []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        rel = line.split()[0]
        if "/" not in rel:
            raise ReleaseDataError(f"{path}:{i}: expected 'Class/v_Class_gXX_cYY.avi', got {line!r}")
        folder = rel.split("/", 1)[0]
        m = _GROUP.search(rel)
        if m is None:
            raise ReleaseDataError(f"{path}:{i}: no UCF101 group (_gXX_cYY) in {rel!r}")
        ids.append(rel.rsplit(".", 1)[0])
        folders.append(folder)
        groups.append(f"g{m.group(1)}")
    if not ids:
        raise ReleaseDataError(f"{path}: no videos listed")
    class_names = list(dict.fromkeys(folders))
    index = {c: k for k, c in enumerate(class_names)}
    return ids, np.array([index[f] for f in folders], dtype=np.int64), class_names, np.array(groups)


def load_release(root: str | Path = RELEASE_DIR, verify: bool = True) -> ReleaseScores:
    """Load and check the release: raw scores of the three streams, labels, classes, groups."""
    from scipy.io import loadmat

    root = Path(root)
    checksums = verify_checksums(root) if verify else {}
    ids, labels, class_names, groups = parse_testlist(root / TESTLIST)
    scores = {}
    for stream, (name, key) in FILES.items():
        path = root / name
        try:
            mat = loadmat(str(path))
        except (OSError, ValueError) as exc:
            raise ReleaseDataError(f"{path}: cannot read as a MATLAB file ({exc})") from exc
        if key not in mat:
            found = [k for k in mat if not k.startswith("__")]
            raise ReleaseDataError(f"{path}: no variable {key!r} (found {found})")
        x = np.asarray(mat[key], dtype=np.float64)
        if x.shape != (len(ids), len(class_names)):
            raise ReleaseDataError(f"{path}: {key} has shape {x.shape}; {root / TESTLIST} lists "
                                   f"{len(ids)} videos of {len(class_names)} classes")
        if not np.all(np.isfinite(x)):
            raise ReleaseDataError(f"{path}: {key} contains NaN or inf")
        scores[stream] = x
    return ReleaseScores(scores=scores, labels=labels, class_names=class_names, groups=groups,
                         video_ids=ids, checksums=checksums)


def convert(raw, convention: str = "release") -> np.ndarray:
    """Scores (n, M) in a fusion convention.

    "release": the release's late_fusion.m: negatives clipped to 0, each row divided by its sum.
    "softmax": softmax over classes (the paper's Eq. 14 fuses "the SoftMax layer output").
    """
    x = np.asarray(raw, dtype=np.float64)
    if convention == "release":
        x = np.clip(x, 0.0, None)
        total = x.sum(axis=1, keepdims=True)
        if np.any(total <= 0):
            raise ValueError(f"release.py: {int(np.sum(total <= 0))} rows have no positive score; the release "
                             "convention (clip, normalise) is undefined for them")
        return x / total
    if convention == "softmax":
        return metrics.softmax_np(x, axis=1)
    raise ValueError(f"release.py: convention={convention!r}; expected one of {CONVENTIONS}")


def parity(rel: ReleaseScores) -> list[dict]:
    """Our fusion on the release's convention vs the release's five published accuracies (4 decimals)."""
    s, h, t = (convert(rel.scores[k]) for k in ("spatial", "hidden_temporal", "tvl1_temporal"))
    ours = {"spatial": metrics.top1(s, rel.labels), "hidden_temporal": metrics.top1(h, rel.labels),
            "tvl1_temporal": metrics.top1(t, rel.labels),
            "hts": metrics.top1(fusion.hts_fusion(s, h), rel.labels),
            "two_stream": metrics.top1(fusion.hts_fusion(s, t), rel.labels)}
    return [{"method": k, "ours": ours[k], "published": PUBLISHED[k],
             "match": round(ours[k], 4) == PUBLISHED[k]} for k in PUBLISHED]


# ---------------------------------------------------------------------------------------------
# Cross-fitting


def cross_fit(groups, fit: Callable[[np.ndarray], Any], score: Callable[[Any, np.ndarray], np.ndarray],
              num_classes: int) -> tuple[np.ndarray, list[dict]]:
    """Leave-one-group-out: for each group g, ``params = fit(train_idx)`` on the other groups'
    videos, ``score(params, test_idx)`` -> (n_g, M) scores of g's videos.

    Returns the (n, M) cross-fitted scores (every video scored by a fit that never saw its
    group) and one record {group, train_groups, n_train, n_test, params} per fold.
    """
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        raise ValueError(f"release.py: cross-fitting needs at least 2 groups; got {names}")
    out = np.full((groups.shape[0], num_classes), np.nan)
    folds = []
    for g in names:
        test_idx = np.flatnonzero(groups == g)
        train_idx = np.flatnonzero(groups != g)
        params = fit(train_idx)
        out[test_idx] = score(params, test_idx)
        folds.append({"group": g, "train_groups": sorted(set(groups[train_idx].tolist())),
                      "n_train": int(train_idx.size), "n_test": int(test_idx.size), "params": params})
    if np.isnan(out).any():
        raise RuntimeError("release.py: cross-fitting left videos unscored")
    return out, folds


def fit_class_weights_grid(a, b, labels, grid: Sequence[float] = WEIGHT_GRID, sweeps: int = 2,
                           start: float | None = None) -> np.ndarray:
    """Beyond the paper: per-class weight w_c of stream ``a`` (1 - w_c of ``b``) on a grid, by accuracy.

    Fused score of class c: w_c a_c + (1 - w_c) b_c; prediction = arg max (as Eq. 14-15, but the
    weights are chosen to maximise top-1 on the given videos instead of by the LP of Eq. 10-13,
    so they may take interior values). Start from the best single weight for all classes
    (``start`` if given), then coordinate ascent: each class in turn takes the grid value that
    maximises the number of correct videos with the others fixed; a class moves only on a
    strict gain, ties keep the value nearest the current one. Returns w (M,).
    """
    a, b = fusion._pair(a, b)
    y = np.asarray(labels, dtype=np.int64)
    n, m = a.shape
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or grid.min() < 0 or grid.max() > 1:
        raise ValueError(f"release.py: weight grid must be values in [0, 1]; got {grid}")
    rows = np.arange(n)
    if start is None:
        hits = [np.sum((g * a + (1 - g) * b).argmax(1) == y) for g in grid]
        start = float(grid[int(np.argmax(hits))])
    w = np.full(m, float(start))
    fused = w * a + (1 - w) * b  # (n, M)
    correct_now = fused.argmax(1) == y
    for _ in range(sweeps):
        moved = False
        for c in range(m):
            others = fused.copy()
            others[:, c] = -np.inf
            best_other = others.argmax(1)  # (n,) arg max over the other classes
            top_other = others[rows, best_other]
            cand = grid[:, None] * a[None, :, c] + (1 - grid[:, None]) * b[None, :, c]  # (G, n)
            # np.argmax takes the first maximum: class c wins a tie only against a later class
            wins = (cand > top_other) | ((cand == top_other) & (c < best_other))
            hits = np.where(wins, y == c, best_other == y).sum(axis=1)  # (G,)
            current = int(correct_now.sum())
            best = int(hits.max())
            if best > current:
                options = np.flatnonzero(hits == best)
                k = options[np.argmin(np.abs(grid[options] - w[c]))]
                w[c] = grid[k]
                fused[:, c] = cand[k]
                correct_now = np.where(wins[k], y == c, best_other == y)
                moved = True
        if not moved:
            break
    return w


def _weights_fused(w, a, b) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    return w * a + (1 - w) * b


def fit_global_weight(a, b, labels, grid: Sequence[float] = WEIGHT_GRID) -> float:
    """Beyond the paper: one weight w of stream ``a`` for all classes, the grid value with the best top-1
    (ties: the first, i.e. smallest, weight)."""
    a, b = fusion._pair(a, b)
    hits = [np.sum((g * a + (1 - g) * b).argmax(1) == np.asarray(labels)) for g in grid]
    return float(grid[int(np.argmax(hits))])


# ---------------------------------------------------------------------------------------------
# The study: rows of fusion.csv and the claims


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


# (claim, A, B, kind): every comparison is paired on the same 3783 videos
CLAIMS = (
    ("AWL (cross-fitted) above the 1:1.5 fusion, spatial + hidden temporal", "awl", "hts", "greater"),
    ("AWL (cross-fitted) above equal fusion, spatial + hidden temporal", "awl", "equal", "greater"),
    ("AWL (cross-fitted) above the 1:1.5 fusion, spatial + hidden temporal, softmax scores",
     "awl_softmax", "hts_softmax", "greater"),
    ("AWL (cross-fitted) above the 1:1.5 fusion, spatial + TV-L1 temporal", "awl_tvl1", "two_stream", "greater"),
    ("AWL (cross-fitted) above equal fusion, hidden + TV-L1 temporal", "awl_hidden_tvl1", "equal_hidden_tvl1",
     "greater"),
    ("Late fusion (spatial + 1.5 hidden) above the hidden temporal stream alone", "hts", "hidden_temporal",
     "greater"),
    ("Beyond the paper: per-class grid weights (cross-fitted) above the 1:1.5 fusion, spatial + hidden temporal",
     "class_weights", "hts", "greater"),
    ("Beyond the paper: per-class grid weights above one cross-fitted global weight, spatial + hidden temporal",
     "class_weights", "global_weight", "greater"),
)


def _claims(by_name: Mapping[str, dict], n_boot: int, seed: int) -> list[dict]:
    out = []
    for claim, a, b, kind in CLAIMS:
        rec = stats.compare_accuracy(by_name[a]["_correct"], by_name[b]["_correct"], kind=kind, claim=claim,
                                     n_boot=n_boot, seed=seed)
        lo, hi = rec["ci"]
        rec["detail"] = (f"top-1 {a} {rec['accuracy_a']:.4f} vs {b} {rec['accuracy_b']:.4f}: difference "
                         f"{rec['estimate']:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}] (paired bootstrap over "
                         f"{rec['n']} videos), McNemar p = {rec['p']:.3g}")
        out.append({**rec, "a": a, "b": b, "source": "hts_release"})
    return out


COLUMNS = ("method", "top1", "ci_low", "ci_high", "mean_class_acc", "n", "mca_ci_low", "mca_ci_high",
           "streams", "convention", "fit", "beyond_paper")


def table_rows(study: Mapping[str, Any]) -> list[dict]:
    """The rows of fusion.csv (without the per-video correctness kept for the comparisons)."""
    return [{k: r[k] for k in COLUMNS} for r in study["rows"]]


def write_results(results_dir: str | Path, study: Mapping[str, Any]) -> dict[str, Path]:
    """``tables/fusion.csv``, ``metrics/claims.json`` (replaced whole: this folder is the notebook's),
    ``metrics/hts_release.json`` (parity, stream picks, weights per fold, source, checksums, run metadata)."""
    from htsc_core.utils import atomic_write_json, atomic_write_text, run_metadata

    results_dir = Path(results_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in table_rows(study):
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    paths = {"fusion": atomic_write_text(results_dir / "tables" / "fusion.csv", buf.getvalue()),
             "claims": atomic_write_json(results_dir / "metrics" / "claims.json", list(study["claims"]))}
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
                     f"difference {c['estimate']:+.4f} [{lo:+.4f}, {hi:+.4f}], McNemar p = {c['p']:.3g}.")
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
