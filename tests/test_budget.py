"""--time-budget: the epochs are chosen from speeds measured on this machine, and the run keeps to it."""
import contextlib
import dataclasses
import json
import math
import random
import re
from types import SimpleNamespace

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from mxnet import gluon

from gluon_cifar import STARTUP, workflow
from gluon_cifar.commands.submit import main as submit_command
from gluon_cifar.commands.train import get_args_parser as train_parser
from gluon_cifar.commands.train import main as train_command
from gluon_cifar.config import Config
from gluon_cifar.contexts import resolve_contexts
from gluon_cifar.distributed.cluster import connect
from gluon_cifar.errors import ConfigError
from gluon_cifar.flags import config_from_args
from gluon_cifar.presets import PRESETS, widened
from gluon_cifar.runs import checkpoint, rundir
from gluon_cifar.runs.recorder import open_run
from gluon_cifar.training.averaging import Lookahead
from gluon_cifar.training.budget import (
    LATE_SAFETY,
    SAFETY,
    SIX_VIEWS_FROM,
    SIX_VIEWS_FROM_EPOCHS,
    VALIDATION_COST,
    BudgetPlan,
    choose_epochs,
    choose_tta,
    in_tenths,
    margin_s,
    plan,
    training_s,
)
from gluon_cifar.training.engine import fit
from gluon_cifar.training.parts import build_training
from gluon_cifar.training.replan import Replan, planned_s, replan
from gluon_cifar.training.reporting import RunHooks
from gluon_cifar.training.run_plan import RunLength, RunPlan
from gluon_cifar.training.schedules import learning_rate
from gluon_cifar.training.timing import measure_rate
from gluon_cifar.workflow.budget import Budgeting, Measuring, measure_speeds, plan_measured, plan_run, this_machine
from gluon_cifar.workflow.predict_timing import PREDICT_SAMPLE, PredictionTiming, _sample_predictor, prediction_sample
from tests.conftest import BF16_REFUSED, run_script

MIN = 60.0


def test_a_slow_machine_gets_fewer_epochs_and_a_fast_one_more():
    # cpu-fast's shape: 45,000 images an epoch, 300,000 test images, 45 minutes, 2 min preparing
    slow = plan(budget_s=45 * MIN, elapsed_s=2 * MIN, train_images_per_s=150.0, train_images=45_000, valid_images=0,
                test_images=300_000, predict_images_per_s=600.0, min_epochs=3)
    usual = plan(budget_s=45 * MIN, elapsed_s=2 * MIN, train_images_per_s=230.0, train_images=45_000, valid_images=0,
                 test_images=300_000, predict_images_per_s=600.0, min_epochs=3)
    fast = plan(budget_s=45 * MIN, elapsed_s=2 * MIN, train_images_per_s=460.0, train_images=45_000, valid_images=0,
                test_images=300_000, predict_images_per_s=1200.0, min_epochs=3)
    assert slow.epochs < usual.epochs < fast.epochs
    assert (slow.epochs, usual.epochs, fast.epochs) == (5.9, 9.1, 20.8)  # in tenths: the last epoch part-way
    for chosen in (slow, usual, fast):
        assert chosen.planned_total_s <= 45 * MIN * SAFETY  # the margin for a machine slowing down
        assert chosen.planned_total_s + chosen.epoch_s / 10 > 45 * MIN * SAFETY  # not a tenth left on the table
        assert f"{chosen.epochs} epochs of" in chosen.summary()


def test_later_faster_epochs_are_planned_at_their_own_speed():
    """cpu-fast's whitening bias learns for 3 epochs; the epochs after it are faster, measured so."""
    one = plan(budget_s=20 * MIN, elapsed_s=1 * MIN, train_images_per_s=320.0, train_images=45_000, valid_images=0,
               test_images=5_000, predict_images_per_s=450.0, min_epochs=3)
    two = plan(budget_s=20 * MIN, elapsed_s=1 * MIN, train_images_per_s=320.0, train_images=45_000, valid_images=0,
               test_images=5_000, predict_images_per_s=450.0, min_epochs=3, later_images_per_s=400.0, first_epochs=3)
    assert (one.epochs, two.epochs) == (7, 8)
    assert two.planned_total_s == pytest.approx(60 + 3 * 45_000 / 320 + 5 * 45_000 / 400 + two.predict_s)
    assert two.planned_total_s <= 20 * MIN * SAFETY < two.planned_total_s + two.later_epoch_s / 10
    assert "after the first 3" in two.summary()
    short = plan(budget_s=8 * MIN, elapsed_s=1 * MIN, train_images_per_s=320.0, train_images=45_000, valid_images=0,
                 test_images=5_000, predict_images_per_s=450.0, min_epochs=1, later_images_per_s=400.0,
                 first_epochs=3)
    assert short.epochs == 2.4 and short.planned_total_s == pytest.approx(60 + 2.4 * 45_000 / 320 + short.predict_s)
    longer = plan(budget_s=10.5 * MIN, elapsed_s=1 * MIN, train_images_per_s=320.0, train_images=45_000,
                  test_images=5_000, predict_images_per_s=450.0, min_epochs=1,
                  later_images_per_s=400.0, first_epochs=3)  # 3 epochs at the first speed, the 4th's at the later
    assert longer.epochs == 3.4
    assert longer.planned_total_s == pytest.approx(60 + 3 * 45_000 / 320 + 0.4 * 45_000 / 400 + longer.predict_s)


def test_validation_and_prediction_are_part_of_the_plan():
    without = plan(budget_s=30 * MIN, elapsed_s=0.0, train_images_per_s=100.0, train_images=10_000, valid_images=0,
                   test_images=0, predict_images_per_s=1.0, min_epochs=1)
    with_both = plan(budget_s=30 * MIN, elapsed_s=0.0, train_images_per_s=100.0, train_images=10_000,
                     valid_images=5_000, test_images=100_000, predict_images_per_s=500.0, min_epochs=1)
    assert without.predict_s == 0 and with_both.predict_s > 200
    assert with_both.epoch_s > without.epoch_s and with_both.epochs < without.epochs


def plans_by_views(budget_min: float, test_images: int, flip_shift_rate: float = 250.0):
    """cpu-fast's shape on a Zen 4: 43 batches of 1024, 335 img/s for 3 epochs, 391 after; prediction
    600 img/s with flip (2 views), flip_shift_rate with flip-shift (6 views)."""
    def with_views(tta: str, rate: float):
        return plan(budget_s=budget_min * MIN, elapsed_s=1 * MIN, train_images_per_s=335.0, train_images=44_032,
                    test_images=test_images, predict_images_per_s=rate, min_epochs=3,
                    later_images_per_s=391.0, first_epochs=3, tta=tta)
    return with_views("flip", 600.0), with_views("flip-shift", flip_shift_rate)


def test_auto_tta_takes_six_views_where_they_cost_no_epoch_of_enough():
    for budget_min, test_images in ((45, 10_000), (25, 5_000)):  # the real test set, the holdout
        flip, flip_shift = plans_by_views(budget_min, test_images)
        assert flip.epochs - 1 < flip_shift.epochs < flip.epochs and flip_shift.epochs >= SIX_VIEWS_FROM_EPOCHS
        chosen = choose_tta(flip, flip_shift, flip_shift.predict_s)
        assert chosen.tta == "flip-shift" and chosen.epochs == flip_shift.epochs  # a tenth or two for 6 views
        assert chosen.predict_s == flip_shift.predict_s > flip.predict_s  # planned with the views it chose
        assert chosen.tta_considered == (("flip", flip.epochs), ("flip-shift", flip_shift.epochs))
        assert chosen.predict_s_by_tta == (("flip", flip.predict_s), ("flip-shift", flip_shift.predict_s))
        assert f"--tta auto chose flip-shift (flip would leave {flip.epochs} epochs)" in chosen.summary()


def test_auto_tta_keeps_two_views_where_six_cost_epochs_or_the_network_is_young():
    flip, flip_shift = plans_by_views(45, 300_000)  # Kaggle's whole test folder: 6 views cost 6 epochs
    assert (flip.epochs, flip_shift.epochs) == (15.9, 9.7)
    chosen = choose_tta(flip, flip_shift, flip_shift.predict_s)
    assert chosen.tta == "flip" and chosen.epochs == 15.9 and chosen.predict_s == flip.predict_s
    assert "--tta auto chose flip (flip-shift would leave 9.7 epochs)" in chosen.summary()
    refused = choose_tta(flip, None, flip_shift.predict_s)  # six views did not fit the warm-up at all
    assert refused.tta == "flip" and refused.tta_considered == (("flip", 15.9), ("flip-shift", 0))
    assert dict(refused.predict_s_by_tta)["flip-shift"] == flip_shift.predict_s  # for a replan to weigh again
    young, young_six = plans_by_views(15, 5_000)  # under 6 epochs either way: 6 views measured worse there
    assert (young.epochs, young_six.epochs) == (5.9, 5.8)
    assert choose_tta(young, young_six, young_six.predict_s).tta == "flip"


def test_auto_tta_gives_up_at_most_one_epoch_and_only_for_enough():
    def apart(flip_epochs: int, six_epochs: int) -> str:
        flip = plan(budget_s=60 * MIN, elapsed_s=0.0, train_images_per_s=100.0, train_images=1_000, valid_images=0,
                    test_images=0, predict_images_per_s=1.0, min_epochs=1, tta="flip")
        return choose_tta(dataclasses.replace(flip, epochs=flip_epochs),
                          dataclasses.replace(flip, epochs=six_epochs, tta="flip-shift"), flip.predict_s).tta
    assert apart(SIX_VIEWS_FROM_EPOCHS + 1, SIX_VIEWS_FROM_EPOCHS) == "flip-shift"
    assert apart(SIX_VIEWS_FROM_EPOCHS, SIX_VIEWS_FROM_EPOCHS - 1) == "flip"  # 8 left: too young
    assert apart(SIX_VIEWS_FROM_EPOCHS + 2, SIX_VIEWS_FROM_EPOCHS) == "flip"  # two epochs lost
    assert apart(10.3, 9.3) == "flip-shift"  # one epoch in tenths (10.3 - 9.3 is 1.0000000000000009 in floats)
    assert apart(10.4, 9.3) == "flip" and apart(9.7, 8.9) == "flip"


def test_six_views_pay_from_the_recipes_own_length():
    """Muon's network pays for six views from SIX_VIEWS_FROM["muon"] = 2.5 epochs, SGD's from 9: each plan weighs
    them from its recipe's length, and a run lengthened (or cut) later weighs them again from there too."""
    assert SIX_VIEWS_FROM == {"sgd": 9, "muon": 2.5}
    flip = plan(budget_s=60 * MIN, elapsed_s=0.0, train_images_per_s=100.0, train_images=1_000, valid_images=0,
                test_images=0, predict_images_per_s=1.0, min_epochs=1, tta="flip")
    for recipe, views in (("sgd", "flip"), ("muon", "flip-shift")):
        mine = dataclasses.replace(flip, epochs=8.6, six_views_from=SIX_VIEWS_FROM[recipe])
        chosen = choose_tta(mine, dataclasses.replace(mine, epochs=8.4, tta="flip-shift"), flip.predict_s)
        assert chosen.tta == views and chosen.six_views_from == SIX_VIEWS_FROM[recipe]
    # a run planned with two views at 8.4 epochs (six would leave 8.2, under SGD's 9), then ahead of its plan: six
    # views once they leave 9 or more
    two, six = (dataclasses.replace(p, epochs=e, six_views_from=SIX_VIEWS_FROM["sgd"])
                for p, e in zip(plans_by_views(25, 5_000), (8.4, 8.2)))
    planned = choose_tta(two, six, six.predict_s)
    assert planned.tta == "flip"
    ahead = replan(planned, 8.4, 2, 0.85 * planned.epoch_s, 2 * planned.epoch_s + 60, "flip")
    assert ahead.epochs >= 9 and ahead.tta == "flip-shift" and "six pay from 9 epochs on" in ahead.summary()


def test_a_budget_too_small_for_the_warm_up_says_what_would_fit():
    with pytest.raises(ConfigError, match=r"--time-budget 10 min does not fit 3 epoch\(s\).*at least --time-budget 20"):
        choose_epochs(10 * MIN, 1 * MIN, 5 * MIN, 2 * MIN, min_epochs=3)


def holdout_plan():
    """The 25-minute holdout run of docs/BENCHMARKS.md on the AMX Xeon: 14 epochs planned then (14.4 in
    tenths), 3 of them at 415 img/s, the rest at 576; 5,000 test images with six views."""
    chosen = plan(budget_s=25 * MIN, elapsed_s=1.5 * MIN, train_images_per_s=415.0, train_images=45_056,
                  test_images=5_000, predict_images_per_s=300.0, min_epochs=3,
                  later_images_per_s=576.0, first_epochs=3, tta="flip-shift")
    assert chosen.epochs == 14.4
    return chosen


def age_after(chosen, epochs: int) -> float:
    """Seconds into the run after `epochs` epochs on plan."""
    return chosen.elapsed_s + 3 * chosen.epoch_s + (epochs - 3) * chosen.later_epoch_s


def test_a_run_on_pace_keeps_its_epochs_spends_the_margin_late_and_a_finished_one_is_not_lengthened():
    chosen = holdout_plan()
    for done in (1, 5):  # the plan's margin, a tenth of the budget, is kept while much of the run is ahead
        kept = replan(chosen, 14.4, done, chosen.epoch_s if done <= 3 else chosen.later_epoch_s,
                      age_after(chosen, done))
        assert kept.epochs == 14.4 and kept.uncut_end_s == kept.end_s <= chosen.budget_s
    age = age_after(chosen, 14)  # 0.4 of an epoch and the prediction to go, 3.7 min of the budget left
    assert margin_s(chosen.budget_s, age) == pytest.approx((1 - LATE_SAFETY) * (chosen.budget_s - age))
    assert margin_s(chosen.budget_s, age) < (1 - SAFETY) * chosen.budget_s
    late = replan(chosen, 14.4, 14, chosen.later_epoch_s, age)
    end_by = chosen.budget_s - margin_s(chosen.budget_s, age)
    assert late.epochs == 15.6 and late.end_s <= end_by < late.end_s + chosen.later_epoch_s / 10  # a tenth more: over
    assert "training goes on for 15.6 epochs instead of 14.4" in late.summary()
    part_way = replan(chosen, 14.4, 15, 0.4 * chosen.later_epoch_s, age_after(chosen, 14.4))  # the last: 0.4 of one
    assert part_way.slowdown == pytest.approx(1.0) and part_way.end_s == pytest.approx(chosen.planned_total_s)
    done = replan(chosen, 14.4, 15, 0.2 * chosen.later_epoch_s, age_after(chosen, 14.4) - 20)  # fast, but over
    assert done.slowdown == pytest.approx(0.5) and done.epochs == 14.4
    on_pace = replan(chosen, 14.4, 5, chosen.later_epoch_s, age_after(chosen, 5))
    assert on_pace.end_s == pytest.approx(chosen.planned_total_s) and on_pace.slowdown == pytest.approx(1.0)


def test_a_run_that_slows_down_is_cut_to_the_epochs_that_fit_at_the_new_pace():
    """What happened on the Xeon: epochs 10-14 ran at about 345 img/s instead of the 576 planned, and the
    run ended 2 minutes after its budget. Cut after epoch 10 instead, it fits."""
    chosen = holdout_plan()
    late_epoch = 576 / 345 * chosen.later_epoch_s
    age = age_after(chosen, 9) + late_epoch
    cut = replan(chosen, 14.4, 10, late_epoch, age)
    assert cut.slowdown == pytest.approx(1.67, abs=0.01) and cut.uncut_end_s > chosen.budget_s
    assert cut.epochs == 12.8 and cut.end_s <= chosen.budget_s
    left = chosen.budget_s - age
    assert cut.end_s - age <= SAFETY * left < cut.end_s - age + late_epoch / 10  # as many tenths as fit, none more
    assert "after epoch 10 the run takes 1.67x its planned time" in cut.summary()
    assert "training ends after 12.8 epochs instead of 14.4" in cut.summary()
    assert cut.as_record()["epochs"] == cut.epochs


def test_a_cut_keeps_an_epoch_to_wind_down_in_and_the_warm_up():
    chosen = holdout_plan()
    crawling = replan(chosen, 14.4, 10, 5 * chosen.later_epoch_s, age_after(chosen, 10) + 4 * chosen.later_epoch_s)
    assert crawling.epochs == 11 and crawling.end_s > chosen.budget_s  # still late: the decay needs it
    assert "still late" in crawling.summary()
    early = replan(chosen, 14.4, 1, 8 * chosen.epoch_s, chosen.elapsed_s + 8 * chosen.epoch_s)
    assert early.epochs == chosen.min_epochs == 3  # two epochs of warm-up and one of decay
    last = replan(chosen, 14.4, 14, 3 * chosen.later_epoch_s, chosen.budget_s)  # the 15th, 0.4 of one, is needed
    assert last.epochs == 14.4 and "no epoch is left to cut" in last.summary()


def test_six_views_chosen_by_auto_give_way_to_two_when_a_cut_leaves_a_young_network():
    own = holdout_plan()  # --tta flip-shift asked for outright: kept whatever the cut
    auto = dataclasses.replace(own, tta_considered=(("flip", 14.4), ("flip-shift", 14.4)),
                               predict_s_by_tta=(("flip", 0.8 * own.predict_s), ("flip-shift", own.predict_s)))
    late = 576 / 345 * own.later_epoch_s
    assert replan(auto, 14.4, 10, late, age_after(own, 9) + late).tta == "flip-shift"  # 12.8 epochs: still pays
    early = [replan(p, 14.4, 2, 3 * p.epoch_s, p.elapsed_s + 5 * p.epoch_s) for p in (own, auto)]
    assert early[0].epochs == early[1].epochs < SIX_VIEWS_FROM_EPOCHS
    assert [r.tta for r in early] == ["flip-shift", "flip"]
    assert "the submission predicts with flip views" in early[1].summary()


def seed0_plan():
    """The 24.35-minute holdout run of 2026-12-03 on the AMX Xeon (docs/BENCHMARKS.md): 6 epochs planned
    (6.5 in tenths) from 239 img/s while the whitening bias learns and 258 after; flip views over 5,000
    test images."""
    chosen = plan(budget_s=1461.0, elapsed_s=122.84, train_images_per_s=238.636, train_images=44_032, valid_images=0,
                  test_images=5_000, predict_images_per_s=360.645, min_epochs=3, later_images_per_s=258.19,
                  first_epochs=3, tta="flip")
    assert chosen.epochs == 6.5 and chosen.planned_total_s == pytest.approx(1307.1, abs=0.5)
    return chosen


def test_a_run_ahead_of_its_plan_gets_the_epochs_that_fit():
    """That run's epoch 2 took 167.0 s of the 184.5 planned; it ended at 18.9 minutes of 24.35 with 6 epochs.
    After epoch 2 (the whitening bias still learning) it is lengthened at that pace for epoch 3 alone: the later,
    frozen epochs and the prediction, which it has not timed, are not expected to beat their plan (6.8 epochs).
    Once a frozen epoch ran as fast, to what ends inside the plan's own margin: 7.2; 7.3 would not."""
    chosen = seed0_plan()
    age = 122.84 + 162.49 + 167.01  # the preparation, epochs 1 and 2 as they ran
    longer = replan(chosen, 6.5, 2, 167.01, age)
    assert longer.slowdown == pytest.approx(0.905, abs=0.001) and longer.uncut_end_s < chosen.budget_s
    assert longer.epochs == 6.8 and longer.end_s == pytest.approx(
        age + 0.905 * chosen.epoch_s + 3.8 * chosen.later_epoch_s + chosen.predict_s, abs=1)
    assert longer.tta == "flip"  # the views it was planned and timed with
    assert "training goes on for 6.8 epochs instead of 6.5" in longer.summary()
    epoch_3, epoch_4 = 0.905 * chosen.epoch_s, 0.905 * chosen.later_epoch_s
    assert replan(chosen, 6.8, 3, epoch_3, age + epoch_3, earlier_s={2: 167.01}).epochs == 6.8
    frozen = replan(chosen, 6.8, 4, epoch_4, age + epoch_3 + epoch_4, earlier_s={2: 167.01, 3: epoch_3})
    assert frozen.slowdown == pytest.approx(0.905) and frozen.epochs == 7.2 and frozen.end_s <= SAFETY * chosen.budget_s
    assert frozen.end_s + frozen.slowdown * chosen.later_epoch_s / 10 > SAFETY * chosen.budget_s  # 7.3 would not
    on_pace = replan(chosen, 6.5, 2, chosen.epoch_s, chosen.elapsed_s + 2 * chosen.epoch_s)
    assert on_pace.epochs == 6.5  # on pace: the plan's margin is kept, not spent


def test_a_lengthened_run_takes_six_views_where_they_now_pay():
    """The 24.35-minute run at 961c880 (docs/BENCHMARKS.md): planned 8 epochs (8.6 in tenths) from 322
    img/s, flip views (six would have left 8.5: too young), lengthened to 10 after epoch 2 at 0.82x its
    plan, and still predicted with 2 views; 6 scored 0.24 points more on those weights. Six views timed
    at 262 img/s. Now: after epoch 2, 9 epochs (epoch 3 at that pace, the frozen epochs and the prediction,
    not timed yet, at their plan's); after epoch 4, the first frozen one, as fast, 10.2 with six views."""
    flip = plan(budget_s=1461.0, elapsed_s=100.27, train_images_per_s=322.042, train_images=44_032, valid_images=0,
                test_images=5_000, predict_images_per_s=405.309, min_epochs=3, later_images_per_s=319.562,
                first_epochs=3, tta="flip")
    six = plan(budget_s=1461.0, elapsed_s=100.27, train_images_per_s=322.042, train_images=44_032, valid_images=0,
               test_images=5_000, predict_images_per_s=262.0, min_epochs=3, later_images_per_s=319.562,
               first_epochs=3, tta="flip-shift")
    chosen = choose_tta(flip, six, six.predict_s)
    assert (flip.epochs, six.epochs, chosen.tta) == (8.6, 8.5, "flip")
    age = 100.27 + 129.256 + 112.495  # the preparation, epochs 1 and 2 as they ran
    assert replan(chosen, 8.6, 2, 112.495, age, "flip").epochs == 9
    pace = 112.495 / chosen.epoch_s
    epoch_3, epoch_4 = pace * chosen.epoch_s, pace * chosen.later_epoch_s
    longer = replan(chosen, 9, 4, epoch_4, age + epoch_3 + epoch_4, "flip", {2: 112.495, 3: epoch_3})
    assert (longer.epochs, longer.tta, longer.tta_before) == (10.2, "flip-shift", "flip") and longer.changes_views
    assert longer.end_s == pytest.approx(age + epoch_3 + epoch_4 + pace * 6.2 * chosen.later_epoch_s
                                         + six.predict_s)  # epochs 5-10.2 at its pace, the prediction at its plan's
    assert longer.end_s <= SAFETY * chosen.budget_s
    assert "training goes on for 10.2 epochs instead of 9" in longer.summary()
    assert "the submission predicts with flip-shift views" in longer.summary()
    # --tta flip given outright: the views stay; six views that would cost an epoch or leave 8: two stay
    after_4 = (age + epoch_3 + epoch_4, {2: 112.495, 3: epoch_3})
    assert replan(flip, 9, 4, epoch_4, after_4[0], "", after_4[1]).tta == "flip"
    dear = dataclasses.replace(chosen, predict_s_by_tta=(("flip", flip.predict_s), ("flip-shift", 400.0)))
    assert replan(dear, 9, 4, epoch_4, after_4[0], "flip", after_4[1]).tta == "flip"
    # 9.2 epochs planned with two views (six, slow here, would leave 8.9); a run a little ahead, epochs of both
    # kinds timed, keeps its 9.2 epochs and gains the six views: a replan of the views alone
    def with_views(tta: str, rate: float) -> BudgetPlan:
        return plan(budget_s=26 * MIN, elapsed_s=100.27, train_images_per_s=322.042, train_images=44_032,
                    test_images=5_000, predict_images_per_s=rate, min_epochs=3,
                    later_images_per_s=319.562, first_epochs=3, tta=tta)
    six_slow = with_views("flip-shift", 100.0)
    nine = choose_tta(with_views("flip", 405.309), six_slow, six_slow.predict_s)
    assert (nine.tta, nine.tta_considered) == ("flip", (("flip", 9.2), ("flip-shift", 8.9)))
    ran = [0.97 * nine.epoch_s] * 3 + [0.97 * nine.later_epoch_s]
    same = replan(nine, 9.2, 4, ran[3], nine.elapsed_s + sum(ran), "flip", {2: ran[1], 3: ran[2]})
    assert (same.epochs, same.tta) == (9.2, "flip-shift") and same.end_s <= SAFETY * nine.budget_s
    assert "training keeps its 9.2 epochs" in same.summary() and "predicts with flip-shift views" in same.summary()


def fit_on_a_faked_clock(run, cfg, min_epochs, ages, late_margin=False, plan=None, **plan_fields):
    """cfg's run of a tiny network on two contexts (4 batches an epoch) into `run` as `plan` (default: cfg's
    epochs and views) decided it, its budget's clock reading `ages` after each epoch. The budget: 6 epochs of
    10 s from 20 s in, a 5-second prediction, a 100-second budget, and `plan_fields`; `ages` None: no budget.
    Without `late_margin` the margin stays the budget's 10 s to the end (late_safety 0), so that a test follows
    the one change it makes. Returns the parts, the history and config.json's record."""
    ctxs = [mx.cpu(0), mx.cpu(1)]
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, in_channels=3), gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(10, in_units=4))
    mx.random.seed(0)
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    rng = np.random.default_rng(0)
    data = [(mx.nd.array(rng.normal(size=(6, 3, 8, 8))), mx.nd.array(rng.integers(0, 10, 6))) for _ in range(4)]
    plan = plan or RunPlan(RunLength(cfg.epochs), cfg.warmup_epochs, cfg.tta, "float32")
    parts = build_training(cfg, ctxs, connect("auto", ctxs), net, data, length=plan.length)
    planned = BudgetPlan(budget_s=100.0, elapsed_s=20.0, train_images_per_s=2.4, epoch_s=10.0, test_images=100,
                         predict_images_per_s=20.0, predict_s=5.0, epochs=6, planned_total_s=85.0,
                         min_epochs=min_epochs, late_safety=LATE_SAFETY if late_margin else 0.0, **plan_fields)
    clock = iter(ages or ()).__next__  # read once after each epoch
    history = []
    with open_run(str(run), cfg, plan, list("abcdefghij"), "labels:files", {"n_train": 24}) as recorder:
        fit(parts, ctxs, hooks=RunHooks(cfg, parts, recorder, history, plan, show_progress=False,
                                        budget=planned if ages else None, clock=clock))
    with open(run / "config.json") as f:
        return parts, history, json.load(f)


def test_a_slowed_run_is_cut_short_on_the_shorter_schedule_and_says_so_in_its_files(tmp_path, caplog):
    """The whole mechanism, with the clock the budget reads faked: epoch 1 on pace, epoch 2 twice as
    slow. 6 planned epochs would end at 140 s of a 100-second budget; 3.7 fill 90% of the 50 s left, the
    4th epoch stopping after 3 of its 4 batches (0.7 of 4, rounded up)."""
    cfg = Config(epochs=6, lr=0.1, schedule="linear", warmup_epochs=1, lookahead_every=2, time_budget=100 / MIN)
    with caplog.at_level("WARNING"):  # after each epoch; the first is not judged (one-off costs)
        parts, history, record = fit_on_a_faked_clock(tmp_path / "run", cfg, 2,
                                                      [30.0, 50.0, 70.0, 85.0])
    assert [h.epoch for h in history] == [1, 2, 3, 4]
    assert [h.examples for h in history] == [24, 24, 24, 18]  # 4 batches of 6, then 3
    assert "after epoch 2 the run takes 2.00x its planned time" in caplog.text
    assert "training ends after 3.7 epochs instead of 6" in caplog.text
    batches = parts.batches_per_epoch
    last_update = 3 * batches + 3
    assert parts.trainer.learning_rate == parts.learning_rate(last_update) == 0.0  # decayed all the way
    assert parts.lookahead.decay(last_update) == 1.0  # and the weights are the average (an odd step: averaged too)
    assert parts.lookahead.decay(last_update - 1) < 1.0
    assert history[2].lr < learning_rate(cfg, 2 * batches + 1, batches)  # below the 6-epoch schedule's
    assert record["plan"]["epochs"] == 3.7 and record["n_train"] == 24  # what it recorded before is kept
    assert record["config"]["epochs"] == 6  # what was asked for
    (cut,) = record["plan"]["replans"]
    assert (cut["after_epoch"], cut["epochs_before"], cut["epochs"]) == (2, 6, 3.7)
    assert (cut["slowdown"], cut["uncut_end_s"]) == (2.0, 140.0) and cut["end_s"] == pytest.approx(94.0)
    saved = checkpoint.read(str(tmp_path / "run" / checkpoint.LAST))
    assert saved.plan["epochs"] == 3.7 and saved.progress.epoch == 5  # a resume knows the run is done


def test_a_run_well_ahead_of_its_plan_is_lengthened_on_the_longer_schedule(tmp_path, caplog):
    """The same mechanism the other way: epoch 2, the warm-up's last, takes half its planned time, so 11.8
    epochs end inside 90% of the 100-second budget instead of 6 (at that pace; the prediction, not timed since,
    at its plan's); every rate is then the 11.8-epoch run's. --tta auto had chosen two views for 6 epochs; six
    (a 6-second prediction) fit the 11.8 and pay there (two would fit 12)."""
    cfg = Config(epochs=6, lr=0.1, schedule="linear", warmup_epochs=2, lookahead_every=2, time_budget=100 / MIN,
                 tta="flip")
    views = {"tta": "flip", "tta_considered": (("flip", 6), ("flip-shift", 6)),
             "predict_s_by_tta": (("flip", 5.0), ("flip-shift", 6.0))}
    with caplog.at_level("INFO"):  # 5 s an epoch from epoch 2 on
        parts, history, record = fit_on_a_faked_clock(tmp_path / "run", cfg, 3,
                                                      [30.0] + [35.0 + 5 * k for k in range(12)], **views)
    assert [h.epoch for h in history] == list(range(1, 13)) and history[-1].examples == 24  # 3.2 batches: 4
    assert "after epoch 2 the run takes 0.50x its planned time" in caplog.text
    assert "training goes on for 11.8 epochs instead of 6" in caplog.text
    batches, longer = parts.batches_per_epoch, dataclasses.replace(cfg, epochs=11.8)
    assert [h.lr for h in history] == [learning_rate(longer, e * batches + 1, batches) for e in range(12)]
    last_update = 12 * batches
    assert parts.trainer.learning_rate == parts.learning_rate(last_update) == 0.0
    assert parts.lookahead.decay(last_update) == 1.0 and parts.lookahead.decay(last_update - 2) < 1.0
    assert "the submission predicts with flip-shift views" in caplog.text
    assert (record["plan"]["epochs"], record["plan"]["tta"]) == (11.8, "flip-shift")  # what submit.py reads
    assert (rundir.load(str(tmp_path / "run"))[0].epochs, rundir.load(str(tmp_path / "run"))[0].tta) == (
        11.8, "flip-shift")
    (longer_plan,) = record["plan"]["replans"]
    assert (longer_plan["after_epoch"], longer_plan["epochs_before"], longer_plan["epochs"]) == (2, 6, 11.8)
    assert (longer_plan["slowdown"], longer_plan["uncut_end_s"]) == (0.5, 60.0)
    assert longer_plan["end_s"] == pytest.approx(90.0)
    assert (longer_plan["tta_before"], longer_plan["tta"]) == ("flip", "flip-shift")
    assert checkpoint.read(str(tmp_path / "run" / checkpoint.LAST)).plan["epochs"] == 11.8


def test_a_run_on_pace_spends_the_margin_on_its_last_epochs_and_ends_inside_the_budget(tmp_path, caplog):
    """Every epoch exactly on its plan's 10 s: the plan's 10-second margin is kept while more than 40 s of
    the budget are left (6.5 epochs after epoch 2: the faked plan's 6 end at 85 s, not 90); after that a
    quarter of the time left is kept, and the run takes the rest: 6.7 epochs after epoch 5 (70 s in: margin
    7.5 s), 7 after epoch 6 (5 s); its 7th epoch ends at 90 s and the 5-second prediction at 95 of the 100.
    The rate still ends at 0."""
    cfg = Config(epochs=6, lr=0.1, schedule="linear", warmup_epochs=1, lookahead_every=2, time_budget=100 / MIN)
    with caplog.at_level("INFO"):
        parts, history, record = fit_on_a_faked_clock(tmp_path / "run", cfg, 2,
                                                      [30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0], late_margin=True)
    assert [(r["after_epoch"], r["epochs_before"], r["epochs"]) for r in record["plan"]["replans"]] == [
        (2, 6, 6.5), (5, 6.5, 6.7), (6, 6.7, 7)]
    assert all(r["slowdown"] == pytest.approx(1.0) for r in record["plan"]["replans"])
    assert [r["end_s"] for r in record["plan"]["replans"]] == pytest.approx([90.0, 92.0, 95.0])
    assert "training goes on for 7 epochs instead of 6.7" in caplog.text
    assert [h.epoch for h in history] == list(range(1, 8)) and record["plan"]["epochs"] == 7
    assert parts.trainer.learning_rate == parts.learning_rate(7 * parts.batches_per_epoch) == 0.0


def test_a_run_lengthened_after_its_rate_began_to_fall_goes_on_down_from_it(tmp_path, monkeypatch, caplog):
    """Lengthened three times once its decay has begun (warm-up: epoch 1): after epoch 2, on pace, to the 6.5
    epochs the plan's margin holds (the faked plan says 6); after epoch 4, which took half its time, by the 5
    s it saved (7 epochs: one fast epoch is not yet a faster host, `pace`); after epoch 5, as fast, to 10 at
    that pace. Every rate the run used is the one its saved config gives (what a resumed run trains with), no
    rate ever rises after the warm-up, and it ends at 0 with the weights averaged. Repeated with its saved
    plan (as --config RUN and submit --retrain repeat it), it trains the same bits."""
    cfg = Config(epochs=6, lr=0.1, schedule="linear", warmup_epochs=1, lookahead_every=2, time_budget=100 / MIN)
    used = []
    set_rate = gluon.Trainer.set_learning_rate
    monkeypatch.setattr(gluon.Trainer, "set_learning_rate",
                        lambda trainer, lr: (used.append(lr), set_rate(trainer, lr)))
    with caplog.at_level("INFO"):
        parts, history, record = fit_on_a_faked_clock(tmp_path / "run", cfg, 2,
                                                      [30.0, 40.0, 50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0])
    assert "training goes on for 6.5 epochs instead of 6" in caplog.text
    assert "after epoch 4 the run takes 1.00x its planned time" in caplog.text  # the median of epochs 2-4
    assert "training goes on for 7 epochs instead of 6.5" in caplog.text
    assert "after epoch 5 the run takes 0.50x its planned time" in caplog.text
    assert "training goes on for 10 epochs instead of 7" in caplog.text
    assert [h.epoch for h in history] == list(range(1, 11))
    saved = RunPlan.from_record(record["plan"], "config.json")
    assert (saved.length.epochs, saved.length.changes) == (10, ((2, 6), (4, 6.5), (5, 7)))
    assert [(r["after_epoch"], r["epochs"]) for r in saved.replans] == [(2, 6.5), (4, 7), (5, 10)]
    batches = parts.batches_per_epoch
    assert used == [learning_rate(cfg, u, batches, saved.length) for u in range(1, 41)]  # 10 epochs: 40 updates
    assert used[:8] == [learning_rate(cfg, u, batches) for u in range(1, 9)]  # the planned run's, until the change
    assert used[3] == 0.1 and all(b <= a for a, b in zip(used[3:], used[4:]))  # down from the peak, no jump up
    plain = dataclasses.replace(cfg, epochs=10)
    assert learning_rate(plain, 17, batches) > used[15]  # a plain 10-epoch schedule would jump back up
    assert used[-1] == parts.trainer.learning_rate == 0.0
    assert parts.lookahead.decay(40) == 1.0 and parts.lookahead.decay(8) == Lookahead(
        parts.net, 2, batches, RunLength(6)).decay(8)  # the averaging too: over the length as it stood at each step
    assert checkpoint.read(str(tmp_path / "run" / checkpoint.LAST)).plan["length_changes"] == [[2, 6], [4, 6.5],
                                                                                               [5, 7]]
    # the saved plan is the whole run: trained again without a budget, the same rates and the same bits
    used.clear()
    again, _, repeated = fit_on_a_faked_clock(tmp_path / "again", cfg, 2, None, plan=saved.repeated())
    assert used == [learning_rate(cfg, u, batches, saved.length) for u in range(1, 41)]
    assert repeated["plan"]["replans"] == [] and repeated["plan"]["length_changes"] == [[2, 6], [4, 6.5], [5, 7]]
    for param, repeated in zip(parts.net.collect_params().values(), again.net.collect_params().values()):
        np.testing.assert_array_equal(param.data().asnumpy(), repeated.data().asnumpy(), err_msg=param.name)


def test_measured_rate_excludes_the_warm_up_batches():
    clock, ran = [0.0], []

    def run(batches):  # each "batch" its seconds, on the clock the rate is read from
        n = 0
        for seconds in batches:
            clock[0] += seconds
            ran.append(seconds)
            n += 10
        return n

    # the first two batches are slow (compilation); the rest take 20 ms for 10 images: 500 img/s
    rate = measure_rate(run, [0.3, 0.3] + [0.02] * 30, lambda: clock[0], warmup=2, min_batches=4, min_seconds=0.2)
    assert rate == pytest.approx(500.0) and len(ran) == 2 + 10  # 0.2 s: 10 timed batches
    assert measure_rate(run, [0.02] * 30, lambda: clock[0], warmup=0, min_batches=4, min_seconds=0) == pytest.approx(
        500.0)  # at least min_batches
    ran.clear()
    measure_rate(run, [1.0], lambda: clock[0], chunk=2, min_batches=1, min_seconds=100, max_batches=6)
    assert len(ran) == 1 + 6  # at most max_batches, in chunks of 2, cycling the loader


def test_a_probe_timed_again_is_not_warmed_up_again(monkeypatch):
    """A probe's first timing steps an untimed batch, which builds its graph; a warm probe's starts timing at once
    (measure_speeds times the frozen speed on the probe it has just stepped: plan_timed checks it says so; a batch
    less before the first step, about 2 s of cpu-fast's 7-minute budgets on the AMX Xeon)."""
    warmups = []
    monkeypatch.setattr(workflow.budget, "measure_rate",
                        lambda steps, batches, clock, warmup, chunk: warmups.append(warmup) or 1.0)
    measuring = this_machine([mx.cpu()], None, None, None, "float32", None, lambda: 0.0)
    for warm in (False, True):
        measuring.training_rate(SimpleNamespace(train_data=[]), Config(lookahead_every=0), warm)
    assert warmups == [1, 0]


def plan_timed(budget_min: float, tta: str = "flip"):
    """workflow.budget's measure_speeds, then plan_measured, as plan_run uses them, for cpu-fast's shape
    (44,032 images an epoch; the whitening bias learns for 3 epochs) on a fake machine: 300 img/s training
    while the bias learns, 360 once it is frozen, each timed in 20 s from 40 s into the process, and a
    prediction of 5,000 images at 400 img/s (either views) after 9 s to start. Returns the plan and the parameter
    frozen, with what was timed."""
    frozen = SimpleNamespace(grad_req="write")
    probe = SimpleNamespace(learn_first=(3, (frozen,)), batches_per_epoch=43,
                            train_data=SimpleNamespace(batch_size=1024),
                            start_epoch=lambda epoch: setattr(frozen, "grad_req", "null" if epoch > 3 else "write"),
                            learns=lambda params: [setattr(p, "grad_req", "write") for p in params])
    timed, clock = [], [40.0]

    def training_rate(timed_probe, cfg, warm):
        assert timed_probe is probe and warm == (frozen.grad_req == "null")  # timed again: frozen, its graph built
        timed.append(frozen.grad_req)
        clock[0] += 20
        return 300.0 if frozen.grad_req == "write" else 360.0

    def prediction(cfg, ttas):
        timed.append(ttas)
        return PredictionTiming(5_000, {views: 400.0 for views in ttas}, 9.0)

    measuring = Measuring(lambda: clock[0], None, training_rate, prediction, None)
    cfg = Config(time_budget=budget_min, tta=tta, warmup_epochs="auto", schedule="linear")
    data = SimpleNamespace(n_valid=0)
    speeds = measure_speeds(cfg, data, probe, measuring)
    return plan_measured(cfg, data, probe, speeds, clock[0]), frozen, timed


def test_the_frozen_speed_is_timed_only_for_a_run_that_gets_past_the_first_epochs():
    short, frozen, timed = plan_timed(8)  # at 300 img/s, 2.3 epochs fit: all learn the bias
    assert timed == ["write", ("flip",)] and frozen.grad_req == "write"
    assert (short.epochs, short.later_images_per_s, short.first_epochs) == (2.3, 0.0, 0)
    # 3.1 epochs fit at the first speed (60 s spent), but not after another 20 s of timing: not timed
    just_past, frozen, timed = plan_timed(10)
    assert timed == ["write", ("flip",)] and (just_past.epochs, just_past.later_images_per_s) == (3.1, 0.0)
    assert just_past.elapsed_s == 60 and just_past.planned_total_s == pytest.approx(60 + 3.1 * 44_032 / 300 + 21.5)
    long, frozen, timed = plan_timed(25, tta="auto")
    assert timed == ["write", ("flip", "flip-shift"), "null"]  # timed frozen, then put back as the run starts
    assert frozen.grad_req == "write" and (long.later_images_per_s, long.first_epochs) == (360.0, 3)
    assert long.elapsed_s == 80 and long.planned_total_s == pytest.approx(
        80 + 3 * 44_032 / 300 + (long.epochs - 3) * 44_032 / 360 + 9 + 5_000 / 400)
    assert long.planned_total_s <= SAFETY * 25 * MIN < long.planned_total_s + long.later_epoch_s / 10


def plan_recipes(budget_min: float, wide_from_epochs: float = 10, model: str = "fastnet"):
    """workflow.budget.plan_run for cpu-fast with --wide-from-epochs on a fake machine: fastnet trains
    44,032-image epochs at 800 img/s and predicts 5,000 test images at 400 img/s, fastnet_wide at 360 and 200
    (9 s to start either), each recipe timed in 30 s from 60 s into the process. Returns the planned run and
    what was timed and put back, in order."""
    timed, clock = [], [60.0]
    speeds = {"fastnet": (800.0, 400.0), "fastnet_wide": (360.0, 200.0), "fastnet_small": (800.0, 400.0)}

    @contextlib.contextmanager
    def probe(cfg, net):
        assert net.model == cfg.model  # each recipe's own network
        yield SimpleNamespace(net=net, learn_first=(0, ()), batches_per_epoch=43,
                              train_data=SimpleNamespace(batch_size=1024))
        timed.append(f"put back {net.model}")

    def training_rate(probe, cfg, warm):
        timed.append(cfg.model)
        clock[0] += 30
        return speeds[cfg.model][0]

    def prediction(cfg, ttas):
        predict = speeds[cfg.model][1]
        return PredictionTiming(5_000, {"flip": predict, "flip-shift": predict / 30}, 9.0)

    measuring = Measuring(lambda: clock[0], probe, training_rate, prediction,
                          network=lambda cfg: SimpleNamespace(model=cfg.model))
    cfg = Config(model=model, time_budget=budget_min, tta="auto", warmup_epochs="auto", schedule="linear", lr=1.5,
                 wd=1.33e-3, wide_from_epochs=wide_from_epochs)
    return plan_run(cfg, SimpleNamespace(n_valid=0), SimpleNamespace(model=model), measuring), timed


def test_the_budget_trains_the_wider_recipe_where_enough_of_its_epochs_fit():
    """fastnet's plan leaves 42.1 epochs of 45 minutes: the wider recipe is timed too and fits 18.6 of its
    122-second epochs: it trains, with airbench95's learning rate, for the epochs its plan chose."""
    planned, timed = plan_recipes(45)
    assert timed == ["fastnet", "put back fastnet", "fastnet_wide", "put back fastnet_wide"]
    cfg, plan = planned.cfg, planned.plan
    assert planned.net.model == cfg.model == plan.model == "fastnet_wide"
    assert (cfg.lr, cfg.wd) == (pytest.approx(1.5 * 10 / 11.5), pytest.approx(1.33e-3 * 11.5 / 10))
    wide_epoch_s = 44_032 / 360
    # both plans made after both timings (120 s); six views would cost 6 epochs: two views
    assert plan.elapsed_s == 120 and plan.tta == "flip" and plan.epochs == in_tenths(
        (SAFETY * 45 * MIN - 120 - 9 - 5_000 / 200) / wide_epoch_s) == 18.6
    assert dict(plan.recipes_considered) == {"fastnet": in_tenths((SAFETY * 45 * MIN - 120 - 21.5) / (44_032 / 800)),
                                             "fastnet_wide": 18.6}
    assert "--wide-from-epochs chose fastnet_wide (fastnet would train 41.5 epochs)" in plan.summary()


def test_the_budget_keeps_the_runs_recipe_where_the_wider_one_would_be_short():
    """23 minutes: fastnet 20.5 epochs, enough to time the wider recipe (twice 10), which then fits 8.8: fastnet
    trains, planned once both were timed (19.9 epochs). 20 minutes: fastnet 17.6 epochs, the
    wider one not even timed; nor for another network, or without --wide-from-epochs."""
    planned, timed = plan_recipes(23)
    assert timed == ["fastnet", "put back fastnet", "fastnet_wide", "put back fastnet_wide"]
    assert planned.net.model == planned.cfg.model == planned.plan.model == "fastnet" and planned.cfg.lr == 1.5
    assert planned.plan.elapsed_s == 120 and dict(planned.plan.recipes_considered) == {
        "fastnet": in_tenths((SAFETY * 23 * MIN - 120 - 21.5) / (44_032 / 800)),
        "fastnet_wide": in_tenths((SAFETY * 23 * MIN - 120 - 34) / (44_032 / 360))} == {"fastnet": 19.9,
                                                                                         "fastnet_wide": 8.8}
    assert planned.plan.epochs == 19.9
    for budget_min, wide_from, model in ((20, 10, "fastnet"), (45, 0, "fastnet"), (45, 10, "fastnet_small")):
        planned, timed = plan_recipes(budget_min, wide_from, model)
        assert timed == [model, f"put back {model}"] and planned.cfg.model == model
        assert planned.plan.recipes_considered == () and planned.plan.elapsed_s == 90
        assert "--wide-from-epochs" not in planned.plan.summary()


def test_the_prediction_plans_its_measured_start_up():
    """submit.py's start-up as timed (here 9 s), not the 20-second allowance of a plan made from speeds alone."""
    timed = plan(budget_s=10 * MIN, elapsed_s=1 * MIN, train_images_per_s=300.0, train_images=44_032, valid_images=0,
                 test_images=5_000, predict_images_per_s=400.0, min_epochs=2, predict_startup_s=9.0)
    guessed = plan(budget_s=10 * MIN, elapsed_s=1 * MIN, train_images_per_s=300.0, train_images=44_032,
                   test_images=5_000, predict_images_per_s=400.0, min_epochs=2)
    assert timed.predict_s == 9 + 5_000 / 400 and guessed.predict_s == 20 + 5_000 / 400
    assert (timed.epochs, guessed.epochs) == (3.1, 3)  # the 11 s given back to training: a tenth of an epoch
    assert "prediction of 5,000 test images 0.4 min (9 s to start, then 400 img/s)" in timed.summary()


def test_the_header_check_is_timed_on_the_sample_and_counted_for_the_whole_folder(tmp_path):
    test = tmp_path / "test"
    test.mkdir()
    for i in range(1, 3001):
        (test / f"{i}.png").touch()  # listed only: the check below stands in for reading their headers
    checked, clock = [], [0.0]

    def check_headers(paths, folder):
        checked.extend(paths)
        clock[0] += 0.001 * len(paths)  # 1 ms an image

    sample = _sample_predictor(str(tmp_path), Config(num_workers=0), [mx.cpu()], lambda: clock[0], check_headers)
    assert sample.test_images == 3000 and len(checked) == prediction_sample(3000) == 1024
    assert len(set(checked)) == 1024 and str(test / "3.png") in checked  # spread over the folder: every 2nd
    assert sample.unread_check_s == pytest.approx(0.001 * (3000 - 1024))  # the 1,976 not checked


def test_the_prediction_is_timed_on_a_sample_scaled_to_the_test_set():
    assert prediction_sample(300_000) == PREDICT_SAMPLE == 4096  # Kaggle's test folder
    assert prediction_sample(5_000) == 1_024  # the holdout: timing 4,096 of 5,000 cost what predicting them does
    assert prediction_sample(50) == 1_024  # (the predictor stops at the test set's end)


@pytest.mark.slow
def test_a_budgeted_run_plans_itself_inside_the_budget_and_trains_what_it_decided(tmp_path):
    """train.py and submit.py with a 1-minute budget on the demo data, judged by the run's own records, not by
    the wall clock: a busy host slows a run and the budget answers by cutting it, which is the mechanism at
    work, not a failure (the wall clock of real budgets is measured by benchmarks/holdout.py)."""
    # the run fills its budget, and this was the suite's longest test at 2 minutes: 1 fits cpu-fast's Muon, which
    # needs one epoch (2.2 s here, with a busy core beside it: 14 s preparing, 43 epochs planned in 2 minutes);
    # SGD's warm-up needed 3, which 1 minute did not fit on the Xeon
    budget_min = 1.0
    trained = run_script("train.py", "--demo", "--preset", "cpu-fast", "--model", "fastnet_small", "--batch-size", "64",
                         "--time-budget", budget_min, "--out", tmp_path / "run", "--no-progress")
    assert trained.returncode == 0, trained.stderr
    submitted = run_script("submit.py", "--run", tmp_path / "run", "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    with open(tmp_path / "run" / "config.json") as f:
        record = json.load(f)
    chosen = record["plan"]["time_budget"]
    assert chosen["budget_s"] == budget_min * MIN and chosen["planned_total_s"] <= SAFETY * chosen["budget_s"]
    later_epoch_s = chosen["later_epoch_s"] if chosen["first_epochs"] else None
    assert chosen["planned_total_s"] == pytest.approx(chosen["elapsed_s"] + chosen["predict_s"] + training_s(
        chosen["epochs"], chosen["epoch_s"], later_epoch_s, chosen["first_epochs"]))
    replans = record["plan"]["replans"]  # only if this machine's pace changed during the run
    for decided in replans:  # each ends inside the budget at the pace measured, or keeps the fewest epochs
        fewest = max(decided["after_epoch"] + 1, chosen["min_epochs"])
        assert decided["end_s"] <= decided["budget_s"] or decided["epochs"] == fewest, decided
    cuts = [r for r in replans if r["epochs"] != r["epochs_before"]]  # (not those that changed the views only)
    epochs = cuts[-1]["epochs"] if cuts else chosen["epochs"]
    assert record["plan"]["epochs"] == epochs >= chosen["min_epochs"]
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == math.ceil(epochs)  # trained what it decided
    # cpu-fast's Muon has no warm-up: any cut keeps one epoch
    assert record["config"]["optimizer"] == "muon"
    assert record["plan"]["warmup_epochs"] == 0 == chosen["min_epochs"] - 1
    assert record["config"]["time_budget"] == budget_min
    assert f"time budget {budget_min:.1f} min" in trained.stderr and f"{chosen['epochs']:g} epochs" in trained.stderr
    assert record["plan"]["precision"] in ("float32", "bfloat16") and record["startup"]["threads"]
    # cpu-fast's --tta auto, decided by the budget on both measured views and saved as decided
    left = dict(chosen["tta_considered"])
    six_pay = left["flip-shift"] >= SIX_VIEWS_FROM["muon"] and round(left["flip"] - left["flip-shift"], 6) <= 1
    assert chosen["six_views_from"] == SIX_VIEWS_FROM["muon"] == 2.5
    assert chosen["tta"] == ("flip-shift" if six_pay else "flip")
    assert record["plan"]["tta"] == (replans[-1]["tta"] if replans else chosen["tta"])  # a replan may change them
    assert chosen["epochs"] == left[chosen["tta"]] and f"--tta auto chose {chosen['tta']}" in trained.stderr


BUDGET_MIN = 600  # the in-process runs' budget: their lengths are what the given speeds make of it


def given_speeds(epochs: dict[str, float], timed: list, replan=None) -> Budgeting:
    """A run's budgeting whose measuring is this machine's (the run's own networks and loaders stepped and rewound
    as a run does, the prediction timed as submit.py runs it) but reports the speeds at which a BUDGET_MIN-minute
    plan trains `epochs[model]` of each recipe's epochs (+ 0.05, which the plan's tenths drop) and predicts in no
    time: the plans are the real arithmetic's on given numbers, so the test knows each run's length however busy
    the host. `timed` gets each recipe's (model, parameter count, pieces per batch) as it is timed. After each
    epoch `replan` decides (default: the run keeps its length; a demo epoch of seconds on a 600-minute plan would
    lengthen it)."""
    def measuring(ctxs, cluster, data, loaders, precision, sample, clock):
        real = this_machine(ctxs, cluster, data, loaders, precision, sample, clock)

        def training_rate(probe, recipe, warm):
            real.training_rate(probe, recipe, warm)  # the probe's steps, as a run takes them
            timed.append((recipe.model, sum(p.data().size for p in probe.net.collect_params().values()), probe.pieces))
            images = probe.batches_per_epoch * probe.train_data.batch_size + data.n_valid * VALIDATION_COST
            left_s = SAFETY * BUDGET_MIN * MIN - clock()  # the plan's margin kept, the time spent so far gone
            return images * (epochs[recipe.model] + 0.05) / left_s

        def prediction(recipe, ttas):
            timing = real.prediction(recipe, ttas)
            return dataclasses.replace(timing, images_per_s={views: 1e12 for views in ttas}, startup_s=0.0)

        return dataclasses.replace(real, training_rate=training_rate, prediction=prediction)

    def keeps_its_length(plan, epochs, done, last_epoch_s, age_s, tta="", earlier_s=None):
        return Replan(done, epochs, epochs, 1.0, 0.0, 0.0, plan.budget_s)

    return Budgeting(measuring=measuring, replan=replan or keeps_its_length)


def train_budgeted(flags: list[str], out, budgeting: Budgeting) -> None:
    """scripts/train.py with `flags` and a BUDGET_MIN-minute budget, kept by `budgeting`, in this process."""
    args = train_parser().parse_args([*flags, "--time-budget", str(BUDGET_MIN), "--out", str(out), "--no-progress"])
    cfg = config_from_args(args, args.preset)
    workflow.train(cfg, resolve_contexts(cfg.gpu_ids(), cfg.cpus), str(out), show_progress=False, budgeting=budgeting)


def budgeted_and_fixed(tmp_path, epochs: dict[str, float], flags: list[str], fixed_flags: list[str],
                       budgeting_of=given_speeds) -> tuple[dict, list]:
    """A --time-budget run of cpu-fast on the demo data whose plan gives each recipe `epochs[model]` epochs
    (`given_speeds`), and the `--epochs` run of `fixed_flags` as long as the budgeted one. Returns both runs'
    config.json records and the recipes timed, after checking the two trained bit for bit alike."""
    timed = []
    common = ["--demo", "--preset", "cpu-fast", "--batch-size", "64", "--precision", "float32"]
    # (float32: AMP would stay switched on in this process)
    train_budgeted([*common, *flags], tmp_path / "budgeted", budgeting_of(epochs, timed))
    length = json.loads((tmp_path / "budgeted" / "config.json").read_text())["plan"]["epochs"]
    train_command([*common, *fixed_flags, "--epochs", str(length), "--out", str(tmp_path / "fixed"), "--no-progress"])
    records = {}
    for run in ("budgeted", "fixed"):
        with open(tmp_path / run / "config.json") as f:
            records[run] = json.load(f)
        assert records[run]["plan"]["epochs"] == length
        assert len(pd.read_csv(tmp_path / run / "metrics.csv")) == math.ceil(length)
    assert records["fixed"]["plan"]["time_budget"] is None
    budgeted, reference = (mx.nd.load(str(tmp_path / run / "model.params")) for run in ("budgeted", "fixed"))
    assert budgeted.keys() == reference.keys()
    for name, value in reference.items():
        np.testing.assert_array_equal(budgeted[name].asnumpy(), value.asnumpy(), err_msg=name)
    return records, timed


@pytest.mark.slow
def test_the_budgets_measuring_leaves_no_trace(tmp_path):
    """A budgeted run is bit for bit the `--epochs N` run of its length: the measuring steps the run's own
    network, trainer and loader (cpu-fast's batches in 4 pieces: the speed the run will go at), and rewinds them."""
    small = ["--model", "fastnet_small"]
    records, timed = budgeted_and_fixed(tmp_path, {"fastnet_small": 3}, small, small)
    chosen = records["budgeted"]["plan"]["time_budget"]
    assert chosen["epochs"] == 3 and chosen["train_images_per_s"] > 0
    assert [(model, pieces) for model, _, pieces in timed] == [("fastnet_small", 4)]
    # --tta auto: two views without a budget; with one, six at 3 epochs of Muon (they pay from 2.5 and cost nothing
    # at the speeds given)
    assert records["fixed"]["plan"]["tta"] == "flip" and chosen["tta"] == "flip-shift"


@pytest.mark.slow
def test_a_budgeted_run_is_repeated_by_its_plan_not_planned_again(tmp_path):
    """`submit --retrain` and `--config RUN` of a budgeted run repeat its length (cut here from 3 epochs to 2.5
    after epoch 2, as a slowed host would) and plan nothing: no budget in their plans. The run trains on every
    image (cpu-fast: no validation), so both repeats train its very bits."""
    def cut_after_epoch_2(plan, epochs, done, last_epoch_s, age_s, tta="", earlier_s=None):
        return Replan(done, epochs, 2.5 if done == 2 else epochs, 2.0, 0.0, 0.0, plan.budget_s)

    run = tmp_path / "run"
    common = ["--preset", "cpu-fast", "--model", "fastnet_small", "--batch-size", "64", "--precision", "float32"]
    train_budgeted(["--demo", *common], run, given_speeds({"fastnet_small": 3}, [], cut_after_epoch_2))
    asked, plan = rundir.saved_run(str(run / "config.json"))
    assert asked.time_budget == BUDGET_MIN and plan.budget["epochs"] == 3 and plan.length.changes == ((2, 3),)
    assert len(pd.read_csv(run / "metrics.csv")) == 3 and plan.length.epochs == 2.5
    assert submit_command(["--run", str(run), "--retrain", "--no-progress"]) == 0
    train_command(["--config", str(run), "--out", str(tmp_path / "again"), "--no-progress"])
    trained = mx.nd.load(str(run / "model.params"))
    for repeat in (run / "retrain", tmp_path / "again"):
        _, repeated = rundir.saved_run(str(repeat / "config.json"))
        assert (repeated.length.epochs, repeated.length.changes, repeated.budget) == (2.5, ((2, 3),), None)
        again = mx.nd.load(str(repeat / "model.params"))
        for name, value in trained.items():
            np.testing.assert_array_equal(again[name].asnumpy(), value.asnumpy(), err_msg=f"{repeat}: {name}")


@pytest.mark.slow
def test_a_budget_that_chooses_the_wider_recipe_trains_it_as_its_epochs_run_would(tmp_path):
    """cpu-fast's fastnet, planned at 2 epochs, with --wide-from-epochs 0.5: the wider recipe is timed on a network
    of its own, planned at 1 epoch and chosen; the run is bit for bit cpu-fast-sgd's `--model fastnet_wide` (in
    cpu-fast's 4 pieces) with airbench95's learning rate and weight decay for 1 epoch (airbench95's recipe, not
    cpu-fast's Muon), and records both recipes' plans. The wider recipe trains on batches of its own size (here
    64: the demo's 900 images hold no batch of airbench95's 1024), not the run's (32): the fixed twin at 64 proves
    it."""
    def budgeting(epochs, timed):  # (no warm-up: airbench95's needs 2 epochs at least, where 1 is enough here)
        return dataclasses.replace(given_speeds(epochs, timed), wider=lambda cfg: dataclasses.replace(
            widened(cfg), batch_size=64, warmup_epochs=0))

    wide = widened(Config(**PRESETS["cpu-fast"]))
    records, timed = budgeted_and_fixed(tmp_path, {"fastnet": 2, "fastnet_wide": 1},
                                        ["--model", "fastnet", "--wide-from-epochs", "0.5", "--batch-size", "32"],
                                        ["--preset", "cpu-fast-sgd", "--batch-pieces", "4", "--model", "fastnet_wide",
                                         "--lr", repr(wide.lr),
                                         "--wd", repr(wide.wd), "--warmup-epochs", "0"], budgeting)
    asked, plan = records["budgeted"]["config"], records["budgeted"]["plan"]
    assert asked["model"] == "fastnet" and plan["recipe"] == {  # what was asked for, and what the budget chose
        "model": "fastnet_wide", "optimizer": "sgd", "batch_size": 64, "lr": wide.lr, "wd": wide.wd,
        "lookahead_every": 5}
    saved, _ = rundir.load(str(tmp_path / "budgeted"))
    assert (saved.model, saved.optimizer, saved.lr, saved.wd) == ("fastnet_wide", "sgd", wide.lr, wide.wd)
    assert saved.batch_size == 64 and asked["batch_size"] == 32  # it trained on batches of its own recipe's size
    chosen = plan["time_budget"]
    assert chosen["model"] == "fastnet_wide" and chosen["recipes_considered"] == [["fastnet", 2], ["fastnet_wide", 1]]
    assert chosen["epochs"] == plan["epochs"] == 1
    (narrow, narrow_size, narrow_pieces), (wider, wide_size, wide_pieces) = timed  # each once, on a network of its own
    assert (narrow, wider) == ("fastnet", "fastnet_wide") and wide_size > 2 * narrow_size
    assert narrow_pieces == wide_pieces == 4  # timed as they train: in cpu-fast's pieces


@pytest.mark.slow
def test_bfloat16_training_runs_and_is_recorded(tmp_path):
    trained = run_script("train.py", "--demo", "--preset", "cpu-fast", "--model", "fastnet_small", "--batch-size", "64",
                         "--epochs", "3", "--precision", "bfloat16", "--cpus", "2", "--out", tmp_path / "run",
                         "--no-progress")
    if not STARTUP.bf16_kernels:  # an AVX2 CPU: refused before any work, named
        assert trained.returncode == 2 and re.search(BF16_REFUSED, trained.stderr), trained.stderr
        assert "Traceback" not in trained.stderr and not (tmp_path / "run").exists()
        return
    assert trained.returncode == 0, trained.stderr
    with open(tmp_path / "run" / "config.json") as f:
        record = json.load(f)
    assert record["plan"]["precision"] == "bfloat16" and record["config"]["time_budget"] == 0  # --epochs won
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert len(metrics) == 3 and metrics["train_loss"].is_monotonic_decreasing and metrics["train_acc"].iloc[-1] > 0.5


def test_a_replan_costs_a_few_dozen_steps_however_long_the_budget_and_agrees_with_stepping():
    """A week's budget of 1-second epochs: stepping a tenth at a time took minutes, which the run then
    counted as its own slowdown. replan's one search, longest_tenths, asks a few dozen lengths however long the
    run; the lengths it finds are the ones stepping finds."""
    from gluon_cifar.training import replan as replanning
    week = plan(budget_s=10080 * MIN, elapsed_s=60.0, train_images_per_s=1000.0, train_images=1000, test_images=0,
                predict_images_per_s=1.0, min_epochs=1)
    assert week.epochs == in_tenths((SAFETY * 10080 * MIN - 60) / 1.0) == 544_260
    ahead = replan(week, week.epochs, 2, 0.5, 62.0)  # twice as fast: lengthened to what ends by the margin
    assert ahead.epochs == in_tenths(2 + (SAFETY * 10080 * MIN - 62) / 0.5)
    behind = replan(week, week.epochs, 2, 2.0, 64.0)  # twice as slow: cut
    assert behind.epochs == in_tenths(2 + SAFETY * (10080 * MIN - 64) / 2.0)
    asked = []
    found = replanning.longest_tenths(week.epochs, lambda n: asked.append(n) or n <= ahead.epochs)
    assert found == ahead.epochs and len(asked) < 100  # from 544,260 epochs to 1,088,518: 45 lengths asked
    for start, end_by in ((3, 7.25), (3, 3.05), (9.3, 100.0)):  # against a tenth at a time
        stepped = start
        while round(stepped + 0.1, 1) <= end_by:
            stepped = round(stepped + 0.1, 1)
        assert replanning.longest_tenths(start, lambda n: n <= end_by) == stepped
    assert replanning.longest_tenths(3, lambda n: n <= 7.25, below=5) == 4.9  # below `below`, not at it
    assert replanning.longest_tenths(3, lambda n: n <= 3.05, below=5) == 3


def run_through(chosen: BudgetPlan, pace_of) -> tuple[list[tuple[int, float]], float]:
    """A run of `chosen` as RunHooks replans it after each epoch from the second, epoch k taking pace_of(k) times
    its planned seconds: the (epoch, new length) of each change, and when the run and its prediction end."""
    epochs, age, earlier, changes, done = chosen.epochs, chosen.elapsed_s, {}, [], 0
    while done < epochs:
        done += 1
        seconds = pace_of(done) * planned_s(chosen, done - 1, min(done, epochs))
        age += seconds
        if done > 1:
            decided = replan(chosen, epochs, done, seconds, age, "", earlier)
            if decided.epochs != epochs:
                changes.append((done, decided.epochs))
                epochs = decided.epochs
            earlier[done] = seconds
    return changes, age + chosen.predict_s


def test_a_runs_own_noise_does_not_swing_its_length():
    """--time-budget 1.5 with sub-second epochs, each a fifth faster or slower at random: its length changed
    39-45 times in 5 such runs, between 70 and 101 epochs, when each epoch's pace alone decided. With the median
    of the latest epochs (`pace`) and a lengthening worth at least 2% of the budget: at most 8, and every run
    still ends inside its 90 seconds."""
    short = plan(budget_s=90.0, elapsed_s=10.0, train_images_per_s=1000.0, train_images=800, test_images=2_000,
                 predict_images_per_s=1000.0, min_epochs=1, predict_startup_s=3.0)
    assert short.epochs == 82.5
    for seed in range(5):
        rng = random.Random(seed)
        changes, end_s = run_through(short, lambda epoch: rng.uniform(0.8, 1.2))
        assert len(changes) <= 8 and 0.9 * short.budget_s < end_s <= short.budget_s, (seed, changes, end_s)


def test_the_first_epochs_pace_is_not_taken_for_the_later_ones():
    """cpu-fast on the Zen 4 (benchmarks/holdout.jsonl, seed 0): epochs 2-3, the whitening bias still learning,
    ran at 0.79x their probe's time, the frozen ones at 0.98x theirs; the run was lengthened from 18.3 to 24.8
    epochs, then cut to 20.2 once a frozen epoch showed its pace. Here the later epochs and the prediction are
    not expected to beat their plan before they have been timed: no cut follows a lengthening."""
    zen4 = plan(budget_s=45 * MIN, elapsed_s=150.0, train_images_per_s=387.0, later_images_per_s=470.0,
                first_epochs=3, train_images=44_000, test_images=300_000, predict_images_per_s=700.0, min_epochs=1)
    changes, end_s = run_through(zen4, lambda epoch: 1.3 if epoch == 1 else 0.79 if epoch <= 3 else 0.98)
    lengths = [zen4.epochs] + [epochs for _, epochs in changes]
    assert lengths == sorted(lengths) and lengths[-1] - lengths[0] <= 2 and end_s <= zen4.budget_s


def test_a_host_that_slows_down_is_cut_after_two_epochs_and_near_the_end_at_once():
    """The holdout plan (epochs of 78 s from the 4th on), its host 1.67x slower from epoch k on: from epoch 10,
    cut after epoch 11 (the median of the latest three shows it); from epoch 13, with under 3 epochs left, after
    epoch 13 itself. One slow epoch alone changes nothing. Every run ends inside its budget."""
    chosen = holdout_plan()
    changes, end_s = run_through(chosen, lambda epoch: 1.67 if epoch >= 10 else 1.0)
    assert [epoch for epoch, epochs in changes if epochs < chosen.epochs] == [11] and end_s <= chosen.budget_s
    changes, end_s = run_through(chosen, lambda epoch: 1.67 if epoch >= 13 else 1.0)
    assert changes[-1][0] == 13 and changes[-1][1] < changes[-2][1] and end_s <= chosen.budget_s
    changes, end_s = run_through(chosen, lambda epoch: 1.67 if epoch == 6 else 1.0)
    assert all(epochs >= chosen.epochs for _, epochs in changes) and end_s <= chosen.budget_s
