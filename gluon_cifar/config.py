"""The one configuration object: every setting a run asks for, saved as JSON beside its results (and beside
what the run decided from them: training/run_plan.py).

Defaults are the book's recipe ("Dive into Deep Learning", Kaggle CIFAR-10, MXNet tab).
flags.py generates the command-line flags from the fields, so a new setting is added in one place;
presets.py holds the named starting points.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .precision import PRECISIONS
from .settings import (
    check_at_least,
    check_fields,
    check_types,
    cpus_setting,
    gpus_setting,
    parse_gpu_ids,
    setting,
    whole_if_integral,
)

TTAS = ("none", "flip", "flip-shift")  # test-time augmentations: inference/tta.py
MAX_TIME_BUDGET = 7 * 24 * 60.0  # minutes: past a week a budget is a typo (100000 planned 7.8 million epochs)
TTA_AUTO = "auto"  # a run's --tta only: chosen by the time budget (training/budget.py, choose_tta), else flip


WARMUP_AUTO = "auto"


def parse_warmup_epochs(value: str) -> int | str:
    """--warmup-epochs: a whole number of epochs, or auto."""
    if value == WARMUP_AUTO:
        return value
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--warmup-epochs takes a whole number of epochs or auto, got {value!r}") from None


@dataclass
class Config:
    # data
    data_dir: str | None = setting(None, "the Kaggle CIFAR-10 download: cifar-10.zip itself, a folder with train.7z "
                                          "and test.7z (or train/ and test/ extracted) beside trainLabels.csv; unset: "
                                          "the built-in offline demo dataset (scripts/train.py --demo)", "data")
    valid_ratio: float = setting(0.1, "fraction of the smallest class held out per class for validation (0: train "
                                       "on every labelled image, no validation)", "data")
    seed: int = setting(0, "seed for the split, initialisation, shuffling and augmentation", "data")
    num_workers: int = setting(2, "DataLoader worker processes (0: load in the main process)", "data")
    loader: str = setting("decoded", "decoded: decode every image once into a cached uint8 array and augment "
                                     "whole batches (fast); folder: decode and augment image by image with "
                                     "ImageFolderDataset, as the book does", "data", choices=("decoded", "folder"))
    cache_dir: str | None = setting(None, "where split trees and the demo data go "
                                           "(default: $GLUON_CIFAR_CACHE or ~/.cache/gluon_cifar)", "data")
    # model
    model: str = setting("resnet18", "resnet18 (the book's), fastnet, fastnet_wide or fastnet_small (small "
                                      "whitened convnets, see fastnet.py) or a GluonCV CIFAR model name, e.g. "
                                      "cifar_resnet56_v1", "model")
    hybridize: bool = setting(True, "compile the network into a static graph (faster)", "model")
    augment: str = setting("book", "training augmentation: book (resize 40, random square crop of 64-100%% of the "
                                    "area, flip), pad-crop (random shift of up to 4 pixels, padded with the mean "
                                    "colour, flip), pad-crop-cutout (the same and a 16x16 square blanked) or "
                                    "reflect-shift-altflip (shift of up to 2 pixels with mirrored borders, each "
                                    "image flipped in every other epoch); all but book need --loader decoded",
                          "data", choices=("book", "pad-crop", "pad-crop-cutout", "reflect-shift-altflip"))
    # optimisation: SGD with momentum; the book's schedule multiplies lr by lr_decay every lr_period epochs
    epochs: float = setting(20, "passes over the training split, a fraction allowed (9.9: the last pass stops "
                                 "after 90%% of its batches, as airbench's); chosen by --time-budget when that is set")
    time_budget: float = setting(0.0, "minutes for this training plus the prediction of the test folder by "
                                       "scripts/submit.py: the speed is measured on the first steps and --epochs "
                                       "chosen to fit (0: train --epochs; an explicit --epochs turns a preset's "
                                       "budget off)")
    batch_size: int = setting(128, "global batch size, split across all devices")
    lr: float = setting(0.02, "initial learning rate (for the global batch)")
    momentum: float = setting(0.9, "SGD momentum")
    nesterov: bool = setting(False, "Nesterov momentum")
    optimizer: str = setting("sgd", "sgd: every parameter by SGD with --momentum (Nesterov's with --nesterov); muon: "
                                     "the conv filters by Muon (orthogonalised updates at --muon-lr with momentum "
                                     "--muon-momentum, their norm reset each step: training/muon.py), the other "
                                     "parameters by Nesterov SGD at --lr (airbench94_muon)",
                             choices=("sgd", "muon"))
    muon_lr: float = setting(0.24, "--optimizer muon: the conv filters' learning rate, which follows --schedule as "
                                    "--lr does")
    muon_momentum: float = setting(0.6, "--optimizer muon: the conv filters' momentum")
    wd: float = setting(5e-4, "weight decay (L2)")
    schedule: str = setting("step", "learning-rate schedule: step (x lr_decay every lr_period epochs), cosine or "
                                     "linear (from lr down to 0 over the epochs after the warm-up)",
                             choices=("step", "cosine", "linear"))
    warmup_epochs: int | str = setting(0, "epochs of linear warm-up from 0 to lr (cosine and linear schedules); auto: "
                                          "a fifth of the run (the length a time budget chose), whole epochs, 1 or 2",
                                       parse=parse_warmup_epochs)
    lr_period: int = setting(4, "epochs between learning-rate decays (step schedule)")
    lr_decay: float = setting(0.9, "factor applied to the learning rate every lr_period epochs (step schedule)")
    bias_lr_mult: float = setting(1.0, "learning-rate multiplier for BatchNorm offsets (their weight decay is "
                                        "divided by it)")
    lookahead_every: int = setting(0, "average the weights every N updates (lookahead, see averaging.py; "
                                       "0: off)")
    label_smoothing: float = setting(0.0, "weight of the uniform distribution mixed into the one-hot targets")
    whiten_bias_epochs: int = setting(0, "fastnets: epochs in which the whitening layer's bias learns; frozen after "
                                          "them, which spares its backward pass (airbench94: 3; 0: it learns "
                                          "throughout)")
    wide_from_epochs: float = setting(0.0, "with --time-budget and --model fastnet: train airbench95's wider recipe "
                                            "instead (fastnet_wide with airbench's SGD at lr 10 per 1024 images: "
                                            "presets.py, widened) where the budget fits at least this many of its "
                                            "epochs (0: never); the choice is saved")
    tta: str = setting("none", "test-time augmentation when predicting: none, flip (average the image's and "
                                "its mirror's probabilities) or flip-shift (also shifted a pixel both ways: "
                                "6 views); auto: with --time-budget, flip-shift if at least 9 epochs fit with it "
                                "(8 with --optimizer muon) and it costs at most one, else flip (without a budget: "
                                "flip); the choice is saved",
                       choices=(*TTAS, TTA_AUTO))
    # devices: resolved once by the script; recorded so a run shows where it ran
    gpus: str = gpus_setting()
    cpus: int = cpus_setting()
    kvstore: str = setting("auto", "how gradients are summed: auto (device for several contexts), device, "
                                    "local, nccl (GPUs), dist_sync or dist_device_sync (several processes "
                                    "or machines: run under scripts/launch.py)", "devices",
                          choices=("auto", "device", "local", "nccl", "dist_sync", "dist_device_sync"))
    precision: str = setting("auto", "training arithmetic: auto (what measured fastest here: bfloat16 with AMX and on "
                                      "AMD CPUs with AVX512-BF16, else float32; see precision.py), float32, "
                                      "bfloat16 (CPUs; mixed precision, float32 weights) or float16 (GPUs; mixed "
                                      "precision with loss scaling; --amp is its old name)", "devices",
                              choices=PRECISIONS)
    sync_every: int = setting(50, "batches between reads of the running metrics (each read "
                                   "waits for the device)", "devices")
    batch_pieces: int = setting(1, "compute each device's share of a batch in this many pieces, one after another, "
                                    "their gradients summed before the one update: the same step in less memory "
                                    "(BatchNorm normalises each piece by its own statistics, as on several devices)",
                                "devices")
    # checkpoints: RUN/checkpoint-last.zip after every epoch, -best.zip on the best validation
    checkpoint_every: int = setting(0, "also checkpoint every N batches within an epoch (0: only at "
                                        "epoch ends)", "checkpoints")
    tensorboard: bool = setting(True, "write TensorBoard event files to RUN/tensorboard at every metrics read and "
                                      "epoch (needs the tensorboard extra: tensorboardX)", "checkpoints")

    def __post_init__(self) -> None:
        self.epochs = whole_if_integral(self.epochs)  # 10, not 10.0, in config.json and messages
        if isinstance(self.warmup_epochs, str):
            self.warmup_epochs = parse_warmup_epochs(self.warmup_epochs)

    def validate(self) -> "Config":
        check_fields(self)
        check_at_least(self, 1, "epochs", "batch_size", "lr_period", "cpus", "sync_every", "batch_pieces")
        if not 0.0 <= self.valid_ratio < 1.0:
            raise ConfigError(f"--valid-ratio must be in [0, 1), got {self.valid_ratio}")
        if self.lr <= 0 or not 0 < self.lr_decay <= 1:
            raise ConfigError(f"--lr must be > 0 and --lr-decay in (0, 1], got {self.lr} and {self.lr_decay}")
        if self.wd < 0 or not 0 <= self.momentum < 1:
            raise ConfigError(f"--wd must be >= 0 and --momentum in [0, 1), got {self.wd} and {self.momentum}")
        check_at_least(self, 0, "num_workers", "checkpoint_every", "lookahead_every", "whiten_bias_epochs")
        if self.whiten_bias_epochs and not self.model.startswith("fastnet"):
            raise ConfigError(f"--whiten-bias-epochs is for the fastnets (their whitening layer); --model {self.model} "
                              "has none: leave it at 0")
        if self.augment != "book" and self.loader != "decoded":
            raise ConfigError(f"--augment {self.augment} is made for whole batches: use it with --loader decoded "
                              "(the folder loader has the book's augmentation only)")
        if self.warmup_epochs != WARMUP_AUTO and (self.warmup_epochs < 0 or (self.schedule != "step" and
                                                                            self.warmup_epochs >= self.epochs)):
            raise ConfigError(f"--warmup-epochs must be >= 0 and fewer than --epochs ({self.epochs}), or auto; "
                              f"got {self.warmup_epochs}")
        if self.optimizer == "muon" and not (self.nesterov and self.muon_lr > 0 and 0 <= self.muon_momentum < 1):
            raise ConfigError("--optimizer muon needs --nesterov (its other parameters learn by Nesterov SGD), "
                              f"--muon-lr > 0 and --muon-momentum in [0, 1); got --nesterov {self.nesterov}, "
                              f"--muon-lr {self.muon_lr}, --muon-momentum {self.muon_momentum}")
        if self.bias_lr_mult <= 0:
            raise ConfigError(f"--bias-lr-mult must be > 0, got {self.bias_lr_mult}")
        if self.lookahead_every and self.checkpoint_every % self.lookahead_every:
            raise ConfigError(f"--checkpoint-every ({self.checkpoint_every}) must be a multiple of --lookahead-every "
                              f"({self.lookahead_every}): checkpoints are only complete right after an averaging step")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.wide_from_epochs < 0:
            raise ConfigError(f"--wide-from-epochs must be >= 0 epochs (0: never), got {self.wide_from_epochs:g}")
        if not 0 <= self.time_budget <= MAX_TIME_BUDGET:
            raise ConfigError(f"--time-budget must be 0 to {MAX_TIME_BUDGET:g} minutes (a week), "
                              f"got {self.time_budget:g}")
        if self.time_budget and self.kvstore.startswith("dist"):
            raise ConfigError("--time-budget measures one process's speed: with --kvstore "
                              f"{self.kvstore} give --epochs instead (and --time-budget 0)")
        return self

    def gpu_ids(self) -> list[int]:
        return parse_gpu_ids(self.gpus)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str, extra: dict[str, Any] | None = None) -> None:
        from .atomic import write_text
        write_text(path, json.dumps({"config": self.to_dict(), **(extra or {})}, indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "the settings") -> "Config":
        """The settings `values` (from `source`, a file: named in every error), each of its field's type."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: the settings must be a JSON object, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = _upgraded(values)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown settings {unknown}; valid settings are {sorted(known)}")
        return cls(**check_types(cls, values, source)).validate()


def _upgraded(values: dict[str, Any]) -> dict[str, Any]:
    """Settings saved by older versions, in today's terms: `amp: true` is `precision: float16`."""
    values = dict(values)
    return {**values, "precision": "float16"} if values.pop("amp", False) else values


# Settings that may change when a run is resumed: none of them changes what is computed, except
# `epochs`, which extends (or shortens) the run (its plan's length), and `tta`, its plan's views.
# The settings --resume may change: none changes what the run trains on (--data-dir: the same data's new place,
# checked against the checkpoint's fingerprint).
RESUMABLE = ("epochs", "num_workers", "gpus", "cpus", "sync_every", "checkpoint_every", "tta", "tensorboard", "data_dir")


def changed_settings(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """{name: (old, new)} for the settings that differ, RESUMABLE ones left out."""
    return {f.name: (getattr(old, f.name), getattr(new, f.name)) for f in dataclasses.fields(Config)
            if f.name not in RESUMABLE and getattr(old, f.name) != getattr(new, f.name)}
