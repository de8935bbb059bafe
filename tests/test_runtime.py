"""Start-up: one OpenMP thread per core unless the user chose otherwise; AMX where the CPU and kernel allow."""
import os
import subprocess
import sys
import warnings

import pytest

from gluon_cifar.errors import ConfigError
from gluon_cifar.precision import (
    decide as resolve_precision,  # the auto rules, per CPU kind
)
from gluon_cifar.runtime import configure, cpu_flags, physical_cores
from tests.conftest import ROOT

SHOW = ("import os, gluon_cifar, mxnet; "
        "print(os.environ.get('MXNET_OMP_MAX_THREADS'), os.environ.get('OMP_NUM_THREADS'))")


def threads_seen(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", SHOW], env={**clean, **env}, cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.slow
def test_importing_gluon_cifar_gives_mxnet_a_thread_per_core():
    assert physical_cores() >= 1
    assert threads_seen() == [str(physical_cores()), "None"]


@pytest.mark.slow
def test_a_thread_count_the_user_chose_is_kept():
    assert threads_seen(OMP_NUM_THREADS="1") == ["None", "1"]
    assert threads_seen(MXNET_OMP_MAX_THREADS="3") == ["3", "None"]


def test_each_test_worker_and_the_processes_it_starts_compute_with_its_share_of_the_cores():
    """tests/conftest.py: under pytest-xdist every worker gets cores / workers OpenMP threads, which the
    scripts its tests start inherit (each worker at every core made two tests side by side 5x slower)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or os.environ["GLUON_CIFAR_TESTS_USER_THREADS"]:
        pytest.skip("one test worker, or threads the user set: nothing shared out")
    share = str(max(1, (os.cpu_count() or 1) // workers))
    assert "MXNET_OMP_MAX_THREADS" not in os.environ and os.environ["OMP_NUM_THREADS"] == share
    assert subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split() == [
        "None", share]


@pytest.mark.slow
def test_importing_mxnet_first_is_warned_about():
    clean = {k: v for k, v in os.environ.items() if k not in ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-W", "always", "-c", "import mxnet, gluon_cifar"], env=clean, cwd=ROOT,
                            capture_output=True, text=True, check=True)
    if physical_cores() > (os.cpu_count() or 1) // 2:  # true on machines without hyper-threading
        assert "MXNet was imported before gluon_cifar" in result.stderr
    else:
        assert "MXNet was imported before gluon_cifar" not in result.stderr


# --- the CPU's matrix units: detection, permission, fallback (fake flag sets; no AMX needed) ---

AMX = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"})
BF16_ONLY = AMX - {"amx_bf16", "amx_tile", "amx_int8"}  # e.g. AMD Zen 4
NEITHER = frozenset({"avx2", "fma"})


ZEN4, ZEN5, XEON = ("AuthenticAMD", 25), ("AuthenticAMD", 26), ("GenuineIntel", 6)


def configured(flags, env=None, refusal=None, identity=XEON):
    """configure() on fake flags, a fake environment and a fake kernel; (Startup, env, asked)."""
    env, asked = dict(env or {}, OMP_NUM_THREADS="2"), []

    def kernel():
        asked.append(True)
        return refusal

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        startup = configure(flags, env, kernel, identity)
    return startup, env, asked, [str(w.message) for w in caught]


def test_amx_is_requested_from_the_kernel_and_opened_to_onednn():
    startup, env, asked, _ = configured(AMX)
    assert asked and startup.amx == "enabled" and env["DNNL_MAX_CPU_ISA"] == "AVX512_CORE_AMX"
    assert "Intel AMX" in startup.isa and startup.bf16_compute
    assert resolve_precision("auto", ["cpu"], startup, "train") == "bfloat16"
    assert resolve_precision("auto", ["cpu", "cpu"], startup, "predict") == "bfloat16"


def test_a_refused_permission_falls_back_without_amx():
    startup, env, asked, _ = configured(AMX, refusal="the kernel said Invalid argument")
    assert asked and startup.amx.startswith("refused: the kernel said Invalid argument")
    assert "DNNL_MAX_CPU_ISA" not in env and "AMX" not in startup.isa
    # an Intel CPU without AMX: bfloat16 measured slower to train (0.59x) and no faster to predict (0.96x)
    assert resolve_precision("auto", ["cpu"], startup, "train") == "float32"
    assert resolve_precision("auto", ["cpu"], startup, "predict") == "float32"


def test_a_users_amx_cap_is_lowered_when_the_kernel_refuses_instead_of_dying_of_sigill():
    startup, env, _, warned = configured(AMX, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, refusal="no")
    assert env == {"OMP_NUM_THREADS": "2", "DNNL_MAX_CPU_ISA": "AVX512_CORE_BF16"}
    assert startup.amx == "refused: no" and any("lowered to AVX512_CORE_BF16" in w for w in warned)


def test_a_users_lower_isa_cap_is_kept_and_amx_not_requested():
    startup, env, asked, _ = configured(AMX, {"DNNL_MAX_CPU_ISA": "AVX2"})
    assert not asked and env["DNNL_MAX_CPU_ISA"] == "AVX2" and startup.amx.startswith("disabled")
    assert resolve_precision("auto", ["cpu"], startup, "train") == "float32"


@pytest.mark.parametrize("flags,identity,bf16,train,predict", [
    (BF16_ONLY, ZEN4, True, "bfloat16", "bfloat16"),  # Zen 4: 1.61x (docs/BENCHMARKS.md)
    (BF16_ONLY, ZEN5, True, "bfloat16", "bfloat16"),  # Zen 5: 1.9x (docs/BENCHMARKS.md)
    (BF16_ONLY, XEON, True, "float32", "float32"),  # a Xeon with AMX capped off: 0.59x, 0.96x
    (NEITHER, ZEN5, False, "float32", "float32"),
    (NEITHER, XEON, False, "float32", "float32")], ids=["zen4", "zen5", "xeon-bf16", "zen5-no-bf16", "old-xeon"])
def test_without_amx_nothing_is_requested_and_auto_picks_what_was_measured_faster(flags, identity, bf16, train,
                                                                                  predict):
    startup, env, asked, _ = configured(flags, identity=identity)
    assert not asked and startup.amx == "absent" and startup.bf16_compute is bf16 and "DNNL_MAX_CPU_ISA" not in env
    assert resolve_precision("auto", ["cpu"], startup, "train") == train
    assert resolve_precision("auto", ["cpu"], startup, "predict") == predict
    assert startup.bf16_kernels is (flags != NEITHER)
    if startup.bf16_kernels:
        assert resolve_precision("bfloat16", ["cpu"], startup, "train") == "bfloat16"  # asked for: given
    else:  # an AVX2 CPU (AMD Zen 3): MXNet's oneDNN has no bfloat16 kernel to run, so neither phase may ask
        for phase in ("train", "predict"):
            with pytest.raises(ConfigError, match=r"--precision bfloat16 needs a CPU with AVX-512 .* offers Intel "
                                                  r"AVX2: use --precision float32, or auto"):
                resolve_precision("bfloat16", ["cpu"], startup, phase)
    assert resolve_precision("auto", ["gpu"], startup, "predict") == "float32"  # GPUs have --amp


def test_avx512_without_bfloat16_instructions_still_has_the_emulated_kernels():
    startup, _, _, _ = configured(BF16_ONLY - {"avx512_bf16"}, identity=XEON)  # e.g. a Skylake Xeon
    assert startup.bf16_kernels and not startup.bf16_compute and not startup.bf16_faster
    assert resolve_precision("bfloat16", ["cpu"], startup, "predict") == "bfloat16"
    assert resolve_precision("auto", ["cpu"], startup, "predict") == "float32"


@pytest.mark.slow
def test_the_isa_recorded_is_the_one_onednn_reports_on_this_machine():
    """Start-up as a user gets it, checked against oneDNN's own verbose line."""
    code = ("import gluon_cifar, mxnet as mx; print('STARTUP', gluon_cifar.STARTUP.isa); "
            "mx.nd.Convolution(mx.nd.ones((1, 3, 8, 8)), mx.nd.ones((4, 3, 3, 3)), kernel=(3, 3), num_filter=4, "
            "no_bias=True).wait_to_read()")
    clean = {k: v for k, v in os.environ.items() if k not in ("DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, "DNNL_VERBOSE": "1"}, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    recorded = next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("STARTUP"))
    reported = next(line.split("isa:", 1)[1] for line in out.splitlines() if ",isa:" in line)
    assert recorded == reported
    assert ("amx_tile" in cpu_flags()) == ("AMX" in reported)
