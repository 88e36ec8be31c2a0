"""The ``htsc`` command line.

Each subcommand lives in the module that does the work; that module defines
``add_arguments(parser)`` and ``command(args) -> int``. Modules are imported
lazily so ``htsc --help`` stays fast (it imports no torch).

Configuration and data errors (:class:`UsageError`, ``ValueError``, ``FileNotFoundError``,
``NotADirectoryError``) print one line, ``htsc: error: <message>``, and exit with status 2,
as argparse does for a bad option; anything else is a bug and keeps its traceback.
The options every config-driven command shares (``--profile``, ``--set KEY=VALUE``, ...) are
defined here once (:func:`add_config_arguments`, :func:`config_from_args`).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from htsc_core.config import DATASETS, PROFILES, Config, from_params

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("htsc_core.data.synthetic_check", "generate the synthetic action set (docs/DESIGN.md section 5)"),
    "check-videos": ("htsc_core.data.check", "scan a dataset for unreadable, empty, short or odd videos"),
    "flow": ("htsc_core.flow.cli", "TV-L1 flow extraction (`flow extract`) and flow scoring (`flow eval`)"),
    "train": ("htsc_core.train.stages", "train one stage: spatial | motion | temporal | tvl1 | rgbdiff | cln"),
    "evaluate": ("htsc_core.tables", "multi-view testing of trained stages, every fusion of Tables 3-4"),
    "bench": ("htsc_core.bench", "benchmarks (Table 5 efficiency, data pipeline, scaling); JSON out"),
    "reproduce": ("htsc_core.reproduce", "run the ordered notebooks with papermill into results/<dataset>/"),
    "plan": ("htsc_core.plan", "the bill before the run: steps, FLOPs, GPU hours, TV-L1 time, disk, memory per stage"),
}


class UsageError(Exception):
    """A mistake in what the user asked for (configuration, paths, options): reported in one line."""


USER_ERRORS = (UsageError, ValueError, FileNotFoundError, NotADirectoryError)


def package_version() -> str:
    try:
        return version("htsc_core")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> dict; VALUE is read as JSON when it parses (numbers, true, null), else a string."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs_spatial=2")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The options of every command that builds a :class:`Config`."""
    p.add_argument("--config", type=Path, help="a saved config.json to start from")
    p.add_argument("--profile", choices=PROFILES)
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--data-root")
    p.add_argument("--runs-dir")
    p.add_argument("--device")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field (repeatable), e.g. --set epochs_spatial=2")


def config_from_args(args: argparse.Namespace) -> Config:
    """--config, then the named options, then every --set (unknown keys raise, listing the valid ones)."""
    params: dict = {}
    if args.config:
        try:
            params = json.loads(Path(args.config).read_text())
        except FileNotFoundError:
            raise UsageError(f"--config {args.config}: no such file") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--config {args.config}: not valid JSON ({exc})") from None
    for key in ("profile", "dataset", "data_root", "runs_dir", "device", "seed"):
        if getattr(args, key, None) is not None:
            params[key] = getattr(args, key)
    params.update(parse_overrides(args.set))
    cfg = from_params(params)
    if args.data_root is not None and not Path(cfg.data_root).is_dir():
        raise UsageError(f"--data-root {cfg.data_root}: no such directory")
    return cfg


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """All subcommands listed; only the requested one's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="htsc", description="HTSC (CMC 2020) reproducibility study")
    parser.add_argument("--version", action="version", version=f"htsc {package_version()}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    requested = set(argv) & set(COMMANDS)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in requested:
            importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    mod = importlib.import_module(args._module)
    try:
        return int(mod.command(args) or 0)
    except USER_ERRORS as exc:
        message = str(exc).strip() or type(exc).__name__
        print(f"htsc: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # `python -m htsc_core.cli` (torchrun): run the importable module's main, so
    from htsc_core.cli import main as _main  # the UsageError the commands raise is the one main catches

    raise SystemExit(_main())
