"""Figures for the notebooks; each function draws, saves a PNG when given a path, and returns the figure."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FAMILY_COLOURS = {"appearance": "tab:orange", "motion": "tab:blue", "joint": "tab:green", None: "tab:gray"}


def _save(fig, path: str | Path | None):
    """Save ``fig`` as PNG (atomically) and, inside a notebook, show it once as that PNG and close it.

    Showing the saved bytes rather than leaving the figure to the inline backend gives exactly one
    output per figure, whichever backend the kernel runs (nbval compares output counts).
    """
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    if path is not None:
        from htsc_core.utils import atomic_write_bytes

        atomic_write_bytes(path, buf.getvalue())
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return fig
    if get_ipython() is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell":
        plt.close(fig)
        display(Image(buf.getvalue()))
        return None  # already shown; a returned figure would be shown a second time
    return fig


def training_curves(logs: Mapping[str, Sequence[dict]], path=None):
    """Loss and accuracy per epoch for each stage's log.jsonl records."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for stage, log in logs.items():
        ep = [r["epoch"] for r in log]
        axes[0].plot(ep, [r["train_loss"] for r in log], "-o", ms=3, label=f"{stage} train")
        if log and "val_loss" in log[0]:
            axes[0].plot(ep, [r["val_loss"] for r in log], "--", label=f"{stage} val")
        if log and "train_accuracy" in log[0]:
            axes[1].plot(ep, [r["train_accuracy"] for r in log], "-o", ms=3, label=f"{stage} train")
            if "val_accuracy" in log[0]:
                axes[1].plot(ep, [r["val_accuracy"] for r in log], "--", label=f"{stage} val")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[1].set(xlabel="epoch", ylabel="top-1", title="accuracy", ylim=(0, 1.02))
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:  # MotionNet logs no accuracy
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def flow_grid(frames: np.ndarray, flows: Mapping[str, np.ndarray], path=None, max_rows: int = 3):
    """One row per frame pair: the frame, then each method's flow coloured by flow_to_image."""
    import torch
    from torchvision.utils import flow_to_image

    names = list(flows)
    rows = min(max_rows, len(frames))
    fig, axes = plt.subplots(rows, 1 + len(names), figsize=(2.2 * (1 + len(names)), 2.2 * rows), squeeze=False)
    # one colour scale for every method of a row, so colours compare across methods
    for r in range(rows):
        axes[r, 0].imshow(frames[r])
        axes[r, 0].set_title("frame t" if r == 0 else "")
        norm = max(float(np.abs(flows[n][r]).max()) for n in names) + 1e-6
        for c, name in enumerate(names, start=1):
            f = torch.from_numpy(np.ascontiguousarray(flows[name][r].transpose(2, 0, 1)) / norm)
            axes[r, c].imshow(flow_to_image(f.float()).permute(1, 2, 0).numpy())
            if r == 0:
                axes[r, c].set_title(name)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def coefficient_heatmaps(c_s: np.ndarray, c_o: np.ndarray, labels: Sequence[str], path=None):
    """The collaborative coefficients c^s and c^o (videos x segments) as two heatmaps."""
    n, segs = c_s.shape
    fig, axes = plt.subplots(1, 2, figsize=(2 + 0.6 * segs * 2, 0.4 * n + 1.4))
    for ax, c, title in ((axes[0], c_s, "spatial $c^s$"), (axes[1], c_o, "temporal $c^o$")):
        im = ax.imshow(c, cmap="viridis", vmin=0, vmax=max(float(c.max()), 1.0 / segs))
        ax.set(title=title, xlabel="segment", xticks=range(segs))
        ax.set_yticks(range(n), labels if ax is axes[0] else [""] * n, fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def weighted_frames(frames: np.ndarray, c_s: np.ndarray, c_o: np.ndarray, title: str, path=None):
    """The segment frames of one video with their c^s and c^o written under each."""
    segs = len(frames)
    fig, axes = plt.subplots(1, segs, figsize=(1.8 * segs, 2.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(frames[i])
        ax.set_title(f"$c^s$={c_s[i]:.2f}\n$c^o$={c_o[i]:.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def awl_weights(rows: Sequence[dict], path=None):
    """Per-class AWL spatial weight, bars coloured by the class's family (synthetic set)."""
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(rows)), 3))
    xs = np.arange(len(rows))
    ax.bar(xs, [r["w_spatial"] for r in rows], color=[FAMILY_COLOURS.get(r.get("family")) for r in rows])
    ax.set_xticks(xs, [r["class"] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="spatial weight $w_1$", ylim=(0, 1.05), title="AWL per-class fusion weights (1 - $w_1$ = temporal)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for f, c in FAMILY_COLOURS.items() if f]
    ax.legend(handles, [f for f in FAMILY_COLOURS if f], fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def method_bars(rows: Sequence[dict], value: str, paper: str | None = None, title: str = "", path=None):
    """Ours (and optionally the paper's) per method, side by side."""
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(rows)), 3))
    xs = np.arange(len(rows))
    width = 0.4 if paper else 0.7
    ax.bar(xs - (width / 2 if paper else 0), [float(r[value]) for r in rows], width, label="ours")
    if paper:
        vals = [float(r[paper]) if r.get(paper) not in ("", None) else np.nan for r in rows]
        ax.bar(xs + width / 2, vals, width, label=paper)
    ax.set_xticks(xs, [r["method"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set(title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def sample_frames(examples: Mapping[str, np.ndarray], classes: Sequence[str], families: Mapping[str, str] | None = None,
                  path=None, columns: int = 6):
    """One frame per class, titled with the class (and its family on the synthetic set)."""
    names = [c for c in classes if c in examples]
    rows = max(1, int(np.ceil(len(names) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        ax.imshow(examples[name])
        fam = (families or {}).get(name)
        ax.set_title(f"{name}\n({fam})" if fam else name, fontsize=7, color=FAMILY_COLOURS.get(fam, "black"))
    fig.tight_layout()
    return _save(fig, path)


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path=None):
    """Confusion matrix (rows: true class, columns: predicted), row-normalised."""
    m = np.asarray(matrix, dtype=float)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.35 * len(classes) + 2.5, 0.35 * len(classes) + 2))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=70, ha="right", fontsize=6)
    ax.set_yticks(range(len(classes)), classes, fontsize=6)
    ax.set(xlabel="predicted", ylabel="true")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def flow_scales(frame: np.ndarray, scales: Mapping[str, np.ndarray], path=None):
    """MotionNet's flow for one pair at each output scale (flow6 coarse .. flow2 fine)."""
    import torch
    from torchvision.utils import flow_to_image

    fig, axes = plt.subplots(1, 1 + len(scales), figsize=(2.1 * (1 + len(scales)), 2.3))
    axes[0].imshow(frame)
    axes[0].set_title("frame t", fontsize=8)
    for ax, (name, f) in zip(axes[1:], scales.items()):
        t = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))).float()
        ax.imshow(flow_to_image(t).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(f"{name} {f.shape[0]}x{f.shape[1]}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)
