"""``htsc flow extract`` / ``htsc flow eval`` (docs/DESIGN.md sections 5 and 7).

``extract`` pre-computes TV-L1 flow JPEGs for the two-stream baseline (paper Table 3);
``eval`` scores TV-L1, DIS, Farneback, zero and a trained MotionNet (EPE, photometric
error, ms per pair) and writes JSON; ``diagnose`` measures what moves MotionNet's background
error (:mod:`htsc_core.flow.diagnose`); ``moving`` splits the error on the moving object by place and speed
(:mod:`htsc_core.flow.moving`); ``compare`` gives paired intervals between two of these JSONs
(:mod:`htsc_core.flow.compare`). The flow swap, which scores trained streams, is ``htsc flow-swap``
(:mod:`htsc_core.flow_swap`, a layer above the trainer).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from htsc_core.cli_args import parse_overrides
from htsc_core.config import DATASETS, PROFILES, TVL1_PRESETS, from_params
from htsc_core.data.registry import load_split
from htsc_core.flow.evaluate import evaluate_flow, format_rows, parse_methods, write_flow_eval
from htsc_core.flow.extract import EXTRACT_METHODS, SUMMARY_NAME, extract_flow
from htsc_core.flow.compare import compare, format_compare
from htsc_core.flow.diagnose import VARIANTS, diagnose_background, format_diagnosis
from htsc_core.flow.moving import EDGE, format_breakdown, moving_breakdown, records_with_truth
from htsc_core.utils import atomic_write_json, run_metadata


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", required=True, help="dataset root (synthetic: written by `htsc synth`)")
    p.add_argument("--dataset", default=None, choices=DATASETS, help="dataset layout (default: the profile's)")
    p.add_argument("--profile", default="default", choices=PROFILES,
                   help="config profile of the run that reads the flow, as `htsc train --profile`: its frame size "
                        "and TV-L1 preset (default: default; the paper profile: --profile paper)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field as the training run does (repeatable), e.g. --set frame_size=128")
    p.add_argument("--threads", type=int, default=1, help="OpenCV/torch threads per estimator (default 1)")
    p.add_argument("--seed", type=int, default=0,
                   help="the run's seed, which also draws its train/val split (use the training run's seed with "
                        "--subset val, so validation videos are the ones that run held out; default 0)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="flow_cmd", required=True, metavar="{extract,eval,diagnose,moving,compare}")
    ex = sub.add_parser("extract", help="TV-L1 flow of every video, stored as denseflow-style JPEGs",
                        description="TV-L1 flow of every video for the run of --profile / --set (frame size, TV-L1 "
                                    "preset), e.g. `htsc flow extract --profile paper --dataset ucf101 --data-root "
                                    "/data/ucf101`; each video's .complete records what it was made for, and a "
                                    "training stage refuses flow made for another size or preset")
    _common(ex)
    ex.add_argument("--out", default=None, help="flow root (default DATA_ROOT/flow_tvl1)")
    ex.add_argument("--method", default="tvl1", choices=EXTRACT_METHODS,
                    help="tvl1 (default); motionnet (needs --checkpoint) or truth (the synthetic set's flow_gt), "
                         "for the flow swap (docs/SYNTHETIC.md section 7): give them their own --out")
    ex.add_argument("--checkpoint", default=None, help="MotionNet checkpoint (method motionnet)")
    ex.add_argument("--workers", type=int, default=None,
                    help="parallel video processes (default: the host's cores, as `htsc plan` assumes)")
    ex.add_argument("--limit", type=int, default=None, help="only the first N videos")

    ev = sub.add_parser("eval", help="EPE / photometric error / ms per pair of flow estimators")
    _common(ev)
    ev.add_argument("--checkpoint", default=None, help="MotionNet checkpoint (needed for method motionnet)")
    ev.add_argument("--methods", default=None,
                    help="comma list of tvl1,dis,farneback,zero,motionnet (default: all; motionnet "
                         "only when --checkpoint is given)")
    ev.add_argument("--max-videos", type=int, default=None, help="only the first N videos of --subset")
    ev.add_argument("--every", type=int, default=1,
                    help="every K-th video of --subset (before --max-videos): the listing is class by class, so "
                         "a stride covers the classes (default 1: all)")
    ev.add_argument("--tvl1-preset", default="auto", choices=TVL1_PRESETS,
                    help="TV-L1 parameters (flow/estimators.py; default auto: OpenCV's defaults for evaluation)")
    ev.add_argument("--subset", default="test", choices=("test", "val"),
                    help="videos to score (default test; val for choices, docs/SYNTHETIC.md section 7)")
    ev.add_argument("--out", default=None, help="JSON out (default <results_dir>/flow_eval.json)")

    dg = sub.add_parser("diagnose", help="background loss of true vs MotionNet flow per scale and loss variant "
                                         "(synthetic set, validation videos; docs/SYNTHETIC.md section 7)")
    _common(dg)
    dg.add_argument("--checkpoint", default=None, help="MotionNet checkpoint (without: the truth's columns only)")
    dg.add_argument("--max-videos", type=int, default=24, help="the first N validation videos (default 24)")
    dg.add_argument("--variants", default=None, help="comma list (default all): " + ",".join(VARIANTS))
    dg.add_argument("--steps", type=int, default=100, help="Adam steps of the free-flow drift (0: skip; default 100)")
    dg.add_argument("--region", default="background", choices=("background", "moving"),
                    help="the cells scored: the panned background (default) or the moving object")
    dg.add_argument("--out", default=None, help="JSON out (default <results_dir>/flow_diagnosis.json)")

    mv = sub.add_parser("moving", help="EPE on the moving object by place (core, edge) and speed, per method "
                                       "(synthetic set, validation videos; docs/SYNTHETIC.md section 7)")
    _common(mv)
    mv.add_argument("--checkpoint", default=None, help="MotionNet checkpoint (needed for method motionnet)")
    mv.add_argument("--methods", default=None, help="comma list (default tvl1,farneback, plus motionnet "
                                                    "with --checkpoint)")
    mv.add_argument("--max-videos", type=int, default=None,
                    help="the first N validation videos (default: all; the split lists them class by class)")
    mv.add_argument("--edge", type=int, default=EDGE, help=f"boundary band width in px (default {EDGE})")
    mv.add_argument("--out", default=None, help="JSON out (default <results_dir>/flow_moving.json)")

    cp = sub.add_parser("compare", help="paired bootstrap intervals of A - B from two `flow eval` / `flow moving` "
                                        "JSONs (FILE:METHOD each)")
    cp.add_argument("a", help="FILE:METHOD, e.g. results/x/flow_eval.json:motionnet")
    cp.add_argument("b", help="FILE:METHOD")
    cp.add_argument("--keys", default=None, help="comma list of per-video keys (default: every epe* both have)")
    cp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _config(args):
    params = {"profile": args.profile, "data_root": args.data_root, "seed": args.seed}
    if getattr(args, "tvl1_preset", "auto") != "auto":
        params["tvl1_preset"] = args.tvl1_preset
    if args.dataset:
        params["dataset"] = args.dataset
    params.update(parse_overrides(getattr(args, "set", [])))  # the training run's --set: the same flow
    return from_params(params)


def command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.flow_cmd == "compare":
        keys = [k.strip() for k in args.keys.split(",")] if args.keys else None
        print(format_compare(compare(args.a, args.b, keys, seed=args.seed), args.a, args.b))
        return 0
    cfg = _config(args)
    if args.flow_cmd == "extract":
        if args.method != "tvl1" and not args.out:
            raise ValueError(f"flow extract --method {args.method}: give it its own --out (DATA_ROOT/flow_tvl1 is "
                             "TV-L1's)")
        summary = extract_flow(cfg, out=args.out, workers=args.workers, limit=args.limit, threads=args.threads,
                               method=args.method, checkpoint=args.checkpoint)
        print(f"{args.method} flow: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed, "
              f"{summary['bytes_written']} bytes in {summary['seconds']:.1f} s -> "
              f"{Path(summary['flow_root']) / SUMMARY_NAME}")
        for f in summary["failed_videos"]:
            print(f"  failed: {f['path']}: {f['error']}")
        return 0
    if args.flow_cmd == "diagnose":
        variants = [v.strip() for v in args.variants.split(",")] if args.variants else list(VARIANTS)
        import torch  # deferred: extract and eval processes need no torch threads set

        torch.set_num_threads(max(1, args.threads))  # one thread by default: two spin against a busy 2-core CPU
        rows = diagnose_background(cfg, checkpoint=args.checkpoint, max_videos=args.max_videos, variants=variants,
                                   steps=args.steps, region=args.region)
        out = Path(args.out) if args.out else Path(cfg.results_dir) / "flow_diagnosis.json"
        atomic_write_json(out, {"rows": rows, "metadata": run_metadata(cfg), "checkpoint": args.checkpoint,
                                "max_videos": args.max_videos, "steps": args.steps, "region": args.region})
        print(format_diagnosis(rows))
        print(f"wrote {out}")
        return 0
    if args.flow_cmd == "moving":
        methods = parse_methods(args.methods or "tvl1,farneback" + (",motionnet" if args.checkpoint else ""))
        import torch  # deferred, as for diagnose

        torch.set_num_threads(max(1, args.threads))
        rows = moving_breakdown(cfg, methods, checkpoint=args.checkpoint, max_videos=args.max_videos,
                                threads=args.threads, edge=args.edge)
        out = Path(args.out) if args.out else Path(cfg.results_dir) / "flow_moving.json"
        videos = [r.video_id for r in records_with_truth(cfg, "val", args.max_videos)]
        atomic_write_json(out, {"rows": rows, "metadata": run_metadata(cfg), "checkpoint": args.checkpoint,
                                "max_videos": args.max_videos, "edge": args.edge, "videos": videos})
        print(format_breakdown(rows))
        print(f"wrote {out}")
        return 0
    default = "tvl1,dis,farneback,zero" + (",motionnet" if args.checkpoint else "")
    methods = parse_methods(args.methods or default)
    if args.every < 1:
        raise ValueError(f"--every {args.every}; expected >= 1")
    records = load_split(cfg, args.subset)[0][::args.every]
    rows = evaluate_flow(cfg, methods, checkpoint=args.checkpoint, max_videos=args.max_videos,
                         threads=args.threads, records=records, subset=args.subset)
    out = Path(args.out) if args.out else Path(cfg.results_dir) / "flow_eval.json"
    write_flow_eval(out, rows, cfg, methods=methods, max_videos=args.max_videos, checkpoint=args.checkpoint,
                    subset=args.subset, every=args.every, tvl1_preset=cfg.tvl1_preset,
                    videos=[r.video_id for r in records][: args.max_videos or None])
    print(format_rows(rows))
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="htsc flow")
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
