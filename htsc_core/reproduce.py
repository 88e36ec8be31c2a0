"""``htsc reproduce``: run the ordered notebooks with papermill into ``results/<dataset>/``.

One line of progress per notebook; a notebook that fails stops the run with the
notebook's name, the failing cell and the error, and what finished stays. Each executed
notebook also gets an HTML copy (nbconvert) for readers without Jupyter. At the end the
README's results section is regenerated from the tables.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

from htsc_core import rates
from htsc_core.cli_args import parse_overrides
from htsc_core.config import DATASETS, PROFILES, from_params
from htsc_core.data.synthetic import generate
from htsc_core.report import update_readme
from htsc_core.train.distributed import GROUP_ENV
from htsc_core.utils import atomic_write_text, atomic_write_json, git_commit

_GROUPS = itertools.count()  # process groups made by this launch, one per notebook run (GROUP_ENV)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _ipc_kernel_manager():
    """A kernel manager that talks to the notebook's kernel over local IPC sockets rather than plain TCP:
    nothing crosses the network, and ipykernel has no "running over TCP without encryption" warning to
    print for every notebook. Each kernel's sockets live in a fresh private folder, so runs side by side
    (two test workers, two users) never share a socket path."""
    import atexit
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            folder = tempfile.mkdtemp(prefix="htsc-kernel-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)  # the sockets go with the kernel
            self.transport = "ipc"
            self.ip = str(Path(folder) / "kernel")

    return IPCKernelManager


def notebook_paths() -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {NOTEBOOKS}")
    return paths


def is_main_results(results_dir: Path, dataset: str = "synthetic") -> bool:
    """Is ``results_dir`` the clone's own ``results/<dataset>`` (the committed results the README shows)?
    A run into any other folder writes only there: no README update, no ``results/hts_release``."""
    return Path(results_dir).resolve() == (ROOT / "results" / dataset).resolve()


def _to_html(executed: Path) -> Path:
    """A standalone HTML copy titled by the notebook (nbconvert titles it by ``metadata.name``)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4),
                                                resources={"metadata": {"name": executed.stem}})
    return atomic_write_text(executed.with_suffix(".html"), body)


def project_relative(path: str | Path) -> str:
    """``path`` relative to the project root when it lies inside it (committed results must not carry a
    checkout's absolute path); a user's dataset outside the project keeps its absolute path."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(ROOT))
    except ValueError:
        return str(resolved)


def _failure(exc: Exception, nb: Path) -> str:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    return f"notebook {nb.name} failed in cell [{cell}]: {ename}: {evalue}"


def _merge_record(path: Path, record: dict, only: list[str] | None) -> dict:
    """The run record; a partial run (``--only``) updates the notebooks it ran in the full run's record."""
    if only and path.exists():
        previous = json.loads(path.read_text())
        timings = {**previous.get("seconds_per_notebook", {}), **record["seconds_per_notebook"]}
        partial = {"only": only, "git_commit": record["git_commit"], "seconds": record["total_seconds"],
                   "notebooks": sorted(record["seconds_per_notebook"])}
        return {**previous, "seconds_per_notebook": timings,
                "partial_reruns": previous.get("partial_reruns", []) + [partial]}
    return record


def reproduce(dataset: str, data_root: str, profile: str, results_dir: Path, runs_dir: Path,
              seed: int = 0, device: str = "auto", only: list[str] | None = None,
              overrides: dict | None = None, partial: bool | None = None) -> int:
    """Run the notebooks (those of ``only``, if given) into ``results_dir`` and write its run record.

    ``partial`` (default: whether ``only`` is given): a rerun of some notebooks of an earlier full run, merged
    into that run's record; an extra seed of ``--seeds N`` runs every notebook that depends on the seed and is
    a run of its own (``partial=False``), whose record replaces any earlier one."""
    import papermill as pm

    partial = bool(only) if partial is None else partial

    results_dir.mkdir(parents=True, exist_ok=True)
    params = dict(dataset=dataset, data_root=project_relative(data_root), profile=profile, seed=seed,
                  device=device, results_dir=project_relative(results_dir), runs_dir=project_relative(runs_dir),
                  overrides=dict(overrides or {}))  # every notebook: study.setup(..., overrides=overrides)
    os.environ.setdefault("TQDM_DISABLE", "1")
    started = time.time()
    timings: dict[str, float] = {}
    claims = results_dir / "metrics" / "claims.json"
    rank = launch_rank()
    if rank == 0 and not only and claims.exists():  # a full run states every claim afresh: no earlier verdict stays
        claims.unlink()
    synthesis_seconds = _ensure_synthetic(dataset, data_root, profile, seed) if rank == 0 else _await_synthetic(
        dataset, data_root)
    for nb in notebook_paths():
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        # under torchrun every rank runs the notebook (its kernel joins the process group: study.setup); rank 0's
        # executed copy is the result, the others' go beside the runs
        out = results_dir / nb.name if rank == 0 else Path(runs_dir) / f"notebooks-rank{rank}" / nb.name
        out.parent.mkdir(parents=True, exist_ok=True)
        # each notebook's kernels make a process group of their own on the launch's store: keys apart (one name per
        # notebook run, the same on every rank), or the second group would read the first one's addresses
        os.environ[GROUP_ENV] = f"seed{seed}-{next(_GROUPS)}-{nb.stem}"
        t0 = time.time()
        if rank == 0:
            print(f"[{time.time() - started:7.1f}s] {nb.name} ...", flush=True)
        try:  # run from the project root, so every path in the parameters is root-relative
            parameters = _declared(nb, {**params, **_extra_parameters(nb, profile, results_dir)})
            pm.execute_notebook(str(nb), str(out), parameters=parameters,
                                cwd=str(ROOT), kernel_name="python3", kernel_manager_class=_ipc_kernel_manager(),
                                progress_bar=False, log_output=False)
        except Exception as exc:  # noqa: BLE001 - papermill raises PapermillExecutionError and friends
            print(_failure(exc, nb), file=sys.stderr)
            print(f"the partly executed notebook is at {out}; results of earlier notebooks are kept", file=sys.stderr)
            return 1
        if rank == 0:
            _to_html(out)
        timings[nb.name] = round(time.time() - t0, 1)
        if rank == 0:
            print(f"[{time.time() - started:7.1f}s] {nb.name} done in {timings[nb.name]}s", flush=True)
    if rank != 0:  # rank 0 writes the record and the README
        return 0
    record_path = results_dir / "metrics" / "reproduce.json"
    record = {"parameters": params, "seeds": [seed], "seconds_per_notebook": timings,
              "synthesis_seconds": synthesis_seconds,
              "total_seconds": round(time.time() - started, 1), "git_commit": git_commit(),
              "cpu_count": os.cpu_count()}
    if not only:  # each stage's rate and the time split (issue 40), from this run's logs and the plan's FLOPs
        record.update(_rates(dataset, data_root, profile, runs_dir, seed, overrides, timings))
    atomic_write_json(record_path, _merge_record(record_path, record, only if partial else None))
    if not only and dataset == "synthetic" and profile == "default" and is_main_results(results_dir):  # main run only
        update_readme(results_dir)
    print(f"all notebooks done in {time.time() - started:.0f}s; results in {results_dir}")
    return 0


def _rates(dataset: str, data_root: str, profile: str, runs_dir: Path, seed: int, overrides: dict | None,
           timings: dict[str, float]) -> dict:
    """``stage_rates`` and ``time_split`` for the run record (:mod:`htsc_core.rates`); printed too. A failure here
    is reported, never lost work: the notebooks' results are already written."""
    try:
        cfg = from_params({"dataset": dataset, "data_root": data_root, "profile": profile, "runs_dir": str(runs_dir),
                           "seed": seed, **(overrides or {})})
        rows = rates.stage_rates(cfg)
        split = rates.time_split(cfg, timings, rows)
    except Exception as exc:  # noqa: BLE001 - the record is written whatever happens here
        print(f"stage rates not recorded: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {}
    print(rates.format_rates(rows))
    print("notebook seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in split.items()))
    return {"stage_rates": rows, "time_split": split}


def _declared(nb: Path, params: dict) -> dict:
    """Only the parameters ``nb`` declares (papermill would inject and warn about the others): notebook 09,
    the release's scores, takes no dataset configuration."""
    import papermill as pm

    names = set(pm.inspect_notebook(str(nb)))
    return {k: v for k, v in params.items() if k in names}


def _extra_parameters(nb: Path, profile: str, results_dir: Path) -> dict:
    """Parameters only some notebooks declare. ``release_results_dir`` (notebook 09, the Hidden Two-Stream
    release's real UCF101 scores, the same whatever the dataset): the clone's results/hts_release for a run into
    the clone's results/<dataset> at a full profile; otherwise inside the run's own results folder, so a smoke
    run or a run with ``--results-dir`` elsewhere never writes into the clone."""
    import papermill as pm

    if "release_results_dir" not in pm.inspect_notebook(str(nb)):
        return {}
    main = profile != "smoke" and Path(results_dir).resolve().parent == (ROOT / "results").resolve()
    target = ROOT / "results" / "hts_release" if main else Path(results_dir) / "hts_release"
    return {"release_results_dir": project_relative(target)}


def launch_rank() -> int:
    """This process's rank when launched by ``torchrun`` (``RANK``), else 0."""
    return int(os.environ.get("RANK", "0"))


def _await_synthetic(dataset: str, data_root: str, timeout_s: float = 3600.0) -> None:
    """Ranks > 0 under torchrun: wait for rank 0 to generate the synthetic set (never generate it twice)."""
    marker = Path(data_root) / "classes.json"
    deadline = time.time() + timeout_s
    while dataset == "synthetic" and not marker.exists():
        if time.time() > deadline:
            raise TimeoutError(f"rank {launch_rank()}: {marker} did not appear within {timeout_s:.0f} s (rank 0 "
                               "generates the synthetic set; did it fail?)")
        time.sleep(5)


def _ensure_synthetic(dataset: str, data_root: str, profile: str, seed: int) -> float | None:
    """Generate the synthetic set if ``data_root`` has none yet (timed: it is part of the study's budget);
    a rerun reuses it. Real datasets are the user's: never generated."""
    if dataset != "synthetic" or (Path(data_root) / "classes.json").exists():
        return None
    t0 = time.time()
    print(f"generating the synthetic set into {data_root} (profile {profile}, seed {seed}) ...", flush=True)
    generate(data_root, from_params(profile=profile, seed=seed), progress=False)
    return round(time.time() - t0, 1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="synthetic", choices=DATASETS)
    p.add_argument("--data-root", help="dataset root (default data/synthetic-<profile> for synthetic)")
    p.add_argument("--profile", default="default", choices=PROFILES)
    p.add_argument("--results-dir", type=Path, help="default results/<dataset> (results/smoke for the smoke profile)")
    p.add_argument("--runs-dir", type=Path, help="checkpoints and logs; default runs/<dataset>-<profile>")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field in every notebook (repeatable), e.g. --set epochs_spatial=2")
    p.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes")
    p.add_argument("--aggregate-only", action="store_true",
                   help="run no notebook: from the results folder and its seeds/seed<k>/ folders as they are (a "
                        "committed --seeds N run), state again what derives from them by today's code (the "
                        "claims each seed's metrics give, the Table 5 goals from bench_table5.json's runs, the "
                        "across-seed table, claims, tables and figures) and regenerate the README's results")
    p.add_argument("--seeds", type=int, default=1,
                   help="train the whole study with N seeds (seed, seed+1, ...); the first seed's run is the main "
                        "result, the others go to <results>/seeds/seed<k>/, and tables/seeds.csv gives the mean "
                        "and spread across seeds (default 1)")


# Notebooks whose results do not depend on the training seed: the data check (00; the set is generated
# once, from --seed), Table 5's timings of randomly initialised networks (08) and the release's vendored
# scores (09). The extra seeds of --seeds N skip them (about 7 of the 58 minutes of a seed on a 2-core
# CPU without native bf16, results/synthetic/metrics/reproduce.json); their claims keep seeds = 1.
SEED_INDEPENDENT = ("00", "08", "09")


def seed_dependent_notebooks(only: list[str] | None = None) -> list[str]:
    """Names of the notebooks an extra seed runs (those of ``only``, if given, that depend on the seed)."""
    return [nb.name for nb in notebook_paths() if nb.name[:2] not in SEED_INDEPENDENT
            and (not only or any(nb.name.startswith(o) for o in only))]


def aggregate_seeds(results_dir: Path, seed_dirs: list[Path], seeds: list[int]) -> Path:
    """After a ``--seeds N`` run: ``tables/seeds.csv``, the seed-aware ``claims.json``, Tables 3-4, the per-family
    table and figures 06-07 over the seeds (:mod:`htsc_core.seeds`) and the seeds in the run record; returns the
    seed table's path. It reads only the seeds' result folders, so it can run again on committed results
    (``--aggregate-only``)."""
    from htsc_core import seeds as across_seeds

    out = across_seeds.seeds_table(seed_dirs, seeds)
    if all((Path(d) / "metrics" / "claims.json").exists() for d in seed_dirs):
        across_seeds.seed_aware_claims(seed_dirs, seeds)
    across_seeds.seed_aware_tables(seed_dirs, seeds)
    record = results_dir / "metrics" / "reproduce.json"
    if record.exists():
        atomic_write_json(record, {**json.loads(record.read_text()), "seeds": seeds,
                                   "seed_results": [project_relative(d) for d in seed_dirs]})
    return out


def aggregate_only(dataset: str, profile: str, results: Path, seed_dirs: list[Path], seeds: list[int]) -> int:
    """``--aggregate-only``: what derives from a finished run's result folders, without a notebook or a training.

    The Table 5 goals are decided again from the runs ``bench_table5.json`` (and notebook 08's copy) recorded
    (:func:`htsc_core.bench.table5.restate_goals`); with two or more seeds, :func:`aggregate_seeds`; then the
    README, for the clone's main synthetic results."""
    from htsc_core.bench.table5 import restate_goals

    missing = [str(d) for d in seed_dirs if not (Path(d) / "metrics").is_dir()]
    if missing:
        print(f"--aggregate-only: no results of seed run(s) in {', '.join(missing)}", file=sys.stderr)
        return 2
    for name in ("bench_table5.json", "08_table5.json"):
        path = Path(results) / "metrics" / name
        if path.exists():
            print(f"goals decided again from the stored runs: {restate_goals(path)}")
    if len(seeds) > 1:
        print(f"across {len(seeds)} seeds: {aggregate_seeds(results, seed_dirs, seeds)}")
    if dataset == "synthetic" and profile == "default" and is_main_results(results):
        update_readme(results)
        print("README.md results section regenerated")
    return 0


def command(args: argparse.Namespace) -> int:
    data_root = args.data_root or (f"data/synthetic-{args.profile}" if args.dataset == "synthetic" else None)
    if data_root is None:
        print(f"--data-root is required for {args.dataset}: point it at your local copy", file=sys.stderr)
        return 2
    results = args.results_dir or Path("results") / (args.dataset if args.profile != "smoke" else "smoke")
    runs = args.runs_dir or Path("runs") / f"{args.dataset}-{args.profile}"
    if args.seeds < 1:
        print(f"--seeds {args.seeds}: expected at least 1", file=sys.stderr)
        return 2
    overrides = parse_overrides(args.set)
    # checked before any notebook runs: unknown keys and bad values raise here, listing the valid keys
    cfg = from_params({"dataset": args.dataset, "profile": args.profile, "seed": args.seed, **overrides})
    # and ImageNet weights the config asks for must be there: MissingPretrainedWeights (exit 2) says where they
    # are looked for, how to get them, and how to opt out (--set pretrained=false); no silent from-scratch run
    seeds = [args.seed + k for k in range(args.seeds)]
    seed_dirs = [results] + [results / "seeds" / f"seed{s}" for s in seeds[1:]]
    if args.aggregate_only:  # trains nothing: no weights needed
        return aggregate_only(args.dataset, args.profile, results, seed_dirs, seeds)
    from htsc_core.models.vgg import require_pretrained

    require_pretrained(cfg)
    for k, (seed, res) in enumerate(zip(seeds, seed_dirs)):
        run = runs if k == 0 else runs.with_name(f"{runs.name}-seed{seed}")
        only = args.only if k == 0 else seed_dependent_notebooks(args.only)
        if k and not args.only and (res / "metrics" / "claims.json").exists():
            (res / "metrics" / "claims.json").unlink()  # a fresh seed run states its claims afresh
        # an extra seed's notebooks are its whole run (a fresh record), unless the user asked for --only
        rc = reproduce(args.dataset, data_root, args.profile, res, run, seed, args.device, only, overrides,
                       partial=bool(args.only))
        if rc:
            return rc
    if len(seeds) > 1:
        print(f"across {len(seeds)} seeds: {aggregate_seeds(results, seed_dirs, seeds)}")
        if args.dataset == "synthetic" and args.profile == "default" and not args.only and is_main_results(results):
            update_readme(results)
    return 0
