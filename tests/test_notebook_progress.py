"""Progress bars in an interactive kernel, none under papermill/nbval (issue 27, item 5).

A notebook's first cell calls ``study.quiet()``; the bars must then still reach a JupyterLab user (tqdm's
widget, the ``application/vnd.jupyter.widget-view+json`` display) unless the kernel runs headless with
``TQDM_DISABLE=1``, as ``htsc reproduce``, ``make test`` and ``make notebooks`` start it.
"""
import os

import nbformat
from nbclient import NotebookClient

WIDGET = "application/vnd.jupyter.widget-view+json"
CELLS = ["from htsc_core import study\nstudy.quiet()",
         "from htsc_core.utils import progress\nfor _ in progress(range(3), desc='epochs'):\n    pass"]


def _outputs(tqdm_disable: str | None) -> list[dict]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    if tqdm_disable is not None:
        env["TQDM_DISABLE"] = tqdm_disable
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env)
    return [o for cell in nb.cells for o in cell.outputs]


def test_bars_in_an_interactive_kernel():
    """The headless side (no bar, no warning with TQDM_DISABLE=1) is what nbval checks: a bar or a warning
    would be an output the committed notebooks do not have."""
    outputs = _outputs(None)
    assert [o for o in outputs if WIDGET in o.get("data", {})], outputs
    assert not any("IProgress not found" in o.get("text", "") for o in outputs)
