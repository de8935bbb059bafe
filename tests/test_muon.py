"""Muon (training/muon.py): the orthogonalisation, one update against a float64 re-derivation of
airbench94_muon.py's, the other parameters exactly as MXNet's NAG, and the optimizer in a Trainer."""
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd

from gluon_cifar.config import Config
from gluon_cifar.errors import ConfigError
from gluon_cifar.training.muon import NEWTON_SCHULZ, Muon, orthogonalized
from gluon_cifar.training.optim import make_trainer
from tests.conftest import run_in_process


def newton_schulz_reference(g, steps=3):
    """airbench94_muon.py's zeropower_via_newtonschulz5 in float64 numpy (it runs in bfloat16)."""
    a, b, c = NEWTON_SCHULZ
    x = g / (np.linalg.norm(g) + 1e-7)
    tall = g.shape[0] > g.shape[1]
    x = x.T if tall else x
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


@pytest.mark.parametrize("shape", [(64, 216), (256, 2304), (300, 20)])
def test_orthogonalized_moves_the_singular_values_near_one(shape):
    rng = np.random.default_rng(0)
    # a badly conditioned gradient: singular values from 1 down to 0.01
    k = min(shape)
    u, _ = np.linalg.qr(rng.normal(size=(shape[0], k)))
    v, _ = np.linalg.qr(rng.normal(size=(shape[1], k)))
    spectrum = np.logspace(0, -2, k)
    g = (u * spectrum) @ v.T
    x = orthogonalized(nd.array(g)).asnumpy()
    assert x.shape == shape
    np.testing.assert_allclose(x, newton_schulz_reference(g), atol=2e-5)
    singular = np.linalg.svd(x.astype(np.float64), compute_uv=False)[::-1]  # ascending, as spectrum[::-1]
    # 3 steps: every direction with a tenth of the largest or more ends in [0.65, 1.25]; the 100:1 spread of
    # the rest is squeezed to less than 16:1
    assert 0.65 < singular[spectrum[::-1] >= 0.1].min() and singular.max() < 1.25
    assert singular.max() / singular.min() < 16


def test_a_filter_step_is_airbench94_muons():
    rng = np.random.default_rng(1)
    weight, momentum = rng.normal(size=(8, 3, 3, 3)), rng.normal(size=(8, 3, 3, 3))
    grads = [rng.normal(size=(8, 3, 3, 3)) for _ in range(2)]
    lr, filter_lr, mu, rescale = 0.5, 0.24, 0.6, 1 / 32

    w, buf = weight.copy(), momentum * 0  # torch: the buffer starts at zero
    for step, g in enumerate(grads):
        scale = 1 - step / 4  # the schedule's factor on the trainer's rate
        g = g * rescale
        buf = mu * buf + g
        update = newton_schulz_reference((g + mu * buf).reshape(8, -1)).reshape(w.shape)
        w = w * np.sqrt(8) / np.linalg.norm(w) - filter_lr * scale * update

    opt = Muon(learning_rate=lr, filter_lr=filter_lr, filter_momentum=mu, momentum=0.85, wd=0.1,
               rescale_grad=rescale)
    weight_nd = nd.array(weight)
    state = opt.create_state(0, weight_nd)
    for step, g in enumerate(grads):
        opt.lr = lr * (1 - step / 4)
        opt.update(0, weight_nd, nd.array(g), state)
    np.testing.assert_allclose(weight_nd.asnumpy(), w, atol=1e-5)  # and no weight decay on filters


def test_other_parameters_step_exactly_as_mxnets_nag():
    rng = np.random.default_rng(2)
    shape = (10, 256)
    start, grads = rng.normal(size=shape), [rng.normal(size=shape) for _ in range(3)]
    results = []
    for opt in (Muon(learning_rate=0.3, momentum=0.85, wd=1e-3, rescale_grad=0.5),
                mx.optimizer.NAG(learning_rate=0.3, momentum=0.85, wd=1e-3, rescale_grad=0.5)):
        weight = nd.array(start)
        state = opt.create_state(0, weight)
        for g in grads:
            opt.update(0, weight, nd.array(g), state)
        results.append(weight.asnumpy())
    np.testing.assert_array_equal(*results)


def test_the_trainer_runs_muon_on_filters_and_saves_and_restores_it(tmp_path):
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(8, 3, in_channels=3), gluon.nn.BatchNorm(in_channels=8), gluon.nn.GlobalAvgPool2D(),
            gluon.nn.Dense(10, in_units=8))
    mx.random.seed(0)
    net.initialize(mx.init.Xavier())
    cfg = Config(optimizer="muon", nesterov=True, lr=0.1, muon_lr=0.2, bias_lr_mult=4.0)
    trainer = make_trainer(net, cfg)
    assert isinstance(trainer.optimizer, Muon) and trainer.optimizer.filter_lr == 0.2
    x, y = nd.array(np.random.default_rng(3).normal(size=(16, 3, 8, 8))), nd.arange(16) % 10
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        with mx.autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(16)

    before = net[0].weight.data().asnumpy()
    step()
    # the filters were scaled to norm sqrt(8), then moved by 0.2 x their orthogonalised gradient (the first
    # step's momentum is the gradient itself, and orthogonalized ignores the gradient's scale)
    gradient = net[0].weight.grad().reshape((8, -1))
    update = orthogonalized(gradient).asnumpy().reshape(before.shape)
    expected = before * np.sqrt(8) / np.linalg.norm(before) - 0.2 * update
    np.testing.assert_allclose(net[0].weight.data().asnumpy(), expected, atol=1e-5)
    trainer.save_states(str(tmp_path / "trainer.states"))
    saved = [p.data().copy() for p in net.collect_params().values()]
    step()
    after = [p.data().asnumpy() for p in net.collect_params().values()]
    for p, value in zip(net.collect_params().values(), saved):
        p.set_data(value)
    trainer.load_states(str(tmp_path / "trainer.states"))
    assert isinstance(trainer.optimizer, Muon)
    step()
    for p, value in zip(net.collect_params().values(), after):
        np.testing.assert_array_equal(p.data().asnumpy(), value, err_msg=p.name)


@pytest.mark.parametrize("settings,words", [
    ({"optimizer": "muon"}, "--optimizer muon needs --nesterov"),
    ({"optimizer": "muon", "nesterov": True, "muon_lr": 0}, "--muon-lr > 0"),
    ({"optimizer": "muon", "nesterov": True, "muon_momentum": 1.0}, "--muon-momentum in [0, 1)"),
    ({"optimizer": "adam"}, "--optimizer must be one of sgd, muon"),
])
def test_bad_muon_settings_are_refused_by_name(settings, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Config.from_dict(settings)


def test_train_py_refuses_muon_without_nesterov_before_any_work(tmp_path, capsys):
    code, err = run_in_process("train.py", "--demo", "--preset", "cpu-fast", "--no-nesterov", "--out", tmp_path / "run",
                               capsys=capsys)
    assert code == 2 and "--optimizer muon needs --nesterov" in err and "got --nesterov False" in err
    assert not (tmp_path / "run").exists()
