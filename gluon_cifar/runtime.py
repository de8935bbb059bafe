"""Process start-up: the settings that must be made before libmxnet loads, in one place.

`configure()` runs once, when `gluon_cifar` is imported (every module of the package imports
MXNet, so the package import is the one point that is always early enough: an explicit call
would make "call this first" a rule for every notebook and script, and a forgotten call costs
half the speed silently). It makes two settings, both read by MXNet only when it loads:

- OpenMP threads. MXNet 1.9 on x86 sizes its pool at half the processors it sees, assuming
  two hyper-threads per core; on machines without them (most cloud VMs) that idles half the
  cores: ResNet-18 trained at 28.5 images/s with MXNet's default and 54.3 with 2 threads on the
  2-core test machine (docs/BENCHMARKS.md).
- The CPU's matrix units (AMX). Linux hands AMX tile state to a process only once it asks
  (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); without that, the first AMX
  instruction dies with SIGILL. And the oneDNN 2.4 inside MXNet 1.9.1 uses AMX only up to the
  ISA cap `DNNL_MAX_CPU_ISA=AVX512_CORE_AMX`. With both, bfloat16 trains FastNet 2.7x faster
  than float32 on a 2-core AMX Xeon; with AMX capped off, 0.6x (docs/BENCHMARKS.md, "AMX").
  So it depends on the CPU (`bf16_is_faster`), which is why `precision.decide` picks
  by what was found here.

Nothing here imports MXNet.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, MutableMapping

THREAD_VARIABLES = ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")
ISA_VARIABLES = ("DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")  # oneDNN 2.x reads either
AMX_ISA = "AVX512_CORE_AMX"

_SYS_ARCH_PRCTL = 158  # x86-64 syscall number
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


# oneDNN 2.4's bfloat16 kernels (emulated or native) start at this ISA: below it, on an AVX2 CPU such as AMD's
# Zen 3, a bfloat16 convolution fails with "could not create a primitive descriptor iterator".
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})


@dataclass(frozen=True)
class Startup:
    """What `configure` found and set; recorded in every run's config.json."""

    threads: str  # the OpenMP thread setting in force
    cpu: str  # vendor and family, e.g. "AuthenticAMD family 26"
    bf16_compute: bool  # the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16)
    bf16_kernels: bool  # MXNet 1.9's oneDNN has bfloat16 kernels here at all (AVX-512 core: F, BW, VL, DQ)
    bf16_faster: bool  # bfloat16 measured faster than float32 on CPUs of this kind (training and prediction)
    amx: str  # "enabled", "absent" (not on this CPU), "refused: <why>" (by the kernel) or "disabled: <why>"
    isa: str  # the highest instruction set oneDNN will use, in oneDNN's own words

    def as_record(self) -> dict[str, object]:
        return asdict(self)


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


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU in `cpuinfo` (empty where there is no such file)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            return frozenset(next((line for line in f if line.startswith("flags")), "").partition(":")[2].split())
    except OSError:
        return frozenset()


def cpu_identity(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, int]:
    """(vendor, family) of the first CPU, e.g. ("AuthenticAMD", 26); ("unknown", 0) if unreadable."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        return fields.get("vendor_id", "unknown"), int(fields.get("cpu family", 0))
    except (OSError, ValueError):
        return "unknown", 0


def bf16_is_faster(flags: frozenset[str], identity: tuple[str, int], amx_enabled: bool) -> bool:
    """Whether bfloat16 computes faster than float32 on this CPU (MXNet's AMP training; prediction), as measured
    (docs/BENCHMARKS.md, "precision" and "AMX"): yes with AMX (a Xeon with AMX-BF16: 2.67x for
    FastNet, 1.46x for ResNet-18), and on AMD CPUs with AVX512-BF16: Zen 5 (family 26, 1.86x) and
    Zen 4 (family 25, 1.61x for FastNet, 1.77x for ResNet-18; an earlier "slower" reading there did
    not reproduce). Intel's AVX512-BF16 without AMX is not (the same Xeon with AMX capped off:
    training 0.59x and 0.75x, prediction 0.96x), so float32 there and on every CPU not measured."""
    vendor, _ = identity
    return amx_enabled or (vendor == "AuthenticAMD" and "avx512_bf16" in flags)


def request_amx_permission() -> str | None:
    """Ask Linux for the AMX tile state; None when granted, else why not."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"not x86-64 Linux ({sys.platform}, {platform.machine()})"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0:
        return None
    return f"the kernel said {os.strerror(ctypes.get_errno())} (Linux 5.16 or newer grants it)"


def onednn_isa(flags: frozenset[str], amx_enabled: bool) -> str:
    """The ISA oneDNN 2.4 picks on a CPU with `flags` (the `isa:` line of DNNL_VERBOSE=1)."""
    if amx_enabled:
        return "Intel AVX-512 with Intel DL Boost and bfloat16 support and Intel AMX with bfloat16 and 8-bit integer support"
    if AVX512_CORE <= flags:
        if "avx512_bf16" in flags:
            return "Intel AVX-512 with Intel DL Boost and bfloat16 support"
        if "avx512_vnni" in flags:
            return "Intel AVX-512 with Intel DL Boost"
        return "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions"
    return "Intel AVX2" if "avx2" in flags else "below AVX2"


def configure(flags: frozenset[str] | None = None, environ: MutableMapping[str, str] = os.environ,
              request_amx: Callable[[], str | None] = request_amx_permission,
              identity: tuple[str, int] | None = None) -> Startup:
    """Make the start-up settings (see the module docstring) and say what they are.

    A setting the user made in the environment is kept. `flags`, `environ`, `request_amx` and
    `identity` (cpu_identity) are the machine's unless given (tests give fake ones).
    """
    flags = cpu_flags() if flags is None else flags
    identity = cpu_identity() if identity is None else identity
    _use_every_core(environ)
    user_isa = next((environ[v] for v in ISA_VARIABLES if v in environ), None)
    if not {"amx_bf16", "amx_tile"} <= flags:
        amx = "absent"
    elif user_isa is not None and "AMX" not in user_isa.upper():
        amx = f"disabled: DNNL_MAX_CPU_ISA={user_isa} was set by the user"
    else:
        refusal = request_amx()
        amx = "enabled" if refusal is None else f"refused: {refusal}"
        if refusal is None and user_isa is None:
            environ["DNNL_MAX_CPU_ISA"] = AMX_ISA
        elif refusal is not None and user_isa is not None:
            # The user's cap would let oneDNN issue AMX instructions that now fault: cap below.
            for variable in ISA_VARIABLES:
                environ.pop(variable, None)
            environ["DNNL_MAX_CPU_ISA"] = "AVX512_CORE_BF16"
            warnings.warn(f"AMX was {amx}: computing without it (DNNL_MAX_CPU_ISA={user_isa} lowered to "
                          "AVX512_CORE_BF16)", stacklevel=2)
    isa = onednn_isa(flags, amx == "enabled")
    if user_isa is not None and amx.startswith("disabled"):
        isa = f"at most {user_isa} (DNNL_MAX_CPU_ISA set by the user)"
    return Startup(threads=omp_threads(environ), cpu=f"{identity[0]} family {identity[1]}",
                   bf16_compute=bool({"avx512_bf16", "amx_bf16"} & flags), bf16_kernels=AVX512_CORE <= flags,
                   bf16_faster=bf16_is_faster(flags, identity, amx == "enabled"), amx=amx, isa=isa)


def _use_every_core(environ: MutableMapping[str, str]) -> None:
    """One OpenMP thread per physical core, unless the user chose a number already.

    Warns if MXNet was loaded first, when it is too late to change.
    """
    if any(v in environ for v in THREAD_VARIABLES):
        return
    cores = physical_cores()
    if "mxnet" not in sys.modules:
        environ["MXNET_OMP_MAX_THREADS"] = str(cores)
    elif cores > (os.cpu_count() or 1) // 2:
        warnings.warn(f"MXNet was imported before gluon_cifar, so it computes with half of this machine's "
                      f"{cores} cores (about half the speed). Import gluon_cifar first, or set "
                      f"MXNET_OMP_MAX_THREADS={cores} before starting Python.", stacklevel=4)


def omp_threads(environ: MutableMapping[str, str] = os.environ) -> str:
    """The thread setting in force, for the run's record."""
    return next((f"{v}={environ[v]}" for v in THREAD_VARIABLES if v in environ), "MXNet default")


def peak_memory_mb() -> float:
    """The most resident memory this process has held so far, in MB (Linux reports ru_maxrss in KB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
