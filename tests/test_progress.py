"""Progress bars on a terminal or in a notebook only; a log file gets one line per epoch."""
import io
import sys
import types

import pytest
from conftest import EPS

from clead_edu import progress
from clead_edu import train as T
from clead_edu.config import TrainConfig
from clead_edu.device import seed_everything
from clead_edu.models import model_for


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def test_enabled_on_a_terminal_only():
    assert progress.enabled(True, Terminal())
    assert not progress.enabled(True, io.StringIO())        # a file or a pipe
    assert not progress.enabled(False, Terminal())          # not asked for


def test_enabled_in_a_notebook(monkeypatch):
    """In a Jupyter kernel (its shell is a ZMQInteractiveShell) bars show whatever the stream."""
    ZMQInteractiveShell = type("ZMQInteractiveShell", (), {})
    fake = types.SimpleNamespace(get_ipython=lambda: ZMQInteractiveShell())
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert progress.enabled(True, io.StringIO())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress.enabled(True, io.StringIO())


@pytest.mark.parametrize("terminal", [False, True], ids=["log file", "terminal"])
def test_training_log_has_summaries_and_bars_only_on_a_terminal(digits, monkeypatch, capsys, terminal):
    """Two epochs: one summary line each on stdout; the bars' redraws on stderr only on a terminal."""
    err = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    seed_everything(0)
    model = model_for(digits, "small_cnn")
    T.train(model, digits.train, TrainConfig(epochs=2, batch_size=256, eps=EPS), progress=True)
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if " epoch " in line] == [
        "standard epoch 1/2", "standard epoch 2/2"]
    assert ("it/s" in err.getvalue() or "s/it" in err.getvalue()) == terminal
