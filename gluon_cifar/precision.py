"""The arithmetic a command computes in: decided once, from the flag, the devices and the CPU.

Every rule about precisions lives here; `decide` is called once per command, before any work.

- float32: everywhere.
- bfloat16: CPUs with AVX-512 only (MXNet 1.9 has no GPU bfloat16, and its oneDNN no bfloat16 kernels
  below AVX-512: an AVX2 CPU such as AMD's Zen 3 fails at the first convolution). Training uses AMP
  with float32 weights and no loss scaling (bfloat16 has float32's range); prediction a bfloat16 copy
  of the network.
- float16: GPUs only, training only (AMP with dynamic loss scaling; `--amp` is its old name).
  Untested here: no GPU.
- auto: what measured fastest on this kind of machine (docs/BENCHMARKS.md, "precision", "AMX").
  On CPUs, training and prediction alike: bfloat16 where `Startup.bf16_faster` (AMX; AMD Zen 4
  and 5), else float32 (an Intel CPU with AVX512-BF16 but without AMX computes bfloat16 natively
  and still no faster). GPUs: float32.

Nothing here imports MXNet.
"""
from __future__ import annotations

from typing import Iterable

from .errors import ConfigError
from .runtime import Startup

PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # --precision of train.py
PREDICTION_PRECISIONS = ("auto", "float32", "bfloat16")  # --precision of submit.py
COMPUTED_IN_PREDICTION = ("float32", "bfloat16")  # what `decide` gives for "predict"
PHASES = ("train", "predict")


def decide(requested: str, device_types: Iterable[str], startup: Startup, phase: str) -> str:
    """The precision `phase` computes in on devices `device_types` ("cpu"/"gpu"): `requested`, or
    for "auto" the fastest measured here. ConfigError if `requested` cannot run there."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if requested not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    on_gpu = [d == "gpu" for d in device_types]
    if requested == "bfloat16" and any(on_gpu):
        raise ConfigError("--precision bfloat16 runs on CPU contexts only (MXNet 1.9 has no GPU bfloat16): drop "
                          "--gpus, or on GPUs use --precision float16 (training) or float32")
    if requested == "bfloat16" and not startup.bf16_kernels:
        raise ConfigError(f"--precision bfloat16 needs a CPU with AVX-512 (MXNet 1.9's oneDNN has no bfloat16 kernels "
                          f"below it); this {startup.cpu} offers {startup.isa}: use --precision float32, or auto")
    if requested == "float16" and phase == "predict":
        raise ConfigError("--precision float16 is for training on GPUs; predict with --precision float32 or auto")
    if requested == "float16" and not all(on_gpu):
        raise ConfigError("--precision float16 (formerly --amp) needs GPU contexts (--gpus); on CPUs use "
                          "--precision bfloat16 or auto")
    if requested != "auto":
        return requested
    if any(on_gpu):
        return "float32"
    return "bfloat16" if startup.bf16_faster else "float32"
