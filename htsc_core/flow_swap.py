"""``htsc flow-swap``: the two-stream temporal CNN trained on different flows, scored per family.

Issue 24's second goal asks why the hidden temporal stream trails the TV-L1 temporal stream on the synthetic
set's motion family. The flow swap separates the two candidate causes (docs/SYNTHETIC.md section 7): the same
temporal CNN (stage ``tvl1``), the same recipe and seed, trained on TV-L1's flow, on a trained MotionNet's flow
and on the true flow (each written by ``htsc flow extract --method ...`` into its own folder, chosen with
``--set flow_dir=...`` at training). If MotionNet's flow costs the CNN about what the hidden stream loses, the
flow's quality is the cause; if not, the hidden stream's end-to-end pipeline is.

Each arm is ``LABEL=RUNS_DIR:FLOW_DIR``; ``FLOW_DIR`` ``hidden`` scores that runs folder's hidden temporal
stream (stage ``temporal``, MotionNet end to end) instead, the yardstick the swap explains. The arms must start
alike: the study cross-modality initialises every flow CNN from its trained spatial stream when the runs folder
holds one (``train/streams.py``), so an arm with ``RUNS_DIR/spatial/best.pt`` and one without are refused.
Scores come from the multi-view test protocol
(:func:`htsc_core.train.scores.extract_scores`); every arm is compared with the first on the same videos
(exact McNemar, :func:`htsc_core.stats.mcnemar_exact`), per family and over all videos. Nothing is chosen
from these numbers: the subset is "test" by default and the arms are fixed before they are scored.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from htsc_core.cli_args import add_config_arguments, config_from_args
from htsc_core.analysis import classes_families
from htsc_core.stats import exact_interval, mcnemar_exact
from htsc_core.train.scores import extract_scores, load_scores
from htsc_core.train.streams import flow_root, run_dir
from htsc_core.utils import atomic_write_json, run_metadata

STREAM = "tvl1"  # the two-stream temporal CNN: pre-computed flow JPEGs read from DATA_ROOT/<flow_dir>
HIDDEN = "hidden"  # FLOW_DIR naming the runs folder's hidden temporal stream (stage "temporal")


def parse_arm(spec: str) -> tuple[str, str, str]:
    """``LABEL=RUNS_DIR:FLOW_DIR`` -> (label, runs_dir, flow_dir)."""
    label, sep, rest = spec.partition("=")
    runs, sep2, flow_dir = rest.rpartition(":")
    if not sep or not sep2 or not label or not runs or not flow_dir:
        raise ValueError(f"flow-swap: --arm {spec!r}; expected LABEL=RUNS_DIR:FLOW_DIR "
                         "(e.g. motionnet=runs/swap_motionnet:flow_motionnet)")
    return label, runs, flow_dir


def _arm_scores(cfg, subset: str, stream: str) -> dict:
    ckpt = run_dir(cfg, stream) / "best.pt"
    if not ckpt.is_file():
        how = (f"htsc train temporal --runs-dir {cfg.runs_dir}" if stream == "temporal" else
               f"htsc train tvl1 --runs-dir {cfg.runs_dir} --set flow_dir={cfg.flow_dir}")
        raise ValueError(f"flow-swap: {ckpt} is missing: train it with `{how}`")
    if stream == STREAM and not flow_root(cfg).is_dir():
        raise ValueError(f"flow-swap: no flow folder {flow_root(cfg)}: write it with `htsc flow extract --out ...`")
    extract_scores(cfg, stream, subset)
    return load_scores(cfg, subset, stream)


def _family_masks(cfg, labels: np.ndarray) -> dict[str, np.ndarray]:
    classes, families = classes_families(cfg)  # the per-family split of analysis.score_report
    masks = {"all": np.ones(len(labels), dtype=bool)}
    if families:
        of_label = np.array([families[c] for c in classes])[labels]
        for fam in dict.fromkeys(families[c] for c in classes):
            masks[fam] = of_label == fam
    return masks


def swap_report(cfg, arms: list[tuple[str, str, str]], subset: str = "test") -> dict:
    """Accuracy per family (exact 95 % intervals) of each arm, and each arm vs the first (paired, exact)."""
    if len(arms) < 1:
        raise ValueError("flow-swap: give at least one --arm")
    if len({a[0] for a in arms}) != len(arms):
        raise ValueError(f"flow-swap: arm labels repeat: {[a[0] for a in arms]}")
    correct, ids, rows = {}, None, []
    masks: dict[str, np.ndarray] = {}
    inits = {label: (Path(runs) / "spatial" / "best.pt").is_file() for label, runs, _ in arms}
    if len(set(inits.values())) > 1:
        raise ValueError(f"flow-swap: the arms start differently (RUNS_DIR/spatial/best.pt present: {inits}); the "
                         "flow CNNs are cross-modality initialised from it when present: give every arm the same")
    for label, runs, flow_dir in arms:
        stream = "temporal" if flow_dir == HIDDEN else STREAM
        arm_cfg = cfg.replace(runs_dir=str(runs), flow_dir=cfg.flow_dir if flow_dir == HIDDEN else flow_dir)
        s = _arm_scores(arm_cfg, subset, stream)
        labels = np.asarray(s["labels"])
        if labels.ndim != 1:
            raise ValueError("flow-swap: single-label datasets only (top-1 per family)")
        vids = [str(v) for v in s["video_ids"]]
        if ids is None:
            ids, masks = vids, _family_masks(cfg, labels)
        elif vids != ids:
            raise ValueError(f"flow-swap: arm {label!r} scored other videos than {arms[0][0]!r}; pairing needs "
                             "the same split (same --seed, same max_eval_videos)")
        correct[label] = np.asarray(s["scores"]).argmax(1) == labels
        for fam, m in masks.items():
            k, n = int(correct[label][m].sum()), int(m.sum())
            lo, hi = exact_interval(k, n)
            rows.append({"arm": label, "runs_dir": str(runs), "flow_dir": flow_dir, "stream": stream,
                         "spatial_init": inits[label], "family": fam, "n": n,
                         "accuracy": k / n, "ci_low": float(lo), "ci_high": float(hi)})
    ref = arms[0][0]
    paired = []
    for label, *_ in arms[1:]:
        for fam, m in masks.items():
            a, b = correct[label][m], correct[ref][m]
            paired.append({"arm": label, "versus": ref, "family": fam, "difference": float(a.mean() - b.mean()),
                           "arm_only_right": int(np.sum(a & ~b)), "versus_only_right": int(np.sum(~a & b)),
                           "mcnemar_p": mcnemar_exact(a, b)})
    return {"subset": subset, "spatial_init": next(iter(inits.values())), "n_videos": len(ids or []), "rows": rows,
            "paired": paired}


def format_swap(report: dict) -> str:
    init = "from the trained spatial stream" if report["spatial_init"] else "from scratch (no spatial/best.pt)"
    lines = [f"temporal CNN on each flow ({HIDDEN}: the hidden temporal stream), {report['subset']} "
             f"({report['n_videos']} videos), CNN initialised {init}",
             f"{'arm':<12} {'family':<11} {'acc':>6}  95% exact"]
    for r in report["rows"]:
        lines.append(f"{r['arm']:<12} {r['family']:<11} {r['accuracy']:6.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                     f"  n={r['n']}")
    for p in report["paired"]:
        lines.append(f"{p['arm']} - {p['versus']} ({p['family']}): {p['difference']:+.3f}, discordant "
                     f"{p['arm_only_right']}/{p['versus_only_right']}, exact McNemar p={p['mcnemar_p']:.3g}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--arm", action="append", required=True, metavar="LABEL=RUNS_DIR:FLOW_DIR",
                   help="one trained arm (repeat; the first is the reference), e.g. tvl1=runs/swap:flow_tvl1; "
                        f"FLOW_DIR {HIDDEN} scores RUNS_DIR's hidden temporal stream")
    p.add_argument("--subset", default="test", choices=("test", "val"), help="videos to score (default test)")
    p.add_argument("--out", default=None, help="JSON out (default: print only)")


def command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    report = swap_report(cfg, [parse_arm(a) for a in args.arm], subset=args.subset)
    print(format_swap(report))
    if args.out:
        atomic_write_json(Path(args.out), {**report, "metadata": run_metadata(cfg), "arms": args.arm})
        print(f"wrote {args.out}")
    return 0
