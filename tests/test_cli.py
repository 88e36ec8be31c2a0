"""The CLI (htsc_core/cli.py): configuration and data errors are one line and exit 2, --version, --set parsing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from htsc_core import cli, cli_args

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TQDM_DISABLE": "1"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "htsc_core.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["train", "spatial", "--set", "image_size=50"], "image_size=50 must be a multiple of 32"),
    (["train", "spatial", "--data-root", "/missing/htsc"], "--data-root /missing/htsc: no such directory"),
    (["bench", "table5", "--resolutions", "50"], "resolution 50"),
    (["reproduce", "--set", "no_such_key=1"], "unknown config key(s) ['no_such_key']; valid keys are: dataset"),
    (["evaluate", "--profile", "smoke", "--set", "epochs_spatial"], "expected KEY=VALUE"),
])
def test_user_errors_are_one_line_exit_2(args, message):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("htsc: error: ") and message in lines[0], out.stderr


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("htsc ")


def test_main_catches_user_errors_in_process(capsys, monkeypatch):
    class Boom:
        add_arguments = staticmethod(lambda p: None)

        @staticmethod
        def command(args):
            raise FileNotFoundError("runs/x/best.pt is missing:\n  train the stage first")

    monkeypatch.setattr(cli.importlib, "import_module", lambda name: Boom)
    monkeypatch.setitem(cli.COMMANDS, "evaluate", ("fake", "help"))
    assert cli.main(["evaluate"]) == 2
    assert capsys.readouterr().err == "htsc: error: runs/x/best.pt is missing: train the stage first\n"


def test_other_errors_keep_their_traceback(monkeypatch):
    class Bug:
        add_arguments = staticmethod(lambda p: None)

        @staticmethod
        def command(args):
            raise KeyError("a bug")

    monkeypatch.setattr(cli.importlib, "import_module", lambda name: Bug)
    monkeypatch.setitem(cli.COMMANDS, "evaluate", ("fake", "help"))
    with pytest.raises(KeyError):
        cli.main(["evaluate"])


def test_parse_overrides_reads_json_values():
    got = cli_args.parse_overrides(["epochs_spatial=2", "lr_cln=1e-4", "amp=false", "device=cpu", "dropout=0.5"])
    assert got == {"epochs_spatial": 2, "lr_cln": 1e-4, "amp": False, "device": "cpu", "dropout": 0.5}
    with pytest.raises(cli_args.UsageError, match="KEY=VALUE"):
        cli_args.parse_overrides(["=3"])


def test_config_from_args_applies_set_last(tmp_path):
    import argparse

    p = argparse.ArgumentParser()
    cli_args.add_config_arguments(p)
    cfg = cli_args.config_from_args(p.parse_args(["--profile", "smoke", "--seed", "3", "--set", "seed=4",
                                             "--set", "epochs_cln=7"]))
    assert (cfg.profile, cfg.seed, cfg.epochs_cln) == ("smoke", 4, 7)
    with pytest.raises(cli_args.UsageError, match="no such file"):
        cli_args.config_from_args(p.parse_args(["--config", str(tmp_path / "none.json")]))
