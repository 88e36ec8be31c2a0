"""Under torchrun (tests/test_process_groups.py): this launch makes two process groups in turn, each in a child
process of its own, as ``htsc reproduce`` runs notebook kernels (htsc_core/reproduce.py sets GROUP_ENV per notebook).
Each child joins with ``init_distributed``, sums its rank + 1 over the group and prints the sum."""
from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import torch, torch.distributed as dist
from htsc_core.train.distributed import init_distributed
assert init_distributed(torch.device("cpu"))
t = torch.ones(1) * (dist.get_rank() + 1)
dist.all_reduce(t)
print(f"sum {int(t.item())}", flush=True)
dist.destroy_process_group()
"""

if __name__ == "__main__":
    from htsc_core.train.distributed import GROUP_ENV

    for i in range(2):
        env = {**os.environ, GROUP_ENV: f"test-{i}"}
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60)
        print(f"rank {os.environ['RANK']} group {i}: {out.stdout.strip() or out.stderr[-500:]}", flush=True)
