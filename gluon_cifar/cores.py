"""How many OpenMP threads MXNet should compute with; decided before MXNet is loaded.

MXNet 1.9 on x86 sizes its OpenMP pool at half the processors it sees, assuming every core runs
two hyper-threads. On machines without hyper-threading (most cloud VMs: 2 vCPUs that are 2
cores) that leaves half the cores idle: measured on the 2-core test machine, ResNet-18 trained
at 28.5 images/s with MXNet's default and 54.3 with 2 threads (1.91x; docs/BENCHMARKS.md). The
count is read once, from the environment, when libmxnet loads, so it has to be set before that.
"""
from __future__ import annotations

import os
import sys
import warnings

THREAD_VARIABLES = ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")


def physical_cores() -> int:
    """Cores (not hyper-threads) among the CPUs this process may run on."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/physical_package_id") as package, open(f"{topology}/core_id") as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))  # no topology (not Linux, or hidden): count the CPU itself
    return max(1, len(cores))


def use_every_core() -> None:
    """Give MXNet one OpenMP thread per physical core, unless the user chose a number already.

    Does nothing when MXNET_OMP_MAX_THREADS or OMP_NUM_THREADS is set (scripts/launch.py sets
    them for workers sharing a machine); warns if MXNet was loaded first, when it is too late.
    """
    if any(v in os.environ for v in THREAD_VARIABLES):
        return
    cores = physical_cores()
    if "mxnet" not in sys.modules:
        os.environ["MXNET_OMP_MAX_THREADS"] = str(cores)
    elif cores > (os.cpu_count() or 1) // 2:
        warnings.warn(f"MXNet was imported before gluon_cifar, so it computes with half of this machine's "
                      f"{cores} cores (about half the speed). Import gluon_cifar first, or set "
                      f"MXNET_OMP_MAX_THREADS={cores} before starting Python.", stacklevel=3)


def omp_threads() -> str:
    """The setting in force, for the run's record."""
    return next((f"{v}={os.environ[v]}" for v in THREAD_VARIABLES if v in os.environ), "MXNet default")


