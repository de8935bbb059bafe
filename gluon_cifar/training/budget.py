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
is to 0 at the new end (schedules.with_length).
The measuring (workflow/budget.py) happens before the run directory is opened, and the run
rewinds after it: with the chosen epochs it is bit for bit the run `--epochs N --time-budget 0`
gives. This module is the arithmetic alone.
"""
from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, Iterator

from ..config import whole_if_integral
from ..errors import ConfigError

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
# views of a network that young mislead it). Muon's network is as far along at 8 epochs as SGD's at 9.9
# (airbench94_muon; here 0.8940 and 0.8946 without views, 2 seeds), and 6 views added 0.16 and 0.14 there.
SIX_VIEWS_FROM = {"sgd": 9, "muon": 8}
SIX_VIEWS_FROM_EPOCHS = SIX_VIEWS_FROM["sgd"]  # a plan's default (plans made outside a run: tests, tools)
# The plan's grain: run lengths in tenths of an epoch. Whole epochs left up to an epoch of a short budget
# unused (73% of 14.8 minutes, docs/BENCHMARKS.md); a tenth is a few seconds to a minute.
TENTHS = 10


def in_tenths(epochs: float) -> float:
    """`epochs` rounded down to a tenth (an int where whole: 9, 9.3)."""
    return whole_if_integral(math.floor(epochs * TENTHS + 1e-6) / TENTHS)


def _tenth_more(epochs: float) -> float:
    """`epochs` and a tenth, in tenths."""
    return in_tenths(epochs + 1 / TENTHS)


def _tenths(start: float, below: float) -> Iterator[float]:
    """start, a tenth more, ..., while shorter than `below`."""
    while start < below:
        yield start
        start = _tenth_more(start)


@dataclass(frozen=True)
class BudgetPlan:
    """Every number the choice was made from; saved in config.json as `time_budget_plan`."""

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


def margin_s(budget_s: float, age_s: float) -> float:
    """The seconds of the budget a plan made `age_s` seconds into the run leaves unplanned: (1 - SAFETY) of
    the budget, or (1 - LATE_SAFETY) of the time left, whichever is less."""
    return min((1 - SAFETY) * budget_s, (1 - LATE_SAFETY) * max(budget_s - age_s, 0.0))


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


def plan(budget_s: float, elapsed_s: float, train_images_per_s: float, train_images: int, valid_images: int,
         test_images: int, predict_images_per_s: float, min_epochs: int, later_images_per_s: float | None = None,
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


@dataclass(frozen=True)
class Replan:
    """A run's length decided again after an epoch; saved in config.json's `time_budget_replans`."""

    after_epoch: int
    epochs_before: float
    epochs: float  # the new length, in tenths (< epochs_before: the run was cut short; >: lengthened)
    slowdown: float  # the epoch just finished took this many times its planned seconds
    uncut_end_s: float  # when the run would end, its submission included, at that pace with epochs_before
    end_s: float  # the same with `epochs` (and `tta`)
    budget_s: float
    tta: str = ""  # the test-time views from now on, where --tta auto chose them: see `replan`
    tta_before: str = ""
    six_views_from: float = SIX_VIEWS_FROM_EPOCHS  # the plan's

    def as_record(self) -> dict[str, float | int]:
        return asdict(self)

    @property
    def changes_views(self) -> bool:
        return bool(self.tta_before) and self.tta != self.tta_before

    def summary(self) -> str:
        pace = (f"epoch {self.after_epoch} took {self.slowdown:.2f}x its planned time: at this pace the run and its "
                "submission")
        six = (f"; the submission predicts with {self.tta} views (six pay from {self.six_views_from:g} epochs on"
               + (", and they fit)" if self.tta == "flip-shift" else ")")) if self.changes_views else ""
        if self.epochs > self.epochs_before:
            return (f"{pace} would end at {self.uncut_end_s / 60:.1f} min of the {self.budget_s / 60:g}-minute "
                    f"budget; training goes on for {self.epochs:g} epochs instead of {self.epochs_before:g} (no rate "
                    "it used changes; its decay now ends there), to end at "
                    f"{self.end_s / 60:.1f} min{six}")
        if self.epochs == self.epochs_before and self.end_s <= self.budget_s:
            return (f"{pace} would end at {self.uncut_end_s / 60:.1f} min of the {self.budget_s / 60:g}-minute "
                    f"budget; training keeps its {self.epochs:g} epochs, to end at {self.end_s / 60:.1f} min{six}")
        cut = "no epoch is left to cut"
        if self.epochs < self.epochs_before:
            cut = (f"training ends after {self.epochs:g} epochs instead of {self.epochs_before:g} (the learning rate "
                   f"and the averaging wind down by then), to end at {self.end_s / 60:.1f} min"
                   + (": still late, but the schedule needs this epoch" if self.end_s > self.budget_s else "") + six)
        return (f"{pace} would end at {self.uncut_end_s / 60:.1f} min, after the {self.budget_s / 60:g}-minute "
                f"budget; {cut}")


def planned_s(plan: BudgetPlan, start: float, end: float) -> float:
    """The seconds `plan` gives training from `start` epochs done to `end` (fractions too)."""
    def until(epochs: float) -> float:
        return training_s(epochs, plan.epoch_s, plan.later_epoch_s if plan.first_epochs else None, plan.first_epochs)
    return until(end) - until(start)


def replan(plan: BudgetPlan, epochs: float, done: int, last_epoch_s: float, age_s: float, tta: str = "") -> Replan:
    """The run's length after `done` of its `epochs` epochs, the last taking `last_epoch_s` (wall clock),
    `age_s` seconds into the process, predicting with `tta` (default: the plan's views): `epochs` while
    the remaining epochs and the prediction, at that epoch's pace relative to the plan, still end inside
    the budget; else the most, in tenths, that fill SAFETY of the time left (the pace of a slowed host, as
    measured), and never fewer than plan.min_epochs or `done + 1` (the schedule needs an epoch to wind down
    in). A run ahead of its plan, and not yet at its end, gets the most epochs, in tenths, that end inside
    margin_s at its pace (a fast epoch may not last: a wider margin than a cut's): early on the plan's own,
    so a run merely on pace keeps its length; late, a quarter of the time left, so the run's last epochs
    spend what the plan kept for a slowdown that did not come. (The schedule follows without a jump either
    way: schedules.with_length.)
    Where `--tta auto` chose the views (both were timed), they are weighed again by `six_views_pay`: six
    give way to two if a cut leaves fewer than plan.six_views_from (they cost a young network accuracy),
    and a run ahead of its plan takes six in place of two where, at its pace, they pay (the plan could
    not afford them)."""
    slowdown = last_epoch_s / planned_s(plan, done - 1, min(done, epochs))  # the run's last epoch: its share
    tta = tta or plan.tta
    views = dict(plan.predict_s_by_tta)
    predict_s = views.get(tta, plan.predict_s)

    def left_s(length: float, predicting_s: float = predict_s) -> float:  # training up to `length`, predicting
        return slowdown * (planned_s(plan, min(done, length), length) + predicting_s)  # (none after a part-way last)

    end_by_s = plan.budget_s - margin_s(plan.budget_s, age_s)

    def longest(predicting_s: float) -> float:  # the longest run, from `epochs` on, that ends inside the margin
        length = epochs
        while age_s + left_s(_tenth_more(length), predicting_s) <= end_by_s:
            length = _tenth_more(length)
        return length

    least, chosen, chosen_tta = max(done + 1, plan.min_epochs), epochs, tta
    if age_s + left_s(epochs) > plan.budget_s and least < epochs:
        chosen = max((n for n in _tenths(least, epochs) if left_s(n) <= SAFETY * (plan.budget_s - age_s)),
                     default=least)
        if views and tta == "flip-shift" and chosen < plan.six_views_from:
            chosen_tta = "flip"
    elif done < epochs and slowdown > 0:
        chosen = longest(predict_s)
        if views and tta == "flip":
            six = longest(views["flip-shift"])
            if six_views_pay(chosen, six, plan.six_views_from) and age_s + left_s(six, views["flip-shift"]) <= end_by_s:
                chosen, chosen_tta = six, "flip-shift"
    return Replan(done, epochs, chosen, slowdown, age_s + left_s(epochs),
                  age_s + left_s(chosen, views.get(chosen_tta, predict_s)), plan.budget_s, chosen_tta,
                  tta if views else "", plan.six_views_from)


def measure_rate(run_batches: Callable[[Iterable], int], batches: Iterable, warmup: int = 1, chunk: int = 1,
                 min_batches: int = 3, min_seconds: float = 5.0, max_batches: int = 30) -> float:
    """Images per second of `run_batches(iterable of batches) -> images done` on `batches` (cycled).

    The first `warmup` batches (graph building, oneDNN primitive creation) are not timed (one is enough:
    cpu-fast's second batch on the AMX Xeon already ran at the steady pace, the first 0.3-0.6 s slower); then
    `chunk` batches a call are timed until at least `min_batches` and `min_seconds`, at most
    `max_batches`. `run_batches` must wait for its results (read a value), so the clock sees the work.
    """
    cycle = _endless(batches)
    run_batches(itertools.islice(cycle, warmup))
    images, timed, start = 0, 0, time.perf_counter()
    while timed < min_batches or (time.perf_counter() - start < min_seconds and timed < max_batches):
        images += run_batches(itertools.islice(cycle, chunk))
        timed += chunk
    return images / (time.perf_counter() - start)


def _endless(batches: Iterable) -> Iterator:
    """`batches` again and again (not itertools.cycle: it would keep every batch in memory)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yielded no batches")


def process_age_s() -> float:
    """Seconds since this process started (its imports count against the budget too); 0 if unknown."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as uptime:
            started_ticks = int(stat.read().rpartition(")")[2].split()[19])  # field 22: starttime
            return max(0.0, float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0
