"""Presets and the pieces they switch on: schedules, Nesterov, label smoothing, shift/cutout, flip TTA."""
import argparse
import json

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from mxnet import gluon, nd

from gluon_cifar.augment import (ShiftAugment, cutout_masks, make_augment, normalize, resample, shift_flip_matrices,
                                 to_context)
from gluon_cifar.config import PRESETS, Config, add_config_arguments, config_from_args
from gluon_cifar.engine import SmoothedCrossEntropy, lr_schedule, make_loss, make_trainer, predict_classes
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
    ({"tta": "rotate"}, "--tta must be one of none, flip"),
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
    got = np.concatenate([p.asnumpy() for p in predict_classes(net, x, [mx.cpu(0), mx.cpu(1)], flip=True)])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("preset,flags", [
    ("d2l-exercise", ["--epochs", "1"]),
    ("resnet18-best", ["--epochs", "2", "--warmup-epochs", "1"]),
])
def test_every_preset_trains_and_submits(tmp_path, preset, flags):
    run = tmp_path / preset
    trained = run_script("train.py", "--demo", "--preset", preset, *flags, "--out", run, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    saved = json.loads((run / "config.json").read_text())["config"]
    assert {k: saved[k] for k in PRESETS[preset] if k != "epochs"} == {
        k: v for k, v in PRESETS[preset].items() if k != "epochs"} | ({"warmup_epochs": 1} if "--warmup-epochs" in flags
                                                                      else {})
    metrics = pd.read_csv(run / "metrics.csv")
    assert np.isfinite(metrics["train_loss"]).all() and (metrics["valid_acc"] >= 0).all()
    submitted = run_script("submit.py", "--run", run, "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    assert len(pd.read_csv(run / "submission.csv")) > 0
