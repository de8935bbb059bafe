"""A budgeted run's length decided again after each epoch (`replan`): cut short where the machine slowed
down so much that the run would miss its budget, lengthened where it runs so far ahead that more epochs
fit. The arithmetic alone: training/reporting.py reads the clock and returns the decision, which the training
loop applies to the run's length (engine.fit) and the run's plan records."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

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

# A run ahead of its plan is lengthened only by at least this share of its budget (54 s of 45 minutes): its
# margin, spent late in the run a quarter of the time left at a time, would otherwise add a tenth of an epoch
# after nearly every epoch (seen: 40 changes of length in 82 sub-second epochs of a 1.5-minute budget).
MIN_LENGTHENING = 0.02
# The run's pace is the median of its latest epochs (`pace`): at least 3, and at least 5% of the budget's
# seconds of them (sub-second epochs jitter by a fifth, more than the plan's margin over the run left).
PACE_OF = 3
PACE_WINDOW = 0.05


@dataclass(frozen=True)
class Replan:
    """A run's length decided again after an epoch; saved in config.json's plan (`replans`)."""

    after_epoch: int
    epochs_before: float
    epochs: float  # the new length, in tenths (< epochs_before: the run was cut short; >: lengthened)
    slowdown: float  # the run's pace (`pace`): its epochs take this many times their planned seconds
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
        pace = (f"after epoch {self.after_epoch} the run takes {self.slowdown:.2f}x its planned time: at this pace "
                "the run and its submission")
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


def replan(plan: BudgetPlan, epochs: float, done: int, last_epoch_s: float, age_s: float, tta: str = "",
           earlier_s: Mapping[int, float] | None = None) -> Replan:
    """The run's length after `done` of its `epochs` epochs, the last taking `last_epoch_s` (wall clock),
    `age_s` seconds into the process, predicting with `tta` (default: the plan's views); `earlier_s`: the
    wall clock of the run's earlier judged epochs, by epoch. `epochs` while the remaining epochs and the
    prediction, at the run's pace (`pace`), still end inside the budget; else the most, in tenths, that fill
    SAFETY of the time left (the pace of a slowed host, as measured), and never fewer than plan.min_epochs or
    `done + 1` (the schedule needs an epoch to wind down in). A run ahead of its plan, and not yet at its end,
    gets the most epochs, in tenths, that end inside margin_s at its pace (a fast epoch may not last: a wider
    margin than a cut's), if they add at least MIN_LENGTHENING of the budget: early on the plan's own margin,
    so a run merely on pace keeps its length; late, a quarter of the time left, so the run's last epochs spend
    what the plan kept for a slowdown that did not come. (The schedule follows without a jump either way:
    schedules.learning_rate follows the run's RunLength.)
    Where `--tta auto` chose the views (both were timed), they are weighed again by `six_views_pay`: six
    give way to two if a cut leaves fewer than plan.six_views_from (they cost a young network accuracy),
    and a run ahead of its plan takes six in place of two where, at its pace, they pay (the plan could
    not afford them)."""
    slowdown = pace(plan, epochs, done, {**(earlier_s or {}), done: last_epoch_s})
    if epochs - done < PACE_OF or planned_s(plan, done, epochs) < PACE_WINDOW * plan.budget_s:
        # near its end, a slower host is not given the epochs a median takes to show it: none would be left to cut
        slowdown = max(slowdown, last_epoch_s / planned_s(plan, done - 1, min(done, epochs)))
    unseen = max(slowdown, 1.0)  # work the run has not timed yet is not expected to beat its plan
    tta = tta or plan.tta
    views = dict(plan.predict_s_by_tta)
    predict_s = views.get(tta, plan.predict_s)
    phase_end = plan.first_epochs if plan.first_epochs and done <= plan.first_epochs else math.inf

    def left_s(length: float, predicting_s: float = predict_s) -> float:  # training up to `length`, predicting
        start = min(done, length)  # (none after a part-way last)
        this_phase = planned_s(plan, start, min(length, phase_end))
        later = planned_s(plan, min(max(start, phase_end), length), length) if length > phase_end else 0.0
        return slowdown * this_phase + unseen * (later + predicting_s)

    end_by_s = plan.budget_s - margin_s(plan.budget_s, age_s, plan.late_safety)

    def longest(predicting_s: float) -> float:  # the longest run, from `epochs` on, that ends inside the margin
        return longest_tenths(epochs, lambda length: age_s + left_s(length, predicting_s) <= end_by_s)

    least, chosen, chosen_tta = max(done + 1, plan.min_epochs), epochs, tta
    if age_s + left_s(epochs) > plan.budget_s and least < epochs:
        chosen = longest_tenths(least, lambda length: left_s(length) <= SAFETY * (plan.budget_s - age_s), epochs)
        if views and tta == "flip-shift" and chosen < plan.six_views_from:
            chosen_tta = "flip"
    elif done < epochs and slowdown > 0:
        longer = longest(predict_s)
        if left_s(longer) - left_s(epochs) >= MIN_LENGTHENING * plan.budget_s:
            chosen = longer
        if views and tta == "flip":
            six = longest(views["flip-shift"])
            if six_views_pay(longer, six, plan.six_views_from) and age_s + left_s(six, views["flip-shift"]) <= end_by_s:
                chosen, chosen_tta = six, "flip-shift"
    return Replan(done, epochs, chosen, slowdown, age_s + left_s(epochs),
                  age_s + left_s(chosen, views.get(chosen_tta, predict_s)), plan.budget_s, chosen_tta,
                  tta if views else "", plan.six_views_from)


def pace(plan: BudgetPlan, epochs: float, done: int, epoch_s: Mapping[int, float]) -> float:
    """How many times its planned seconds the run's work now takes: the median over its latest judged epochs
    (`epoch_s`, wall clock by epoch, the last `done`) of the same kind as the last (while a fastnet's whitening
    bias learns, or after it is frozen: the plan timed each kind apart), at least PACE_OF of them and
    PACE_WINDOW of the budget. One epoch slower or faster than those around it changes nothing; a host that
    slows down or speeds up for good shows after two."""
    def kind(epoch: int) -> bool:
        return bool(plan.first_epochs) and epoch <= plan.first_epochs

    def ratio(epoch: int) -> float:  # an epoch's seconds over its planned seconds (the last, part-way: its part)
        return epoch_s[epoch] / planned_s(plan, epoch - 1, min(epoch, epochs))

    latest, spent_s = [], 0.0
    for epoch in sorted((e for e in epoch_s if e <= done and kind(e) == kind(done)), reverse=True):
        if len(latest) >= PACE_OF and spent_s >= PACE_WINDOW * plan.budget_s:
            break
        latest.append(ratio(epoch))
        spent_s += epoch_s[epoch]
    return statistics.median(latest)


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
