"""Tables 3 and 4: every fusion of the paper on the test subset, and ``htsc evaluate``.

AWL weights are fitted on validation scores (sec. 3.3): the streams' saved validation scores for
"HTS + AWL", the CLN heads' for HTSC. The test scores of every HTS / HTSC row come from one pass
of the :class:`~htsc_core.models.htsc.HTSC` model over the test videos (the model the Table 5
benchmark times); the baselines trained beside it -- the TV-L1 two-stream network and TSN's RGB
difference stream (docs/RGBDIFF.md) -- add their saved test scores, matched to the same videos by
:func:`htsc_core.train.scores.align_streams` (:func:`baseline_scores`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from htsc_core import stats
from htsc_core.metrics import correct
from htsc_core.analysis import classes_families, metric, score_report, video_families
from htsc_core.cli_args import add_config_arguments, config_from_args
from htsc_core.config import Config
from htsc_core.fusion import awl_scores, equal_fusion, fit_awl, hts_fusion
from htsc_core.models.htsc import HTSC
from htsc_core.paper import NOT_REPRODUCED, PAPER_COLUMNS, TABLE3, TABLE4
from htsc_core.train.scores import (STREAMS, align_streams, extract_scores, gather_videos, load_scores, scores_path,
                                    view_loader)
from htsc_core.train.cln import cln_scores, load_cln
from htsc_core.train.tclsta import tclsta_scores
from htsc_core.train.engine import (barrier, init_distributed, is_main_process, precision_policy, progress,
                                    shutdown_distributed)
from htsc_core.train.streams import build_stream, num_classes, run_dir
from htsc_core.utils import atomic_save_npz, atomic_write_json, resolve_device, run_metadata

HTSC_KEYS = ("spatial", "temporal", "hts", "cln_s", "cln_o", "cln", "htsc", "c_s", "c_o")


def build_htsc(cfg: Config, awl_weights=None) -> HTSC:
    """The trained HTSC: spatial and hidden temporal streams, CLN, and the AWL weights (eval mode)."""
    n = num_classes(cfg)
    spatial = build_stream(cfg, "spatial", n, load_trained=True)
    temporal = build_stream(cfg, "temporal", n, load_trained=True)
    return HTSC(spatial, temporal, load_cln(cfg, spatial.feature_dim, n), awl_weights).eval()


@torch.inference_mode()
def htsc_scores(cfg: Config, awl_weights, subset: str = "test", device: str | None = None) -> dict[str, np.ndarray]:
    """Run the trained HTSC over ``subset`` (test protocol); every score of :data:`HTSC_KEYS` per video,
    saved as ``<runs_dir>/scores/<subset>_htsc.npz``."""
    dev = resolve_device(device or cfg.device)
    model = build_htsc(cfg, awl_weights).to(dev)
    records, loader = view_loader(cfg, subset, ("stack",), "temporal")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*HTSC_KEYS, "labels")}
    ids: list[str] = []
    for batch in progress(loader, desc=f"htsc {subset}", leave=False):
        if batch is None:
            continue
        with precision_policy(dev, cfg).autocast(dev):  # the training policy: bf16 where native
            out = model(batch["stack"].to(dev, non_blocking=True), cfg.test_segments,
                        views_per_forward=cfg.views_per_forward)  # uint8 frames, bounded forwards
        for k in HTSC_KEYS:
            parts[k].append(out[k].float().cpu().numpy())
        parts["labels"].append(batch["label"].numpy())
        ids.extend(records[i].video_id for i in batch["index"].tolist())
    result = gather_videos(records, ids, parts)  # under torchrun: every rank's share, in the listing's order
    if result is None:
        raise RuntimeError(f"no readable video in {subset} of {cfg.data_root}; see the skipped.jsonl files")
    if is_main_process():
        atomic_save_npz(scores_path(cfg, subset, "htsc"), **result)
    barrier()
    return result


# Baselines scored from their saved test scores: stream -> (row of the stream alone, row of its late fusion
# with the HTSC pass's spatial scores). Both fuse spatial : motion = 1 : 1.5 (hts_fusion), the weights of the
# two-stream / Hidden Two-Stream protocol and of TSN for RGB + RGB difference.
BASELINES = {"tvl1": ("tvl1_temporal", "two_stream"), "rgbdiff": ("rgb_diff", "tsn_rgb_diff")}
# Baselines whose saved scores are the method's own (no late fusion with the HTSC pass): stream -> row.
# conv_fusion: two-stream conv fusion (Feichtenhofer et al. 2016), fused in the network (models/two_stream_fusion.py);
# c3d: C3D, one network on RGB clips (Tran et al. 2015; models/c3d.py); tclsta: TCLSTA's attention and
# collaborative heads on the spatial and TV-L1 streams (Peng et al. 2018; models/tclsta.py, docs/TCLSTA.md).
FUSED_BASELINES = {"conv_fusion": "two_stream_fusion", "c3d": "c3d", "tclsta": "tclsta"}
# what `htsc evaluate --streams` scores: the CNN streams, and TCLSTA's heads (scored by train/tclsta.tclsta_scores
# from the streams' cached conv5 maps, not by extract_scores)
EVAL_STREAMS = (*STREAMS, "tclsta")


def baseline_scores(cfg: Config, test: dict) -> dict[str, np.ndarray]:
    """Per-video test scores (n, M) of the baseline rows, in the video order of ``test`` (the HTSC pass,
    :func:`htsc_scores`, or ``load_scores(cfg, "test", "htsc")``): ``tvl1_temporal`` and ``two_stream``
    (TV-L1 stream, spatial + 1.5 x TV-L1), ``rgb_diff`` and ``tsn_rgb_diff`` (TSN RGB difference stream,
    spatial + 1.5 x RGB difference), each pair only when that stream's test scores were extracted.
    Per-video correctness for the paired verdicts: :func:`correct`."""
    out: dict[str, np.ndarray] = {}
    for stream in (*BASELINES, *FUSED_BASELINES):
        if not scores_path(cfg, "test", stream).exists():
            continue
        pair = align_streams({"htsc": test, stream: load_scores(cfg, "test", stream)})
        if not np.array_equal(pair[stream]["labels"], np.asarray(test["labels"])):
            raise ValueError(f"{scores_path(cfg, 'test', stream)}: labels differ from the HTSC pass's "
                             "for the same videos")
        if stream in FUSED_BASELINES:
            out[FUSED_BASELINES[stream]] = pair[stream]["scores"]
            continue
        alone, fused = BASELINES[stream]
        out[alone] = pair[stream]["scores"]
        out[fused] = hts_fusion(test["spatial"], pair[stream]["scores"])
    return out


def fusion_results(cfg: Config, device: str | None = None) -> dict:
    """Every method of Tables 3-4 on the test subset (AWL fitted on val)."""
    val = align_streams({"spatial": load_scores(cfg, "val", "spatial"),
                         "temporal": load_scores(cfg, "val", "temporal")})
    W_hts = fit_awl(val["spatial"]["scores"], val["temporal"]["scores"], val["spatial"]["labels"], c=cfg.awl_c)
    cln_val = cln_scores(cfg, "val")
    W_cln = fit_awl(cln_val["scores_s"], cln_val["scores_o"], cln_val["labels"], c=cfg.awl_c)
    test = htsc_scores(cfg, W_cln, "test", device)
    labels = test["labels"]
    fused = {
        "spatial": test["spatial"],
        "hidden_temporal": test["temporal"],
        "hts": test["hts"],  # Hidden Two-Stream protocol: spatial + 1.5 x temporal
        "hts_equal": equal_fusion(test["spatial"], test["temporal"]),
        "hts_awl": awl_scores(W_hts, test["spatial"], test["temporal"]),
        "hts_cln": test["cln"],  # the same 1:1.5 late fusion of the CLN heads
        "hts_cln_awl": test["htsc"],  # Eq. 15
    }
    result = {k: metric(v, labels) for k, v in fused.items()}
    baselines = baseline_scores(cfg, test)  # two_stream (TV-L1), tsn_rgb_diff (RGB difference) and their streams
    result.update({k: metric(v, labels) for k, v in baselines.items()})
    result["htsc"] = result["hts_cln_awl"]
    # every row's per-video scores, for the intervals and paired verdicts of notebooks 06-07
    if is_main_process():  # under torchrun every rank holds the gathered scores; one writes them
        atomic_save_npz(scores_path(cfg, "test", "methods"), labels=labels, video_ids=test["video_ids"],
                        **{k: np.asarray(v, dtype=np.float32) for k, v in {**fused, **baselines}.items()})
    barrier()
    per_family = {}
    if labels.ndim == 1:
        for name, scores in {**fused, **baselines}.items():
            fam = score_report(cfg, scores, labels)["per_family"]
            if fam:
                per_family[name] = fam
    return {"metric": "mAP" if labels.ndim == 2 else "top1", "test": result, "per_family": per_family,
            "awl_weights": {"hts": W_hts.tolist(), "cln": W_cln.tolist()}, "n_test": int(len(labels))}


def evaluate_all(cfg: Config, device: str | None = None, streams: tuple[str, ...] = EVAL_STREAMS) -> dict:
    """Score the trained streams (validation for AWL; test for TV-L1), run HTSC on test, write evaluation.json."""
    for stream in streams:
        if not (run_dir(cfg, stream) / "best.pt").exists():
            continue
        if stream == "tclsta":  # its heads on the spatial / TV-L1 streams' conv5 maps of each subset
            for subset in ("val", "test"):
                tclsta_scores(cfg, subset, device)
            continue
        for subset in (("test",) if stream in BASELINES or stream in FUSED_BASELINES else ("val",)):
            extract_scores(cfg, stream, subset, device)
    results = fusion_results(cfg, device)
    results["meta"] = run_metadata(cfg)
    if is_main_process():
        atomic_write_json(Path(cfg.runs_dir) / "evaluation.json", results)
    return results


def method_scores(cfg: Config) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-video test scores of every Table 3/4 row (``fusion_results`` saves them) and the labels."""
    with np.load(scores_path(cfg, "test", "methods"), allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    labels = data.pop("labels")
    data.pop("video_ids")
    data["htsc"] = data["hts_cln_awl"]
    return data, labels


def interval(scores: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """The paper's metric with its 95% interval: Wilson for top-1 (a proportion), percentile bootstrap over
    test videos for mAP (THUMOS14)."""
    if labels.ndim == 2:
        return stats.bootstrap_ci(metric, scores, labels, seed=seed)
    ok = correct(scores, labels)
    lo, hi = stats.wilson_interval(int(ok.sum()), ok.size)
    return float(ok.mean()), lo, hi


def interval_name(labels: np.ndarray) -> str:
    """What a one-model table's interval is (its ``interval`` column): Wilson for top-1, bootstrap for mAP."""
    return "bootstrap" if labels.ndim == 2 else "wilson"


def _rows(cfg: Config, paper: dict) -> list[dict]:
    scores, labels = method_scores(cfg)
    rows = []
    for m, values in paper.items():
        row = {"method": m, "ours": "", "ci_low": "", "ci_high": "", "n_test": len(labels), "interval": "",
               "seeds": ""}
        if m in scores:
            row["ours"], row["ci_low"], row["ci_high"] = interval(scores[m], labels, cfg.seed)
            row.update(interval=interval_name(labels), seeds=1)
        rows.append({**row, **dict(zip(PAPER_COLUMNS, values))})
    return rows


# ``interval`` says which interval a row carries: "wilson" (or "bootstrap" for mAP) from one trained model, or
# "seed-aware" once `htsc reproduce --seeds N` restated the table over N seeds (htsc_core/seeds.py, which adds
# each seed's value as ``ours_seed<k>``); ``seeds`` how many trained models the value covers.
TABLE_COLUMNS = ("method", "ours", "ci_low", "ci_high", "n_test", "interval", "seeds", *PAPER_COLUMNS)
TABLE3_COLUMNS = (*TABLE_COLUMNS, "no_ours_because")


def table4_rows(cfg: Config) -> list[dict]:
    """Table 4 (ablation): ours with its 95% interval and the test-set size beside the paper's three columns."""
    return _rows(cfg, TABLE4)


def table3_rows(cfg: Config) -> list[dict]:
    """Table 3 (comparison), every row of the paper's table; a row without ``ours`` says why
    (``no_ours_because``, from :data:`htsc_core.paper.NOT_REPRODUCED`)."""
    rows = _rows(cfg, TABLE3)
    for r in rows:
        r["no_ours_because"] = NOT_REPRODUCED.get(r["method"], "") if r["ours"] == "" else ""
    return rows


PER_FAMILY_METHODS = ("spatial", "tvl1_temporal", "rgb_diff", "hidden_temporal", "two_stream", "tsn_rgb_diff",
                      "two_stream_fusion", "c3d", "tclsta", "hts", "hts_cln", "hts_cln_awl")


def per_family_rows(cfg: Config) -> tuple[list[dict], list[str]]:
    """Top-1 within each family of classes (synthetic set), with Wilson intervals: which stream sees which cue.

    Returns (rows, columns); no rows on a dataset without families."""
    classes, families = classes_families(cfg)
    if not families:
        return [], ["method"]
    scores, labels = method_scores(cfg)
    fam_of_video = video_families(cfg, labels)
    names = [f for f in dict.fromkeys(families[c] for c in classes)]
    columns = ["method", "interval", "seeds"] + [f"{f}{suffix}" for f in names
                                                 for suffix in ("", "_ci_low", "_ci_high", "_n")]
    rows = []
    for m in PER_FAMILY_METHODS:
        if m not in scores:
            continue
        row = {"method": m, "interval": "wilson", "seeds": 1}
        for f in names:
            sel = fam_of_video == f
            if not sel.any():  # a family with no test video (a small user split): a gap, not a crash
                row.update({f: float("nan"), f"{f}_ci_low": float("nan"), f"{f}_ci_high": float("nan"), f"{f}_n": 0})
                continue
            ok = correct(scores[m][sel], labels[sel])
            lo, hi = stats.wilson_interval(int(ok.sum()), ok.size)
            row.update({f: float(ok.mean()), f"{f}_ci_low": lo, f"{f}_ci_high": hi, f"{f}_n": int(ok.size)})
        rows.append(row)
    return rows, columns


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--streams", default=",".join(EVAL_STREAMS), help="streams to (re)score, comma-separated")


def command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    streams = tuple(s for s in args.streams.split(",") if s)
    unknown = sorted(set(streams) - set(EVAL_STREAMS))
    if unknown:
        raise ValueError(f"--streams: unknown {unknown}; expected some of {', '.join(EVAL_STREAMS)}")
    # under torchrun: one process group for every pass, each rank on its own device (LOCAL_RANK), each video scored
    # on one rank and the scores gathered; rank 0 writes (train/scores.py)
    init_distributed(resolve_device(cfg.device))
    results = evaluate_all(cfg, streams=streams)
    if is_main_process():
        for k, v in results["test"].items():
            print(f"{k:>16s}  {results['metric']} {v:.4f}")
    shutdown_distributed()
    return 0
