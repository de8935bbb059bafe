"""Fit a training run and its submission into a wall-clock budget (`--time-budget MINUTES`).

The same recipe is a different recipe in time on different machines: `cpu-fast`'s 10 epochs
took 39-47 minutes on a 2-core Zen 4 and 55-61 on a 2-core Xeon without AMX. So instead of a
fixed epoch count, the run measures on this machine, before training starts:

- the training speed, on the run's first batches stepped by the run's own network;
- the prediction speed of the test images as `scripts/submit.py` will run it (same precision
  choice, test-time augmentation, batch size and decoding workers) on a sample of them;

and chooses the longest run, to a tenth of an epoch (the last one may stop part-way, as airbench's 9.9),
for which the time already spent, the epochs, and the prediction of every test image fit in the
budget with a safety margin. With `--tta auto` it also
chooses the test-time views (`choose_tta`): airbench's 6 where the network trains long enough
for them to help and they cost at most one epoch, else the image and its mirror. After each epoch the run
compares its pace with the plan (`replan`): where the machine has slowed so much that the rest would
end after the budget, the run is cut short, to the epochs that fit at the new pace; where it runs so far
ahead that more epochs fit, it gets them (and, with `--tta auto`, the six views if at its pace they now
fit and pay). Either way no rate the run has used changes, and a falling rate goes on down from where it
is to 0 at the new end (schedules.learning_rate, reading the run's RunLength).
The measuring (workflow/budget.py, by training/timing.py's clock) happens before the run directory is
opened, and the run rewinds after it: with the chosen epochs it is bit for bit the run `--epochs N
--time-budget 0` gives. This module is the plan's arithmetic alone; training/replan.py decides again
after each epoch. docs/TIME_BUDGET.md tells the design with a picture.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..errors import ConfigError
from ..settings import whole_if_integral

# The margin kept for a host that slows down: a tenth of the budget while a plan rests on seconds of timing
# (measured on a shared 2-core machine, docs/BENCHMARKS.md: epochs ran 7% slower on average than the first
# steps, prediction 16% slower than its sample); late in a run, whose own epochs have timed its pace by then,
# a quarter of the time left: the rest may run a third slower (1 / 0.75) and still end inside. A tenth of the
# whole budget kept to the end went unused: 9.2 of 10.2 minutes against the peer.
SAFETY = 0.90
LATE_SAFETY = 0.75
# submit.py's start-up (imports, listing and checking the test images, the network) where it was not timed:
# a plan made from speeds alone. workflow/budget.py times it on the test folder the run will predict.
STARTUP_ALLOWANCE_S = 20.0
VALIDATION_COST = 1 / 3  # a validation image costs about a forward pass: a third of a training step
# `--tta auto`: flip-shift's 6 views pay from this many epochs on, by optimizer (Config.optimizer). Measured
# (docs/BENCHMARKS.md, fastnet on the 5,000-image holdout): with SGD, at 9 and 10 epochs they add 0.16-0.22
# points (4 runs, 3 seeds), more than the 10th epoch adds (+0.04); at 5 epochs they cost 0.18 (the shifted
# views of a network that young mislead it). With Muon they paid at every length measured, each run predicted
# both ways (2026-12-07): +0.12 at 2.6 epochs, +0.18 at 6.9, +0.54 at 7.4, +0.46 at 7.5, +0.16 and +0.36 at 7.6,
# +0.36 at 7.8, +0.16 and +0.14 at 8, +0.44 at 9.9; the shortest of them is Muon's threshold.
SIX_VIEWS_FROM = {"sgd": 9, "muon": 2.5}
SIX_VIEWS_FROM_EPOCHS = SIX_VIEWS_FROM["sgd"]  # a plan's default (plans made outside a run: tests, tools)
# The plan's grain: run lengths in tenths of an epoch. Whole epochs left up to an epoch of a short budget
# unused (73% of 14.8 minutes, docs/BENCHMARKS.md); a tenth is a few seconds to a minute.
TENTHS = 10


def in_tenths(epochs: float) -> float:
    """`epochs` rounded down to a tenth (an int where whole: 9, 9.3)."""
    return whole_if_integral(math.floor(epochs * TENTHS + 1e-6) / TENTHS)


@dataclass(frozen=True)
class BudgetPlan:
    """Every number the choice was made from; saved in config.json's plan (`time_budget`)."""

    budget_s: float
    elapsed_s: float  # data preparation and the measurements, before the first epoch
    train_images_per_s: float
    epoch_s: float  # training plus validation (of the first `first_epochs` epochs, when later ones differ)
    test_images: int
    predict_images_per_s: float
    predict_s: float  # submit.py over the whole test folder, start-up included
    epochs: float  # in tenths (in_tenths)
    planned_total_s: float
    # Epochs after the first `first_epochs` (a fastnet's, once its whitening bias is frozen) run at
    # `later_images_per_s`, `later_epoch_s` each; first_epochs 0: every epoch is epoch_s.
    first_epochs: int = 0
    later_images_per_s: float = 0.0
    later_epoch_s: float = 0.0
    tta: str = ""  # the test-time views predict_s was timed with ("": the run's own, not chosen here)
    tta_considered: tuple[tuple[str, float], ...] = ()  # with --tta auto: (views, epochs they leave) each
    min_epochs: int = 1  # the fewest the run may train (its warm-up and one epoch of decay)
    # With --tta auto: (views, predict_s with them) each, so that a run lengthened later can weigh them again.
    predict_s_by_tta: tuple[tuple[str, float], ...] = ()
    predict_startup_s: float = STARTUP_ALLOWANCE_S  # the part of predict_s before submit.py's first batch
    # With --wide-from-epochs: (network, epochs its recipe's plan leaves; 0: none fit) each recipe timed, and
    # `model`, the one chosen ("": the run's own, no other was weighed).
    recipes_considered: tuple[tuple[str, float], ...] = ()
    model: str = ""
    six_views_from: float = SIX_VIEWS_FROM_EPOCHS  # the fewest epochs at which `six_views_pay` (the recipe's)
    late_safety: float = LATE_SAFETY  # margin_s's late rule for the replans (0: the plan's margin to the end)

    def as_record(self) -> dict[str, float | int]:
        return asdict(self)

    def summary(self) -> str:
        later = (f", {self.later_epoch_s / 60:.1f} min ({self.later_images_per_s:.0f} img/s) after the first "
                 f"{self.first_epochs}" if self.first_epochs else "")
        return (f"time budget {self.budget_s / 60:.1f} min: {self.elapsed_s / 60:.1f} min spent preparing, "
                f"{self.epochs:g} epochs of {self.epoch_s / 60:.1f} min ({self.train_images_per_s:.0f} img/s){later}, "
                f"prediction of {self.test_images:,} test images {self.predict_s / 60:.1f} min "
                f"({self.predict_startup_s:.0f} s to start, then {self.predict_images_per_s:.0f} img/s"
                f"{f', {self.tta} TTA' if self.tta else ''}): "
                f"{self.planned_total_s / 60:.1f} min planned{self._tta_choice()}{self._recipe_choice()}")

    def _recipe_choice(self) -> str:
        others = [f"{model} would train {epochs:g}" for model, epochs in self.recipes_considered if model != self.model]
        return f"; --wide-from-epochs chose {self.model} ({', '.join(others)} epochs)" if others else ""

    def _tta_choice(self) -> str:
        others = [f"{tta} would leave {epochs:g}" for tta, epochs in self.tta_considered if tta != self.tta]
        return f"; --tta auto chose {self.tta} ({', '.join(others)} epochs)" if others else ""


def training_s(epochs: float, epoch_s: float, later_epoch_s: float | None = None, first_epochs: int = 0) -> float:
    """Seconds of `epochs` epochs (a fraction too): epoch_s each, or the first `first_epochs` so and the rest
    later_epoch_s."""
    if later_epoch_s is None:
        return epochs * epoch_s
    return min(epochs, first_epochs) * epoch_s + max(epochs - first_epochs, 0) * later_epoch_s


def margin_s(budget_s: float, age_s: float, late_safety: float = LATE_SAFETY) -> float:
    """The seconds of the budget a plan made `age_s` seconds into the run leaves unplanned: (1 - SAFETY) of
    the budget, or (1 - late_safety) of the time left, whichever is less."""
    return min((1 - SAFETY) * budget_s, (1 - late_safety) * max(budget_s - age_s, 0.0))


def choose_epochs(budget_s: float, elapsed_s: float, epoch_s: float, predict_s: float, min_epochs: int,
                  later_epoch_s: float | None = None, first_epochs: int = 0) -> float:
    """The most epochs, in tenths, that fit: elapsed + their training_s + predict_s <= budget - margin_s.
    ConfigError if not even `min_epochs` fit."""
    left = max(budget_s - margin_s(budget_s, elapsed_s) - elapsed_s - predict_s, 0.0)
    epochs = left / epoch_s
    if later_epoch_s is not None and epochs >= first_epochs:
        epochs = first_epochs + (left - first_epochs * epoch_s) / later_epoch_s
    epochs = in_tenths(epochs)
    if epochs < min_epochs:
        needed = (elapsed_s + predict_s + training_s(min_epochs, epoch_s, later_epoch_s, first_epochs)) / SAFETY
        raise ConfigError(f"--time-budget {budget_s / 60:g} min does not fit {min_epochs} epoch(s) on this machine "
                          f"({epoch_s / 60:.1f} min each, {elapsed_s / 60:.1f} min spent preparing, prediction "
                          f"{predict_s / 60:.1f} min): give at least --time-budget {math.ceil(needed / 60 - 1e-9)}, or "
                          "--epochs N to train a fixed number of epochs")
    return epochs


def plan(*, budget_s: float, elapsed_s: float, train_images_per_s: float, train_images: int, test_images: int,
         predict_images_per_s: float, min_epochs: int, valid_images: int = 0, later_images_per_s: float | None = None,
         first_epochs: int = 0, tta: str = "", predict_startup_s: float = STARTUP_ALLOWANCE_S) -> BudgetPlan:
    """Turn the measured speeds into a BudgetPlan (pure: no measuring here). With
    `later_images_per_s`, the epochs after the first `first_epochs` train at that speed; `tta`: the
    test-time views `predict_images_per_s` was measured with, recorded; `predict_startup_s`: submit.py's
    seconds before its first batch."""
    def epoch_at(rate: float) -> float:
        return (train_images + valid_images * VALIDATION_COST) / rate

    epoch_s = epoch_at(train_images_per_s)
    later_epoch_s = epoch_at(later_images_per_s) if later_images_per_s else None
    first_epochs = first_epochs if later_epoch_s is not None else 0
    predict_s = prediction_s(test_images, predict_images_per_s, predict_startup_s)
    epochs = choose_epochs(budget_s, elapsed_s, epoch_s, predict_s, min_epochs, later_epoch_s, first_epochs)
    total = elapsed_s + training_s(epochs, epoch_s, later_epoch_s, first_epochs) + predict_s
    return BudgetPlan(budget_s, elapsed_s, train_images_per_s, epoch_s, test_images, predict_images_per_s,
                      predict_s, epochs, total, first_epochs, later_images_per_s or 0.0, later_epoch_s or 0.0, tta,
                      min_epochs=min_epochs, predict_startup_s=predict_startup_s)


def prediction_s(test_images: int, predict_images_per_s: float, startup_s: float = STARTUP_ALLOWANCE_S) -> float:
    """Seconds submit.py takes over `test_images` at that speed after `startup_s` (0: no test images)."""
    return startup_s + test_images / predict_images_per_s if test_images else 0.0


def six_views_pay(flip_epochs: float, six_views_epochs: float, from_epochs: float = SIX_VIEWS_FROM_EPOCHS) -> bool:
    """`--tta auto`'s rule: flip-shift's 6 views where they leave at least `from_epochs` epochs (SIX_VIEWS_FROM
    of the recipe's optimizer) and cost at most one against flip's 2."""
    return six_views_epochs >= from_epochs and round(flip_epochs - six_views_epochs, 6) <= 1


def choose_tta(flip: BudgetPlan, flip_shift: BudgetPlan | None, six_views_predict_s: float) -> BudgetPlan:
    """`--tta auto`: the plan with flip-shift's 6 views if `six_views_pay` (from flip.six_views_from epochs),
    else the plan with flip. Both as `plan` made them for the same run; flip_shift None: it left too few
    epochs (`plan` refused it); six_views_predict_s: its prediction's seconds all the same, kept for `replan`."""
    left = flip_shift.epochs if flip_shift else 0
    chosen = flip_shift if flip_shift and six_views_pay(flip.epochs, left, flip.six_views_from) else flip
    return replace(chosen, tta_considered=(("flip", flip.epochs), ("flip-shift", left)),
                   predict_s_by_tta=(("flip", flip.predict_s), ("flip-shift", six_views_predict_s)))
