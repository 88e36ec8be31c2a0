"""What every figure of :mod:`htsc_core.plots` and :mod:`htsc_core.plots_release` shares: the family colours, saving
a figure (atomically, rank 0 under torchrun) and showing it once in a notebook, and interval bars that never go
negative."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from htsc_core.train.engine import is_main_process
from htsc_core.utils import atomic_write_bytes

FAMILY_COLOURS = {"appearance": "tab:orange", "motion": "tab:blue", "cue": "tab:green", None: "tab:gray"}


def _save(fig, path: str | Path | None):
    """Save ``fig`` as PNG (atomically) and, inside a notebook, show it once as that PNG; return ``fig``.

    Showing the saved bytes rather than leaving the figure to the inline backend gives exactly one
    output per figure, whichever backend the kernel runs (nbval compares output counts). The figure is
    returned so a notebook can restyle it (``fig = plots.method_bars(...)``; end the call with ``;`` or
    assign it, or Jupyter shows the returned figure a second time).
    """
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    if path is not None and is_main_process():  # under torchrun (notebooks on every rank) rank 0 writes
        atomic_write_bytes(path, buf.getvalue())
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return fig
    if get_ipython() is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell":
        plt.close(fig)  # closed for pyplot (no second inline copy), still a Figure to restyle and save again
        display(Image(buf.getvalue()))
    return fig


def _num(value) -> float:
    """A table cell as a float: missing ("", None) -> NaN, so a row without a value is drawn as a gap."""
    return np.nan if value in ("", None) else float(value)


def _error_bars(values: np.ndarray, lo: Sequence, hi: Sequence) -> np.ndarray:
    """(2, n) non-negative error-bar lengths around ``values`` from interval ends ``lo``, ``hi``.

    An interval that excludes its value by rounding, has zero width, or is missing (NaN) gives a
    zero-length bar rather than a negative one (matplotlib refuses those); the value is drawn
    either way, so the figure shows what there is.
    """
    values = np.asarray(values, dtype=float)
    lo = np.array([_num(v) for v in lo], dtype=float)
    hi = np.array([_num(v) for v in hi], dtype=float)
    err = np.vstack([values - lo, hi - values])
    return np.nan_to_num(np.clip(err, 0.0, None), nan=0.0)
