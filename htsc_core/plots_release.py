"""Figures of notebook 09 (released scores): the fusion rows of the Hidden Two-Stream release and the per-split
differences of the fusion questions on both releases. Re-exported by :mod:`htsc_core.plots`."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from htsc_core.fusion import TEMPORAL_WEIGHT
from htsc_core.plots_base import _error_bars, _num, _save

VERDICT_COLOURS = {"holds": "tab:green", "reversed": "tab:red", "not resolved": "tab:gray"}


def release_fusion(rows: Sequence[dict], weights: Mapping[str, np.ndarray], reference: float | None = None,
                   path=None):
    """Real UCF101 scores (notebook 09): top-1 with its 95% interval per method, and per-class weights.

    ``rows``: {method, top1, ci_low, ci_high[, published]}, drawn top to bottom. ``weights`` maps a
    method to (M,) weights of the first stream (e.g. averaged over cross-fitting folds); classes are
    sorted by the first method's weight. ``reference``: a fixed fusion's weight drawn as a line
    (spatial + 1.5 temporal = weight ``1 / (1 + fusion.TEMPORAL_WEIGHT)`` = 0.4 on spatial).
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.32 * len(rows) + 1.8), gridspec_kw={"width_ratios": [1, 1.4]})
    ax = axes[0]
    ys = np.arange(len(rows))[::-1]
    top1 = np.array([_num(r.get("top1")) for r in rows], dtype=float)
    err = _error_bars(top1, [r.get("ci_low") for r in rows], [r.get("ci_high") for r in rows])
    ax.errorbar(top1, ys, xerr=err, fmt="o", ms=4, capsize=3, label="ours (95% Wilson CI)")
    pub = [(y, float(r["published"])) for y, r in zip(ys, rows) if r.get("published") not in ("", None)]
    if pub:
        ax.plot([p for _, p in pub], [y for y, _ in pub], "x", color="tab:red", ms=7, label="release (published)")
    ax.set_yticks(ys, [r["method"] for r in rows], fontsize=8)
    ax.set(xlabel="top-1 accuracy (UCF101 split 1, 3783 videos)", title="fusion on the release's scores")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[1]
    names = list(weights)
    order = np.argsort(np.asarray(weights[names[0]]), kind="stable") if names else []
    for name, marker in zip(names, ("o", "s", "^", "D")):
        w = np.asarray(weights[name])[order]
        ax.plot(np.arange(w.size), w, marker, ms=3, label=name, alpha=0.8)
    if reference is not None:
        ax.axhline(reference, color="tab:gray", ls="--", lw=1,
                   label=f"1:{TEMPORAL_WEIGHT:g} fusion (weight {reference:.1f})")
    ax.set(xlabel=f"class (sorted by {names[0] if names else ''} weight)", ylabel="weight of the spatial stream",
           ylim=(-0.05, 1.05), title="per-class weights, mean over the 7 cross-fitting folds")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def release_questions(panels: Sequence[dict], path=None):
    """The fusion questions on released scores (notebook 09): one panel per question, one row per release,
    dataset and split, the difference A - B of top-1 with its 95% interval, coloured by verdict; pooled
    (across-splits) rows drawn as diamonds. ``panels``: [{title, entries: [{label, estimate, ci, verdict,
    pooled}]}] (``release_questions.figure_inputs``)."""
    ncols = min(3, max(1, len(panels)))
    nrows = max(1, -(-len(panels) // ncols))
    height = 0.28 * max([len(p["entries"]) for p in panels] or [1]) + 1.4
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, height * nrows), squeeze=False, sharey=True)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels):
        entries = panel["entries"]
        ys = np.arange(len(entries))[::-1]
        for y, e in zip(ys, entries):
            est = _num(e.get("estimate"))
            ci = e.get("ci") or (None, None)
            err = _error_bars(np.array([est]), [ci[0]], [ci[1]])
            ax.errorbar([est], [y], xerr=err, fmt="D" if e.get("pooled") else "o", ms=5 if e.get("pooled") else 4,
                        capsize=3, color=VERDICT_COLOURS.get(e.get("verdict"), "tab:gray"))
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_yticks(ys, [e["label"] for e in entries], fontsize=8)
        ax.set_title(panel["title"], fontsize=8)
        ax.set_xlabel("difference of top-1, A - B (95% CI)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(plt.Line2D([], [], color="black", marker="D", ls="", label="splits pooled"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)
