"""MXNet computes with one OpenMP thread per core unless the user chose otherwise."""
import os
import subprocess
import sys

from gluon_cifar.cores import physical_cores
from tests.conftest import ROOT

SHOW = ("import os, gluon_cifar, mxnet; "
        "print(os.environ.get('MXNET_OMP_MAX_THREADS'), os.environ.get('OMP_NUM_THREADS'))")


def threads_seen(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", SHOW], env={**clean, **env}, cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_importing_gluon_cifar_gives_mxnet_a_thread_per_core():
    assert physical_cores() >= 1
    assert threads_seen() == [str(physical_cores()), "None"]


def test_a_thread_count_the_user_chose_is_kept():
    assert threads_seen(OMP_NUM_THREADS="1") == ["None", "1"]
    assert threads_seen(MXNET_OMP_MAX_THREADS="3") == ["3", "None"]


def test_importing_mxnet_first_is_warned_about():
    clean = {k: v for k, v in os.environ.items() if k not in ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-W", "always", "-c", "import mxnet, gluon_cifar"], env=clean, cwd=ROOT,
                            capture_output=True, text=True, check=True)
    if physical_cores() > (os.cpu_count() or 1) // 2:  # true on machines without hyper-threading
        assert "MXNet was imported before gluon_cifar" in result.stderr
    else:
        assert "MXNet was imported before gluon_cifar" not in result.stderr
