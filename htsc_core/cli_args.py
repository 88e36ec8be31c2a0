"""The options every config-driven command shares, and the one error type for a user's mistake.

``htsc`` subcommands live in the library modules that do the work (docs/CONTRACTS.md, CLI); those
modules build their :class:`~htsc_core.config.Config` from the command line with
:func:`add_config_arguments` and :func:`config_from_args`, defined here once, below every layer that
uses them, so no library module imports the ``htsc`` entry point (:mod:`htsc_core.cli`).
Torch-free: ``htsc --help`` imports it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from htsc_core.config import DATASETS, PROFILES, Config, from_params


class UsageError(Exception):
    """A mistake in what the user asked for (configuration, paths, options): reported in one line."""


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
