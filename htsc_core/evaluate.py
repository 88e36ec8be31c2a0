"""Multi-view testing, per-stream scores, the CLN stage, and every fusion of Tables 3-4.

Each trained stream is run once per subset under the test protocol (S segments x crops,
DESIGN.md section 4); its per-video softmax scores (mean over views) and per-segment fc7
features (mean over crops) are saved to ``<runs_dir>/scores/<subset>_<stream>.npz``.
Every fusion (late, 1:1.5, CLN, CLN + AWL) is then computed from those files without
running the networks again.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from htsc_core.config import Config
from htsc_core.utils import atomic_save_npz, atomic_write_json, resolve_device, run_metadata

STREAMS = ("spatial", "temporal", "tvl1")  # stage names of the three CNN streams
SUBSETS = ("train", "val", "test")


def scores_path(cfg: Config, subset: str, stream: str) -> Path:
    return Path(cfg.runs_dir) / "scores" / f"{subset}_{stream}.npz"


def load_scores(cfg: Config, subset: str, stream: str) -> dict[str, np.ndarray]:
    path = scores_path(cfg, subset, stream)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `htsc evaluate` after training the {stream!r} stage")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _forward(stream: str, model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, fc7) for every view of the batch, flattened to (B*V, ...)."""
    if stream == "temporal":
        out = model(batch["stack"].flatten(0, 1))
        return out["logits"], out["fc7"]
    x = batch["rgb" if stream == "spatial" else "flow"].flatten(0, 1)
    fc7 = model.features(x)
    return model.classifier_head(fc7), fc7


@torch.inference_mode()
def extract_scores(cfg: Config, stream: str, subset: str, device: str | None = None) -> Path:
    """Run a trained stream over ``subset`` with the multi-view test protocol; save scores + features."""
    from htsc_core.data.dataset import VideoDataset, make_loader
    from htsc_core.data.registry import load_split
    from htsc_core.train.engine import precision_policy, progress
    from htsc_core.train.stages import MODALITY, build_stream, flow_root, run_dir

    dev = resolve_device(device or cfg.device)
    records, classes = load_split(cfg, subset)
    model = build_stream(cfg, stream, len(classes), load_trained=True).to(dev).eval()
    dataset = VideoDataset(records, cfg, mode="test", modalities=MODALITY[stream],
                           skip_log=run_dir(cfg, stream) / "skipped.jsonl",
                           flow_root=flow_root(cfg) if stream == "tvl1" else None)
    scores, feats, labels, ids = [], [], [], []
    for batch in progress(make_loader(dataset, cfg, shuffle=False), desc=f"{stream} {subset}", leave=False):
        if batch is None:
            continue
        batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
        with precision_policy(dev, cfg.amp).autocast(dev):  # the trainer's policy (train/engine.py)
            logits, fc7 = _forward(stream, model, batch)
        b = batch["index"].shape[0]
        probs = logits.float().softmax(-1).view(b, -1, logits.shape[-1])  # (B, V, M)
        scores.append(probs.mean(1).cpu().numpy())  # average over segments x crops
        seg = fc7.float().view(b, cfg.test_segments, cfg.test_crops, -1).mean(2)  # (B, S, d)
        feats.append(seg.cpu().numpy().astype(np.float32))
        labels.append(batch["label"].cpu().numpy())
        ids.extend(records[i].video_id for i in batch["index"].tolist())
    if not scores:
        raise RuntimeError(f"no readable video in {subset} of {cfg.data_root}; see the skipped.jsonl files")
    return atomic_save_npz(scores_path(cfg, subset, stream), scores=np.concatenate(scores),
                           features=np.concatenate(feats), labels=np.concatenate(labels),
                           video_ids=np.array(ids))


# --- CLN (section 3.2) on cached features ----------------------------------------------
def _feature_pairs(cfg: Config, subset: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    s, o = load_scores(cfg, subset, "spatial"), load_scores(cfg, subset, "temporal")
    if not np.array_equal(s["video_ids"], o["video_ids"]):  # a video skipped by one stream only
        common = np.intersect1d(s["video_ids"], o["video_ids"])
        s = {k: v[np.isin(s["video_ids"], common)] for k, v in s.items()}
        o = {k: v[np.isin(o["video_ids"], common)] for k, v in o.items()}
        order_s, order_o = np.argsort(s["video_ids"]), np.argsort(o["video_ids"])
        s, o = {k: v[order_s] for k, v in s.items()}, {k: v[order_o] for k, v in o.items()}
    return (torch.from_numpy(s["features"]), torch.from_numpy(o["features"]),
            torch.from_numpy(s["labels"]), s["video_ids"])


def build_cln(cfg: Config, feature_dim: int, n_classes: int) -> nn.Module:
    from htsc_core.models.cln import CollaborativeLearning

    return CollaborativeLearning(feature_dim, cfg.cln_hidden, n_classes, rounds=cfg.cln_rounds, dropout=cfg.dropout)


def _cln_loader(fs, fo, labels, batch_size: int, generator: torch.Generator | None):
    idx = torch.randperm(len(labels), generator=generator) if generator is not None else torch.arange(len(labels))
    return [{"fs": fs[i], "fo": fo[i], "label": labels[i]} for i in idx.split(batch_size)]


def train_cln(cfg: Config, resume: bool = True, device: str | None = None) -> Path:
    """Stage 4: train the CLN with cross-entropy on both heads (sec. 4.2.2) on cached fc7 features.

    The features are those of the trained spatial and hidden temporal streams on the
    training videos under the test protocol (S centre segments); the paper does not say
    whether the CLN is trained jointly with the streams, so we train it on frozen features.
    """
    from htsc_core.models.cln import cln_loss
    from htsc_core.train.engine import Trainer
    from htsc_core.train.stages import correct_count, run_dir

    for subset in ("train", "val"):
        for stream in ("spatial", "temporal"):
            if not scores_path(cfg, subset, stream).exists():
                extract_scores(cfg, stream, subset, device)
    fs, fo, y, _ = _feature_pairs(cfg, "train")
    vfs, vfo, vy, _ = _feature_pairs(cfg, "val")
    model = build_cln(cfg, fs.shape[-1], _n_classes(cfg))

    def step(m: nn.Module, batch: dict):
        out = m(batch["fs"], batch["fo"])
        fused = out["logits_s"].softmax(-1) + out["logits_o"].softmax(-1)
        return cln_loss(out, batch["label"]), {"correct": correct_count(fused, batch["label"]),
                                               "count": batch["label"].shape[0]}

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr_cln, weight_decay=cfg.weight_decay)
    out_dir = run_dir(cfg, "cln")
    trainer = Trainer(out_dir, "cln", model, optimizer, step,
                      lambda e: _cln_loader(fs, fo, y, cfg.batch_size, torch.Generator().manual_seed(cfg.seed * 1000 + e)),
                      cfg.epochs_cln, seed=cfg.seed, device=device or cfg.device, amp=False,
                      val_loader=_cln_loader(vfs, vfo, vy, 256, None), config=cfg.to_dict())
    trainer.fit(resume=resume)
    return out_dir


def _n_classes(cfg: Config) -> int:
    from htsc_core.data.registry import load_split

    return len(load_split(cfg, "test")[1])


@torch.inference_mode()
def cln_scores(cfg: Config, subset: str) -> dict[str, np.ndarray]:
    """The trained CLN's two softmax heads and coefficients on ``subset``; saved as ``<subset>_cln.npz``."""
    from htsc_core.train.engine import load_checkpoint, load_state
    from htsc_core.train.stages import run_dir

    for stream in ("spatial", "temporal"):
        if not scores_path(cfg, subset, stream).exists():
            extract_scores(cfg, stream, subset)
    fs, fo, y, ids = _feature_pairs(cfg, subset)
    model = build_cln(cfg, fs.shape[-1], _n_classes(cfg))
    path = run_dir(cfg, "cln") / "best.pt"
    load_state(model, load_checkpoint(path, stage="cln"), path)
    out = model.eval()(fs, fo)
    result = {"scores_s": out["logits_s"].softmax(-1).numpy(), "scores_o": out["logits_o"].softmax(-1).numpy(),
              "c_s": out["c_s"].numpy(), "c_o": out["c_o"].numpy(), "labels": y.numpy(), "video_ids": ids}
    atomic_save_npz(scores_path(cfg, subset, "cln"), **result)
    return result


# --- Tables 3 and 4 ---------------------------------------------------------------------
def _metric(scores: np.ndarray, labels: np.ndarray) -> float:
    from htsc_core import metrics

    if labels.ndim == 2:  # THUMOS14: mAP (sec. 4.1)
        return float(metrics.mean_average_precision(scores, labels))
    return float(metrics.top1(scores, labels))


def fusion_results(cfg: Config) -> dict:
    """Every method of Tables 3-4 on the test subset, from saved scores (AWL fitted on val)."""
    from htsc_core.fusion import awl_scores, fit_awl, hts_fusion, late_fusion

    sp, te = load_scores(cfg, "test", "spatial"), load_scores(cfg, "test", "temporal")
    labels = sp["labels"]
    cln_test, cln_val = cln_scores(cfg, "test"), cln_scores(cfg, "val")
    sp_val, te_val = load_scores(cfg, "val", "spatial"), load_scores(cfg, "val", "temporal")
    W_hts = fit_awl(sp_val["scores"], te_val["scores"], sp_val["labels"], c=cfg.awl_c)
    W_cln = fit_awl(cln_val["scores_s"], cln_val["scores_o"], cln_val["labels"], c=cfg.awl_c)
    fused = {
        "spatial": sp["scores"],
        "hidden_temporal": te["scores"],
        "hts": hts_fusion(sp["scores"], te["scores"]),  # Hidden Two-Stream protocol: spatial + 1.5 x temporal
        "hts_equal": late_fusion(sp["scores"], te["scores"]),
        "hts_awl": awl_scores(W_hts, sp["scores"], te["scores"]),
        "hts_cln": hts_fusion(cln_test["scores_s"], cln_test["scores_o"]),  # same 1:1.5 late fusion of the CLN heads
        "hts_cln_awl": awl_scores(W_cln, cln_test["scores_s"], cln_test["scores_o"]),  # Eq. 15
    }
    cln_labels = cln_test["labels"]
    result = {k: _metric(v, cln_labels if k.startswith("hts_cln") else labels) for k, v in fused.items()}
    if scores_path(cfg, "test", "tvl1").exists():
        tv = load_scores(cfg, "test", "tvl1")
        result["tvl1_temporal"] = _metric(tv["scores"], tv["labels"])
        if np.array_equal(tv["video_ids"], sp["video_ids"]):
            result["two_stream"] = _metric(hts_fusion(sp["scores"], tv["scores"]), labels)
    result["htsc"] = result["hts_cln_awl"]
    per_family = {}
    if labels.ndim == 1:
        for name, scores in fused.items():
            fam = score_report(cfg, scores, cln_labels if name.startswith("hts_cln") else labels)["per_family"]
            if fam:
                per_family[name] = fam
    return {"metric": "mAP" if labels.ndim == 2 else "top1", "test": result, "per_family": per_family,
            "awl_weights": {"hts": W_hts.tolist(), "cln": W_cln.tolist()},
            "n_test": int(len(labels))}


def evaluate_all(cfg: Config, device: str | None = None, streams: tuple[str, ...] = STREAMS) -> dict:
    from htsc_core.train.stages import run_dir

    for stream in streams:
        if not (run_dir(cfg, stream) / "best.pt").exists():
            continue
        for subset in ("val", "test"):
            extract_scores(cfg, stream, subset, device)
    results = fusion_results(cfg)
    results["meta"] = run_metadata(cfg)
    atomic_write_json(Path(cfg.runs_dir) / "evaluation.json", results)
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    from htsc_core.train.stages import add_config_arguments

    add_config_arguments(p)
    p.add_argument("--streams", default=",".join(STREAMS), help="streams to (re)score, comma-separated")


def command(args: argparse.Namespace) -> int:
    from htsc_core.train.stages import config_from_args

    cfg = config_from_args(args)
    results = evaluate_all(cfg, streams=tuple(s for s in args.streams.split(",") if s))
    for k, v in results["test"].items():
        print(f"{k:>16s}  {results['metric']} {v:.4f}")
    return 0


# --- reports for the notebooks --------------------------------------------------------
def _classes_families(cfg: Config) -> tuple[list[str], dict[str, str] | None]:
    from htsc_core.data.registry import class_families, load_split

    return load_split(cfg, "test")[1], class_families(cfg)


def score_report(cfg: Config, scores: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 (or mAP), mean class accuracy, confusion and per-family accuracy of one score matrix."""
    from htsc_core import metrics

    classes, families = _classes_families(cfg)
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
    """Score one trained stream on ``subset`` (extracting its scores if needed)."""
    extract_scores(cfg, stream, subset)
    s = load_scores(cfg, subset, stream)
    return score_report(cfg, s["scores"], s["labels"])


def coefficient_examples(cfg: Config, out: dict, per_class: int = 1) -> dict:
    """The CLN coefficients of ``per_class`` test videos per class, with their segment frames (crop 0)."""
    from htsc_core.data.dataset import VideoDataset
    from htsc_core.data.registry import load_split

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
    from htsc_core.fusion import awl_scores, equal_fusion, fit_awl, hts_fusion, summarise_awl

    classes, families = _classes_families(cfg)
    val, test = cln_scores(cfg, "val"), cln_scores(cfg, "test")
    W = fit_awl(val["scores_s"], val["scores_o"], val["labels"], c=cfg.awl_c)
    rows = summarise_awl(W, classes, families)
    fused = {"spatial head": test["scores_s"], "temporal head": test["scores_o"],
             "equal late fusion": equal_fusion(test["scores_s"], test["scores_o"]),
             "1:1.5 late fusion (HTS protocol)": hts_fusion(test["scores_s"], test["scores_o"]),
             "AWL (Eq. 15)": awl_scores(W, test["scores_s"], test["scores_o"])}
    fusion = [{"method": k, "score": _metric(v, test["labels"])} for k, v in fused.items()]
    family_weights = {}
    if families:
        for fam in sorted(set(families.values())):
            w = [r["w_temporal"] for r in rows if r["family"] == fam]
            family_weights[fam] = float(np.mean(w))
    return {"rows": rows, "fusion": fusion, "family_weights": family_weights, "W": W.tolist()}


def table4_rows(results: dict) -> list[dict]:
    from htsc_core.paper import PAPER_COLUMNS, TABLE4

    t = results["test"]
    return [{"method": m, "ours": t[m], **dict(zip(PAPER_COLUMNS, TABLE4[m]))} for m in TABLE4]


def table3_rows(results: dict) -> list[dict]:
    from htsc_core.paper import PAPER_COLUMNS, TABLE3

    t = results["test"]
    return [{"method": m, "ours": t.get(m, ""), **dict(zip(PAPER_COLUMNS, TABLE3[m]))} for m in TABLE3]
