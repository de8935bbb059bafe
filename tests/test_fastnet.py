"""The cpu-fast network: whitening from data, frozen filters, bitwise-repeatable training."""

import dataclasses

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from gluon_cifar.config import Config
from gluon_cifar.models import build_model
from gluon_cifar.models.fastnet import WIDTHS, FastNet, whitening_filters
from gluon_cifar.presets import AIRBENCH94_SGD, PRESETS, widened
from gluon_cifar.training.optim import SmoothedCrossEntropy, make_loss, make_trainer
from gluon_cifar.training.schedules import learning_rate


def test_whitening_filters_decorrelate_patches():
    rng = np.random.default_rng(0)
    # smooth, correlated images: neighbouring pixels and channels strongly related
    base = rng.normal(size=(200, 1, 33, 33))
    images = (base[:, :, 1:, 1:] + base[:, :, :-1, :-1] + 0.3 * rng.normal(size=(200, 3, 32, 32))).astype(np.float32)
    filters = whitening_filters(images, eps=0.0)
    assert filters.shape == (24, 3, 2, 2)
    np.testing.assert_array_equal(filters[12:], -filters[:12])
    patches = np.stack([images[:, :, i:i + 31, j:j + 31] for i in range(2) for j in range(2)], axis=2)
    patches = patches.transpose(0, 3, 4, 1, 2).reshape(-1, 12)
    responses = patches @ filters[:12].reshape(12, 12).T
    np.testing.assert_allclose(np.cov(responses, rowvar=False), np.eye(12), atol=2e-3)
    # summed chunk by chunk (7 does not divide 200): numpy's own covariance of every patch at once, in float64
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(patches.astype(np.float64), rowvar=False))
    expected = (eigenvectors.T / np.sqrt(eigenvalues)[:, None]).reshape(12, 3, 2, 2)
    chunked = whitening_filters(images, eps=0.0, chunk=7)[:12]
    signs = np.sign((chunked * expected).sum(axis=(1, 2, 3)))[:, None, None, None]  # an eigenvector's sign is free
    np.testing.assert_allclose(chunked, expected * signs, rtol=1e-4, atol=1e-5)


def test_fastnet_starts_from_data_and_keeps_its_whitening_frozen():
    sample = np.random.default_rng(1).normal(size=(64, 3, 32, 32)).astype(np.float32)
    net = build_model("fastnet_small", 10, [mx.cpu(0), mx.cpu(1)], seed=0, sample=sample)
    whitening = net.whiten.weight.data(mx.cpu(1)).asnumpy()
    np.testing.assert_allclose(whitening, whitening_filters(sample), rtol=1e-5)
    conv = net.groups[1].conv1.weight.data().asnumpy()  # 64 -> 128 channels
    np.testing.assert_array_equal(conv[:64, :, 1, 1], np.eye(64))  # identity for the first 64 filters
    assert np.abs(conv[64:]).max() <= 1 / np.sqrt(64 * 9) and np.abs(conv[64:]).max() > 0
    trainer = make_trainer(net, Config(lr=0.5, bias_lr_mult=64.0))
    x, y = nd.random.normal(shape=(8, 3, 32, 32)), nd.array(np.arange(8) % 10)
    with mx.autograd.record():
        losses = [SmoothedCrossEntropy(0.2)(net(part.as_in_context(c)), label.as_in_context(c))
                  for part, label, c in zip(x.split(2, axis=0), y.split(2, axis=0), [mx.cpu(0), mx.cpu(1)])]
    mx.autograd.backward(losses)
    trainer.step(8)
    assert net(x).shape == (8, 10)
    np.testing.assert_array_equal(net.whiten.weight.data().asnumpy(), whitening)  # frozen
    assert not np.array_equal(net.groups[1].conv1.weight.data().asnumpy(), conv)  # the rest learns
    offsets = net.collect_params(".*beta")
    assert offsets and all(p.lr_mult == 64 and p.wd_mult == 1 / 64 for p in offsets.values())
    assert all(p.lr_mult == 1 for name, p in net.collect_params().items() if not name.endswith("beta"))


@pytest.mark.parametrize("model", ["fastnet_small", "cifar_resnet20_v1"])
def test_a_new_network_trains_bitwise_the_same_every_time_under_the_threaded_engine(model):
    # Regression: build_model used to run an inference pass on the new network (for GluonCV's
    # deferred shapes); oneDNN then held the weights in its own layout, and the first steps differed
    # in the last bits from one build to the next, most times (the kill -9 resume test failed on it).
    cfg = Config(**{**PRESETS["cpu-fast"], "model": model, "batch_size": 64, "warmup_epochs": 1})
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(256, 3, 32, 32)).astype(np.float32)
    batches = [(nd.array(rng.normal(size=(64, 3, 32, 32))), nd.array(rng.integers(0, 10, 64))) for _ in range(4)]
    runs = []
    for _ in range(4):
        net = build_model(model, 10, [mx.cpu()], seed=0, sample=sample)
        net.hybridize(static_alloc=True)
        initial = [p.data().asnumpy() for p in net.collect_params().values()]
        trainer, loss_fn = make_trainer(net, cfg, None, False), make_loss(cfg)
        for step, (x, y) in enumerate(batches, 1):  # no reads in between: the engine may run ahead, as in training
            with mx.autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.set_learning_rate(learning_rate(cfg, step, batches_per_epoch=15))
            trainer.step(64)
        runs.append([p.data().asnumpy() for p in net.collect_params().values()])
        assert sum(not np.array_equal(a, b) for a, b in zip(initial, runs[-1])) > len(initial) // 2  # it learned
    for run in runs[1:]:
        for first, again in zip(runs[0], run):
            np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("hybridize", [False, True])
def test_channel_padding_computes_the_same_network_and_gradients(hybridize):
    """PaddedConv2D rounds the 3 input channels up to 4 and the 24 whitened ones up to 32 for oneDNN's fast
    kernels: the padded network must compute what the plain one does, forward and backward, on the same parameters."""
    sample = np.random.default_rng(1).normal(size=(64, 3, 32, 32)).astype(np.float32)
    padded = build_model("fastnet_small", 10, [mx.cpu()], seed=0, sample=sample)
    internals = padded(mx.sym.var("data")).get_internals()
    shapes = dict(zip(internals.list_outputs(), internals.infer_shape(data=(2, 3, 32, 32))[1]))
    whitening = padded.whiten.name
    assert shapes[f"{whitening}_concat1_output"] == (32, 4, 2, 2)  # the weight the whitening conv computes with
    assert shapes[f"{whitening}_fwd_output"] == (2, 32, 31, 31)
    plain = FastNet(WIDTHS["fastnet_small"], 10, pad_channels=False, prefix="fastnet_small_")
    plain.initialize(ctx=mx.cpu())
    plain.collect_params().load_dict({k: v.data() for k, v in padded.collect_params().items()})
    assert padded.whiten.weight.shape == plain.whiten.weight.shape == (24, 3, 2, 2)  # saved runs load alike
    x, y = nd.random.normal(shape=(16, 3, 32, 32)), nd.array(np.arange(16) % 10)
    grads = []
    for net in (padded, plain):
        if hybridize:
            net.hybridize(static_alloc=True)
        with mx.autograd.record():
            out = net(x)
            loss = SmoothedCrossEntropy(0.2)(out, y)
        loss.backward()
        grads.append((out.asnumpy(), {k.split("_", 2)[-1]: p.grad().asnumpy()
                                      for k, p in net.collect_params().items() if p.grad_req != "null"}))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-5)
    assert grads[0][1].keys() == grads[1][1].keys() and "conv0_bias" in grads[0][1]  # the whitening bias learns
    for name in grads[0][1]:
        np.testing.assert_allclose(grads[0][1][name], grads[1][1][name], rtol=1e-3, atol=1e-5, err_msg=name)


def test_the_wide_recipe_is_airbench95s_widths_and_learning_rate():
    """fastnet_wide and `widened`: airbench95's 128/384/384 channels trained by airbench94's SGD at its lr of 10 per
    1024 examples (airbench94's 11.5 is 1.5 for a mean loss: lr / (1 + 1 / (1 - momentum))), the decay each step
    applies unchanged; whatever optimizer the narrow recipe had (cpu-fast's Muon or cpu-fast-sgd's SGD)."""
    sample = np.random.default_rng(2).normal(size=(16, 3, 32, 32)).astype(np.float32)
    net = build_model("fastnet_wide", 10, [mx.cpu()], seed=0, sample=sample)
    assert [g.conv2.weight.shape for g in net.groups] == [(128, 128, 3, 3), (384, 384, 3, 3), (384, 384, 3, 3)]
    assert net.groups[0].conv1.weight.shape == (128, 24, 3, 3) and net.head.weight.shape == (10, 384)
    assert net(nd.array(sample[:2])).shape == (2, 10)
    sgd = Config(**PRESETS["cpu-fast-sgd"])
    assert sgd.lr == pytest.approx(11.5 / (1 + 1 / (1 - sgd.momentum)), rel=1e-4)
    for narrow in (sgd, Config(**PRESETS["cpu-fast"])):
        wide = widened(narrow)
        assert wide.model == "fastnet_wide" and wide.lr == pytest.approx(10 / (1 + 1 / (1 - sgd.momentum)), rel=1e-4)
        assert wide.lr * wide.wd == pytest.approx(sgd.lr * sgd.wd)
        # airbench94's SGD, and nothing else of the narrow recipe changed
        assert dataclasses.replace(wide, model="fastnet", lr=sgd.lr, wd=sgd.wd) == dataclasses.replace(
            narrow, **AIRBENCH94_SGD)
