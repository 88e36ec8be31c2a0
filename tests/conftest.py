"""Shared fixtures: the smoke-profile synthetic set, generated once per test session.

Tests that need a small real synthetic set (training a stage, the loss landscape, the end-to-end run)
copy it rather than generating their own: generation is the same code every time (tests/test_synthetic.py
tests it), so once per session is enough.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_set_source(tmp_path_factory) -> Path:
    """The smoke profile's synthetic set for seed 0 (``htsc synth --profile smoke --seed 0``); read-only."""
    from htsc_core.data import synthetic as synth

    root = tmp_path_factory.mktemp("smoke-set") / "synthetic-smoke"
    synth.generate(root, synth.synth_config("smoke", 0), workers=1, progress=False)
    return root


@pytest.fixture
def smoke_set(smoke_set_source, tmp_path) -> Path:
    """A private copy of the smoke set that a test may write into (TV-L1 flow, caches)."""
    return Path(shutil.copytree(smoke_set_source, tmp_path / "synthetic-smoke"))


def pytest_collection_modifyitems(config, items):
    """The slow end-to-end runs first: pytest-xdist hands out tests round-robin in collection order, so the
    four multi-minute ``reproduce`` runs start at once on both workers instead of one worker finishing a long
    run alone at the end. Longest first (``slow(notebooks=N)``: how many notebooks the run executes), so the two
    workers get similar loads; the sort is stable and the same on every worker, as xdist requires."""
    def order(item):
        slow = item.get_closest_marker("slow")
        return (0, -slow.kwargs.get("notebooks", 0)) if slow else (1, 0)

    items.sort(key=order)
