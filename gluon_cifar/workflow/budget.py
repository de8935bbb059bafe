"""The time budget as a phase before the run (`--time-budget MINUTES`; the planning itself is
training/budget.py): measure this machine on the run's own network and loader, and fix the
epochs before the run directory is opened.

The training speed is timed on the run's first batches, stepped by the run's network with a
trainer of its own (for a fastnet whose whitening bias learns in the first epochs only, also with
it frozen, where the run gets past those epochs: the later epochs are faster); the run then rewinds
(weights put back, a fresh trainer, the loader at its first batch), so it trains bit for bit as
`--epochs N --time-budget 0` would. The prediction is timed as submit.py will predict: its start-up
(the test folder listed and its headers checked, the check timed on a sample; a network built and
cast as it builds one; an allowance for the imports), then the same precision choice, test-time
augmentation, batch size and decoding workers on a sample of the test folder or, with test.7z still
archived, on its first images streamed out of the archive. With `--tta auto` both candidate views
are timed and planned, and training/budget.py's choose_tta picks one. With `--wide-from-epochs N`
(cpu-fast), where the run's fastnet would train at least WIDE_COST_AT_LEAST x N epochs, airbench95's
wider recipe is timed the same way on a network of its own, and trains instead where N of its epochs fit:
the budget picks the recipe, not only its length.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, Iterable

import mxnet as mx
import numpy as np
from mxnet import gluon

from .. import STARTUP
from ..config import TTA_AUTO, WARMUP_AUTO, Config, auto_warmup_epochs, with_warmup_decided
from ..data.archives import SAMPLE
from ..data.images import check_headers
from ..data.kaggle import read_label_csv, read_test
from ..data.layout import archived_test_images
from ..data.source import TrainingData
from ..distributed.cluster import Cluster
from ..errors import ConfigError, LayoutError
from ..inference.predict import cast_for_inference, predict_archive, predict_files
from ..models import build_model
from ..precision import decide
from ..presets import NARROW_MODEL, widened
from ..submit_options import SubmitOptions
from ..training import budget
from ..training.engine import train_one_epoch
from ..training.parts import TrainingParts, build_network, build_training, rewind, weights
from ..training.timing import Clock, measure_rate

log = logging.getLogger(__name__)

# Test images whose prediction is timed: at most a fifth of the test set, for timing most of a small one
# (the 5,000-image holdout) would cost about what predicting it does; at least two batches.
PREDICT_SAMPLE = 4096
# submit.py's Python, MXNet and package imports and reading the run: the part of its start-up not timed here
# (about 3 s of its 12 on the holdout, on the AMX Xeon).
SUBMIT_IMPORTS_S = 5.0
# airbench95's wider recipe is timed only where the run's own plan leaves this many times --wide-from-epochs:
# fastnet_wide does 2.6x fastnet's multiply-adds a step and trained 2.2-2.3x slower per image (docs/BENCHMARKS.md),
# and timing it costs about a minute.
WIDE_COST_AT_LEAST = 2.0


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    cfg: Config  # the run's settings: its epochs and views, and its recipe where the budget chose one
    net: gluon.Block  # that recipe's network, at its initial weights
    plan: budget.BudgetPlan


def plan_run(cfg: Config, ctxs: list[mx.Context], cluster: Cluster, data: TrainingData, net: gluon.Block,
             train_data: Iterable, precision: str, sample: np.ndarray | None, clock: Clock) -> PlannedRun:
    """Plan cfg.time_budget for a fresh run: time `net` (built from cfg) stepping on `train_data` and the
    prediction, and, with cfg.wide_from_epochs where that plan leaves room, airbench95's wider recipe too
    (`widened`, its network built from `sample` as a run of it would build it); take the wider one where it
    fits at least cfg.wide_from_epochs of its epochs. Every network timed is put back to its initial weights
    and the loader to its first batch: the run trains bit for bit as `--epochs N` of its recipe would.
    Everything is timed by `clock`, seconds since the process started (training/timing.py)."""
    def timed(recipe: Config, network: gluon.Block) -> tuple[TrainingParts, Speeds]:
        initial = weights(network)
        probe = build_training(with_warmup_decided(recipe), ctxs, cluster, network, train_data, None, precision)
        speeds = measure_speeds(recipe, ctxs, data, probe, clock)
        rewind(network, initial)
        return probe, speeds

    probe, speeds = timed(cfg, net)
    chosen = PlannedRun(cfg, net, plan_measured(cfg, data, probe, speeds, clock()))
    if cfg.wide_from_epochs and cfg.model == NARROW_MODEL and \
            chosen.plan.epochs >= WIDE_COST_AT_LEAST * cfg.wide_from_epochs:
        wide_cfg = widened(cfg)
        log.info("time budget: %s would train %g epochs; timing %s (airbench95's recipe) too", cfg.model,
                 chosen.plan.epochs, wide_cfg.model)
        wide_net = build_network(wide_cfg, ctxs, len(data.classes), sample)
        wide_probe, wide_speeds = timed(wide_cfg, wide_net)
        elapsed_s = clock()  # both plans after both timings
        narrow = dataclasses.replace(chosen, plan=plan_measured(cfg, data, probe, speeds, elapsed_s))
        try:
            wide = PlannedRun(wide_cfg, wide_net, plan_measured(wide_cfg, data, wide_probe, wide_speeds, elapsed_s))
        except ConfigError:
            wide = None  # not even its warm-up fits
        chosen = wide if wide is not None and wide.plan.epochs >= cfg.wide_from_epochs else narrow
        considered = ((cfg.model, narrow.plan.epochs), (wide_cfg.model, wide.plan.epochs if wide else 0))
        chosen = dataclasses.replace(chosen, plan=dataclasses.replace(chosen.plan, recipes_considered=considered,
                                                                      model=chosen.cfg.model))
    train_data.start_at(1)
    return dataclasses.replace(chosen, cfg=dataclasses.replace(chosen.cfg, epochs=chosen.plan.epochs,
                                                               tta=chosen.plan.tta, length_changes=()))


@dataclasses.dataclass(frozen=True)
class Speeds:
    """What a recipe's plan is made from, measured on this machine."""

    train_images_per_s: float
    later_images_per_s: float | None  # once the first epochs' parameters are frozen; None: not timed
    prediction: "PredictionTiming"


def measure_speeds(cfg: Config, ctxs: list[mx.Context], data: TrainingData, probe: TrainingParts,
                   clock: Clock) -> Speeds:
    """Time training steps of `probe` (the caller rewinds its weights and loader) and the prediction of
    the test images with cfg's network, by `clock`; the frozen speed only for a run that gets past the first
    epochs."""
    def train_steps(batches: Iterable) -> int:
        return train_one_epoch(probe, batches, ctxs, sync_every=1 << 30)[2]  # reads the loss at the end: waits

    def rate() -> float:  # in chunks of cfg.lookahead_every batches: each includes one averaging step
        return measure_rate(train_steps, probe.train_data, clock, chunk=max(1, cfg.lookahead_every), min_batches=5,
                            min_seconds=10.0)

    started_s = clock()
    train_rate = rate()
    timing_s = clock() - started_s  # what timing the frozen speed too would cost
    speeds = Speeds(train_rate, None, prediction_speeds(cfg, len(data.classes), ctxs, data.data_dir,
                                                        tta_candidates(cfg), clock))
    first_epochs, frozen = probe.learn_first

    def gets_past_first_epochs() -> bool:  # even after timing the later ones (a short budget: 20 s for nothing)
        try:
            return plan_measured(cfg, data, probe, speeds, clock() + timing_s,
                                 tta_candidates(cfg)[:1]).epochs > first_epochs
        except ConfigError:
            return False  # (the plan says what would fit)

    # The epochs after the first ones skip the frozen parameters' backward work: timed too, for a run that
    # gets to them.
    if first_epochs and gets_past_first_epochs():
        probe.start_epoch(first_epochs + 1)
        speeds = dataclasses.replace(speeds, later_images_per_s=rate())
        for param in frozen:
            param.grad_req = "write"  # as the run starts (the caller rewinds the weights)
    return speeds


def tta_candidates(cfg: Config) -> tuple[str, ...]:
    """The test-time views a plan weighs: with --tta auto both, the cheaper first."""
    return ("flip", "flip-shift") if cfg.tta == TTA_AUTO else (cfg.tta,)


def plan_measured(cfg: Config, data: TrainingData, probe: TrainingParts, speeds: Speeds, elapsed_s: float,
                  ttas: tuple[str, ...] | None = None) -> budget.BudgetPlan:
    """cfg.time_budget planned from `speeds`, `elapsed_s` seconds already spent (pure: nothing is
    measured here); with --tta auto the views chosen too (`ttas`: weigh only these)."""
    prediction = speeds.prediction
    first_epochs = probe.learn_first[0]
    warmup = 1 if cfg.warmup_epochs == WARMUP_AUTO else cfg.warmup_epochs  # auto's fewest, for the shortest run
    min_epochs = warmup + 1 if cfg.schedule != "step" else 1  # the warm-up and one epoch of decay

    def plan_with(tta: str) -> budget.BudgetPlan:
        made = budget.plan(cfg.time_budget * 60, elapsed_s, speeds.train_images_per_s, probe.batches_per_epoch *
                           probe.train_data.batch_size, data.n_valid, prediction.test_images,
                           prediction.images_per_s[tta], min_epochs, speeds.later_images_per_s, first_epochs, tta,
                           prediction.startup_s)
        return dataclasses.replace(made, six_views_from=budget.SIX_VIEWS_FROM[cfg.optimizer])

    ttas = ttas or tta_candidates(cfg)
    if len(ttas) == 1:
        chosen = plan_with(ttas[0])
    else:
        # flip first: a budget too short for either is refused with the cheaper views' needs
        flip = plan_with("flip")
        try:
            flip_shift = plan_with("flip-shift")
        except ConfigError:
            flip_shift = None  # six views would leave too few epochs
        chosen = budget.choose_tta(flip, flip_shift, budget.prediction_s(
            prediction.test_images, prediction.images_per_s["flip-shift"], prediction.startup_s))
    if cfg.warmup_epochs == WARMUP_AUTO and cfg.schedule != "step":  # a cut must keep the warm-up the run gets
        chosen = dataclasses.replace(chosen, min_epochs=auto_warmup_epochs(chosen.epochs) + 1)
    return chosen


@dataclasses.dataclass(frozen=True)
class PredictionTiming:
    """What submit.py's prediction of the test images will take, timed before the run."""

    test_images: int
    images_per_s: dict[str, float]  # by test-time views
    startup_s: float  # before its first batch: imports, the network, listing and checking the test images


def prediction_speeds(cfg: Config, n_classes: int, ctxs: list[mx.Context], data_dir: str,
                      ttas: tuple[str, ...], clock: Clock) -> PredictionTiming:
    """How fast submit.py will predict the test images with each of `ttas`; no test images (a layout
    without them): 0 images, nothing to time. Timed on a network of its own, as submit.py builds one: an
    inference pass may leave the weights of the network it runs in oneDNN's layout, which would make the
    run differ in its last bits from one without a budget. Timed by `clock`."""
    start = clock()
    sample = _sample_predictor(data_dir, cfg, ctxs, clock)
    if sample is None:
        return PredictionTiming(0, {tta: 1.0 for tta in ttas}, 0.0)
    precision = decide(SubmitOptions.precision, [c.device_type for c in ctxs], STARTUP, "predict")
    net = build_model(cfg.model, n_classes, ctxs)
    net.hybridize(static_alloc=True)
    net = cast_for_inference(net, precision, ctxs)
    startup_s = SUBMIT_IMPORTS_S + clock() - start + sample.unread_check_s
    rates = {}
    for tta in ttas:
        sample.predict(net, SubmitOptions.batch_size, tta)  # warm-up: graph, oneDNN primitives, decoding workers
        begun = clock()  # one pass like submit's, its decoding workers' start included
        rates[tta] = sample.predict(net, prediction_sample(sample.test_images), tta) / (clock() - begun)
    return PredictionTiming(sample.test_images, rates, startup_s)


def prediction_sample(test_images: int) -> int:
    """How many of `test_images` the prediction speed is timed on."""
    return min(PREDICT_SAMPLE, max(2 * SubmitOptions.batch_size, test_images // 5))


@dataclasses.dataclass(frozen=True)
class _Sample:
    """The test images submit.py will predict, and a predictor over a sample of them."""

    test_images: int
    predict: Callable[[mx.gluon.Block, int, str], int]  # (net, n, views) -> images predicted, of the first n
    unread_check_s: float  # submit.py's header check of the test images the sample's check left out


def _sample_predictor(data_dir: str, cfg: Config, ctxs: list[mx.Context], clock: Clock) -> _Sample | None:
    """The test images read the way submit.py reads them: streamed out of test.7z, or files spread over
    test/, listed and their headers checked as submit.py will (timed by `clock` on the sample, for the whole
    folder)."""
    batch, workers = SubmitOptions.batch_size, cfg.num_workers
    archive = archived_test_images(data_dir)
    if archive is not None:
        sample_csv = os.path.join(data_dir, SAMPLE)  # the archive's count is only known once read through
        n_test = len(read_label_csv(sample_csv)) if os.path.isfile(sample_csv) else 0
        return _Sample(n_test, lambda net, n, tta: len(predict_archive(net, archive, ctxs, batch, workers, tta=tta,
                                                                       limit=n)[0]), 0.0) if n_test else None
    try:
        _, paths = read_test(data_dir)
    except LayoutError:
        return None  # a layout without test images: nothing to predict
    sample = prediction_sample(len(paths))
    spread = paths[::max(1, len(paths) // sample)][:sample]
    start = clock()
    check_headers(spread, os.path.join(data_dir, "test"))  # (a bad file fails here, before the run, named)
    per_image_s = (clock() - start) / len(spread)
    return _Sample(len(paths), lambda net, n, tta: len(predict_files(net, spread[:n], ctxs, batch, workers, tta=tta)),
                   per_image_s * (len(paths) - len(spread)))
