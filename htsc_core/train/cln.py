"""Stage 5: the collaborative learning network (paper sec. 3.2, 4.2.2) on the streams' cached fc7 features.

The features are those of the trained spatial and hidden temporal streams under the test protocol
(S centre segments, mean over crops), saved by :func:`htsc_core.train.scores.extract_scores`. The paper
does not say whether the CLN is trained jointly with the streams; we train it on frozen features
(docs/DESIGN.md section 3).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from htsc_core.config import Config
from htsc_core.fusion import TEMPORAL_WEIGHT
from htsc_core.models.cln import CollaborativeLearning, cln_loss
from htsc_core.train.scores import align_streams, extract_scores, load_scores, scores_path
from htsc_core.train.engine import Trainer, barrier, is_main_process, load_checkpoint, load_state, rank_and_world
from htsc_core.train.streams import correct_count, make_optimizer, num_classes, run_dir
from htsc_core.utils import atomic_save_npz


def feature_pairs(cfg: Config, subset: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """(F^s (n, S, d), F^o (n, S, d), labels, video_ids) of ``subset``, in one video order (:func:`align_streams`)."""
    for stream in ("spatial", "temporal"):
        if not scores_path(cfg, subset, stream).exists():  # scored by train_cln (or a notebook) before
            extract_scores(cfg, stream, subset)
    pair = align_streams({"spatial": load_scores(cfg, subset, "spatial"),
                          "temporal": load_scores(cfg, subset, "temporal")})
    s, o = pair["spatial"], pair["temporal"]
    return (torch.from_numpy(s["features"]), torch.from_numpy(o["features"]),
            torch.from_numpy(s["labels"]), s["video_ids"])


def build_cln(cfg: Config, feature_dim: int, n_classes: int) -> CollaborativeLearning:
    return CollaborativeLearning(feature_dim, cfg.cln_hidden, n_classes, rounds=cfg.cln_rounds,
                                 dropout=cfg.dropout_cln)  # docs/DESIGN.md section 3, dropout per module


def load_cln(cfg: Config, feature_dim: int, n_classes: int) -> CollaborativeLearning:
    """The trained CLN (``<runs_dir>/cln/best.pt``), in eval mode."""
    model = build_cln(cfg, feature_dim, n_classes)
    path = run_dir(cfg, "cln") / "best.pt"
    load_state(model, load_checkpoint(path, stage="cln"), path)
    return model.eval()


class paired_feature_batches:  # noqa: N801 - used as the function it was; a re-iterable of batches
    """Batches of cached per-video (spatial, temporal) feature pairs (the CLN's fc7 features; TCLSTA's conv5 maps,
    train/tclsta.py): shuffled by ``generator`` (training), in order without one (validation).

    ``batch_size`` is the global batch, as for the video stages (docs/DESIGN.md section 6): under ``torchrun``
    (W ranks) each global batch of ``batch_size`` features is split over the ranks (the same permutation on
    every rank: ``generator`` is seeded alike), whose gradients DDP averages; a last global batch too small to
    give every rank a part is left out of training (a rank without a step would stall the others' all-reduce).
    Validation batches are split the same way, the trainer all-reducing the sums: every video once.

    Lazy: each batch indexes ``fs`` / ``fo`` when its turn comes (tensors, or TCLSTA's :class:`MapRows` that read
    their rows from disk then), so iterating holds one batch of features, not the subset's; it can be iterated
    again (the trainer's validation, every epoch) with the same batches.
    """

    def __init__(self, fs, fo, labels, batch_size: int, generator: torch.Generator | None):
        rank, world = rank_and_world()
        if generator is not None and batch_size < world:
            raise ValueError(f"batch_size={batch_size} (the global batch) is smaller than the {world} processes")
        n = len(labels)
        idx = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        parts = [chunk[rank::world] for chunk in idx.split(batch_size)
                 if len(chunk) >= world or generator is None]
        self.parts = [i for i in parts if len(i)]
        self.fs, self.fo, self.labels = fs, fo, labels

    def __len__(self) -> int:
        return len(self.parts)

    def __iter__(self):
        for i in self.parts:
            yield {"fs": self.fs[i], "fo": self.fo[i], "label": self.labels[i]}


def train_cln(cfg: Config, resume: bool = True, device: str | None = None) -> Path:
    """Train the CLN with cross-entropy on both heads (sec. 4.2.2); returns its run directory."""
    for subset in ("train", "val"):
        for stream in ("spatial", "temporal"):
            extract_scores(cfg, stream, subset, device)  # kept when made from these checkpoints and settings
    fs, fo, y, _ = feature_pairs(cfg, "train")
    vfs, vfo, vy, _ = feature_pairs(cfg, "val")
    model = build_cln(cfg, fs.shape[-1], num_classes(cfg))

    def step(m: nn.Module, batch: dict):
        out = m(batch["fs"], batch["fo"])
        # accuracy as the reported HTS + CLN row fuses the heads: spatial + 1.5 x temporal (fusion.TEMPORAL_WEIGHT)
        fused = out["logits_s"].softmax(-1) + TEMPORAL_WEIGHT * out["logits_o"].softmax(-1)
        return cln_loss(out, batch["label"]), {"correct": correct_count(fused, batch["label"]),
                                               "count": batch["label"].shape[0]}

    optimizer = make_optimizer(cfg, [{"params": model.parameters(), "lr": cfg.lr_cln}], kind="adam")
    out_dir = run_dir(cfg, "cln")
    trainer = Trainer(out_dir, "cln", model, optimizer, step,
                      lambda e: paired_feature_batches(fs, fo, y, cfg.batch_size,
                                            torch.Generator().manual_seed(cfg.seed * 1000 + e)),
                      # best.pt: the epoch with the lowest validation loss (both heads' cross-entropy over every
                      # validation video), not the noisy maximum of a small validation accuracy (docs/DESIGN.md 3)
                      cfg.epochs_cln, seed=cfg.seed, device=device or cfg.device, amp=False, monitor="loss",
                      val_loader=paired_feature_batches(vfs, vfo, vy, 256, None), config=cfg.to_dict())
    trainer.fit(resume=resume)
    return out_dir


@torch.inference_mode()
def cln_scores(cfg: Config, subset: str) -> dict[str, np.ndarray]:
    """The trained CLN's two softmax heads and coefficients on ``subset``; saved as ``<subset>_cln.npz``."""
    fs, fo, y, ids = feature_pairs(cfg, subset)
    model = load_cln(cfg, fs.shape[-1], num_classes(cfg))
    out = model(fs, fo)
    result = {"scores_s": out["logits_s"].softmax(-1).numpy(), "scores_o": out["logits_o"].softmax(-1).numpy(),
              "c_s": out["c_s"].numpy(), "c_o": out["c_o"].numpy(), "labels": y.numpy(), "video_ids": ids}
    if is_main_process():
        atomic_save_npz(scores_path(cfg, subset, "cln"), **result)
    barrier()
    return result
