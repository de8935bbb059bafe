"""Named starting points for a run's settings: partial Configs layered under the command-line flags.

`cpu-fast` is written out ingredient by ingredient: each setting once, with its value, where it
comes from and the function that implements it. Read it top to bottom to know the whole recipe.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config

# airbench94's optimizer (K. Jordan, 2024; legacy/airbench94.py), restated for a mean loss: Nesterov SGD
# (training/optim.py, make_trainer) at its lr 11.5 and wd 0.0153 "per 1024 examples": lr 1.5, wd 1.33e-3;
# BatchNorm offsets at 64x the rate, their weight decay / 64; a linear warm-up over a fifth of the run (auto:
# 1 epoch below 7.5, else 2; airbench: 23% of its steps; training/schedules.py, auto_warmup_epochs), then a
# straight line to 0 (training/schedules.py, learning_rate); the weights pulled to a slow average every 5
# steps, decay 0.95**5 * (t/T)**3 (training/averaging.py, Lookahead).
AIRBENCH94_SGD: dict[str, Any] = {
    "optimizer": "sgd", "batch_size": 1024, "nesterov": True, "momentum": 0.85, "lr": 1.5, "wd": 1.33e-3,
    "bias_lr_mult": 64.0, "schedule": "linear", "warmup_epochs": "auto", "lookahead_every": 5,
}

# airbench94_muon's optimizer (K. Jordan, 2024: airbench94's 94% in 8 epochs instead of 9.9): the conv filters
# by Muon at 0.24 with momentum 0.6, their norm reset before each step (training/muon.py); the rest by Nesterov
# SGD with momentum 0.85, on batches of 2000. Its rates, per summed loss and for a head that divides by 256
# from weights of std 1, restated for a mean loss and fastnet's head (x 1/9 from weights of std 1/28: the same
# function): lr 0.67 x 2000 x (9/256)^2 = 1.656 for the head, 64x that (its 0.053 x 2000) for the BatchNorm
# offsets and the whitening bias, a weight decay of 2e-6 x 2000 = 0.004 of the weights a step (wd = 0.004 / lr).
# The rate falls in a straight line from the first step (no warm-up); no lookahead.
AIRBENCH94_MUON: dict[str, Any] = {
    "optimizer": "muon", "muon_lr": 0.24, "muon_momentum": 0.6, "batch_size": 2000, "nesterov": True,
    "momentum": 0.85, "lr": 1.6562, "wd": 2.415e-3, "bias_lr_mult": 64.0, "schedule": "linear",
    "warmup_epochs": 0, "lookahead_every": 0,
}

# The best score we reach on a 2-core CPU in 45 minutes, prediction of the 300,000 test images included
# (docs/BENCHMARKS.md): a small whitened convnet with the training recipe published with airbench94_muon
# (K. Jordan, 2024), and airbench95's wider one where the budget affords it, restated for MXNet and a CPU.
# Besides these settings, FastNet itself fixes: widths 64/256/256, GELU, BatchNorm without a learned scale,
# partial Dirac init, logits x 1/9 (models/fastnet.py); the whitening filters come from 5,000 training images
# (training/loaders.py: WHITENING_SAMPLE).
CPU_FAST: dict[str, Any] = {
    # network: models/fastnet.py, FastNet (whitening_filters, PaddedConv2D for oneDNN's 16-channel blocks)
    "model": "fastnet",
    # the whitening layer's bias learns in the first 3 epochs only: training/parts.py, TrainingParts.start_epoch
    "whiten_bias_epochs": 3,
    # data: every labelled image trains (no validation); decoded once into a uint8 array
    # (data/decoded.py), batches assembled and augmented whole (data/batches.py, DecodedTrainLoader)
    "valid_ratio": 0.0,
    "loader": "decoded",
    # shifts of up to 2 px with mirrored borders, each image flipped in every other epoch:
    # data/augment.py, ShiftAugment (random_shifts, shifted_windows, alternating_mirror)
    "augment": "reflect-shift-altflip",
    # optimizer, batch and schedule: airbench94_muon's (AIRBENCH94_MUON above). It trains this network as far
    # in 8 epochs as airbench94's SGD (AIRBENCH94_SGD; preset cpu-fast-sgd) in 9.9 (docs/BENCHMARKS.md)
    **AIRBENCH94_MUON,
    # loss: training/optim.py, SmoothedCrossEntropy
    "label_smoothing": 0.2,
    # prediction (inference/tta.py): airbench's 6 views (flip-shift) where the budget gives 2.5 epochs or more and
    # they cost at most one, as with a 10,000-image test folder (with Muon they added 0.12-0.54 points from 2.6
    # to 9.9 epochs, each run predicted both ways); the image and its mirror (flip) for Kaggle's 300,000 (6 views
    # would cost several epochs): training/budget.py, choose_tta. Without a budget: flip
    "tta": "auto",
    # epochs: as many as fit in 45 minutes with the prediction, to a tenth (the last one stops part-way),
    # measured on this machine before the run (workflow/budget.py, plan_run; training/budget.py, plan);
    # airbench94_muon's 8 with --time-budget 0
    "time_budget": 45.0,
    "epochs": 8,
    # recipe: airbench95's wider network and its SGD (widened, below) in place of the above where the budget fits
    # at least 10 of its epochs: workflow/budget.py, plan_run
    "wide_from_epochs": 10.0,
    # memory: each batch through the network in 4 pieces (of 500 images; 256 for the wider recipe), their
    # gradients summed into the one update (training/engine.py, train_step). A 45-minute run peaked at 2.8 GB
    # instead of 6.4 on the Xeon with AMX, at 0-4% of its speed (docs/BENCHMARKS.md, 2026-12-07, night): the 8 GB
    # of a laptop with a browser open. BatchNorm normalises each piece, as 4 devices would, which costs no accuracy
    # (2 seeds each, docs/BENCHMARKS.md): this network at 9.9 epochs 0.9101 in pieces, 0.9083 with the whole
    # batch's statistics; the wider recipe in 45 minutes 0.9203 and 0.9229, a gap a third of its seeds' spread
    "batch_pieces": 4,
    # arithmetic: `precision` stays "auto": bfloat16 where it measured faster (precision.py, decide)
}

# airbench95 (K. Jordan, 2024): airbench94's SGD recipe on fastnet_wide's widths (128/384/384) at a learning rate
# of 10 instead of 11.5 per 1024 examples; its weight decay per step stays (airbench decouples it from lr).
NARROW_MODEL, WIDE_MODEL = "fastnet", "fastnet_wide"
WIDE_LR_SCALE = 10 / 11.5


def widened(cfg: Config) -> Config:
    """cfg with airbench95's recipe in place of its fastnet's: fastnet_wide trained by AIRBENCH94_SGD at
    lr x 10/11.5 and wd / (10/11.5) (lr x wd, the decay each step applies, unchanged); everything else
    (data, augmentation, loss, budget, views) as cfg has it. SGD whatever cfg's optimizer: Muon was
    measured on the narrow network only."""
    sgd = AIRBENCH94_SGD
    return dataclasses.replace(cfg, **{**sgd, "model": WIDE_MODEL, "lr": sgd["lr"] * WIDE_LR_SCALE,
                                       "wd": sgd["wd"] / WIDE_LR_SCALE})


PRESETS: dict[str, dict[str, Any]] = {
    # The book's recipe exactly (d2l.ai, chapter "Image Classification (CIFAR-10) on Kaggle").
    "d2l": {},
    # The chapter's exercise 1: batch_size = 128, num_epochs = 100, lr = 0.1, lr_period = 50, lr_decay = 0.1.
    "d2l-exercise": {"epochs": 100, "lr": 0.1, "lr_period": 50, "lr_decay": 0.1},
    # The strongest common ResNet-18 recipe for a GPU (about 95-96% on CIFAR-10, e.g. DeVries & Taylor,
    # "Improved Regularization of CNNs with Cutout", 2017, and the widely used kuangliu/pytorch-cifar
    # settings): 200 epochs, lr 0.1 with Nesterov momentum and 5 epochs of warm-up into a cosine
    # decay, shift-and-flip with cutout, label smoothing 0.1, flip test-time augmentation.
    "resnet18-best": {"epochs": 200, "lr": 0.1, "nesterov": True, "schedule": "cosine", "warmup_epochs": 5,
                      "augment": "pad-crop-cutout", "loader": "decoded", "label_smoothing": 0.1, "tta": "flip"},
    "cpu-fast": CPU_FAST,
    # cpu-fast with airbench94's SGD, lookahead and warm-up and its 10 epochs, each batch in one piece: cpu-fast's
    # recipe until 2026-12-05, as measured then (docs/BENCHMARKS.md)
    "cpu-fast-sgd": {**CPU_FAST, **AIRBENCH94_SGD, "epochs": 10, "batch_pieces": 1},
    # Enough to see the whole pipeline work on the offline demo data in a couple of minutes.
    "demo": {"epochs": 3, "lr_period": 2},
}
