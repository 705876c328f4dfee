"""Progress bars only where someone watches them: a terminal or a notebook.

    tqdm(loader, disable=not progress.enabled(requested))

Written to a file or a pipe (a cluster job, CI, `nohup`), a tqdm bar is a stream of redraws;
there the package prints its one-line epoch summaries only.
"""
from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, papermill): bars render as widgets there."""
    shell = sys.modules.get("IPython")
    shell = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def enabled(requested: bool = True, stream=None) -> bool:
    """Whether to draw progress bars: `requested`, and `stream` (default sys.stderr, where tqdm
    writes) is a terminal or this is a notebook."""
    if not requested:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or in_notebook()
