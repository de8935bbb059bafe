"""Progress bars draw on a terminal only: a log file or CI log gets clean lines."""
import io
import sys

from gluon_cifar.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_draws_on_a_terminal_unless_turned_off(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(10, "epoch 1", unit="img", leave=False) as bar:
        bar.update(10)
    assert "epoch 1" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(10, "epoch 1", show=False) as bar:  # --no-progress
        bar.update(10)
    assert sys.stderr.getvalue() == ""


def test_a_log_file_gets_no_bar_and_no_blank_lines(monkeypatch):
    """Redrawn bars in a log were one line per redraw and a blank line after each epoch's log line."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress_bar(10, "epoch 1", unit="img", leave=False) as bar:
        bar.update(10)
    assert sys.stderr.getvalue() == ""
