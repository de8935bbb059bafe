"""How scripts/predict.py predicts a user's images with a finished run, as one object (its flags
are generated from it, as submit.py's are from SubmitOptions)."""
from __future__ import annotations

from dataclasses import dataclass

from .config import TTAS
from .errors import ConfigError
from .precision import PREDICTION_PRECISIONS
from .settings import check_at_least, check_fields, cpus_setting, gpus_setting, parse_gpu_ids, setting

FORMATS = (".csv", ".json")


@dataclass
class PredictOptions:
    """Not saved: the run's settings are its Config; these only choose how to predict and report."""

    top_k: int = setting(3, "classes to report per image", "prediction")
    out: str | None = setting(None, "write the predictions to this .csv or .json file instead of printing them",
                              "prediction")
    precision: str = setting("auto", "as submit.py's: bfloat16 on CPUs that compute it natively, else float32",
                             "prediction", choices=PREDICTION_PRECISIONS)
    tta: str | None = setting(None, "test-time augmentation: none, flip or flip-shift (default: the run's)",
                              "prediction", choices=TTAS)
    batch_size: int = setting(256, "images per batch", "prediction")
    gpus: str = gpus_setting()
    cpus: int = cpus_setting()

    def validate(self) -> "PredictOptions":
        check_fields(self)
        check_at_least(self, 1, "top_k", "batch_size", "cpus")  # the upper bound of top_k is the run's classes
        if self.out is not None and not self.out.endswith(FORMATS):
            raise ConfigError(f"--out {self.out}: name a .csv or a .json file")
        return self

    def gpu_ids(self) -> list[int]:
        return parse_gpu_ids(self.gpus)
