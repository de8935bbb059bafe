"""What the benchmark scripts share: paths, the machine's description, and measured subprocesses."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The environment as the user started us, before any gluon_cifar import in this process sets
# MXNET_OMP_MAX_THREADS (gluon_cifar/runtime.py): the baseline must run as it would on its own.
PRISTINE_ENV = dict(os.environ)
BASELINE = os.path.join(ROOT, "..", "shared", "baseline", "d2l_reference.py")
SHARED = os.path.join(ROOT, "..", "shared")
PEER = os.path.join(SHARED, "tools", "airbench_cpu.py")  # airbench94 in PyTorch: runs in its own venv
LAYOUT_TOOL = os.path.join(SHARED, "tools", "kaggle_layout.py")  # makes holdout layouts and scores them


def machine() -> str:
    """"2 cores (2 logical CPUs), AMD EPYC ..., 24 GB RAM": the line every result is stamped with; ", AMX" at its
    end where the CPU exposes AMX (an Intel CPU's speed in bfloat16 depends on it, and a record of another
    program, such as the peer's, has no start-up block of ours to say so)."""
    model, amx = platform.processor() or "unknown CPU", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        model = f"{info.get('model name', model)} (family {info.get('cpu family')}, model {info.get('model')})"
        amx = ", AMX" if "amx_tile" in info.get("flags", "").split() else ""
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    sys.path.insert(0, ROOT)
    from gluon_cifar.runtime import physical_cores
    return f"{physical_cores()} cores ({os.cpu_count()} logical CPUs), {model}, {memory:.0f} GB RAM{amx}"


@dataclass
class Measured:
    stdout: str
    seconds: float
    peak_memory: int  # bytes: the largest PSS sum over the process and its children, sampled


def _pss(pid: int) -> int:
    """Proportional set size: resident bytes, pages shared with other processes split between them, so
    a process tree's sum counts each page once (forked loader workers share most of their parent's)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0  # ended meanwhile


def _tree_memory(root_pid: int) -> int:
    """PSS bytes of `root_pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += _pss(pid)
        stack.extend(children.get(pid, []))
    return total


def run_measured(cmd: list[str], env: dict[str, str] | None = None, sample_every: float = 0.5,
                 max_sample_every: float = 10.0) -> Measured:
    """Run `cmd`, sampling the memory (PSS) of its whole process tree; raise with its stderr if it fails.
    The interval doubles from `sample_every` up to `max_sample_every`: reading a large process's PSS makes
    the kernel walk its page tables: sampled every 0.5 s, the sampler used 2.5 CPU-minutes over 38 minutes
    of a training job (7% of a core; 2026-12-03), CPU taken from the very run being timed."""
    start = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**PRISTINE_ENV, **(env or {})}) as proc:
        peak, interval = 0, sample_every
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                peak = max(peak, _tree_memory(proc.pid))
                interval = min(2 * interval, max_sample_every)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{stderr[-3000:]}")
    return Measured(stdout, time.perf_counter() - start, peak)


def prefix_layout(data_dir: str, out: str, n_test: int) -> str:
    """A Kaggle layout at `out` with DATA_DIR's training images and its first `n_test` test images
    (numeric order), all hard links: the book's script copies whatever it is given, so it gets this
    rather than the 300,000-image test folder when only its training or a sample of its prediction
    is measured."""
    os.makedirs(os.path.join(out, "test"))
    shutil.copytree(os.path.join(data_dir, "train"), os.path.join(out, "train"), copy_function=os.link)
    shutil.copy(os.path.join(data_dir, "trainLabels.csv"), out)
    names = sorted(os.listdir(os.path.join(data_dir, "test")), key=lambda n: int(n.split(".")[0]))[:n_test]
    for name in names:
        os.link(os.path.join(data_dir, "test", name), os.path.join(out, "test", name))
    with open(os.path.join(out, "sampleSubmission.csv"), "w", encoding="utf-8") as f:
        f.write("id,label\n" + "".join(f"{n.split('.')[0]},cat\n" for n in names))
    return out
