"""Presets and the pieces they switch on: schedules, Nesterov, label smoothing, shift/cutout, TTA, and the
cpu-fast preset's network (whitening), reflected shifts, alternating flips, lookahead and bias learning rate."""
import argparse
import json

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from mxnet import gluon, nd

from gluon_cifar.augment import (ShiftAugment, alternating_mirror, cutout_masks, make_augment, normalize, resample,
                                 shift_flip_matrices, to_context)
from gluon_cifar.averaging import Lookahead
from gluon_cifar.config import PRESETS, Config, add_config_arguments, config_from_args
from gluon_cifar.engine import SmoothedCrossEntropy, lr_schedule, make_loss, make_trainer, predict_classes
from gluon_cifar.fastnet import whitening_filters
from gluon_cifar.errors import ConfigError
from gluon_cifar.model import build_model
from tests.conftest import run_script


def parse(*flags):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(list(flags))


def test_presets_set_their_recipe_and_flags_still_win():
    exercise = config_from_args(parse(), "d2l-exercise")
    assert (exercise.epochs, exercise.lr, exercise.lr_period, exercise.lr_decay) == (100, 0.1, 50, 0.1)
    best = config_from_args(parse("--epochs", "30"), "resnet18-best")
    assert best.epochs == 30 and best.schedule == "cosine" and best.nesterov and best.tta == "flip"
    assert best.augment == "pad-crop-cutout" and best.label_smoothing == 0.1 and best.warmup_epochs == 5
    assert config_from_args(parse(), "d2l") == Config()  # the book's recipe stays the default
    assert set(PRESETS) >= {"d2l", "d2l-exercise", "resnet18-best"}


@pytest.mark.parametrize("settings,message", [
    ({"augment": "pad-crop", "loader": "folder"}, "use it with --loader decoded"),
    ({"schedule": "cosine", "warmup_epochs": 20}, "--warmup-epochs must be"),
    ({"label_smoothing": 1.0}, "--label-smoothing"),
    ({"tta": "rotate"}, "--tta must be one of none, flip, flip-shift"),
    ({"lookahead_every": 5, "checkpoint_every": 12}, "must be a multiple of --lookahead-every"),
    ({"bias_lr_mult": 0.0}, "--bias-lr-mult must be > 0"),
    ({"valid_ratio": 1.0}, "--valid-ratio must be in"),
])
def test_inconsistent_settings_are_named(settings, message):
    with pytest.raises(ConfigError, match=message):
        Config(**settings).validate()


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


def test_nesterov_selects_the_nag_optimizer():
    net = build_model("cifar_resnet20_v1", 10, [mx.cpu()], seed=0)
    assert isinstance(make_trainer(net, Config(nesterov=True), 10).optimizer, mx.optimizer.NAG)
    assert type(make_trainer(net, Config(), 10).optimizer) is mx.optimizer.SGD


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


def test_shift_moves_whole_pixels_and_pads_with_the_mean_colour():
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    batch = to_context(images, mx.cpu())
    matrices = shift_flip_matrices(np.random.default_rng(1), 32, (32, 32), max_shift=4)
    out = resample(batch, matrices).asnumpy()
    padded = np.pad(normalize(batch).asnumpy(), ((0, 0), (0, 0), (4, 4), (4, 4)))  # 0: the mean colour
    shifts = set()
    for i, (mirror, _, shift_x, _, _, shift_y) in enumerate(matrices):
        dx, dy = round(shift_x * 31 / 2), round(shift_y * 31 / 2)
        assert abs(dx) <= 4 and abs(dy) <= 4
        source = padded[i, :, 4 + dy:36 + dy, 4 + dx:36 + dx] if mirror > 0 else \
            padded[i, :, 4 + dy:36 + dy, ::-1][:, :, 4 - dx:36 - dx]
        np.testing.assert_allclose(out[i], source, atol=1e-4)  # whole pixels: no interpolation blur
        shifts.add((dx, dy, mirror))
    assert len(shifts) > 20  # the shifts and mirrors vary
    again = ShiftAugment(max_shift=4)(batch, np.random.default_rng(1)).asnumpy()
    np.testing.assert_array_equal(again, out)


def test_cutout_blanks_a_square_of_the_given_side():
    masks = cutout_masks(np.random.default_rng(1), 500, (32, 32), 16)
    blanked = (masks == 0).sum(axis=(1, 2, 3))
    assert blanked.max() == 256 and blanked.min() >= 64  # whole square inside, or a corner of it
    assert (blanked == 256).mean() > 0.2
    image = to_context(np.full((4, 32, 32, 3), 255, np.uint8), mx.cpu())
    out = make_augment("pad-crop-cutout")(image, np.random.default_rng(2)).asnumpy()
    white = normalize(image).asnumpy()[0, :, 16, 16]
    assert ((out == 0).all(axis=1).sum(axis=(1, 2)) >= 64).all()  # blank: the mean colour
    assert np.isclose(out, white[None, :, None, None]).all(axis=1).any()


def test_flip_tta_averages_each_image_with_its_mirror():
    net = build_model("cifar_resnet20_v1", 10, [mx.cpu(0), mx.cpu(1)], seed=3)
    x = nd.random.uniform(-1, 1, shape=(7, 3, 32, 32))
    mirrored = x.flip(axis=3).as_in_context(mx.cpu(0))
    expected = (nd.softmax(net(x.as_in_context(mx.cpu(0)))) + nd.softmax(net(mirrored))).argmax(axis=1).asnumpy()
    got = np.concatenate([p.asnumpy() for p in predict_classes(net, x, [mx.cpu(0), mx.cpu(1)], "flip")])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("preset,flags", [
    ("d2l", ["--epochs", "1"]),
    ("d2l-exercise", ["--epochs", "1"]),
    ("resnet18-best", ["--epochs", "2", "--warmup-epochs", "1"]),
    ("cpu-fast", ["--epochs", "2", "--warmup-epochs", "1", "--batch-size", "128"]),
])
def test_every_preset_trains_and_submits(tmp_path, preset, flags):
    run = tmp_path / preset
    trained = run_script("train.py", "--demo", "--preset", preset, *flags, "--out", run, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    saved = json.loads((run / "config.json").read_text())["config"]
    overridden = {flag[2:].replace("-", "_") for flag in flags if flag.startswith("--")}
    assert {k: saved[k] for k in PRESETS[preset] if k not in overridden} == {
        k: v for k, v in PRESETS[preset].items() if k not in overridden}
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == saved["epochs"] and np.isfinite(metrics["train_loss"]).all()
    if saved["valid_ratio"]:
        assert (metrics["valid_acc"] >= 0).all()
    else:  # trained on every labelled image: nothing left to validate on
        assert metrics["valid_acc"].isna().all() and json.loads((run / "config.json").read_text())["n_valid"] == 0
    submitted = run_script("submit.py", "--run", run, "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    assert len(pd.read_csv(run / "submission.csv")) > 0


def test_submit_can_choose_its_own_test_time_augmentation(tmp_path):
    run = tmp_path / "run"
    trained = run_script("train.py", "--demo", "--preset", "cpu-fast", "--model", "fastnet_small", "--epochs", "1",
                         "--warmup-epochs", "0", "--batch-size", "128", "--out", run, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    labels = {}
    for tta in ("none", "flip-shift"):
        done = run_script("submit.py", "--run", run, "--tta", tta, "--out", tmp_path / f"{tta}.csv", "--no-progress")
        assert done.returncode == 0, done.stderr
        labels[tta] = pd.read_csv(tmp_path / f"{tta}.csv")["label"]
    assert len(labels["none"]) == len(labels["flip-shift"]) == 200 and (labels["none"] != labels["flip-shift"]).any()
    bad = run_script("submit.py", "--run", run, "--tta", "rotate", "--no-progress")
    assert bad.returncode != 0 and "invalid choice: 'rotate'" in bad.stderr


def test_linear_schedule_warms_up_then_falls_in_a_straight_line_to_zero():
    schedule = lr_schedule(Config(lr=1.5, epochs=10, schedule="linear", warmup_epochs=2), batches_per_epoch=10)
    lrs = np.array([schedule(update) for update in range(1, 101)])
    # gluoncv's schedulers reach their target one update before their end, so the peak is held twice
    assert np.all(np.diff(lrs[:19]) > 0) and lrs[18] == lrs[19] == pytest.approx(1.5)
    np.testing.assert_allclose(np.diff(lrs[19:99]), -1.5 / 79, rtol=1e-6)  # equal steps down...
    assert lrs[98] == lrs[99] == pytest.approx(0, abs=1e-9)  # ...to 0 at the end


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


def test_fastnet_starts_from_data_and_keeps_its_whitening_frozen():
    sample = np.random.default_rng(1).normal(size=(64, 3, 32, 32)).astype(np.float32)
    net = build_model("fastnet_small", 10, [mx.cpu(0), mx.cpu(1)], seed=0, sample=sample)
    whitening = net.whiten.weight.data(mx.cpu(1)).asnumpy()
    np.testing.assert_allclose(whitening, whitening_filters(sample), rtol=1e-5)
    conv = net.groups[1].conv1.weight.data().asnumpy()  # 64 -> 128 channels
    np.testing.assert_array_equal(conv[:64, :, 1, 1], np.eye(64))  # identity for the first 64 filters
    assert np.abs(conv[64:]).max() <= 1 / np.sqrt(64 * 9) and np.abs(conv[64:]).max() > 0
    trainer = make_trainer(net, Config(lr=0.5, bias_lr_mult=64.0), 10)
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
        trainer, loss_fn = make_trainer(net, cfg, 15, None, False), make_loss(cfg)
        for x, y in batches:  # no reads in between: the engine may run ahead, as in training
            with mx.autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(64)
        runs.append([p.data().asnumpy() for p in net.collect_params().values()])
        assert sum(not np.array_equal(a, b) for a, b in zip(initial, runs[-1])) > len(initial) // 2  # it learned
    for run in runs[1:]:
        for first, again in zip(runs[0], run):
            np.testing.assert_array_equal(again, first)


def test_alternating_flips_mirror_every_image_in_every_other_epoch():
    rows = np.arange(10_000)
    first, second, third = (alternating_mirror(rows, epoch, seed=5) for epoch in range(3))
    assert 0.47 < first.mean() < 0.53  # a fair coin per image
    np.testing.assert_array_equal(second, ~first)
    np.testing.assert_array_equal(third, first)
    assert (alternating_mirror(rows, 0, seed=6) != first).mean() > 0.4  # another seed, other coins


def test_reflected_shift_moves_whole_pixels_with_mirrored_borders_and_alternates_flips():
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    batch = to_context(images, mx.cpu())
    padded = np.pad(normalize(batch).asnumpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    augment = make_augment("reflect-shift-altflip", seed=3)
    rows = np.arange(40) * 7
    for epoch in (0, 1):
        out = augment(batch, np.random.default_rng(epoch), rows, epoch).asnumpy()
        mirrored = alternating_mirror(rows, epoch, seed=3)
        shifts = set()
        for i in range(40):
            source = padded[i, :, :, ::-1] if mirrored[i] else padded[i]
            # exactly one of the 25 whole-pixel windows of the padded image: no interpolation blur
            matches = [(dy, dx) for dy in range(5) for dx in range(5)
                       if np.allclose(out[i], source[:, dy:dy + 32, dx:dx + 32], atol=1e-4)]
            assert len(matches) == 1, (epoch, i, matches)
            shifts.add(matches[0])
        assert len(shifts) > 12  # the shifts vary


def test_lookahead_pulls_weights_towards_their_average_on_schedule():
    net = gluon.nn.Dense(3, in_units=2)
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    lookahead = Lookahead(net, every=5, batches_per_epoch=12, epochs=2)
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


def test_six_view_tta_weights_the_shifted_views_and_their_mirrors():
    net = build_model("fastnet_small", 10, [mx.cpu(0), mx.cpu(1)], seed=3)
    x = nd.random.uniform(-1, 1, shape=(7, 3, 32, 32))
    padded = np.pad(x.asnumpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    views = [x.asnumpy(), padded[:, :, :32, :32], padded[:, :, 2:, 2:]]  # as is, moved down-right, up-left

    def probabilities(view):
        return nd.softmax(net(nd.array(view))).asnumpy() + nd.softmax(net(nd.array(view[:, :, :, ::-1]))).asnumpy()

    expected = (2 * probabilities(views[0]) + probabilities(views[1]) + probabilities(views[2])).argmax(axis=1)
    got = np.concatenate([p.asnumpy() for p in predict_classes(net, x, [mx.cpu(0), mx.cpu(1)], "flip-shift")])
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(padded[:, :, :32, :32], views[0])  # the shifted views do differ
