"""A budgeted run's length decided again after each epoch (`replan`): cut short where the machine slowed
down so much that the run would miss its budget, lengthened where it runs so far ahead that more epochs
fit. The arithmetic alone: training/reporting.py reads the clock and returns the decision, which the training
loop applies to the run's length (engine.fit) and the run's plan records."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

from ..settings import whole_if_integral
from .budget import (
    SAFETY,
    SIX_VIEWS_FROM_EPOCHS,
    TENTHS,
    BudgetPlan,
    margin_s,
    six_views_pay,
    training_s,
)


@dataclass(frozen=True)
class Replan:
    """A run's length decided again after an epoch; saved in config.json's plan (`replans`)."""

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
    way: schedules.learning_rate follows the run's RunLength.)
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

    end_by_s = plan.budget_s - margin_s(plan.budget_s, age_s, plan.late_safety)

    def longest(predicting_s: float) -> float:  # the longest run, from `epochs` on, that ends inside the margin
        return longest_tenths(epochs, lambda length: age_s + left_s(length, predicting_s) <= end_by_s)

    least, chosen, chosen_tta = max(done + 1, plan.min_epochs), epochs, tta
    if age_s + left_s(epochs) > plan.budget_s and least < epochs:
        chosen = longest_tenths(least, lambda length: left_s(length) <= SAFETY * (plan.budget_s - age_s), epochs)
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


def longest_tenths(start: float, fits: Callable[[float], bool], below: float = math.inf) -> float:
    """The longest run, in tenths of an epoch from `start` (in tenths) up to and not including `below`, that
    `fits`; `start` where none longer does. `fits` must be monotone (a run longer than one that does not fit
    does not fit either), as the end of a run is in its length: so doubling, then bisection find it in a few
    dozen calls however long the run (stepping a tenth at a time, a week's budget of 1-second epochs took
    minutes, which the run then counted as its own slowdown)."""
    def length(tenths: int) -> float:
        return whole_if_integral(tenths / TENTHS)

    low, step = round(start * TENTHS), 1
    top = math.inf if below == math.inf else round(below * TENTHS)
    while low + step < top and fits(length(low + step)):
        low, step = low + step, 2 * step
    high = min(low + step, top)  # does not fit, or is `below`
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(length(middle)) else (low, middle)
    return length(low)
