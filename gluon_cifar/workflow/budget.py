"""The time budget as a phase before the run (`--time-budget MINUTES`; the planning itself is
training/budget.py): measure this machine on the run's own network and loader, and fix the
epochs before the run directory is opened.

The training speed is timed on the run's first batches, stepped by the run's network with a
trainer of its own (for a fastnet whose whitening bias learns in the first epochs only, also with
it frozen: the later epochs are faster); the run then rewinds (weights put back, a fresh trainer, the loader at its
first batch), so it trains bit for bit as `--epochs N --time-budget 0` would. The prediction
speed is timed as submit.py will predict: a network built as it builds one, the same precision
choice, test-time augmentation, batch size and decoding workers, on a sample of the test folder
or, with test.7z still archived, on its first images streamed out of the archive. With `--tta auto`
both candidate views are timed and planned, and training/budget.py's choose_tta picks one.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Iterable

import mxnet as mx

from .. import STARTUP
from ..config import TTA_AUTO, WARMUP_AUTO, Config, auto_warmup_epochs
from ..data.archives import SAMPLE
from ..data.kaggle import read_label_csv, read_test
from ..data.layout import archived_test_images
from ..data.source import TrainingData
from ..errors import ConfigError, LayoutError
from ..inference.predict import cast_for_inference, predict_archive, predict_files
from ..models import build_model
from ..precision import decide
from ..submit_options import SubmitOptions
from ..training import budget
from ..training.engine import train_one_epoch
from ..training.parts import TrainingParts

# Test images whose prediction is timed: at most a fifth of the test set, for timing most of a small one
# (the 5,000-image holdout) would cost about what predicting it does; at least two batches.
PREDICT_SAMPLE = 4096


def plan_budget(cfg: Config, ctxs: list[mx.Context], data: TrainingData, probe: TrainingParts) -> budget.BudgetPlan:
    """Time training steps of `probe` (the run's network and loader; the caller rewinds them) and
    the prediction of the test images, then plan cfg.time_budget."""
    def train_steps(batches: Iterable) -> int:
        return train_one_epoch(probe, batches, ctxs, sync_every=1 << 30)[2]  # reads the loss at the end: waits

    def rate() -> float:  # in chunks of cfg.lookahead_every batches: each includes one averaging step
        return budget.measure_rate(train_steps, probe.train_data, chunk=max(1, cfg.lookahead_every), min_batches=5,
                                   min_seconds=10.0)

    train_rate, later_rate = rate(), None
    first_epochs, frozen = probe.learn_first
    if first_epochs:  # the epochs after them skip the frozen parameters' backward work: timed too
        probe.start_epoch(first_epochs + 1)
        later_rate = rate()
        for param in frozen:
            param.grad_req = "write"  # as the run starts (the caller rewinds the weights)
    candidates = ("flip", "flip-shift") if cfg.tta == TTA_AUTO else (cfg.tta,)
    n_test, predict_rates = prediction_speeds(cfg, len(data.classes), ctxs, data.data_dir, candidates)
    elapsed = budget.process_age_s()
    warmup = 1 if cfg.warmup_epochs == WARMUP_AUTO else cfg.warmup_epochs  # auto's fewest, for the shortest run
    min_epochs = warmup + 1 if cfg.schedule != "step" else 1  # the warm-up and one epoch of decay

    def plan_with(tta: str) -> budget.BudgetPlan:
        return budget.plan(cfg.time_budget * 60, elapsed, train_rate, probe.batches_per_epoch *
                           probe.train_data.batch_size, data.n_valid, n_test, predict_rates[tta], min_epochs,
                           later_rate, first_epochs, tta)

    if cfg.tta != TTA_AUTO:
        chosen = plan_with(cfg.tta)
    else:
        flip = plan_with("flip")  # first: a budget too short for either is refused with the cheaper views' needs
        try:
            flip_shift = plan_with("flip-shift")
        except ConfigError:
            flip_shift = None  # six views would leave too few epochs
        chosen = budget.choose_tta(flip, flip_shift, budget.prediction_s(n_test, predict_rates["flip-shift"]))
    if cfg.warmup_epochs == WARMUP_AUTO and cfg.schedule != "step":  # a cut must keep the warm-up the run gets
        chosen = dataclasses.replace(chosen, min_epochs=auto_warmup_epochs(chosen.epochs) + 1)
    return chosen


def prediction_speeds(cfg: Config, n_classes: int, ctxs: list[mx.Context], data_dir: str,
                      ttas: tuple[str, ...]) -> tuple[int, dict[str, float]]:
    """(test images submit.py will predict, {tta: images a second it will predict them at with those
    views}); (0, {tta: 1.0}) for a layout without test images. Timed on a network of its own, as
    submit.py builds one: an inference pass may leave the weights of the network it runs in oneDNN's
    layout, which would make the run differ in its last bits from one without a budget."""
    predict = _sample_predictor(data_dir, cfg, ctxs)
    if predict is None:
        return 0, {tta: 1.0 for tta in ttas}
    n_test, run = predict
    precision = decide(SubmitOptions.precision, [c.device_type for c in ctxs], STARTUP, "predict")
    net = build_model(cfg.model, n_classes, ctxs)
    net.hybridize(static_alloc=True)
    net = cast_for_inference(net, precision, ctxs)
    rates = {}
    for tta in ttas:
        run(net, SubmitOptions.batch_size, tta)  # warm-up: graph, oneDNN primitives, decoding workers
        start = time.perf_counter()  # one pass like submit's, its decoding workers' start included
        rates[tta] = run(net, prediction_sample(n_test), tta) / (time.perf_counter() - start)
    return n_test, rates


def prediction_sample(test_images: int) -> int:
    """How many of `test_images` the prediction speed is timed on."""
    return min(PREDICT_SAMPLE, max(2 * SubmitOptions.batch_size, test_images // 5))


def _sample_predictor(data_dir: str, cfg: Config, ctxs: list[mx.Context]
                      ) -> tuple[int, Callable[[mx.gluon.Block, int, str], int]] | None:
    """(test images, predict(net, n, tta) -> images predicted) over the first n of a sample, the way
    submit.py reads them: streamed out of test.7z, or files spread over test/."""
    batch, workers = SubmitOptions.batch_size, cfg.num_workers
    archive = archived_test_images(data_dir)
    if archive is not None:
        sample_csv = os.path.join(data_dir, SAMPLE)  # the archive's count is only known once read through
        n_test = len(read_label_csv(sample_csv)) if os.path.isfile(sample_csv) else 0
        return (n_test, lambda net, n, tta: len(predict_archive(net, archive, ctxs, batch, workers, tta=tta,
                                                           limit=n)[0])) if n_test else None
    try:
        _, paths = read_test(data_dir)
    except LayoutError:
        return None  # a layout without test images: nothing to predict
    sample = prediction_sample(len(paths))
    spread = paths[::max(1, len(paths) // sample)][:sample]
    return len(paths), lambda net, n, tta: len(predict_files(net, spread[:n], ctxs, batch, workers, tta=tta))
