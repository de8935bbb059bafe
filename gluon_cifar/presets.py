"""Named starting points for a run's settings: partial Configs layered under the command-line flags.

`cpu-fast` is written out ingredient by ingredient: each setting once, with its value, where it
comes from and the function that implements it. Read it top to bottom to know the whole recipe.
"""
from __future__ import annotations

from typing import Any

# The best score we reach on a 2-core CPU in 45 minutes, prediction of the 300,000 test images included
# (docs/BENCHMARKS.md): a small whitened convnet with the training recipe published with airbench94
# (K. Jordan, 2024), restated for MXNet and a CPU. Besides these settings, FastNet itself fixes: widths
# 64/256/256, GELU, BatchNorm without a learned scale, partial Dirac init, logits x 1/9 (models/fastnet.py);
# the whitening filters come from 5,000 training images (training/loaders.py: WHITENING_SAMPLE).
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
    # optimizer: Nesterov SGD (training/optim.py, make_trainer). airbench's lr 11.5 and wd 0.0153 "per
    # 1024 examples" restated for a mean loss: lr 1.5, wd 1.33e-3
    "batch_size": 1024,
    "nesterov": True,
    "momentum": 0.85,
    "lr": 1.5,
    "wd": 1.33e-3,
    # BatchNorm offsets at 64x the learning rate, their weight decay / 64: make_trainer
    "bias_lr_mult": 64.0,
    # loss: training/optim.py, SmoothedCrossEntropy
    "label_smoothing": 0.2,
    # learning rate: linear warm-up over a fifth of the run (auto: 1 epoch below 7.5, else 2; airbench: 23% of
    # its steps), then a straight line to 0: training/schedules.py, learning_rate; config.py, auto_warmup_epochs
    "schedule": "linear",
    "warmup_epochs": "auto",
    # weights pulled to a slow average every 5 steps, decay 0.95**5 * (t/T)**3: training/averaging.py, Lookahead
    "lookahead_every": 5,
    # prediction (inference/tta.py): airbench's 6 views (flip-shift: +0.17 points at 10 epochs) where the budget
    # gives 9 epochs or more and they cost at most one, as with a 10,000-image test folder; the image and its
    # mirror (flip) for Kaggle's 300,000 (6 views would cost 6 epochs) and short budgets: training/budget.py,
    # choose_tta. Without a budget: flip
    "tta": "auto",
    # epochs: as many as fit in 45 minutes with the prediction, to a tenth (the last one stops part-way),
    # measured on this machine before the run (workflow/budget.py, plan_run; training/budget.py, plan);
    # 10 when --epochs is given instead
    "time_budget": 45.0,
    "epochs": 10,
    # recipe: airbench95's wider network and lower learning rate (config.py, widened) in place of the above where
    # the budget fits at least 10 of its epochs; they then beat this network at any length it reaches on the
    # holdout (docs/BENCHMARKS.md): workflow/budget.py, plan_run
    "wide_from_epochs": 10.0,
    # arithmetic: `precision` stays "auto": bfloat16 where it measured faster (precision.py, decide)
}

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
    # Enough to see the whole pipeline work on the offline demo data in a couple of minutes.
    "demo": {"epochs": 3, "lr_period": 2},
}
