"""The ``htsc`` command line.

Each subcommand lives in the module that does the work; that module defines
``add_arguments(parser)`` and ``command(args) -> int``. Modules are imported
lazily so ``htsc --help`` stays fast (it imports no torch).

Configuration and data errors (:class:`UsageError`, ``ValueError``, ``FileNotFoundError``,
``NotADirectoryError``) print one line, ``htsc: error: <message>``, and exit with status 2,
as argparse does for a bad option; anything else is a bug and keeps its traceback.
The options every config-driven command shares (``--profile``, ``--set KEY=VALUE``, ...) are
defined once in :mod:`htsc_core.cli_args` (:func:`add_config_arguments`, :func:`config_from_args`), which
the command modules import; no library module imports this entry point.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from htsc_core.cli_args import UsageError

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("htsc_core.data.synthetic_check", "generate the synthetic action set (docs/DESIGN.md section 5)"),
    "check-videos": ("htsc_core.data.check", "scan a dataset for unreadable, empty, short or odd videos"),
    "flow": ("htsc_core.flow.cli", "TV-L1 flow extraction (`flow extract`) and flow scoring (`flow eval`)"),
    "train": ("htsc_core.train.stages", "train one stage: spatial | motion | temporal | tvl1 | rgbdiff | cln | "
              "conv_fusion | c3d"),
    "flow-swap": ("htsc_core.flow_swap", "the TV-L1 temporal CNN trained on other flows (`train tvl1 --set "
                  "flow_dir=`) beside the hidden stream: test accuracy per family, exact McNemar"),
    "evaluate": ("htsc_core.tables", "multi-view testing of trained stages, every fusion of Tables 3-4"),
    "bench": ("htsc_core.bench", "benchmarks (Table 5 efficiency, data pipeline, scaling); JSON out"),
    "reproduce": ("htsc_core.reproduce", "run the ordered notebooks with papermill into results/<dataset>/"),
    "precision-check": ("htsc_core.seeds", "this run's verdicts beside a run's in the other precision (bf16 / fp32)"),
    "plan": ("htsc_core.plan", "the bill before the run: steps, FLOPs, GPU hours, TV-L1 time, disk, memory per stage"),
}


USER_ERRORS = (UsageError, ValueError, FileNotFoundError, NotADirectoryError)


def package_version() -> str:
    try:
        return version("htsc_core")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


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


if __name__ == "__main__":  # `python -m htsc_core.cli` (torchrun): run the importable module's main (one
    from htsc_core.cli import main as _main  # module object, so COMMANDS and USER_ERRORS are the ones tests see)

    raise SystemExit(_main())
