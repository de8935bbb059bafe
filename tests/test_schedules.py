"""The optimisation the presets switch on: schedules, Nesterov, label smoothing, lookahead."""

import dataclasses
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd

from gluon_cifar.config import Config
from gluon_cifar.models import build_model
from gluon_cifar.training.averaging import Lookahead
from gluon_cifar.training.optim import SmoothedCrossEntropy, make_loss, make_trainer
from gluon_cifar.training.run_plan import RunLength, RunPlan
from gluon_cifar.training.schedules import epoch_batches, last_epoch, learning_rate, total_updates


def lr_schedule(cfg, batches_per_epoch):
    return lambda step: learning_rate(cfg, step, batches_per_epoch)


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    schedule = lr_schedule(Config(lr=0.1, epochs=10, schedule="cosine", warmup_epochs=2), batches_per_epoch=10)
    lrs = np.array([schedule(update) for update in range(1, 101)])  # the optimizer counts from 1
    # the warm-up climbs over the first 20 updates' worth (reaching lr one update early: the
    # optimizer counts from 1), then the cosine only goes down
    assert lrs[0] == pytest.approx(0.1 / 20, abs=0.006) and lrs[18] == pytest.approx(0.1, rel=0.01)
    assert np.all(np.diff(lrs[:19]) > 0) and np.all(np.diff(lrs[18:]) <= 1e-12)
    assert lrs[59] == pytest.approx(0.05, rel=0.08)  # half-way through the cosine: lr / 2
    assert lrs[-1] < 0.001
    step = lr_schedule(Config(lr=0.1, epochs=10, lr_period=4, lr_decay=0.5), batches_per_epoch=10)
    assert [step(u) for u in (1, 40, 41, 81)] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_linear_schedule_warms_up_then_falls_in_a_straight_line_to_zero():
    schedule = lr_schedule(Config(lr=1.5, epochs=10, schedule="linear", warmup_epochs=2), batches_per_epoch=10)
    lrs = np.array([schedule(update) for update in range(1, 101)])
    # gluoncv's schedulers reach their target one update before their end, so the peak is held twice
    assert np.all(np.diff(lrs[:19]) > 0) and lrs[18] == lrs[19] == pytest.approx(1.5)
    np.testing.assert_allclose(np.diff(lrs[19:99]), -1.5 / 79, rtol=1e-6)  # equal steps down...
    assert lrs[98] == lrs[99] == pytest.approx(0, abs=1e-9)  # ...to 0 at the end


def _gluoncv_schedule(cfg, batches_per_epoch):
    """What the learning rate was before it became a plain function: GluonCV's schedulers as the
    optimizer called them (with its 1-based update count)."""
    from gluoncv.utils import LRScheduler, LRSequential
    if cfg.schedule == "step":
        return LRScheduler("step", base_lr=cfg.lr, nepochs=cfg.epochs, iters_per_epoch=batches_per_epoch,
                           step_epoch=list(range(cfg.lr_period, cfg.epochs, cfg.lr_period)),
                           step_factor=cfg.lr_decay, offset=1)
    decay = LRScheduler(cfg.schedule, base_lr=cfg.lr, target_lr=0.0, nepochs=cfg.epochs - cfg.warmup_epochs,
                        iters_per_epoch=batches_per_epoch)
    if not cfg.warmup_epochs:
        return decay
    return LRSequential([LRScheduler("linear", base_lr=0.0, target_lr=cfg.lr, nepochs=cfg.warmup_epochs,
                                     iters_per_epoch=batches_per_epoch), decay])


@pytest.mark.parametrize("settings, batches", [
    ({"lr": 0.02, "epochs": 20, "lr_period": 4, "lr_decay": 0.9}, 7),  # the book's
    ({"lr": 0.1, "epochs": 9, "lr_period": 4, "lr_decay": 0.5}, 3),
    ({"lr": 1.5, "epochs": 10, "schedule": "linear", "warmup_epochs": 2}, 49),  # cpu-fast's
    ({"lr": 0.1, "epochs": 12, "schedule": "cosine", "warmup_epochs": 5}, 11),
    ({"lr": 0.3, "epochs": 6, "schedule": "cosine"}, 5),
    ({"lr": 0.3, "epochs": 6, "schedule": "linear"}, 5),
])
def test_learning_rate_equals_gluoncvs_schedulers_at_every_update(settings, batches):
    """Bit for bit what the GluonCV schedulers gave before (and past the end, where they hold)."""
    cfg = Config(**settings)
    reference = _gluoncv_schedule(cfg, batches)
    for step in range(1, cfg.epochs * batches + 3):
        assert learning_rate(cfg, step, batches) == reference(step), step


def _rates(cfg: Config, batches: int, updates: int, length: RunLength | None = None) -> list[float]:
    return [learning_rate(cfg, u, batches, length) for u in range(1, updates + 1)]


def changed(epochs: float, *changes: tuple[int, float]) -> RunLength:
    """A run `epochs` long changed to each (after_epoch, new length) in turn."""
    length = RunLength(epochs)
    for after, new in changes:
        length.change(new, after)
    return length


def test_a_run_lengthened_during_its_warm_up_takes_the_longer_runs_own_schedule():
    """What a time budget does to a fast run early: until the decay begins, the longer run's rates are the
    ones this run used, so it goes on as the longer run would have from the start (the change recorded all
    the same). cpu-fast's shape: 2 warm-up epochs, then a line. A step decay's steps fall on fixed epochs:
    the same at any epoch."""
    batches = 10
    for schedule in ("linear", "cosine"):
        cfg = Config(lr=2.0, epochs=6, schedule=schedule, warmup_epochs=2)
        for done in (1, 2):
            longer = changed(6, (done, 9))
            assert (longer.epochs, longer.changes) == (9, ((done, 6),))
            assert _rates(cfg, batches, 95, longer) == _rates(dataclasses.replace(cfg, epochs=9), batches, 95)
            assert _rates(cfg, batches, done * batches) == _rates(cfg, batches, done * batches, longer)
        planned, longer = _rates(cfg, batches, 21), _rates(cfg, batches, 21, changed(6, (2, 9)))
        assert longer[19] == planned[19] == 2.0 and planned[20] < longer[20] < 2.0  # from the peak, a gentler slope
    step = Config(lr=0.1, epochs=6, lr_period=2, lr_decay=0.5)
    assert _rates(step, batches, 95, changed(6, (5, 9))) == _rates(dataclasses.replace(step, epochs=9), batches, 95)
    assert _rates(step, batches, 51) == _rates(step, batches, 51, changed(6, (5, 9)))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_length_changed_once_the_rate_falls_goes_on_down_from_the_rate_reached(schedule):
    """After epoch 4 of a 6-epoch run (2 of warm-up), lengthened to 9.5 or cut to 5.3: every rate used so
    far stays, the next ones fall from the one reached (a plain 9.5-epoch schedule would jump back up,
    a 5.3-epoch one down) to 0 at the new end, and the run's length records where (a resumed run reads it
    there, from its plan). A second change goes on from the first's rates."""
    batches = 10
    cfg = Config(lr=2.0, epochs=6, schedule=schedule, warmup_epochs=2)
    planned = _rates(cfg, batches, 60)
    reached = planned[39]  # update 40, epoch 4's last
    for epochs, total in ((9.5, 95), (5.3, 53)):
        length = changed(6, (4, epochs))
        assert length.epochs == epochs and length.changes == ((4, 6),)
        rates = _rates(cfg, batches, total + 2, length)
        assert rates[:40] == planned[:40]
        plain = _rates(dataclasses.replace(cfg, epochs=epochs), batches, 41)
        assert abs(plain[40] - reached) > 0.1 and abs(rates[40] - reached) < 2.0 / (total - 41) * 1.01
        assert all(a > b for a, b in zip(rates[39:total - 1], rates[40:total - 1]))  # straight down, no jump
        assert rates[total - 2] == rates[total - 1] == rates[total + 1] == 0.0  # 0 from the new end's (n-1)-th
        if schedule == "linear":
            np.testing.assert_allclose(np.diff(rates[39:total - 1]), -reached / (total - 41), rtol=1e-9)
    twice = changed(6, (4, 9.5), (6, 8))  # then cut back after epoch 6
    assert twice.changes == ((4, 6), (6, 9.5))
    first, second = _rates(cfg, batches, 95, changed(6, (4, 9.5))), _rates(cfg, batches, 80, twice)
    assert second[:60] == first[:60] and 0 < second[60] < first[59] and second[78] == 0.0
    plan = RunPlan(twice, 2, "flip", "float32")
    saved = RunPlan.from_record(json.loads(json.dumps(plan.as_record())), "config.json")  # config.json's lists
    assert saved == plan and _rates(cfg, batches, 80, saved.length) == second


def test_a_fractional_run_stops_part_way_through_its_last_epoch_as_airbench_counts():
    assert total_updates(9.9, 43) == 426 and last_epoch(9.9) == 10  # airbench: ceil(43 * 9.9) updates
    assert epoch_batches(9.9, 43, 9) == 43 and epoch_batches(9.9, 43, 10) == 39
    assert total_updates(9.3, 43) == 400  # not 401: 9.3 * 43 is 399.90000000000003 in floats
    assert (total_updates(10, 43), last_epoch(10), epoch_batches(10, 43, 10)) == (430, 10, 43)
    assert total_updates(2.01, 43) == 87 and epoch_batches(2.01, 43, 3) == 1
    cfg = Config(lr=1.5, epochs=9.3, schedule="linear", warmup_epochs=2)
    lrs = np.array([learning_rate(cfg, u, 43) for u in range(1, 401)])
    assert lrs[85] == pytest.approx(1.5) and lrs[-1] == lrs[-2] == pytest.approx(0, abs=1e-9)  # down to 0 at 400
    np.testing.assert_allclose(np.diff(lrs[86:399]), -1.5 / 313, rtol=1e-6)
    whole = np.array([learning_rate(Config(**{**cfg.to_dict(), "epochs": 9}), u, 43) for u in range(1, 401)])
    np.testing.assert_array_equal(lrs[:86], whole[:86])  # the same warm-up; a gentler line after it
    tiny = Config(lr=1.0, epochs=3, schedule="linear", warmup_epochs=2)  # one batch an epoch: a decay of one
    assert [learning_rate(tiny, u, 1) for u in (1, 2, 3)] == [1.0, 1.0, 1.0]  # update (it divided by 0)


def test_lookahead_averages_on_a_fractional_runs_last_update():
    """9 updates of a 2.25-epoch run of 4 batches: the 9th (epoch 3, batch 1) is no multiple of `every`
    and no epoch's end, but the run's last: the weights become the average there."""
    net = gluon.nn.Dense(1, in_units=1)
    net.initialize(ctx=mx.cpu())
    lookahead = Lookahead(net, every=3, batches_per_epoch=4, length=RunLength(2.25))
    assert lookahead.decay(8) < 1.0 == lookahead.decay(9)
    net.weight.set_data(nd.array([[1.0]]))
    lookahead(2, 4)  # the average starts here
    net.weight.set_data(nd.array([[5.0]]))
    lookahead(3, 1)
    assert net.weight.data().asscalar() == 1.0


def test_nesterov_selects_the_nag_optimizer():
    net = build_model("cifar_resnet20_v1", 10, [mx.cpu()], seed=0)
    assert isinstance(make_trainer(net, Config(nesterov=True)).optimizer, mx.optimizer.NAG)
    assert type(make_trainer(net, Config()).optimizer) is mx.optimizer.SGD


def test_label_smoothing_loss_matches_its_formula():
    logits = nd.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    labels = nd.array([0, 1])
    log_p = np.log(np.exp(logits.asnumpy()) / np.exp(logits.asnumpy()).sum(axis=1, keepdims=True))
    target = 0.9 * np.eye(3)[[0, 1]] + 0.1 / 3
    np.testing.assert_allclose(SmoothedCrossEntropy(0.1)(logits, labels).asnumpy(), -(target * log_p).sum(axis=1),
                               rtol=1e-5)
    np.testing.assert_allclose(SmoothedCrossEntropy(0.0)(logits, labels).asnumpy(),
                               gluon.loss.SoftmaxCrossEntropyLoss()(logits, labels).asnumpy(), rtol=1e-5)
    assert isinstance(make_loss(Config(label_smoothing=0.2)), SmoothedCrossEntropy)


def test_lookahead_pulls_weights_towards_their_average_on_schedule():
    net = gluon.nn.Dense(3, in_units=2)
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    lookahead = Lookahead(net, every=5, batches_per_epoch=12, length=RunLength(2))
    assert lookahead.decay(12) == pytest.approx(0.95 ** 5 * (12 / 24) ** 3) and lookahead.decay(24) == 1.0

    def set_weight(value):
        for w in net.weight.list_data():
            w[:] = value

    set_weight(1.0)
    lookahead(1, 5)  # first call: the average starts from the weights
    set_weight(3.0)
    lookahead(1, 7)  # not an averaging step: untouched
    assert (net.weight.data().asnumpy() == 3.0).all()
    lookahead(1, 10)
    d = lookahead.decay(10)
    for w in net.weight.list_data():  # every context's copy
        np.testing.assert_allclose(w.asnumpy(), d * 1.0 + (1 - d) * 3.0, rtol=1e-6)
    averaged = net.weight.data().asnumpy().copy()
    set_weight(9.0)
    lookahead(1, 12)  # an epoch's last batch is an averaging step too
    d12 = lookahead.decay(12)
    np.testing.assert_allclose(net.weight.data().asnumpy(), d12 * averaged + (1 - d12) * 9.0, rtol=1e-6)
    settled = net.weight.data().asnumpy().copy()
    set_weight(-5.0)
    lookahead(2, 12)  # the very last update: the weights become the average
    np.testing.assert_allclose(net.weight.data().asnumpy(), settled, rtol=1e-6)
