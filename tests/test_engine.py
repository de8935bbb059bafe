"""The multi-context path, exercised with several CPU contexts as if they were GPUs."""
import dataclasses
import functools
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd

from gluon_cifar.config import Config
from gluon_cifar.models import build_model
from gluon_cifar.training.averaging import Lookahead
from gluon_cifar.training.engine import FitHooks, evaluate, fit, train_one_epoch
from gluon_cifar.training.optim import make_trainer
from gluon_cifar.training.parts import TrainingParts
from gluon_cifar.training.run_plan import RunLength
from gluon_cifar.training.schedules import learning_rate
from tests.conftest import needs_bfloat16_kernels


def small_net(ctxs):
    """No BatchNorm: per-shard batch statistics would make multi-device results differ by design."""
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, in_channels=3, activation="relu"), gluon.nn.GlobalAvgPool2D(),
            gluon.nn.Dense(10, in_units=4))
    mx.random.seed(0)
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    return net


def batches(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(nd.array(rng.normal(size=(n, 3, 8, 8))), nd.array(rng.integers(0, 10, n), dtype="int32"))
            for n in sizes]


def train_params(n_ctx, sizes, optimizer="sgd", pieces=1):
    """The weights after one epoch of `sizes` batches over `n_ctx` contexts, each context's slice in `pieces`."""
    ctxs = [mx.cpu(i) for i in range(n_ctx)]
    net = small_net(ctxs)
    cfg = Config(lr=0.1, momentum=0.9, wd=1e-4, optimizer=optimizer, nesterov=optimizer == "muon")
    parts = TrainingParts(net, make_trainer(net, cfg), gluon.loss.SoftmaxCrossEntropyLoss(), [], pieces=pieces)
    loss, acc, _ = train_one_epoch(parts, batches(sizes), ctxs)
    return net, [[d.asnumpy() for d in p.list_data()] for p in net.collect_params().values()], (loss, acc)


# 7 splits unevenly over 2 and 3; the final 2-sample batch leaves the third context without data. Muon
# orthogonalises the summed filter gradient on every context: the replicas must still agree.
@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
@pytest.mark.parametrize("n_ctx", [2, 3])
def test_contexts_match_single_context(n_ctx, optimizer):
    sizes = [7, 6, 2]
    _, single, _ = train_params(1, sizes, optimizer)
    net, multi, _ = train_params(n_ctx, sizes, optimizer)
    assert len(multi) == len(single) == 4
    for replicas, (reference,) in zip(multi, single):
        assert len(replicas) == n_ctx
        for replica in replicas:
            np.testing.assert_allclose(replica, reference, rtol=1e-4, atol=1e-6)


def test_resnet_replicas_stay_identical_over_three_contexts():
    ctxs = [mx.cpu(i) for i in range(3)]
    net = build_model("resnet18", 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    trainer = make_trainer(net, Config())
    data = [(nd.random.normal(shape=(5, 3, 32, 32)), nd.array([0, 1, 2, 3, 4], dtype="int32"))] * 2
    loss, acc, examples = train_one_epoch(TrainingParts(net, trainer, gluon.loss.SoftmaxCrossEntropyLoss(), []), data, ctxs)
    assert examples == 10 and np.isfinite(loss) and 0 <= acc <= 1
    for param in net.collect_params().values():
        if param.grad_req == "null":
            continue  # BatchNorm running statistics are per device by design
        first, *others = [d.asnumpy() for d in param.list_data()]
        for other in others:
            np.testing.assert_array_equal(first, other)


# Batches of 11, 7 and 2 over 1-3 contexts in 2-4 pieces: uneven pieces, contexts with fewer samples than
# pieces, and a context left without data. Three updates: gradients summed in place must start at zero each time.
@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
@pytest.mark.parametrize("n_ctx, pieces", [(1, 4), (2, 3), (3, 2)])
def test_a_batch_in_pieces_is_the_same_update_as_the_whole_batch(n_ctx, pieces, optimizer):
    """Issue 44's memory saver: without batch statistics, a step whose batch went through in pieces is the
    whole batch's step, to float tolerance (the sums are added in another order), and so are the metrics."""
    sizes = [11, 7, 2]
    _, whole, whole_metrics = train_params(n_ctx, sizes, optimizer)
    _, split, split_metrics = train_params(n_ctx, sizes, optimizer, pieces)
    for replicas, reference in zip(split, whole):
        for replica, expected in zip(replicas, reference):
            np.testing.assert_allclose(replica, expected, rtol=1e-5, atol=1e-6)
    assert split_metrics == pytest.approx(whole_metrics, rel=1e-5)
    _, once, _ = train_params(n_ctx, sizes[:1], optimizer, pieces)
    assert not all(np.allclose(a[0], b[0]) for a, b in zip(once, split))  # (three updates are not one)


def test_pieces_of_a_batchnorm_network_normalise_each_piece_as_devices_do():
    """With BatchNorm the pieces are the devices' story: 2 pieces on 1 context train what 2 contexts do."""
    sample = np.random.default_rng(0).normal(size=(64, 3, 32, 32)).astype(np.float32)
    data = [(nd.array(np.random.default_rng(b).normal(size=(8, 3, 32, 32))), nd.array(np.arange(8) % 10))
            for b in range(2)]

    def trained(ctxs, pieces):
        net = build_model("fastnet_small", 10, ctxs, seed=0, sample=sample)
        parts = TrainingParts(net, make_trainer(net, Config(lr=0.05, momentum=0.9)),
                              gluon.loss.SoftmaxCrossEntropyLoss(), [], pieces=pieces)
        train_one_epoch(parts, data, ctxs)
        return [p.data(ctxs[0]).asnumpy() for p in net.collect_params().values() if p.grad_req != "null"]

    for in_pieces, on_devices in zip(trained([mx.cpu(0)], 2), trained([mx.cpu(0), mx.cpu(1)], 1)):
        np.testing.assert_allclose(in_pieces, on_devices, rtol=1e-4, atol=1e-5)


# bfloat16 mixed precision is switched on for a whole process (amp.init): in a process of its own
PIECES_AND_DEVICES_IN_BFLOAT16 = """
import gluon_cifar  # first, as every entry point: threads and AMX set before MXNet loads
import mxnet as mx, numpy as np
from mxnet import gluon, nd
from gluon_cifar.config import Config
from gluon_cifar.models import build_model
from gluon_cifar.training.engine import train_one_epoch
from gluon_cifar.training.optim import enable_mixed_precision, make_trainer
from gluon_cifar.training.parts import TrainingParts
enable_mixed_precision("bfloat16")
sample = np.random.default_rng(0).normal(size=(256, 3, 32, 32)).astype(np.float32)
data = [(nd.array(np.random.default_rng(b).normal(size=(16, 3, 32, 32))), nd.array(np.arange(16) % 10))
        for b in range(2)]
def trained(ctxs, pieces):
    net = build_model("fastnet_small", 10, ctxs, seed=0, sample=sample)
    net.hybridize(static_alloc=True)
    parts = TrainingParts(net, make_trainer(net, Config(lr=0.05, momentum=0.9)),
                          gluon.loss.SoftmaxCrossEntropyLoss(), [], pieces=pieces)
    train_one_epoch(parts, data, ctxs)
    return [p.data(ctxs[0]).asnumpy() for p in net.collect_params().values() if p.grad_req != "null"]
in_pieces, on_devices = trained([mx.cpu(0)], 2), trained([mx.cpu(0), mx.cpu(1)], 1)
print(max(float(np.abs(a - b).max()) for a, b in zip(in_pieces, on_devices)))
"""


@needs_bfloat16_kernels
def test_bfloat16_pieces_train_what_devices_do():
    """Under bfloat16, MXNet's own gradient summing (grad_req "add") lost part of the sum in oneDNN's
    convolutions: a fastnet's batches in 2 pieces trained weights off by about what one update moves them.
    The pieces' gradients summed by the engine are the two devices' sum, bit for bit."""
    done = subprocess.run([sys.executable, "-c", PIECES_AND_DEVICES_IN_BFLOAT16], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) == 0.0


def test_step_schedule_decays_every_lr_period_epochs():
    cfg = Config(lr=0.02, lr_period=4, lr_decay=0.9, epochs=20)
    def schedule(step):
        return learning_rate(cfg, step, batches_per_epoch=10)

    lr_of_epoch = [schedule(epoch * 10 + 1) for epoch in range(20)]  # each epoch's first update (1-based)
    expected = [0.02 * 0.9 ** (epoch // 4) for epoch in range(20)]
    np.testing.assert_allclose(lr_of_epoch, expected)
    assert schedule(4 * 10) == pytest.approx(0.02)  # last batch of epoch 4 (1-based) still undecayed


def test_fit_reports_per_epoch_and_decays_lr():
    ctxs = [mx.cpu(0), mx.cpu(1)]
    net = small_net(ctxs)
    cfg = Config(lr=0.5, lr_period=1, lr_decay=0.5, epochs=3)
    data = batches([8, 8])
    parts = TrainingParts(net, make_trainer(net, cfg), gluon.loss.SoftmaxCrossEntropyLoss(), data,
                          batches([5, 3], seed=1), schedule=functools.partial(learning_rate, cfg, batches_per_epoch=2),
                          length=RunLength(3))
    history = []

    class Collect(FitHooks):
        def on_epoch_end(self, result, decision):
            history.append(result)

    fit(parts, ctxs, hooks=Collect())
    assert [h.epoch for h in history] == [1, 2, 3]
    assert [h.lr for h in history] == pytest.approx([0.5, 0.25, 0.125])
    assert all(h.examples == 16 and h.examples_per_sec > 0 for h in history)
    assert all(h.valid_acc is not None and 0 <= h.valid_acc <= 1 for h in history)


def test_a_fractional_run_over_three_contexts_stops_part_way_and_ends_on_the_average():
    """2.6 epochs of 4 uneven batches (7 images over 3 contexts): 11 updates, the last epoch 3 batches;
    the rate falls to 0 at the 11th and the lookahead sets the weights to its average there."""
    ctxs = [mx.cpu(0), mx.cpu(1), mx.cpu(2)]
    net = small_net(ctxs)
    cfg = Config(lr=0.5, epochs=2.6, schedule="linear", warmup_epochs=1)
    length, steps = RunLength(cfg.epochs), []

    def schedule(step):
        steps.append(step)
        return learning_rate(cfg, step, 4)

    parts = TrainingParts(net, make_trainer(net, cfg), gluon.loss.SoftmaxCrossEntropyLoss(), batches([7] * 4),
                          lookahead=Lookahead(net, 2, 4, length), schedule=schedule, length=length)
    history = []

    class Collect(FitHooks):
        def on_epoch_end(self, result, decision):
            history.append(result)

    fit(parts, ctxs, hooks=Collect())
    assert set(steps) == set(range(1, 12)) and parts.trainer.learning_rate == 0.0  # (fit asks epoch starts too)
    assert [(h.epoch, h.examples) for h in history] == [(1, 28), (2, 28), (3, 21)]
    for param, averages in zip(net.collect_params().values(), parts.lookahead._average):  # (its running average)
        for weight, average in zip(param.list_data(), averages):
            np.testing.assert_array_equal(weight.asnumpy(), average.asnumpy())
    history.clear()  # a fraction below one update adds no epoch (it had none of its batches and stopped the run)
    fit(dataclasses.replace(parts, schedule=None, lookahead=None, length=RunLength(2.0000001)), ctxs, hooks=Collect())
    assert [h.epoch for h in history] == [1, 2]


def test_evaluate_counts_every_sample_including_partial_batch():
    ctxs = [mx.cpu(0), mx.cpu(1), mx.cpu(2)]
    net = small_net(ctxs)
    data = batches([4, 4, 1])
    predicted = [net(x.as_in_context(mx.cpu(0))).argmax(axis=1).asnumpy() for x, _ in data]
    labels = [y.asnumpy() for _, y in data]
    expected = sum((p == y).sum() for p, y in zip(predicted, labels)) / 9
    assert evaluate(net, data, ctxs) == pytest.approx(expected)


@pytest.mark.parametrize("n_ctx", [1, 2])
def test_a_parameter_that_learns_in_the_first_epochs_only_is_frozen_after_them(n_ctx):
    """cpu-fast's whitening bias (--whiten-bias-epochs): it learns in epoch 1, then is frozen on every
    context (no gradient, no update) while the rest learns on."""
    ctxs = [mx.cpu(i) for i in range(n_ctx)]
    net = build_model("fastnet_small", 10, ctxs, seed=0, sample=np.random.default_rng(0).normal(
        size=(64, 3, 32, 32)).astype(np.float32))
    net.hybridize(static_alloc=True)
    data = [(nd.array(np.random.default_rng(b).normal(size=(8, 3, 32, 32))), nd.array(np.arange(8) % 10))
            for b in range(2)]
    cfg = Config(lr=0.05, momentum=0.9, nesterov=True)
    parts = TrainingParts(net, make_trainer(net, cfg), gluon.loss.SoftmaxCrossEntropyLoss(), data,
                          learn_first=(1, (net.whiten.bias,)), length=RunLength(3))
    seen = []

    class Watch(FitHooks):
        def on_epoch_end(self, result, decision):
            seen.append([net.whiten.bias.data(c).asnumpy().copy() for c in ctxs]
                        + [net.head.weight.data(c).asnumpy().copy() for c in ctxs])

    start = [net.whiten.bias.data(c).asnumpy().copy() for c in ctxs]
    fit(parts, ctxs, hooks=Watch())
    assert not np.array_equal(seen[0][0], start[0])  # learnt in epoch 1
    for later in seen[1:]:
        for k in range(n_ctx):
            np.testing.assert_array_equal(later[k], seen[0][k])  # frozen in epochs 2 and 3, everywhere
    assert net.whiten.bias.grad_req == "null"
    assert not np.array_equal(seen[2][n_ctx], seen[1][n_ctx])  # the head still learns
