"""Reports the notebooks show: one score matrix's accuracy and confusion, a stream's report, the
CLN coefficients of example videos (notebook 04), and the AWL weights and fusions (notebook 05)."""
from __future__ import annotations

import numpy as np

from htsc_core import metrics
from htsc_core.config import Config
from htsc_core.data.dataset import VideoDataset
from htsc_core.data.registry import class_families, load_split
from htsc_core.data.synthetic_cues import cue_segments
from htsc_core.fusion import TEMPORAL_WEIGHT, awl_scores, equal_fusion, fit_awl, hts_fusion, summarise_awl
from htsc_core.train.scores import extract_scores, load_scores
from htsc_core.train.cln import cln_scores


def metric(scores: np.ndarray, labels: np.ndarray) -> float:
    """The paper's metric: top-1 accuracy, or mAP for multi-label THUMOS14 (sec. 4.1)."""
    if labels.ndim == 2:
        return float(metrics.mean_average_precision(scores, labels))
    return float(metrics.top1(scores, labels))


def _metric_of_resamples(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """:func:`metric` of B resampled sets at once, (B, n, M) scores -> (B,): the bootstrap's fast path
    (``stats.bootstrap_ci`` uses a metric's ``batched``); the same values as :func:`metric` on each set."""
    if labels.ndim == 3:
        return metrics.mean_average_precisions(scores, labels)
    return (scores.argmax(axis=-1) == labels).mean(axis=-1)


metric.batched = _metric_of_resamples


def classes_families(cfg: Config) -> tuple[list[str], dict[str, str] | None]:
    return load_split(cfg, "test")[1], class_families(cfg)


def score_report(cfg: Config, scores: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 (or mAP), mean class accuracy, confusion and per-family accuracy of one score matrix."""
    classes, families = classes_families(cfg)
    report: dict = {"classes": classes, "n": int(len(labels))}
    if labels.ndim == 2:
        report.update(top1=float(metrics.top1(scores, labels)),
                      mAP=float(metrics.mean_average_precision(scores, labels)), per_family={})
        return report
    report.update(top1=float(metrics.top1(scores, labels)),
                  mean_class_accuracy=float(metrics.mean_class_accuracy(scores, labels, len(classes))),
                  confusion=metrics.confusion(scores.argmax(1), labels, len(classes)).tolist(),
                  per_family={k: float(v) for k, v in
                              (metrics.per_family_accuracy(scores, labels, classes, families) or {}).items()}
                  if families else {})
    return report


def stream_report(cfg: Config, stream: str, subset: str = "test") -> dict:
    """Score one trained stream on ``subset`` (extracting its scores)."""
    extract_scores(cfg, stream, subset)
    s = load_scores(cfg, subset, stream)
    return score_report(cfg, s["scores"], s["labels"])


def coefficient_examples(cfg: Config, out: dict, per_class: int = 1) -> dict:
    """The CLN coefficients of ``per_class`` test videos per class, with their segment frames (crop 0)."""
    records, classes = load_split(cfg, "test")
    by_id = {r.video_id: r for r in records}
    labels = out["labels"] if out["labels"].ndim == 1 else out["labels"].argmax(1)
    picks: list[int] = []
    for c in range(len(classes)):
        picks += [int(i) for i in np.flatnonzero(labels == c)[:per_class]]
    chosen = [by_id[str(v)] for v in out["video_ids"][picks]]
    ds = VideoDataset(chosen, cfg, mode="test", modalities=("rgb",))
    frames = []
    for i in range(len(chosen)):
        rgb = ds[i]["rgb"].view(cfg.test_segments, cfg.test_crops, 3, cfg.image_size, cfg.image_size)[:, 0]
        frames.append((rgb.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8))
    return {"c_s": out["c_s"][picks], "c_o": out["c_o"][picks], "frames": frames,
            "labels": [classes[int(labels[i])] for i in picks]}


def awl_report(cfg: Config) -> dict:
    """AWL on the CLN heads (fitted on val): per-class weights, family means, and fusions compared."""
    classes, families = classes_families(cfg)
    val, test = cln_scores(cfg, "val"), cln_scores(cfg, "test")
    W = fit_awl(val["scores_s"], val["scores_o"], val["labels"], c=cfg.awl_c)
    rows = summarise_awl(W, classes, families)
    fused = {"spatial head": test["scores_s"], "temporal head": test["scores_o"],
             "equal late fusion": equal_fusion(test["scores_s"], test["scores_o"]),
             f"1:{TEMPORAL_WEIGHT:g} late fusion (HTS protocol)": hts_fusion(test["scores_s"], test["scores_o"]),
             "AWL (Eq. 15)": awl_scores(W, test["scores_s"], test["scores_o"])}
    fusion = [{"method": k, "score": metric(v, test["labels"])} for k, v in fused.items()]
    family_weights = {}
    if families:
        for fam in sorted(set(families.values())):
            w = [r["w_temporal"] for r in rows if r["family"] == fam]
            family_weights[fam] = float(np.mean(w))
    return {"rows": rows, "fusion": fusion, "family_weights": family_weights, "W": W.tolist()}


AWL_ASSIGNMENT = "AWL weights the temporal stream more on motion classes than on appearance classes"
# the two 4-class claims it replaces (issue 38): 4 of 4 classes against 0.5 can never reach p < 0.05
AWL_SUPERSEDED = ("AWL gives the motion classes to the temporal stream",
                  "AWL gives the appearance classes to the spatial stream")


def awl_assignment(rows: list[dict]) -> dict | None:
    """Does AWL weight the temporal stream more on the motion classes than on the appearance classes?

    One claim over the classes of both families (``rows`` of :func:`awl_report`: class, family, w_temporal):
    the difference of the mean temporal weight, motion minus appearance, with the exact permutation test over
    every split of those classes into two families of their sizes (:func:`htsc_core.exact_tests.permutation_difference`;
    at 4 + 4 classes a complete separation has one-sided p = 1/70, two-sided 2/70). The verdict comes from the
    interval that inverts the test and needs the two-sided p < 0.05 (the rule of docs/DESIGN.md section 7 for
    small designs). None when the set has no motion or no appearance classes."""
    motion = [float(r["w_temporal"]) for r in rows if r.get("family") == "motion"]
    appearance = [float(r["w_temporal"]) for r in rows if r.get("family") == "appearance"]
    if not motion or not appearance:
        return None
    from htsc_core import exact_tests, stats

    t = exact_tests.permutation_difference(motion, appearance)
    lo, hi = t["ci"]
    verdict = stats.verdict(lo, hi, "greater")
    detail = (f"mean temporal weight {np.mean(motion):.3f} on {len(motion)} motion classes vs "
              f"{np.mean(appearance):.3f} on {len(appearance)} appearance classes; exact permutation test over "
              f"{t['relabellings']} relabellings, two-sided p = {t['p_two_sided']:.4f}")
    if verdict != "not resolved" and t["p_two_sided"] >= stats.ALPHA:
        verdict, detail = "not resolved", detail + f" (two-sided p >= {stats.ALPHA}: no verdict)"
    return stats.claim_record(AWL_ASSIGNMENT, detail, verdict, t["estimate"], (lo, hi), p=t["p"],
                              n=len(motion) + len(appearance), kind="greater", margin=0.0, test="permutation",
                              p_two_sided=t["p_two_sided"], min_p=t["min_p"], groups=[len(motion), len(appearance)],
                              values={"motion": motion, "appearance": appearance}, interval="permutation")


def awl_cross_fit(cfg: Config) -> dict | None:
    """How well the validation videos pin down AWL's per-class weights (issue 22, item 5).

    AWL fits 2 weights per class (Eq. 10-15) on the CLN heads' validation scores, a few videos per class.
    Leave one validation group out (:func:`htsc_core.release_fit.cross_fit`, as notebook 09 does over the
    release's test groups): fit on the other groups, score the held-out group's videos. Returned: videos per
    class, the cross-fitted validation accuracy of AWL beside the 1:1.5 fusion on the same videos (per-video
    correctness for a paired comparison), and per class the temporal weight in every fold, with how many
    classes get the same stream in every fold. None for multi-label sets or fewer than 2 validation groups.
    """
    from htsc_core.release_fit import cross_fit

    val = cln_scores(cfg, "val")
    labels = np.asarray(val["labels"])
    group_of = {r.video_id: r.group for r in load_split(cfg, "val")[0]}
    groups = np.array([str(group_of.get(str(v))) for v in val["video_ids"]])
    if labels.ndim != 1 or len(set(groups.tolist())) < 2 or "None" in groups:
        return None
    s, o = val["scores_s"], val["scores_o"]
    cross, folds = cross_fit(groups, lambda idx: fit_awl(s[idx], o[idx], labels[idx], c=cfg.awl_c),
                             lambda W, idx: awl_scores(W, s[idx], o[idx]), s.shape[1])
    w_temporal = np.stack([np.asarray(f["params"])[:, 1] for f in folds], axis=1)  # (classes, folds)
    same_stream = (w_temporal > 0.5).all(1) | (w_temporal < 0.5).all(1)
    counts = np.bincount(labels, minlength=s.shape[1])
    return {"groups": len(folds), "videos": int(len(labels)), "videos_per_class_min": int(counts.min()),
            "videos_per_class_max": int(counts.max()),
            "correct_awl": (cross.argmax(1) == labels).tolist(),
            "correct_hts": (hts_fusion(s, o).argmax(1) == labels).tolist(),
            "accuracy_awl": float((cross.argmax(1) == labels).mean()),
            "accuracy_hts": float((hts_fusion(s, o).argmax(1) == labels).mean()),
            "w_temporal_folds": w_temporal.round(4).tolist(), "classes_same_stream_every_fold": int(same_stream.sum()),
            "classes": int(s.shape[1])}


def video_families(cfg: Config, labels: np.ndarray) -> np.ndarray:
    """(n,) the family of each video's class (synthetic set; None elsewhere). Multi-hot labels: the first class."""
    classes, families = classes_families(cfg)
    y = labels if labels.ndim == 1 else labels.argmax(1)
    return np.array([(families or {}).get(classes[int(c)]) for c in y])


def family_correct(cfg: Config, scores: np.ndarray, labels: np.ndarray, family: str | None = None) -> np.ndarray:
    """Per-video correctness of one score matrix, optionally restricted to the test videos of ``family``."""
    ok = metrics.correct(scores, labels)
    return ok if family is None else ok[video_families(cfg, labels) == family]


def stream_correct(cfg: Config, stream: str, subset: str = "test", family: str | None = None) -> np.ndarray:
    """(n,) per-video top-1 correctness of a scored stream (its saved scores), optionally within one family,
    for the intervals and paired verdicts of the notebooks."""
    s = load_scores(cfg, subset, stream)
    return family_correct(cfg, s["scores"], s["labels"], family)


def cue_coefficients(cfg: Config, out: dict) -> dict | None:
    """Do the CLN's coefficients find the segments that see the cue? (synthetic set, cue family)

    For every test video whose object acts during part of the clip (docs/SYNTHETIC.md), the mean
    coefficient of its test segments that overlap the cue and of those that do not, for c^s and c^o
    (``out`` from :func:`htsc_core.train.cln.cln_scores` on the test subset). Videos whose segments all
    see the cue, or none, carry no contrast and are left out. None on a dataset without cue records.
    Per-class contrasts, the cue-aligned view and the fc7 probe: :mod:`htsc_core.cue_analysis`.
    """
    if cfg.dataset != "synthetic":
        return None
    cues = cue_segments(cfg.data_root, cfg.test_segments, cfg.stack_length, subset="test")
    result: dict = {"video_ids": [], "cue_segments": []}
    for key in ("c_s", "c_o"):
        result[f"{key}_cue"], result[f"{key}_rest"], result[f"{key}_segments"] = [], [], []
    for i, vid in enumerate(out["video_ids"]):
        mask = cues.get(str(vid))
        if mask is None or mask.all() or not mask.any():
            continue
        result["video_ids"].append(str(vid))
        result["cue_segments"].append(mask.astype(int).tolist())
        for key in ("c_s", "c_o"):
            c = np.asarray(out[key][i], dtype=float)
            result[f"{key}_cue"].append(float(c[mask].mean()))
            result[f"{key}_rest"].append(float(c[~mask].mean()))
            result[f"{key}_segments"].append(c.tolist())  # per segment, for the cue-aligned view
    return result
