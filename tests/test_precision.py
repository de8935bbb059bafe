"""One precision decision per command: what each device allows, refused with the fix named."""
import pytest

from gluon_cifar.config import Config
from gluon_cifar.errors import ConfigError
from gluon_cifar.flags import config_from_args
from gluon_cifar.precision import decide
from gluon_cifar.runtime import Startup

ZEN4 = Startup("OMP_NUM_THREADS=2", "AuthenticAMD family 25", bf16_compute=True, bf16_kernels=True, bf16_faster=True,
               amx="absent", isa="Intel AVX-512 with Intel DL Boost and bfloat16 support")


@pytest.mark.parametrize("requested, devices, phase, chosen", [
    ("auto", ["cpu"], "train", "bfloat16"),
    ("auto", ["gpu", "gpu"], "train", "float32"),  # float16 on GPUs only when asked for
    ("auto", ["gpu"], "predict", "float32"),
    ("float16", ["gpu", "gpu"], "train", "float16"),
    ("float32", ["cpu"], "predict", "float32"),
    ("bfloat16", ["cpu", "cpu"], "predict", "bfloat16"),
])
def test_each_precision_runs_where_it_can(requested, devices, phase, chosen):
    assert decide(requested, devices, ZEN4, phase) == chosen


@pytest.mark.parametrize("requested, devices, phase, message", [
    ("bfloat16", ["gpu"], "train", "bfloat16 runs on CPU contexts only"),
    ("bfloat16", ["cpu", "gpu"], "predict", "bfloat16 runs on CPU contexts only"),
    ("float16", ["cpu"], "train", r"float16 \(formerly --amp\) needs GPU contexts"),
    ("float16", ["gpu"], "predict", "float16 is for training on GPUs"),
    ("int8", ["cpu"], "train", "must be one of auto, float32, bfloat16, float16"),
])
def test_a_precision_the_devices_cannot_run_is_refused_with_the_fix(requested, devices, phase, message):
    with pytest.raises(ConfigError, match=message):
        decide(requested, devices, ZEN4, phase)


def test_amp_is_the_old_name_of_float16_in_flags_and_in_saved_runs(caplog):
    class Args:
        amp, precision, gpus = True, None, "0"

    assert config_from_args(Args()).precision == "float16"
    assert "--amp is deprecated" in caplog.text
    saved = {**Config().to_dict(), "amp": True}
    del saved["precision"]
    assert Config.from_dict(saved).precision == "float16"  # a config.json of an older version
    assert Config.from_dict({**Config().to_dict(), "amp": False}).precision == "auto"
