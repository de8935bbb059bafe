"""SIGTERM in the scripts: raised as Terminated in the script's process, the default in forked workers."""
import os
import signal
import time

from gluon_cifar import cli


def test_a_worker_forked_under_the_handler_dies_of_sigterm_as_before():
    """Regression: a forked worker inheriting the Python handler, blocked in C, never ran it, so a pool
    waiting for its workers to end hung (the test suite did, in a decoding pool)."""
    previous = signal.signal(signal.SIGTERM, cli._raise_terminated)
    try:
        pid = os.fork()
        if pid == 0:  # the worker: it must not run our handler, only die
            time.sleep(30)
            os._exit(0)
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is cli._raise_terminated  # the parent keeps it
    finally:
        signal.signal(signal.SIGTERM, previous)
