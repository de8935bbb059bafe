import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

# Under pytest-xdist (.ci/run: one worker per core) each worker and every process its tests start computes
# with its share of the cores: two workers on 2 cores at 2 OpenMP threads each ran the suite slower than
# one at a time (the threads of one wait spinning for the other's: two kill -9 tests side by side took 70-76 s
# each, 11-14 s alone). Before gluon_cifar, which keeps a setting made in the environment. The thread setting
# the user made is the one the first pytest process found: its own `import gluon_cifar` below sets
# MXNET_OMP_MAX_THREADS for the whole machine, and xdist's workers inherit its environment (so, read in the
# workers, that setting had always looked like the user's, and every worker ran with every core).
# gluon_cifar.runtime.THREAD_VARIABLES, named here: importing it would run the very import this decides for
# (benchmarks/common.py's PRISTINE_ENV answers the same question for the benchmarks' children)
_THREAD_VARIABLES = ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")
_USER_THREADS = os.environ.setdefault("GLUON_CIFAR_TESTS_USER_THREADS",
                                      " ".join(v for v in _THREAD_VARIABLES if v in os.environ))
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and not _USER_THREADS:
    os.environ.pop("MXNET_OMP_MAX_THREADS", None)  # the first process's, for every core
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

import gluon_cifar  # noqa: E402  (before any test imports mxnet: it sets MXNet's thread count)

# What needs oneDNN's bfloat16 kernels runs only where they exist (AVX-512); elsewhere the tests check the refusal
BF16_REFUSED = r"--precision bfloat16 needs a CPU with AVX-512"
needs_bfloat16_kernels = pytest.mark.skipif(not gluon_cifar.STARTUP.bf16_kernels, reason=(
    f"{gluon_cifar.STARTUP.cpu} has no AVX-512: MXNet 1.9 has no bfloat16 kernels for it"))


def pytest_terminal_summary(terminalreporter):
    """The CPU, under the results (even with -q): a suite's time means little without it."""
    from gluon_cifar import STARTUP
    from gluon_cifar.runtime import physical_cores
    workers = getattr(terminalreporter.config.option, "numprocesses", None) or 1  # (pytest-xdist's -n, resolved)
    terminalreporter.write_line(f"CPU: {STARTUP.cpu}, {physical_cores()} cores ({os.cpu_count()} logical), "
                                f"AMX {STARTUP.amx}; {workers} test worker{'s' if workers > 1 else ''}")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
KAGGLE_LAYOUT = os.path.join(SHARED, "tools", "kaggle_layout.py")


@pytest.fixture(autouse=True)
def _float32_process():
    """No test may leave MXNet's AMP on: it patches operators for the whole process, so every test
    after it would compute in bfloat16 (in-process trainings pass --precision float32)."""
    yield
    from mxnet.contrib.amp import amp
    assert not amp._amp_initialized, "this test switched the pytest process to mixed precision"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Split trees and demo data go to a per-test cache, never ~/.cache."""
    monkeypatch.setenv("GLUON_CIFAR_CACHE", str(tmp_path / "cache"))


def write_layout(root, labels, test_ids=(), sample_ids=None, size=32):
    """A Kaggle-style directory: train/<id>.png with `labels` {id: class}, test/<id>.png."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "train"), exist_ok=True)
    os.makedirs(os.path.join(root, "test"), exist_ok=True)
    for image_id in labels:
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, "train", f"{image_id}.png"))
    for image_id in test_ids:
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, "test", f"{image_id}.png"))
    with open(os.path.join(root, "trainLabels.csv"), "w") as f:
        f.write("id,label\n" + "".join(f"{i},{c}\n" for i, c in labels.items()))
    if sample_ids is not None:
        with open(os.path.join(root, "sampleSubmission.csv"), "w") as f:
            f.write("id,label\n" + "".join(f"{i},cat\n" for i in sample_ids))
    return str(root)


@pytest.fixture(scope="session")
def real_layout(tmp_path_factory):
    """1,000 real CIFAR-10 training images and 50 scored holdout images, in the Kaggle layout."""
    if not os.path.isfile(KAGGLE_LAYOUT):
        # CI must not pass by skipping them (.ci/run requires them); a checkout alone skips them, named
        missing = f"{KAGGLE_LAYOUT} is missing: the real-data tests need ../shared beside the checkout"
        if os.environ.get("GLUON_CIFAR_REAL_DATA") == "required":
            pytest.fail(missing)
        pytest.skip(missing)
    out = tmp_path_factory.mktemp("real") / "cifar-10"
    subprocess.run([sys.executable, KAGGLE_LAYOUT, str(out), "--train", "1000", "--holdout", "50"],
                   check=True, capture_output=True)
    return str(out)


# A small network's cpu-fast run on the demo data: seconds, not minutes
SMALL_RUN = ["--preset", "cpu-fast", "--model", "fastnet_small", "--batch-size", "128", "--warmup-epochs", "1",
             "--precision", "float32", "--no-progress"]


def train_small_run(tmp_path_factory, seed, epochs):
    """A finished SMALL_RUN of `epochs` epochs (1: no warm-up) with `seed`; returns its directory."""
    out = tmp_path_factory.mktemp("small") / f"run{seed}"
    warmup = ["--warmup-epochs", "0"] if epochs == 1 else []  # (the warm-up must end before the run does)
    trained = run_script("train.py", "--demo", *SMALL_RUN, *warmup, "--epochs", epochs, "--seed", seed, "--out", out,
                         env={"GLUON_CIFAR_CACHE": str(tmp_path_factory.mktemp("cache"))})
    assert trained.returncode == 0, trained.stderr
    return str(out)


@pytest.fixture(scope="session")
def half_trained_run(tmp_path_factory):
    """A small run trained for one epoch (seed 1), shared by the tests that only read it: none may write
    into it (a submission goes to --out elsewhere)."""
    return train_small_run(tmp_path_factory, 1, 1)


def run_in_process(script, *args, capsys):
    """Run scripts/`script` with `args` in this process, as `python scripts/X.py` would; return (exit code,
    stderr). For error paths that stop before training: they cost no MXNet start-up this way."""
    argv = sys.argv
    sys.argv = [script, *map(str, args)]
    try:
        runpy.run_path(os.path.join(ROOT, "scripts", script), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
    return code, capsys.readouterr().err


def run_script(name, *args, env=None, timeout=900):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
