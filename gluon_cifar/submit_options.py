"""What scripts/submit.py does, as one object: the run (or runs) to predict with, and how."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import TTAS
from .errors import ConfigError
from .precision import PREDICTION_PRECISIONS
from .settings import check_at_least, check_fields, cpus_setting, gpus_setting, parse_gpu_ids, setting


@dataclass
class SubmitOptions:
    """What scripts/submit.py does: predict DIR/test with a finished run, or an ensemble of them
    (not saved: a run's settings are its Config; these only choose how to predict)."""

    run: list[str] = setting(None, "run directory written by scripts/train.py; give --run several times to "
                                   "submit an ensemble: their class probabilities averaged", "submission",
                             required=True, action="append")
    weights: str = setting("", "comma-separated weights of the ensemble's runs, in --run order (default: equal)",
                           "submission")
    data_dir: str | None = setting(None, "the Kaggle download with the test images (cifar-10.zip, or a folder with "
                                          "test.7z or test/) (default: the run's)", "submission")
    out: str | None = setting(None, "submission path (default: RUN/submission.csv)", "submission")
    retrain: bool = setting(False, "retrain on train+valid with the run's settings before predicting (the "
                                    "book's final step; it leaves RUN/retrain)", "submission")
    batch_size: int = setting(512, "prediction batch size", "submission")
    num_workers: int | None = setting(None, "decoding worker processes (default: the run's)", "submission")
    precision: str = setting("auto", "auto: bfloat16 on CPUs that compute it natively (AVX512-BF16 or AMX), "
                                      "else float32; a few predictions in a thousand may change "
                                      "(docs/BENCHMARKS.md). --dtype is the old name",
                              "submission", choices=PREDICTION_PRECISIONS, aliases=("--dtype",))
    tta: str | None = setting(None, "test-time augmentation: none, flip (2 views) or flip-shift (6 views), each "
                                     "view a pass over the test images (default: the run's --tta)", "submission",
                               choices=TTAS)
    gpus: str = gpus_setting()
    cpus: int = cpus_setting()

    def __post_init__(self) -> None:
        if isinstance(self.run, str):  # one run, as Python callers give it
            self.run = [self.run]

    def validate(self) -> "SubmitOptions":
        check_fields(self)
        check_at_least(self, 1, "batch_size", "cpus")
        check_at_least(self, 0, "num_workers")
        self.run_weights()
        if self.retrain and len(self.run) > 1:
            raise ConfigError("--retrain retrains one run: submit an ensemble of runs that are trained already")
        return self

    def run_weights(self) -> list[float]:
        """The ensemble's weights, one per --run, summing to 1."""
        try:
            given = [float(w) for w in self.weights.split(",")] if self.weights else [1.0] * len(self.run)
        except ValueError:
            raise ConfigError(f"--weights takes comma-separated numbers, e.g. 1,1; got {self.weights!r}") from None
        if len(given) != len(self.run) or not all(math.isfinite(w) and w > 0 for w in given):
            raise ConfigError(f"--weights must give one positive number per --run ({len(self.run)}), got "
                              f"{self.weights!r}")
        scaled = [w / max(given) for w in given]  # first: 1e308 twice summed to inf, and every weight to 0
        return [w / sum(scaled) for w in scaled]

    def gpu_ids(self) -> list[int]:
        return parse_gpu_ids(self.gpus)
