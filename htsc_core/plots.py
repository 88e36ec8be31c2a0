"""Figures for the notebooks; each function draws, saves a PNG when given a path, and returns the figure."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence


import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from htsc_core.plots_base import FAMILY_COLOURS, _error_bars, _num, _save  # noqa: F401 - FAMILY_COLOURS re-exported
from htsc_core.plots_release import release_fusion, release_questions  # noqa: F401 - re-exported for the notebooks

def training_curves(logs: Mapping[str, Sequence[dict]], path=None):
    """Loss (and, where a stage logs it, accuracy) per epoch from each stage's log.jsonl records.

    The accuracy panel is drawn only when some log has accuracy (MotionNet's has none).
    """
    has_acc = any(log and "train_accuracy" in log[0] for log in logs.values())
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 3.4), squeeze=False)
    axes = axes[0]
    for stage, log in logs.items():
        ep = [r["epoch"] for r in log]
        axes[0].plot(ep, [r["train_loss"] for r in log], "-o", ms=3, label=f"{stage} train")
        if log and "val_loss" in log[0]:
            axes[0].plot(ep, [r["val_loss"] for r in log], "--", label=f"{stage} val")
        if has_acc and log and "train_accuracy" in log[0]:
            axes[1].plot(ep, [r["train_accuracy"] for r in log], "-o", ms=3, label=f"{stage} train")
            if "val_accuracy" in log[0]:
                axes[1].plot(ep, [r["val_accuracy"] for r in log], "--", label=f"{stage} val")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    if has_acc:
        axes[1].set(xlabel="epoch", ylabel="top-1", title="accuracy", ylim=(0, 1.02))
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _colour_flows(flows: Sequence[np.ndarray], max_norm: float) -> list[np.ndarray]:
    """Colour (H, W, 2) flows with the Middlebury wheel on one scale: ``max_norm`` px is full saturation.

    torchvision's ``flow_to_image`` divides every call by that call's own largest magnitude, which
    would draw a flow 100x smaller exactly like the original; so the division is done here, once for
    all flows, and torchvision's wheel (``_normalized_flow_to_image``, its own helper) colours them.
    """
    import torch
    from torchvision.utils import _normalized_flow_to_image

    out = []
    for f in flows:
        f = np.nan_to_num(np.asarray(f, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)  # missing: no flow
        t = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1)))[None]
        t = t / max(float(max_norm), 1e-6)
        out.append(_normalized_flow_to_image(t)[0].permute(1, 2, 0).numpy())
    return out


def flow_magnitude_max(flow: np.ndarray) -> float:
    """Largest per-pixel flow magnitude in px of an (..., 2) array (NaN pixels ignored; 0 if all are NaN)."""
    mag = np.sqrt((np.asarray(flow, dtype=np.float64) ** 2).sum(-1))
    return float(np.nanmax(mag)) if np.isfinite(mag).any() else 0.0


def flow_images(flows: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Colour every method's flows on a shared scale per index.

    ``flows`` maps a method name to an (N, H, W, 2) array (every method the same N). Image i of every
    method is coloured with the largest magnitude over all methods at index i as full saturation, so a
    method whose flow is 10x smaller than another's is visibly paler. Returns name -> N uint8 (H, W, 3).
    """
    names = list(flows)
    if not names:
        return {}
    n = len(flows[names[0]])
    if any(len(flows[k]) != n for k in names):
        raise ValueError(f"flow_images: every method needs the same number of flows, got "
                         f"{ {k: len(v) for k, v in flows.items()} }")
    out: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(n):
        scale = max(flow_magnitude_max(flows[k][i]) for k in names)
        for k in names:
            out[k] += _colour_flows([flows[k][i]], scale)
    return out


def colour_wheel(size: int = 64) -> np.ndarray:
    """The key: the colour of a flow of each direction, magnitude growing to full at the rim."""
    ys, xs = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    flow = np.stack([xs, ys], -1)
    img = _colour_flows([flow], 1.0)[0].copy()
    img[np.hypot(xs, ys) > 1] = 255
    return img


def _wheel_axis(ax) -> None:
    ax.imshow(colour_wheel())
    ax.set_title("key: direction\n(rim = row max)", fontsize=7)
    ax.axis("off")


def flow_grid(frames: np.ndarray, flows: Mapping[str, np.ndarray], path=None, max_rows: int = 3):
    """One row per frame pair: the frame, each method's flow on the row's shared scale, the colour key.

    Each panel's title gives its own largest magnitude in px, so faint flows read as faint.
    """
    names = list(flows)
    rows = min(max_rows, len(frames))
    images = flow_images({k: np.asarray(v[:rows]) for k, v in flows.items()})
    fig, axes = plt.subplots(rows, 2 + len(names), figsize=(2.2 * (2 + len(names)), 2.45 * rows), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(frames[r])
        axes[r, 0].set_title("frame t", fontsize=8)
        for c, name in enumerate(names, start=1):
            axes[r, c].imshow(images[name][r])
            axes[r, c].set_title(f"{name}\nmax {flow_magnitude_max(flows[name][r]):.2f} px", fontsize=8)
        _wheel_axis(axes[r, -1])
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def coefficient_heatmaps(c_s: np.ndarray, c_o: np.ndarray, labels: Sequence[str], path=None):
    """The collaborative coefficients c^s and c^o (videos x segments), Eq. 8-9, as two heatmaps.

    One diverging colour scale for both panels, centred on 1/K (uniform attention): red segments get
    more than their share, blue less; white means the attention is uniform.
    """
    import seaborn as sns

    n, segs = c_s.shape
    centre = 1.0 / segs
    spread = np.abs(np.concatenate([np.ravel(c_s), np.ravel(c_o)]) - centre)
    half = max(float(np.nanmax(spread)) if np.isfinite(spread).any() else 0.0, 1e-3)
    fig, axes = plt.subplots(1, 2, figsize=(2.5 + 0.6 * segs * 2, 0.4 * n + 1.6))
    for i, (ax, c, title) in enumerate(((axes[0], c_s, "spatial $c^s$"), (axes[1], c_o, "temporal $c^o$"))):
        with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 marks as pending removal
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(c, ax=ax, cmap="RdBu_r", center=centre, vmin=centre - half, vmax=centre + half,
                        cbar=i == 1, cbar_kws={"label": f"coefficient (1/K = {centre:.2f} is uniform)"},
                        xticklabels=range(1, segs + 1), yticklabels=list(labels) if i == 0 else False)
        ax.set(title=title, xlabel="segment")
        ax.tick_params(axis="y", labelsize=7)
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
    """Per-class AWL fusion weights (Eq. 10-15) as stacked bars: spatial w_1 + temporal w_2 = 1.

    Each bar is full height, so a class that gives everything to one stream still shows a bar; the
    class name is coloured by its family on the synthetic set.
    """
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(rows) + 1.5), 3.2))
    xs = np.arange(len(rows))
    w1 = np.array([float(r["w_spatial"]) for r in rows])
    ax.bar(xs, w1, color="tab:orange", label="spatial $w_1$")
    ax.bar(xs, 1 - w1, bottom=w1, color="tab:blue", label="temporal $w_2 = 1 - w_1$")
    ax.set_xticks(xs, [r["class"] for r in rows], rotation=60, ha="right", fontsize=7)
    for tick, r in zip(ax.get_xticklabels(), rows):
        tick.set_color(FAMILY_COLOURS.get(r.get("family"), "black") if r.get("family") else "black")
    ax.set(ylabel="weight", ylim=(0, 1), title="AWL per-class fusion weights")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def method_bars(rows: Sequence[dict], value: str, paper: str | None = None, title: str = "", path=None,
                ylabel: str = "", log: bool = False, points: Sequence[Sequence[float]] | None = None):
    """Ours (with its 95% interval when rows carry ci_low/ci_high) and optionally the paper's value; ``points``
    (one list per row: each training seed's value) are drawn on the bar of ours, whose height is then their mean."""
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(rows)), 3.2))
    xs = np.arange(len(rows))
    width = 0.4 if paper else 0.7
    ours = np.array([_num(r.get(value)) for r in rows], dtype=float)
    err = None
    if rows and any(r.get("ci_low") not in ("", None) and r.get("ci_high") not in ("", None) for r in rows):
        err = _error_bars(ours, [r.get("ci_low") for r in rows], [r.get("ci_high") for r in rows])
    ax.bar(xs - (width / 2 if paper else 0), ours, width, yerr=err, capsize=3,
           label=("ours, mean over seeds (95% CI)" if points else "ours (95% CI)") if err is not None else "ours")
    if points:
        if len(points) != len(rows):
            raise ValueError(f"method_bars: {len(points)} lists of points for {len(rows)} rows")
        for i, pts in enumerate(points):
            ax.scatter(np.full(len(pts), xs[i] - (width / 2 if paper else 0)), pts, s=12, color="black", zorder=3,
                       label="each seed" if i == 0 else None)
    if paper:
        vals = [_num(r.get(paper)) for r in rows]
        ax.bar(xs + width / 2, vals, width, label=f"paper ({paper.removeprefix('paper_')})", color="tab:gray")
    ax.set_xticks(xs, [r["method"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def table5_fps(rows: Sequence[dict], path=None):
    """Table 5: frames per second per method, ours (CPU) beside the paper's (GPU), on a log axis.

    A log axis keeps two-stream (TV-L1, about 1 fps on a CPU) visible beside hidden-flow pipelines.
    """
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(rows)), 3.4))
    xs = np.arange(len(rows))
    ours = [_num(r.get("ours_fps")) for r in rows]
    paper = [_num(r.get("paper_fps")) for r in rows]
    ax.bar(xs - 0.2, ours, 0.4, label=f"ours ({rows[0].get('device', 'cpu') if rows else 'cpu'}, "
                                      f"{rows[0].get('resolution', '') if rows else ''} px)")
    ax.bar(xs + 0.2, paper, 0.4, color="tab:gray", label="paper (GPU)")
    for x, v in zip(xs, ours):
        if np.isfinite(v) and v > 0:
            ax.text(x - 0.2, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(xs, [r["method"] for r in rows], rotation=15, ha="right", fontsize=8)
    ax.set(ylabel="frames per second (log)", title="Table 5: test-time speed")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def sample_frames(examples: Mapping[str, np.ndarray], classes: Sequence[str], families: Mapping[str, str] | None = None,
                  path=None, columns: int = 6):
    """One frame per class, titled with the class (and its family on the synthetic set)."""
    names = [c for c in classes if c in examples]
    rows = max(1, int(np.ceil(len(names) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        ax.imshow(examples[name])
        fam = (families or {}).get(name)
        ax.set_title(f"{name}\n({fam})" if fam else name, fontsize=7, color=FAMILY_COLOURS.get(fam, "black"), pad=3)
    fig.tight_layout(h_pad=1.2)
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
    """MotionNet's flow for one pair at each output scale (flow6 coarse .. flow2 fine), one shared scale."""
    images = flow_images({k: np.asarray(v)[None] for k, v in scales.items()})
    fig, axes = plt.subplots(1, 2 + len(scales), figsize=(2.1 * (2 + len(scales)), 2.5))
    axes[0].imshow(frame)
    axes[0].set_title("frame t", fontsize=8)
    for ax, (name, f) in zip(axes[1:], scales.items()):
        ax.imshow(images[name][0], interpolation="nearest")
        ax.set_title(f"{name} {f.shape[0]}x{f.shape[1]}\nmax {flow_magnitude_max(f):.2f} px", fontsize=8)
    _wheel_axis(axes[-1])
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def cue_attention(cue: Mapping[str, Sequence[float]], uniform: float, path=None):
    """Per test video, the mean CLN coefficient of its segments that see the cue vs the others (paired lines),
    for c^s and c^o, with the uniform share 1/K as a dashed line."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2), sharey=True)
    for ax, key, title in ((axes[0], "c_s", "spatial $c^s$"), (axes[1], "c_o", "temporal $c^o$")):
        rest, on = np.asarray(cue[f"{key}_rest"], float), np.asarray(cue[f"{key}_cue"], float)
        for r, c in zip(rest, on):
            ax.plot([0, 1], [r, c], color="0.75", lw=0.6)
        if on.size:
            ax.plot([0, 1], [np.nanmean(rest), np.nanmean(on)], "-o", color="tab:red", lw=2, label="mean")
        ax.axhline(uniform, ls="--", color="k", lw=0.8, label=f"uniform 1/K = {uniform:.2f}")
        ax.set(xticks=[0, 1], xticklabels=["other segments", "cue segments"], title=f"{title} ({len(on)} videos)",
               xlim=(-0.2, 1.2))
    axes[0].set_ylabel("mean coefficient per video")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def cue_aligned(aligned: Mapping[str, Mapping[str, Sequence[float]]], path=None):
    """CLN coefficients x S (1 = uniform) by segment offset from each video's first segment that sees the cue
    (:func:`htsc_core.cue_analysis.cue_aligned`), one line per coefficient with +-1 standard error, and the
    share of segments at that offset that see the cue as grey bars."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    first = next(iter(aligned.values()))
    ax.bar(first["offset"], first["cue_share"], color="0.88", width=0.8, label="share of segments seeing the cue")
    for i, (name, a) in enumerate(aligned.items()):
        x, m, e = np.asarray(a["offset"]), np.asarray(a["mean"], float), np.asarray(a["sem"], float)
        ax.errorbar(x, m, yerr=e, fmt="-o", ms=4, capsize=3, color=f"C{i}", label=name)
    ax.axhline(1.0, ls="--", color="k", lw=0.8, label="uniform share")
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set(xlabel="segment offset from the first segment that sees the cue",
           ylabel="coefficient x S", title=f"CLN coefficients aligned to the cue ({max(first['n'])} videos)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def loss_landscape(rows: Sequence[dict], path=None):
    """MotionNet's loss (photometric + smoothness) for the true flow scaled by a factor, one line per scale,
    each relative to its value at the truth (factor 1); a trained MotionNet's own loss as a dashed line in
    the scale's colour. A minimum left of 1 means the loss at that scale prefers an underestimate."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, scale in enumerate(sorted({r["scale"] for r in rows})):
        at = {r["factor"]: r["total"] for r in rows if r["scale"] == scale}
        ref = at.get(1.0)
        if ref is None:
            continue
        xs = sorted(a for a in at if a is not None)
        colour = f"C{i}"
        size = next(r["size"] for r in rows if r["scale"] == scale)
        name = "input" if scale == 1 else f"flow{scale}"
        ax.plot(xs, [at[a] / ref for a in xs], "-o", ms=3, color=colour, label=f"{name} ({size} px)")
        if at.get(None) is not None:
            ax.axhline(at[None] / ref, ls="--", lw=1, color=colour)
    ax.axvline(1.0, color="k", lw=0.6)
    ax.set(xlabel="factor a (flow = a x ground truth)", ylabel="loss / loss at the truth",
           title="Eq. 1-2 loss around the true flow (dashed: trained MotionNet)")
    if ax.get_legend_handles_labels()[0]:  # no rows (or none at the truth): an empty panel, no empty legend
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
