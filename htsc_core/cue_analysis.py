"""Does the CLN find the cue? Per-class contrasts, cue-aligned coefficients and a linear probe (notebook 04).

On the synthetic set the cue family's object acts during about a third of the clip, at a time drawn
per video (docs/SYNTHETIC.md section 4), so some of a video's test segments see the action and the
others do not. :func:`htsc_core.analysis.cue_coefficients` pairs, per video, the mean coefficient of
the two kinds of segment. Here:

- :func:`cue_by_class`: that contrast per class and pooled, with a bootstrap interval over videos
  (``tables/cln_cue.csv``), so opposite effects in different classes stay visible;
- :func:`cue_aligned`: the coefficients by segment position relative to the first segment that sees
  the cue, averaged over videos (the figure of notebook 04);
- :func:`cue_probe`: a linear probe on the temporal stream's fc7 segment features, trained on the
  training videos' segments and scored on the test videos': if it cannot tell cue segments from idle
  ones, the features do not carry what the CLN (Eq. 7-9) would have to find.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from htsc_core import stats
from htsc_core.config import Config
from htsc_core.data.synthetic_cues import cue_segments

CUE_COLUMNS = ("class", "cue_mean", "other_mean", "difference", "ci_low", "ci_high", "n")


def cue_by_class(cue: dict, key: str = "c_o", seed: int = 0) -> list[dict]:
    """Rows of ``tables/cln_cue.csv``: per class (sorted) and pooled (``all``), the mean ``key`` coefficient
    on the segments that see the cue and on the others, their mean paired difference with a 95% percentile
    bootstrap interval over the class's videos, and n videos."""
    classes = np.array([vid.split("/")[0] for vid in cue["video_ids"]])
    on, rest = np.asarray(cue[f"{key}_cue"], float), np.asarray(cue[f"{key}_rest"], float)
    rows = []
    for name in [*sorted(set(classes.tolist())), "all"]:
        sel = np.ones(len(classes), bool) if name == "all" else classes == name
        diff = on[sel] - rest[sel]
        _, lo, hi = stats.bootstrap_ci(np.mean, diff, seed=seed)
        rows.append({"class": name, "cue_mean": float(on[sel].mean()), "other_mean": float(rest[sel].mean()),
                     "difference": float(diff.mean()), "ci_low": lo, "ci_high": hi, "n": int(sel.sum())})
    return rows


def cue_aligned(cue: dict, key: str = "c_o") -> dict:
    """``key`` coefficients x S (1 = the uniform share) by segment offset from each video's first segment
    that sees the cue (0 = that segment), averaged over the videos that have a segment at that offset:
    ``{"offset": [...], "mean": [...], "sem": [...], "n": [...], "cue_share": [...]}``, where cue_share
    is the fraction of those segments that see the cue (1 at offset 0, falling after the action)."""
    by_offset: dict[int, list[tuple[float, bool]]] = {}
    for coeffs, mask in zip(cue[f"{key}_segments"], cue["cue_segments"]):
        c, m = np.asarray(coeffs, float) * len(coeffs), np.asarray(mask, bool)
        first = int(np.argmax(m))
        for s in range(len(c)):
            by_offset.setdefault(s - first, []).append((float(c[s]), bool(m[s])))
    out: dict = {"offset": [], "mean": [], "sem": [], "n": [], "cue_share": []}
    for off in sorted(by_offset):
        vals = np.array([v for v, _ in by_offset[off]])
        out["offset"].append(off)
        out["mean"].append(float(vals.mean()))
        out["sem"].append(float(vals.std(ddof=1) / np.sqrt(vals.size)) if vals.size > 1 else 0.0)
        out["n"].append(int(vals.size))
        out["cue_share"].append(float(np.mean([on for _, on in by_offset[off]])))
    return out


def fit_probe(x_train: np.ndarray, y_train: np.ndarray, l2: float = 1e-3, iterations: int = 200):
    """L2-regularised logistic regression on standardised features (train statistics), fitted by L-BFGS;
    returns ``predict(x) -> bool array``."""
    x = torch.as_tensor(np.asarray(x_train, np.float64))
    y = torch.as_tensor(np.asarray(y_train, np.float64))
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"fit_probe: expected features (n, d) and n labels; got {tuple(x.shape)}, {tuple(y.shape)}")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")
    xs = (x - mean) / std

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xs @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda feats: (((torch.as_tensor(np.asarray(feats, np.float64)) - mean) / std) @ w + b > 0).numpy()


def _segments(features: np.ndarray, ids, masks: dict) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for f, vid in zip(features, ids):
        m = masks.get(str(vid))
        if m is not None:
            xs.append(np.asarray(f))
            ys.append(np.asarray(m, bool))
    if not xs:
        return np.zeros((0, features.shape[-1])), np.zeros(0, bool)
    return np.concatenate(xs), np.concatenate(ys)


def cue_probe(cfg: Config) -> dict | None:
    """The linear probe on temporal fc7: cue vs idle segments of the cue family, trained on the
    training subset's videos, scored on the test videos' segments. None off the synthetic set."""
    if cfg.dataset != "synthetic":
        return None
    from htsc_core.train.cln import feature_pairs  # the CLN stage's own features, cached by its training

    data = {}
    for subset, split in (("train", "train"), ("test", "test")):
        _, fo, _, ids = feature_pairs(cfg, subset)
        masks = cue_segments(cfg.data_root, cfg.test_segments, cfg.stack_length, subset=split)
        data[subset] = _segments(fo.numpy(), ids, masks)
    (x_tr, y_tr), (x_te, y_te) = data["train"], data["test"]
    if len(y_tr) == 0 or len(y_te) == 0 or y_tr.all() or not y_tr.any():
        return {"accuracy": None, "reason": "no cue and idle segments of both kinds to fit and score a probe"}
    correct = fit_probe(x_tr, y_tr)(x_te) == y_te
    return {"accuracy": float(correct.mean()), "correct": correct.tolist(), "majority": float(max(y_te.mean(),
            1 - y_te.mean())), "balanced_accuracy": float((correct[y_te].mean() + correct[~y_te].mean()) / 2)
            if y_te.any() and not y_te.all() else None, "train_segments": int(len(y_tr)),
            "test_segments": int(len(y_te)), "cue_share_test": float(y_te.mean())}
