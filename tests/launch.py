"""What the tests that start other processes (scripts, torchrun) share: their environment and a free port."""
from __future__ import annotations

import os
import socket
from pathlib import Path

# one thread each (several processes share the CPU), no progress bars, this checkout importable as htsc_core
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONPATH": os.pathsep.join(
    [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}


def free_port() -> int:
    """A TCP port nobody listens on now, for torchrun's --master_port (tests run side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
