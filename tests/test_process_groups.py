"""Process groups made one after another under one torchrun launch (``htsc reproduce``: a kernel per notebook on
every rank). Each takes its keys under its own prefix of torchrun's store (htsc_core/train/distributed.py,
GROUP_ENV); without it the second group read the first one's addresses and notebook 01 hung after 00."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from launch import ENV, free_port

SCRIPT = Path(__file__).with_name("successive_groups.py")


def test_two_groups_in_turn_under_one_launch_both_connect():
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(free_port()), str(SCRIPT)],
                         env=ENV, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = sorted(line for line in out.stdout.splitlines() if line.startswith("rank "))
    assert lines == [f"rank {r} group {g}: sum 3" for r in (0, 1) for g in (0, 1)], out.stdout
