"""``htsc flow swap``: the two-stream temporal CNN trained on different flows, scored per family.

Issue 24's second goal asks why the hidden temporal stream trails the TV-L1 temporal stream on the synthetic
set's motion family. The flow swap separates the two candidate causes (docs/SYNTHETIC.md section 7): the same
temporal CNN (stage ``tvl1``), the same recipe and seed, trained on TV-L1's flow, on a trained MotionNet's flow
and on the true flow (each written by ``htsc flow extract --method ...`` into its own folder, chosen with
``--set flow_dir=...`` at training). If MotionNet's flow costs the CNN about what the hidden stream loses, the
flow's quality is the cause; if not, the hidden stream's end-to-end pipeline is.

Each arm is ``LABEL=RUNS_DIR:FLOW_DIR``. Scores come from the multi-view test protocol
(:func:`htsc_core.train.scores.extract_scores`); every arm is compared with the first on the same videos
(exact McNemar, :func:`htsc_core.stats.mcnemar_exact`), per family and over all videos. Nothing is chosen
from these numbers: the subset is "test" by default and the arms are fixed before they are scored.
"""
from __future__ import annotations

import numpy as np

from htsc_core.data.registry import class_families, load_split
from htsc_core.stats import exact_interval, mcnemar_exact

STREAM = "tvl1"  # the two-stream temporal CNN: pre-computed flow JPEGs read from DATA_ROOT/<flow_dir>


def parse_arm(spec: str) -> tuple[str, str, str]:
    """``LABEL=RUNS_DIR:FLOW_DIR`` -> (label, runs_dir, flow_dir)."""
    label, sep, rest = spec.partition("=")
    runs, sep2, flow_dir = rest.rpartition(":")
    if not sep or not sep2 or not label or not runs or not flow_dir:
        raise ValueError(f"flow swap: --arm {spec!r}; expected LABEL=RUNS_DIR:FLOW_DIR "
                         "(e.g. motionnet=runs/swap_motionnet:flow_motionnet)")
    return label, runs, flow_dir


def _arm_scores(cfg, subset: str) -> dict:
    from htsc_core.train.scores import extract_scores, load_scores  # deferred: torch
    from htsc_core.train.streams import flow_root, run_dir

    ckpt = run_dir(cfg, STREAM) / "best.pt"
    if not ckpt.is_file():
        raise ValueError(f"flow swap: {ckpt} is missing: train it with `htsc train tvl1 --runs-dir {cfg.runs_dir} "
                         f"--set flow_dir={cfg.flow_dir}`")
    if not flow_root(cfg).is_dir():
        raise ValueError(f"flow swap: no flow folder {flow_root(cfg)}: write it with `htsc flow extract --out ...`")
    extract_scores(cfg, STREAM, subset)
    return load_scores(cfg, subset, STREAM)


def _family_masks(cfg, labels: np.ndarray) -> dict[str, np.ndarray]:
    classes = load_split(cfg, "test")[1]
    masks = {"all": np.ones(len(labels), dtype=bool)}
    families = class_families(cfg)
    if families:
        of_label = np.array([families[c] for c in classes])[labels]
        for fam in dict.fromkeys(families[c] for c in classes):
            masks[fam] = of_label == fam
    return masks


def swap_report(cfg, arms: list[tuple[str, str, str]], subset: str = "test") -> dict:
    """Accuracy per family (exact 95 % intervals) of each arm, and each arm vs the first (paired, exact)."""
    if len(arms) < 1:
        raise ValueError("flow swap: give at least one --arm")
    if len({a[0] for a in arms}) != len(arms):
        raise ValueError(f"flow swap: arm labels repeat: {[a[0] for a in arms]}")
    correct, ids, rows = {}, None, []
    masks: dict[str, np.ndarray] = {}
    for label, runs, flow_dir in arms:
        arm_cfg = cfg.replace(runs_dir=str(runs), flow_dir=flow_dir)
        s = _arm_scores(arm_cfg, subset)
        labels = np.asarray(s["labels"])
        if labels.ndim != 1:
            raise ValueError("flow swap: single-label datasets only (top-1 per family)")
        vids = [str(v) for v in s["video_ids"]]
        if ids is None:
            ids, masks = vids, _family_masks(cfg, labels)
        elif vids != ids:
            raise ValueError(f"flow swap: arm {label!r} scored other videos than {arms[0][0]!r}; pairing needs "
                             "the same split (same --seed, same max_eval_videos)")
        correct[label] = np.asarray(s["scores"]).argmax(1) == labels
        for fam, m in masks.items():
            k, n = int(correct[label][m].sum()), int(m.sum())
            lo, hi = exact_interval(k, n)
            rows.append({"arm": label, "runs_dir": str(runs), "flow_dir": flow_dir, "family": fam, "n": n,
                         "accuracy": k / n, "ci_low": float(lo), "ci_high": float(hi)})
    ref = arms[0][0]
    paired = []
    for label, *_ in arms[1:]:
        for fam, m in masks.items():
            a, b = correct[label][m], correct[ref][m]
            paired.append({"arm": label, "versus": ref, "family": fam, "difference": float(a.mean() - b.mean()),
                           "arm_only_right": int(np.sum(a & ~b)), "versus_only_right": int(np.sum(~a & b)),
                           "mcnemar_p": mcnemar_exact(a, b)})
    return {"subset": subset, "stream": STREAM, "n_videos": len(ids or []), "rows": rows, "paired": paired}


def format_swap(report: dict) -> str:
    lines = [f"{report['stream']} temporal CNN on each flow, {report['subset']} ({report['n_videos']} videos)",
             f"{'arm':<12} {'family':<11} {'acc':>6}  95% exact"]
    for r in report["rows"]:
        lines.append(f"{r['arm']:<12} {r['family']:<11} {r['accuracy']:6.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                     f"  n={r['n']}")
    for p in report["paired"]:
        lines.append(f"{p['arm']} - {p['versus']} ({p['family']}): {p['difference']:+.3f}, discordant "
                     f"{p['arm_only_right']}/{p['versus_only_right']}, exact McNemar p={p['mcnemar_p']:.3g}")
    return "\n".join(lines)
