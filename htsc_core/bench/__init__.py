"""``htsc bench``: the efficiency benchmarks (paper section 4.4, Table 5; docs/DESIGN.md section 7).

    htsc bench table5   [--profile P] [--resolutions 128,224] [--repeats N] [--ratio-rounds N] [--threads N]
                        [--compile] [--out DIR]
    htsc bench data     [--profile P] [--data-root ROOT] [--out DIR]
    htsc bench scaling  [--profile P] [--data-root ROOT] [--out DIR]
    htsc bench train    [--profile P] [--stages spatial,motion,...] [--repeats N] [--json PATH]
    htsc bench all      ...

Each writes JSON (``bench_table5.json``, ``bench_data.json``, ``bench_scaling.json``) into
``<results_dir>/metrics/`` (``results/<dataset>/metrics`` for the default profile) or ``--out``
(``bench_train.json``: ``--json`` or ``--out``), and
prints a short table. ``--compile`` also tries ``torch.compile`` on a paper-width VGG16 at 224 px and
records whether it helped (or why it failed).
"""
from __future__ import annotations

import argparse

from htsc_core.bench.data import data_benchmark, scaling_benchmark
from htsc_core.bench.table5 import FPS_DEFINITION, table5_benchmark
from htsc_core.bench.train import STAGES as TRAIN_STAGES
from htsc_core.bench.train import precision_comparison, train_benchmark
from htsc_core.cli_args import add_config_arguments, config_from_args
from htsc_core.utils import fmt_table

__all__ = ["add_arguments", "command", "table5_benchmark", "data_benchmark", "scaling_benchmark", "FPS_DEFINITION",
           "train_benchmark", "precision_comparison"]

WHAT = ("table5", "data", "scaling", "train", "precision", "all")


def _stages(text: str) -> tuple[str, ...]:
    stages = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in stages if s not in TRAIN_STAGES]
    if bad or not stages:
        raise argparse.ArgumentTypeError(f"--stages {text!r}: expected comma-separated names from {TRAIN_STAGES}")
    return stages


def _resolutions(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--resolutions {text!r}: expected comma-separated integers, e.g. 128,224") \
            from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=WHAT, help="which benchmark to run")
    add_config_arguments(p)
    p.add_argument("--resolutions", type=_resolutions, default=None,
                   help="paper-width resolutions besides the profile's (comma-separated multiples of 32, 'none' "
                        "for none; default: none for smoke, else the profile size,128,224)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per figure (default by profile)")
    p.add_argument("--ratio-rounds", type=int, default=None,
                   help="`table5`: HTS / HTSC rounds in all, a fixed number (default: config bench_ratio_rounds; "
                        "0 = 10 for smoke, else 20)")
    p.add_argument("--videos", type=int, default=1, help="videos per batch in the Table 5 pipelines")
    p.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: torch's)")
    p.add_argument("--num-workers", type=int, default=None, help="loader workers for `data` (default: profile's)")
    p.add_argument("--compile", action="store_true",
                   help="also try torch.compile on VGG16 at 224 px and record whether it helped")
    p.add_argument("--out", default=None, help="output directory (default <results_dir>/metrics)")
    p.add_argument("--stages", type=_stages, default=TRAIN_STAGES,
                   help=f"`train`: comma-separated stages (default {','.join(TRAIN_STAGES)})")
    p.add_argument("--json", default=None, help="`train`, `precision`: output JSON path (default "
                                                 "<out>/bench_train.json, <out>/bf16_vs_fp32.json)")
    p.add_argument("--seeds", type=int, default=1, help="`precision`: training seeds per precision (default 1)")
    p.add_argument("--epochs", type=int, default=None,
                   help="`precision`: cap every compared stage at this many epochs (default: the profile's)")


def _table(rows, cols) -> str:
    return fmt_table(rows, cols)


def _print_table5(res: dict) -> None:
    print(res["definition"])
    for run in res["runs"]:
        print(f"\n{run['label']}: {run['resolution']} px, VGG width {run['vgg_width']}, MotionNet width "
              f"{run['motion_width']}, {run['segments']} segments x L={run['stack_length']}, batch "
              f"{run['batch_videos']} video(s), {run['torch_threads']} threads, {run['device']}, {run['precision']}")
        print(_table(run["rows"], ["method", "ours_fps", "fps_min", "fps_max", "videos_per_s", "paper_fps"]))
        fs = run["flow_stage"]
        print(f"flow stage per stack: TV-L1 {fs['tvl1_s_per_stack'] * 1e3:.1f} ms, MotionNet "
              f"{fs['motionnet_s_per_stack'] * 1e3:.1f} ms ({fs['motionnet_speedup']:.1f}x); flow storage "
              f"{run['flow_storage_bytes_per_video'] / 1024:.1f} KiB/video; HTSC/two-stream "
              f"{run['ratios']['htsc_over_two_stream']:.2f}x")
        ff, r = run["flow_per_field"], run["htsc_over_hts"]
        ci = lambda lo, hi: "(< 5 repeats)" if lo is None else f"95% CI {lo:.3g}-{hi:.3g}"  # noqa: E731
        print(f"per flow field: TV-L1 {ff['tvl1_s_per_field'] * 1e3:.2f} ms, MotionNet "
              f"{ff['motionnet_s_per_field'] * 1e3:.2f} ms, {ff['motionnet_speedup_per_field']:.1f}x "
              f"({ci(ff['ci_low'], ff['ci_high'])}); HTSC/HTS {r['estimate']:.3f} ({ci(r['ci_low'], r['ci_high'])}, "
              f"{r['rounds']} rounds, {'resolved' if r['resolved'] else 'not resolved'} at +-{r['tolerance']:.0%})")
    mm = res["matmul"]
    print(f"\nmatmul {mm['n']}x{mm['n']} {mm.get('precision', 'fp32')} on {mm['device']} (the networks' precision): "
          f"{mm['flops_per_s'] / 1e9:.1f} GFLOP/s; 1x1 conv (oneDNN, fp32) "
          f"{res['conv1x1']['flops_per_s'] / 1e9:.1f} GFLOP/s")
    print(_table([{**r, "gflops": r["gflops_per_input"], "achieved_gflops_per_s": r["achieved_flops_per_s"] / 1e9}
                  for r in res["networks"]],
                 ["network", "resolution", "batch", "params", "gflops", "achieved_gflops_per_s", "fraction_of_mm",
                  "fraction_of_conv1x1"]))
    if res.get("compile"):
        c = res["compile"]
        outcome = (f"error {c['error']}" if c.get("error")
                   else f"speedup {c['speedup']:.2f}x, compile {c['compile_s']:.0f} s")
        print(f"torch.compile (VGG16, {c['resolution']} px, batch {c['batch']}): {outcome}")
    if res["goals"]:
        print()
        print(_table(res["goals"], ["goal", "measured", "target", "met"]))
    print(f"\nwrote {res['path']}")


def command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.what in ("table5", "all"):
        res = table5_benchmark(cfg, args.resolutions, args.repeats, videos=args.videos, threads=args.threads,
                               try_compile=args.compile, out=args.out, ratio_rounds=args.ratio_rounds)
        _print_table5(res)
    if args.what in ("data", "all"):
        res = data_benchmark(cfg, repeats=args.repeats, out=args.out, num_workers=args.num_workers)
        print(_table(res["rows"], ["stage", "loader_clips_per_s", "train_clips_per_s", "ratio"]))
        print(f"({res['dataset']}; {res['num_workers']} workers, batch {res['batch_size']}, {res['image_size']} px)")
        print(f"wrote {res['path']}")
    if args.what in ("scaling", "all"):
        res = scaling_benchmark(cfg, out=args.out)
        print(_table(res["runs"], ["factor", "videos", "steps", "epoch_s", "peak_rss_bytes"]))
        print(f"time ratio {res['time_ratio']:.2f} for {res['size_ratio']:.0f}x videos "
              f"(linear = {res['size_ratio']:.0f}); peak RSS ratio {res['peak_rss_ratio']:.3f} (flat = 1)")
        print(f"wrote {res['path']}")
    if args.what in ("train", "all"):
        from pathlib import Path

        path = args.json or (Path(args.out) / "bench_train.json" if args.out else None)
        res = train_benchmark(cfg, stages=args.stages, repeats=args.repeats, json_path=path)
        rows = [{"stage": k, **v, "fp32_ms": v["fp32_ms_per_step"], "bf16_ms": v["bf16_ms_per_step"],
                 "loader_ms": v["loader_ms_per_batch"], "flow_loss_ms": v.get("flow_loss_ms_per_step")}
                for k, v in res["stages"].items()]
        for r in rows:
            ci = r.get("speedup_ci95")
            r["speedup_95ci"] = f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "(< 5 repeats)"
        print(_table(rows, ["stage", "batch_size", "fp32_ms", "bf16_ms", "speedup", "speedup_95ci", "flow_loss_ms",
                            "gflops_per_step", "gflops_per_s_fp32", "gflops_per_s_bf16", "loader_ms"]))
        m = res["machine"]
        print(f"({m['cpu_model']}, {m['torch_threads']} threads, torch {m['torch']}, native bf16 "
              f"{m['bf16_native_cpu']}; trainer precision: {res['trainer_precision']})")
        print(f"wrote {res['path']}")
    if args.what == "precision":  # trains every stage twice: not part of `all`
        from pathlib import Path

        stages = ("spatial", "motion") if args.stages == TRAIN_STAGES else args.stages  # others raise
        path = args.json or (Path(args.out) / "bf16_vs_fp32.json" if args.out else None)
        res = precision_comparison(cfg, stages=stages, json_path=path, epochs=args.epochs, seeds=args.seeds)
        for stage, r in res["stages"].items():
            c = r["claim"]
            print(f"{stage}: {c['claim']}: {c['verdict']} ({c['detail']}); per seed {r['seed_spread']}")
        print(f"wrote {res['path']}")
    return 0
