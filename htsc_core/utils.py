"""Small shared helpers: atomic writes, seeding, device choice, run metadata, progress bars, plain-text tables."""
from __future__ import annotations

import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np

from htsc_core.precision import precision_metadata, resolve_device  # noqa: F401 - resolve_device re-exported


def _atomic_write(path: str | Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except Exception as err:
        Path(tmp).unlink(missing_ok=True)
        # A full disk reaches us as torch's "[enforce fail at inline_container.cc] unexpected pos" or numpy's OSError:
        # say which file and how much room its disk has left, so the user knows what to free.
        free = shutil.disk_usage(path.parent).free
        raise WriteError(f"could not write {path} ({free / 1e9:.2f} GB free on its disk): {err}") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class WriteError(OSError):
    """A checkpoint or result could not be written (most often: the disk is full). The old file, if any, is intact."""


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file + rename: readers never see half a file."""
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_link(src: str | Path, dst: str | Path) -> Path:
    """``dst`` becomes a second name of the file ``src`` (a hard link, or a copy where the file system has none),
    atomically. ``src`` replaced later by an atomic write leaves ``dst`` on the old bytes: the trainer's
    ``best.pt`` beside ``last.pt`` without writing the checkpoint twice (about 1 GB for the paper's VGG16)."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # no hard links here (some network and FAT file systems): a copy
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    return _atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def git_commit(cwd: str | Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        # "-dirty" means the code changed; the run's own outputs (results/, the README's generated section)
        # are rewritten while it runs and would otherwise mark every file of a run dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)results", ":(top,exclude)README.md"],
                               cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=10)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_metadata(cfg=None, device: str | None = None) -> dict[str, Any]:
    """What made a result: config, profile, device, precision and CPU (native bf16 or not), versions, git commit."""
    import torch

    meta: dict[str, Any] = {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": str(device) if device is not None else (str(resolve_device(cfg.device)) if cfg else "cpu"),
        "torch_threads": torch.get_num_threads(),
    }
    for mod in ("torchvision", "numpy", "scipy", "cv2", "decord", "av"):
        try:
            meta[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is recorded, not fatal
            meta[mod] = None
    meta.update(precision_metadata(cfg, device))  # the precision the networks ran in, the CPU and its bf16 flag
    if cfg is not None:
        meta["profile"] = cfg.profile
        meta["dataset"] = cfg.dataset
        meta["config"] = cfg.to_dict()
    return meta


def progress_disabled() -> bool:
    """The one switch for every progress bar: ``TQDM_DISABLE`` (the variable tqdm itself reads).

    Read at call time, so setting it after tqdm was imported (``study.quiet()`` in a notebook) still works;
    ``htsc reproduce``, ``make test`` and the notebooks set it.
    """
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def progress(iterable=None, **kw: Any):
    """A ``tqdm.auto`` bar (a widget in JupyterLab), off when :func:`progress_disabled`; ``disable=True`` wins."""
    from tqdm.auto import tqdm  # deferred: `htsc --help` imports this module and needs no tqdm

    kw["disable"] = bool(kw.get("disable")) or progress_disabled()
    return tqdm(iterable, dynamic_ncols=True, **kw)


def fmt_table(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """A plain-text table for notebook output (stable across runs: fixed 3-decimal rounding)."""
    rows = list(rows)
    cells = [[(f"{r.get(c):.3f}" if isinstance(r.get(c), float) else ("" if r.get(c) is None else str(r.get(c))))
              for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
