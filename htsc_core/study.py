"""What the notebooks call: set-up from papermill parameters, stage runs, claims, and result files.

Notebooks narrate; this module computes and writes. Every file written under
``<results_dir>/metrics`` names the config, profile, device, versions and git commit
(:func:`htsc_core.utils.run_metadata`).
"""
from __future__ import annotations

import csv
import math
import io
import json
import os
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np
from IPython import get_ipython
from IPython.display import Markdown, display
from scipy.stats import binomtest

from htsc_core import exact_tests, stats, tables
from htsc_core.analysis import awl_assignment as awl_assignment_record
from htsc_core.analysis import family_correct, metric
from htsc_core.config import Config, from_params
from htsc_core.utils import (atomic_write_json, atomic_write_text, progress_disabled, resolve_device, run_metadata,
                             seed_everything)
from htsc_core.utils import fmt_table  # noqa: F401 - the notebooks print tables with study.fmt_table
from htsc_core.train.engine import barrier, init_distributed, is_main_process
from htsc_core.train.stages import run_dir, train


ROOT = Path(__file__).resolve().parents[1]
PATH_PARAMETERS = ("data_root", "results_dir", "runs_dir")


def root_path(path: str | Path) -> str:
    """A notebook's path parameter, which is relative to the repository root (as ``htsc reproduce`` writes them
    and as the profiles' defaults are), as a path that works from the kernel's working directory: an
    executed notebook opened where it lives (``results/synthetic/``, whose kernel starts there) finds the
    study's data, runs and results. It stays relative (to the working directory), so the notebook's outputs
    and the metadata of what it writes carry no checkout's location; an absolute path is kept as it is.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return str(path)
    return os.path.relpath(ROOT / path, Path.cwd())


def setup(overrides: dict[str, Any] | None = None, **params: Any) -> Config:
    """Build the config from a notebook's parameters, seed everything, create the result folders.

    Relative ``data_root``, ``results_dir`` and ``runs_dir`` (parameters or overrides) are relative to the
    repository root, from whatever folder the kernel runs in (:func:`root_path`).

    ``overrides`` is the notebooks' one free-form parameter (``htsc reproduce --set KEY=VALUE``): any
    config field, applied over the named parameters; unknown keys raise, listing the valid ones. A JSON
    string is accepted too (``papermill -p overrides '{"epochs_spatial": 2}'`` passes one).
    """
    if isinstance(overrides, str):
        overrides = json.loads(overrides)
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of config fields; got {type(overrides).__name__}")
    merged = {**params, **(overrides or {})}
    cfg = from_params({**merged, **{k: root_path(merged[k]) for k in PATH_PARAMETERS if merged.get(k)}})
    seed_everything(cfg.seed)
    # launched by torchrun (each rank's kernel): the process group from the first cell on, so that every scoring
    # pass of the notebook shards its videos over the ranks, not only the training stages; rank 0 writes
    init_distributed(resolve_device(cfg.device))
    for sub in ("metrics", "tables", "figures"):
        (Path(cfg.results_dir) / sub).mkdir(parents=True, exist_ok=True)
    Path(cfg.runs_dir).mkdir(parents=True, exist_ok=True)
    if is_main_process():
        cfg.save(Path(cfg.results_dir) / "metrics" / "config.json")
    return cfg


def figure_path(cfg: Config, name: str) -> Path:
    return Path(cfg.results_dir) / "figures" / f"{name}.png"


def write_metrics(cfg: Config, name: str, metrics: dict) -> Path:
    """``<results_dir>/metrics/<name>.json``: the numbers plus what made them (rank 0 writes, under torchrun)."""
    path = Path(cfg.results_dir) / "metrics" / f"{name}.json"
    if is_main_process():
        atomic_write_json(path, {"metrics": metrics, "meta": run_metadata(cfg)})
    barrier()  # under torchrun the other ranks may read it next
    return path


def read_metrics(cfg: Config, name: str) -> dict:
    path = Path(cfg.results_dir) / "metrics" / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the notebook that writes it first")
    return json.loads(path.read_text())["metrics"]


def write_table(cfg: Config, name: str, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    """``<results_dir>/tables/<name>.csv`` with a fixed column order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c, "")) for c in columns})
    path = Path(cfg.results_dir) / "tables" / f"{name}.csv"
    if is_main_process():
        atomic_write_text(path, buf.getvalue())
    barrier()  # under torchrun the other ranks may read it next
    return path


def _fmt(value: Any) -> Any:
    """Floats to 4 decimals; a missing number (NaN, e.g. a family with no test video) as an empty cell."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return value


def read_log(cfg: Config, stage: str) -> list[dict]:
    """The per-epoch JSONL log of a stage's run."""
    path = run_dir(cfg, stage) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_stage(cfg: Config, stage: str) -> list[dict]:
    """Train (or resume) one stage and return its log; the run directory keeps the checkpoints."""
    train(cfg, stage, resume=True)
    return read_log(cfg, stage)


MIN_BOOTSTRAP_ITEMS = stats.MIN_BOOTSTRAP_ITEMS  # fewest paired items a bootstrap verdict is drawn from


def claims_path(cfg: Config) -> Path:
    return Path(cfg.results_dir) / "metrics" / "claims.json"


def record(cfg: Config, rec: dict, paper: str = "") -> dict:
    """Store a claim record (:func:`htsc_core.stats.claim_record`) in ``claims.json`` and print its verdict.

    A learning outcome is a finding, never an error: only a record marked ``strict`` (an invariant of
    data we generate ourselves) raises when it does not hold.
    """
    if paper:
        rec = {**rec, "paper": paper}
    rec = exact_tests.flag_decidability(rec)  # a design that cannot reach p < 0.05 is marked so, with what decides it
    if is_main_process():  # under torchrun every rank decides the same verdict; one records it
        stats.record_claim(claims_path(cfg), rec)
    barrier()
    p = f", p={rec['p']:.3g}" if rec.get("p") is not None else ""
    print(f"[{rec['verdict'].upper()}] {rec['claim']}: {rec['detail']} "
          f"(estimate {rec['estimate']:+.3f}, {_ci_text(rec)}{p}, n={rec['n']})"
          + (f"; paper: {paper}" if paper else ""))
    if rec["undecidable"]:
        d = rec["decidability"]
        print(f"  undecidable by design: {d['why']}; {d['items_to_decide']} items would decide it")
    if rec.get("strict") and rec["verdict"] != "holds":
        raise AssertionError(f"invariant failed: {rec['claim']}: {rec['detail']}")
    return rec


def _ci_text(rec: dict) -> str:
    lo, hi = rec["ci"]
    return "no interval" if lo is None or hi is None else f"95% CI [{lo:+.3f}, {hi:+.3f}]"


def compare(cfg: Config, claim: str, correct_a, correct_b, kind: str = "greater", margin: float = 0.0,
            names: tuple[str, str] = ("A", "B"), paper: str = "") -> dict:
    """A paired claim about top-1 on the same test videos (A vs B): paired bootstrap interval of the
    difference, exact McNemar p, verdict holds / reversed / not resolved (:mod:`htsc_core.stats`)."""
    rec = stats.compare_accuracy(correct_a, correct_b, kind=kind, margin=margin, claim=claim, seed=cfg.seed)
    rec["detail"] = (f"{names[0]} {rec['accuracy_a']:.3f} vs {names[1]} {rec['accuracy_b']:.3f} "
                     f"on {rec['n']} test videos")
    if rec["n"] < MIN_BOOTSTRAP_ITEMS and rec["verdict"] != "not resolved" and rec["p"] >= 0.05:
        rec.update(verdict="not resolved",
                   detail=rec["detail"] + f" (fewer than {MIN_BOOTSTRAP_ITEMS} and McNemar p >= 0.05: no verdict)")
    return record(cfg, rec, paper)


def compare_metric(cfg: Config, claim: str, metric, arrays_a, arrays_b, kind: str = "greater",
                   margin: float = 0.0, names: tuple[str, str] = ("A", "B"), unit: str = "", paper: str = "") -> dict:
    """A paired claim about any per-item metric (mAP, EPE over frame pairs): paired bootstrap verdict."""
    rec = stats.compare_metric(metric, arrays_a, arrays_b, kind=kind, margin=margin, claim=claim, seed=cfg.seed)
    rec["detail"] = f"{names[0]} {rec['value_a']:.3f}{unit} vs {names[1]} {rec['value_b']:.3f}{unit} on {rec['n']}"
    if rec["n"] < MIN_BOOTSTRAP_ITEMS:  # a percentile bootstrap over a handful of items understates the spread
        rec.update(verdict="not resolved", detail=rec["detail"] + f" (fewer than {MIN_BOOTSTRAP_ITEMS}: no verdict)")
    return record(cfg, rec, paper)


def proportion(cfg: Config, claim: str, k: int, n: int, reference: float, kind: str = "greater",
               margin: float = 0.0, what: str = "top-1", reference_name: str = "chance", paper: str = "",
               strict: bool = False) -> dict:
    """A claim about one proportion k/n against a reference value: exact (Clopper-Pearson) interval of
    (k/n - reference), exact binomial p. ``kind`` "greater": above the reference; "at_most" with
    ``margin``: no more than ``margin`` above it (e.g. a cue the classifier should not see).

    Below :data:`stats.MIN_EXACT_N` items the verdict also needs the two-sided exact test at 5%:
    a handful of classes or videos decides nothing the test does not decide (docs/DESIGN.md, verdicts).
    """
    if n == 0:
        raise ValueError(f"{claim}: nothing to count (n = 0)")
    k, n = int(k), int(n)
    lo, hi = stats.exact_interval(k, n)
    p = float(binomtest(k, n, reference, alternative="greater" if kind == "greater" else "two-sided").pvalue)
    v = stats.verdict(lo - reference, hi - reference, kind, margin)
    detail = f"{what} {k / n:.3f} vs {reference_name} {reference:.3f} ({k}/{n})"
    if n < stats.MIN_EXACT_N and v != "not resolved" and binomtest(k, n, reference).pvalue >= 0.05:
        v, detail = "not resolved", detail + f" (n < {stats.MIN_EXACT_N} and exact p >= 0.05: no verdict)"
    rec = stats.claim_record(claim, detail, v, k / n - reference, (lo - reference, hi - reference), p=p, n=n,
                             strict=strict, kind=kind, margin=margin, value=k / n, reference=reference,
                             interval="clopper-pearson")
    return record(cfg, rec, paper)


def versus_chance(cfg: Config, claim: str, correct, chance: float, kind: str = "greater", margin: float = 0.0,
                  paper: str = "", strict: bool = False) -> dict:
    """A claim about one accuracy against chance from per-video correctness (or a (k, n) pair)."""
    if isinstance(correct, tuple):
        k, n = (int(v) for v in correct)
    else:
        c = np.asarray(correct, dtype=bool).ravel()
        k, n = int(c.sum()), c.size
    return proportion(cfg, claim, k, n, chance, kind, margin, paper=paper, strict=strict)


def compare_methods(cfg: Config, claim: str, a: str, b: str, kind: str = "greater", margin: float = 0.0,
                    family: str | None = None, paper: str = "") -> dict:
    """A paired claim about two rows of Tables 3/4 on the same test videos (optionally within one family):
    top-1 with McNemar, or mAP (THUMOS14) by paired bootstrap."""
    scores, labels = tables.method_scores(cfg)
    if labels.ndim == 2:
        return compare_metric(cfg, claim, metric, (scores[a], labels), (scores[b], labels), kind, margin,
                              names=(a, b), paper=paper)
    ca, cb = family_correct(cfg, scores[a], labels, family), family_correct(cfg, scores[b], labels, family)
    return compare(cfg, claim, ca, cb, kind, margin, names=(a, b), paper=paper)


def awl_assignment(cfg: Config, rows: Sequence[dict]) -> dict | None:
    """The AWL stream-assignment claim over the motion and appearance classes together
    (:func:`htsc_core.analysis.awl_assignment`: exact permutation test); None without those families."""
    rec = awl_assignment_record(rows)
    return None if rec is None else record(cfg, rec)


def ratio(cfg: Config, claim: str, values_a, values_b, kind: str, margin: float = 0.0, threshold: float = 1.0,
          names: tuple[str, str] = ("A", "B"), unit: str = "", paper: str = "") -> dict:
    """A claim about the ratio of two repeated, interleaved measurements (timings): bootstrap interval of
    the ratio of medians; kind "greater"/"less" compare the ratio with ``threshold``, "within" with
    1 +- margin."""
    if min(len(values_a), len(values_b)) < stats.MIN_TIMINGS:  # e.g. a small user dataset: a finding, not an error
        est = float(np.median(values_a) / np.median(values_b))
        rec = {"claim": claim, "detail": f"{names[0]} / {names[1]} = {est:.3f} from only {len(values_a)} and "
                                         f"{len(values_b)} measurements: too few for an interval",
               "verdict": "not resolved", "estimate": est, "ci": [None, None], "p": None,
               "n": min(len(values_a), len(values_b)), "strict": False, "kind": kind, "margin": margin,
               "measure": "timing"}
        return record(cfg, rec, paper)
    est, lo, hi = stats.ratio_ci(values_a, values_b, seed=cfg.seed)
    if kind == "within":
        v = stats.verdict(lo, hi, "within", margin)
    else:
        v = stats.verdict(lo - threshold, hi - threshold, kind, margin)
    rec = stats.claim_record(claim, f"{names[0]} / {names[1]} = {est:.3f} from {len(values_a)} and {len(values_b)} "
                             f"interleaved measurements ({np.median(values_a):.4g} vs {np.median(values_b):.4g}{unit})",
                             v, est, (lo, hi), n=min(len(values_a), len(values_b)), kind=kind, margin=margin,
                             measure="timing", rule="interval")  # repeats of one build: seeds.py keeps its own rule
    return record(cfg, rec, paper)


def conclude(records: Sequence[dict | None]) -> None:
    """A notebook's closing cell: its verdicts as a Markdown list, computed from the records (never typed)."""
    recs = [r for r in records if r]
    lines = ["**What this notebook found** (verdicts from 95% intervals; see `metrics/claims.json`):", ""]
    for r in recs:
        paper = f"; paper: {r['paper']}" if r.get("paper") else ""
        lines.append(f"- {r['claim']}: **{r['verdict']}** ({r['detail']}; estimate {r['estimate']:+.3f}, "
                     f"{_ci_text(r)}{paper})")
    if not recs:
        lines.append("- no claim applies to this dataset")
    text = "\n".join(lines)
    if get_ipython() is not None:  # a notebook: rendered as Markdown
        display(Markdown(text))
    else:
        print(text)


def check(cfg: Config | None, name: str, holds: bool, detail: str) -> None:
    """An invariant (data integrity, parity with a reference): printed, and an error when it fails.

    The notebooks' one way to state an invariant (no bare ``assert``). Not a paper claim, so not in
    claims.json; learning outcomes go through the functions above. ``cfg`` may be None (notebook 09).
    """
    print(f"[{'OK' if holds else 'FAILED'}] {name}: {detail}")
    if not holds:
        raise AssertionError(f"{name}: {detail}")


def quiet() -> None:
    """Progress bars only where someone is watching.

    Headless runs set ``TQDM_DISABLE=1`` in the kernel's environment (``htsc reproduce`` and ``make test`` /
    ``make notebooks`` for papermill and nbval, whose outputs must not carry bars); there the bars stay off and
    tqdm's "IProgress not found" warning is silenced. In an interactive kernel (JupyterLab) the variable is
    unset and long training shows its bars, so nothing here turns them off.
    """
    import warnings

    from tqdm import TqdmWarning

    if progress_disabled():
        warnings.filterwarnings("ignore", category=TqdmWarning)
