"""SIGTERM and Ctrl-C in the scripts: raised as Terminated / KeyboardInterrupt in the script's process (also
when they land in a finalizer), the defaults in forked workers."""
import os
import signal
import time

import pytest

from gluon_cifar import cli


def test_a_worker_forked_under_the_handler_dies_of_sigterm_as_before():
    """Regression: a forked worker inheriting the Python handler, blocked in C, never ran it, so a pool
    waiting for its workers to end hung (the test suite did, in a decoding pool)."""
    previous = signal.signal(signal.SIGTERM, cli._raise_stop)
    try:
        pid = os.fork()
        if pid == 0:  # the worker: it must not run our handler, only die
            time.sleep(30)
            os._exit(0)
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is cli._raise_stop  # the parent keeps it
    finally:
        signal.signal(signal.SIGTERM, previous)


class FreedWithASignal:
    """An object whose finalizer is interrupted by `signum`, as MXNet's NDArray.__del__ was in CI."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        os.kill(os.getpid(), self.signum)
        time.sleep(0.01)  # the handler runs here, inside __del__


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_that_lands_in_a_finalizer_still_stops_the_script(signum, exit_code, capsys):
    finished = []

    def main() -> int:
        FreedWithASignal(signum)  # freed at once: the signal arrives inside its __del__
        for _ in range(100):  # the rest of an epoch: 1 s
            time.sleep(0.01)
        finished.append(True)
        return 0

    previous = signal.getsignal(signum)
    with pytest.raises(SystemExit) as stopped:
        cli.run_main(main)
    assert stopped.value.code == exit_code and not finished  # stopped within the "epoch", not after it
    assert capsys.readouterr().err.strip().endswith("terminated" if signum == signal.SIGTERM else "interrupted")
    assert signal.getsignal(signum) is previous  # left as it was, in-process
