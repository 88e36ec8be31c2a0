"""What the notebooks call: set-up from papermill parameters, stage runs, claims, and result files.

Notebooks narrate; this module computes and writes. Every file written under
``<results_dir>/metrics`` names the config, profile, device, versions and git commit
(:func:`htsc_core.utils.run_metadata`).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from htsc_core.config import Config, from_params
from htsc_core.utils import atomic_write_json, atomic_write_text, run_metadata, seed_everything


def setup(**params: Any) -> Config:
    """Build the config from a notebook's parameters, seed everything, create the result folders."""
    cfg = from_params(params)
    seed_everything(cfg.seed)
    for sub in ("metrics", "tables", "figures"):
        (Path(cfg.results_dir) / sub).mkdir(parents=True, exist_ok=True)
    Path(cfg.runs_dir).mkdir(parents=True, exist_ok=True)
    cfg.save(Path(cfg.results_dir) / "metrics" / "config.json")
    return cfg


def figure_path(cfg: Config, name: str) -> Path:
    return Path(cfg.results_dir) / "figures" / f"{name}.png"


def write_metrics(cfg: Config, name: str, metrics: dict) -> Path:
    """``<results_dir>/metrics/<name>.json``: the numbers plus what made them."""
    return atomic_write_json(Path(cfg.results_dir) / "metrics" / f"{name}.json",
                             {"metrics": metrics, "meta": run_metadata(cfg)})


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
    return atomic_write_text(Path(cfg.results_dir) / "tables" / f"{name}.csv", buf.getvalue())


def _fmt(value: Any) -> Any:
    return f"{value:.4f}" if isinstance(value, float) else value


def read_log(cfg: Config, stage: str) -> list[dict]:
    """The per-epoch JSONL log of a stage's run."""
    from htsc_core.train.stages import run_dir

    path = run_dir(cfg, stage) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_stage(cfg: Config, stage: str) -> list[dict]:
    """Train (or resume) one stage and return its log; the run directory keeps the checkpoints."""
    from htsc_core.train.stages import train

    train(cfg, stage, resume=True)
    return read_log(cfg, stage)


def claim(cfg: Config, name: str, holds: bool, detail: str, strict: bool | None = None) -> dict:
    """State one of the paper's claims as a check on our measurement.

    ``strict`` (default: not the smoke profile) makes a claim that does not hold raise; a
    claim about learning outcomes is not strict at smoke size, where a few steps of
    training prove nothing, so there it is recorded and printed but not asserted.
    Findings are appended to ``<results_dir>/metrics/claims.json``.
    """
    strict = cfg.profile != "smoke" if strict is None else strict
    record = {"claim": name, "holds": bool(holds), "detail": detail, "strict": strict}
    path = Path(cfg.results_dir) / "metrics" / "claims.json"
    existing = json.loads(path.read_text()) if path.exists() else []
    existing = [c for c in existing if c["claim"] != name] + [record]
    atomic_write_json(path, existing)
    print(f"[{'HOLDS' if holds else 'DOES NOT HOLD'}] {name}: {detail}")
    if strict and not holds:
        raise AssertionError(f"claim failed: {name}: {detail}")
    return record


def fmt_table(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """A plain-text table for notebook output (stable across runs: fixed 3-decimal rounding)."""
    rows = list(rows)
    cells = [[(f"{r.get(c):.3f}" if isinstance(r.get(c), float) else str(r.get(c, ""))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def quiet() -> None:
    """Progress bars off (nbval compares outputs; papermill logs are enough)."""
    import warnings

    from tqdm import TqdmWarning

    os.environ["HTSC_QUIET"] = "1"
    warnings.filterwarnings("ignore", category=TqdmWarning)  # "IProgress not found": bars are off anyway
