"""``htsc reproduce``: run the ordered notebooks with papermill into ``results/<dataset>/``.

One line of progress per notebook; a notebook that fails stops the run with the
notebook's name, the failing cell and the error, and what finished stays. Each executed
notebook also gets an HTML copy (nbconvert) for readers without Jupyter. At the end the
README's results section is regenerated from the tables.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def notebook_paths() -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {NOTEBOOKS}")
    return paths


def _to_html(executed: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    from htsc_core.utils import atomic_write_text

    return atomic_write_text(executed.with_suffix(".html"), body)


def _failure(exc: Exception, nb: Path) -> str:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    return f"notebook {nb.name} failed in cell [{cell}]: {ename}: {evalue}"


def reproduce(dataset: str, data_root: str, profile: str, results_dir: Path, runs_dir: Path,
              seed: int = 0, device: str = "auto", only: list[str] | None = None) -> int:
    import papermill as pm

    results_dir.mkdir(parents=True, exist_ok=True)
    params = dict(dataset=dataset, data_root=str(Path(data_root).resolve()), profile=profile, seed=seed,
                  device=device, results_dir=str(results_dir.resolve()), runs_dir=str(runs_dir.resolve()))
    os.environ.setdefault("HTSC_QUIET", "1")
    started = time.time()
    timings = {}
    for nb in notebook_paths():
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        out = results_dir / nb.name
        t0 = time.time()
        print(f"[{time.time() - started:7.1f}s] {nb.name} ...", flush=True)
        try:
            pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(NOTEBOOKS), kernel_name="python3",
                                progress_bar=False, log_output=False)
        except Exception as exc:  # noqa: BLE001 - papermill raises PapermillExecutionError and friends
            print(_failure(exc, nb), file=sys.stderr)
            print(f"the partly executed notebook is at {out}; results of earlier notebooks are kept", file=sys.stderr)
            return 1
        _to_html(out)
        timings[nb.name] = round(time.time() - t0, 1)
        print(f"[{time.time() - started:7.1f}s] {nb.name} done in {timings[nb.name]}s", flush=True)
    from htsc_core.report import update_readme
    from htsc_core.utils import atomic_write_json, git_commit

    atomic_write_json(results_dir / "metrics" / "reproduce.json",
                      {"parameters": params, "seconds_per_notebook": timings,
                       "total_seconds": round(time.time() - started, 1), "git_commit": git_commit(),
                       "cpu_count": os.cpu_count()})
    if not only and dataset == "synthetic" and profile == "default":  # the README shows the main command's run
        update_readme(results_dir)
    print(f"all notebooks done in {time.time() - started:.0f}s; results in {results_dir}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="synthetic", choices=("synthetic", "ucf101", "hmdb51", "thumos14"))
    p.add_argument("--data-root", help="dataset root (default data/synthetic-<profile> for synthetic)")
    p.add_argument("--profile", default="default", choices=("smoke", "default", "paper"))
    p.add_argument("--results-dir", type=Path, help="default results/<dataset> (results/smoke for the smoke profile)")
    p.add_argument("--runs-dir", type=Path, help="checkpoints and logs; default runs/<dataset>-<profile>")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes")


def command(args: argparse.Namespace) -> int:
    data_root = args.data_root or (f"data/synthetic-{args.profile}" if args.dataset == "synthetic" else None)
    if data_root is None:
        print(f"--data-root is required for {args.dataset}: point it at your local copy", file=sys.stderr)
        return 2
    results = args.results_dir or Path("results") / (args.dataset if args.profile != "smoke" else "smoke")
    runs = args.runs_dir or Path("runs") / f"{args.dataset}-{args.profile}"
    return reproduce(args.dataset, data_root, args.profile, results, runs, args.seed, args.device, args.only)
