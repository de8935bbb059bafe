"""The time budget's clock and its one measurement of speed.

Everything the budget times reads a `Clock`, passed in: a run reads `process_clock()`, a test a fake
one that its fake work advances, so that no verdict of a test depends on how busy the host is.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Callable, Iterable, Iterator

Clock = Callable[[], float]  # seconds since this process started


def process_clock() -> Clock:
    """A clock of seconds since this process started (its imports count against a budget too): the
    process's age read once from /proc, then carried on by perf_counter (/proc/uptime ticks in 10 ms)."""
    offset = process_age_s() - time.perf_counter()
    return lambda: offset + time.perf_counter()


def process_age_s() -> float:
    """Seconds since this process started; 0 if unknown."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as uptime:
            started_ticks = int(stat.read().rpartition(")")[2].split()[19])  # field 22: starttime
            return max(0.0, float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def measure_rate(run_batches: Callable[[Iterable], int], batches: Iterable, clock: Clock, warmup: int = 1,
                 chunk: int = 1, min_batches: int = 3, min_seconds: float = 5.0, max_batches: int = 30) -> float:
    """Images per second of `run_batches(iterable of batches) -> images done` on `batches` (cycled), by `clock`.

    The first `warmup` batches (graph building, oneDNN primitive creation) are not timed (one is enough:
    cpu-fast's second batch on the AMX Xeon already ran at the steady pace, the first 0.1-0.6 s slower; none
    where the graph is built already); then `chunk` batches a call are timed until at least `min_batches` and
    `min_seconds`, at most `max_batches`. `run_batches` must wait for its results (read a value), so the clock
    sees the work.
    """
    cycle = _endless(batches)
    if warmup:
        run_batches(itertools.islice(cycle, warmup))
    images, timed, start = 0, 0, clock()
    while timed < min_batches or (clock() - start < min_seconds and timed < max_batches):
        images += run_batches(itertools.islice(cycle, chunk))
        timed += chunk
    return images / (clock() - start)


def _endless(batches: Iterable) -> Iterator:
    """`batches` again and again (not itertools.cycle: it would keep every batch in memory)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yielded no batches")
