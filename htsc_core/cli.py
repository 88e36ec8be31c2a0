"""The ``htsc`` command line.

Each subcommand lives in the module that does the work; that module defines
``add_arguments(parser)`` and ``command(args) -> int``. Modules are imported
lazily so ``htsc --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("htsc_core.data.synthetic", "generate the synthetic action set (DESIGN.md section 5)"),
    "check-videos": ("htsc_core.data.check", "scan a dataset for unreadable, empty, short or odd videos"),
    "flow": ("htsc_core.flow.cli", "TV-L1 flow extraction (`flow extract`) and flow scoring (`flow eval`)"),
    "train": ("htsc_core.train.stages", "train one stage: spatial | motion | temporal | tvl1 | cln"),
    "evaluate": ("htsc_core.evaluate", "multi-view testing of trained stages; saves per-stream scores"),
    "bench": ("htsc_core.bench", "benchmarks (Table 5 efficiency, data pipeline, scaling); JSON out"),
    "reproduce": ("htsc_core.reproduce", "run the ordered notebooks with papermill into results/<dataset>/"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """All subcommands listed; only the requested one's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="htsc", description="HTSC (CMC 2020) reproducibility study")
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
    args = build_parser(argv).parse_args(argv)
    mod = importlib.import_module(args._module)
    return int(mod.command(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
