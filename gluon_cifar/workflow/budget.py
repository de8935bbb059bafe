"""The time budget as a phase before the run (`--time-budget MINUTES`; the planning itself is
training/budget.py): measure this machine on the run's own network and loader, and fix the
epochs before the run directory is opened.

The training speed is timed on the run's first batches, stepped by the run's network with a
trainer of its own (for a fastnet whose whitening bias learns in the first epochs only, also with
it frozen, where the run gets past those epochs: the later epochs are faster); the run then rewinds
(weights put back, a fresh trainer, the loader at its first batch), so it trains bit for bit as
`--epochs N --time-budget 0` would. The prediction is timed as submit.py will predict
(workflow/predict_timing.py). With `--tta auto` both candidate views
are timed and planned, and training/budget.py's choose_tta picks one. With `--wide-from-epochs N`
(cpu-fast), where the run's fastnet would train at least WIDE_COST_AT_LEAST x N epochs, airbench95's
wider recipe is timed the same way on a network of its own, and trains instead where N of its epochs fit:
the budget picks the recipe, not only its length.

Everything plan_run measures with is passed in (`Measuring`), and everything a run keeps its budget with
(`Budgeting`: the clock, the measuring, the replanning after each epoch): this machine's for a run, fakes in
the tests. Each recipe timed is planned once, after all are timed, at one elapsed time.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Callable, ContextManager, Iterable, Iterator, NamedTuple

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..config import TTA_AUTO, WARMUP_AUTO, Config
from ..data.source import TrainingData
from ..distributed.cluster import Cluster
from ..errors import ConfigError
from ..presets import NARROW_MODEL, widened
from ..training import budget
from ..training.engine import train_one_epoch
from ..training.parts import TrainingParts, build_network, build_training, hybridize, rewind, weights
from ..training.replan import Replan, replan
from ..training.schedules import auto_warmup_epochs, with_warmup_decided
from ..training.timing import Clock, measure_rate, process_clock
from .predict_timing import PredictionTiming, prediction_speeds

log = logging.getLogger(__name__)

# airbench95's wider recipe is timed only where the run's own plan leaves this many times --wide-from-epochs:
# fastnet_wide does 2.6x fastnet's multiply-adds a step and trained 2.2-2.3x slower per image (docs/BENCHMARKS.md),
# and timing it costs about a minute.
WIDE_COST_AT_LEAST = 2.0


Loaders = Callable[[Config], tuple[Iterable, Iterable | None]]  # a recipe's (training, validation) loaders


@dataclasses.dataclass(frozen=True)
class Measuring:
    """What plan_run measures with: this machine's (`this_machine`) or a test's fakes."""

    clock: Clock  # seconds since the process started: what the budget counts
    # A recipe's network stepping with a trainer of its own, put back (weights, loader) when the block ends
    probe: Callable[[Config, gluon.Block], ContextManager[TrainingParts]]
    # images/s of the probe's steps; warm: the probe has stepped already (its graph built: no untimed batch first)
    training_rate: Callable[[TrainingParts, Config, bool], float]
    prediction: Callable[[Config, tuple[str, ...]], PredictionTiming]  # submit.py's, with each of the views
    network: Callable[[Config], gluon.Block]  # a recipe's network, as a run of that recipe builds it


def this_machine(ctxs: list[mx.Context], cluster: Cluster, data: TrainingData, loaders: Loaders, precision: str,
                 sample: np.ndarray | None, clock: Clock) -> Measuring:
    """The run's own measuring: its loaders (a recipe's own batch size), networks built as the run builds them
    (`sample`: a fastnet's whitening images), trainers of their own, the prediction as submit.py will run it;
    all by `clock`."""
    @contextlib.contextmanager
    def probe(recipe: Config, net: gluon.Block) -> Iterator[TrainingParts]:
        initial = weights(net)
        train_data = loaders(recipe)[0]
        yield build_training(with_warmup_decided(recipe), ctxs, cluster, net, train_data, None, precision)
        rewind(net, initial)  # the run trains bit for bit as `--epochs N` of its recipe would
        train_data.start_at(1)
        # its largest buffers freed, not held beside the next recipe's while that is timed (issue 44: the narrow
        # and the wide network's together made a run's peak memory)
        hybridize(net, recipe)

    def training_rate(probe: TrainingParts, recipe: Config, warm: bool) -> float:
        def steps(batches: Iterable) -> int:
            return train_one_epoch(probe, batches, ctxs, sync_every=1 << 30)[2]  # reads the loss at the end: waits
        # in chunks of lookahead_every batches: each includes one averaging step. measure_rate's 3 batches and 5 s:
        # every timed step is rewound, and the replans after each epoch correct the plan's speed (5 batches and
        # 10 s took 25 s of a 7-minute budget on the AMX Xeon, timing both speeds; the time before the first
        # step went from 40 s to 29, docs/BENCHMARKS.md). The untimed first batch builds the graph: a warm probe
        # needs none (cpu-fast's, timed again with its whitening bias frozen: the first batch 1.81 s, the next 1.78).
        return measure_rate(steps, probe.train_data, clock, warmup=0 if warm else 1,
                            chunk=max(1, recipe.lookahead_every))

    return Measuring(clock, probe, training_rate,
                     lambda recipe, ttas: prediction_speeds(recipe, len(data.classes), ctxs, data.data_dir, ttas,
                                                            clock),
                     lambda recipe: build_network(recipe, ctxs, len(data.classes), sample))


# this_machine's signature: the Measuring of a run's devices, workers, data, loaders, precision, whitening sample
MeasuringOf = Callable[[list[mx.Context], Cluster, TrainingData, Loaders, str, np.ndarray | None, Clock], Measuring]


@dataclasses.dataclass(frozen=True)
class Budgeting:
    """How a run keeps to its --time-budget: the one clock it counts by (from its plan to its last replan), how it
    measures the machine before the first epoch, and how it decides its length again after each one. The run's
    own by default; a test passes fakes (a clock that stands still, say: no epoch then looks slow or fast)."""

    clock: Clock = dataclasses.field(default_factory=process_clock)
    measuring: MeasuringOf = this_machine
    replan: Callable[..., Replan] = replan  # training/replan.py's, called as RunHooks.judge calls it
    wider: Callable[[Config], Config] = widened  # the recipe --wide-from-epochs weighs against the run's


class Timed(NamedTuple):
    """A recipe as plan_run timed it: its settings, its network, the probe that stepped it, what was measured."""

    recipe: Config
    net: gluon.Block
    probe: TrainingParts
    speeds: Speeds


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    cfg: Config  # the recipe planned: the run's own, or airbench95's wider one (presets.widened) where chosen
    net: gluon.Block  # that recipe's network, at its initial weights
    plan: budget.BudgetPlan  # its epochs and views among them


def plan_run(cfg: Config, data: TrainingData, net: gluon.Block, measuring: Measuring,
             wider: Callable[[Config], Config] = widened) -> PlannedRun:
    """Plan cfg.time_budget for a fresh run: time `net` (built from cfg) and the prediction, and, with
    cfg.wide_from_epochs where the run's recipe would train long enough, airbench95's wider recipe too
    (`wider`, on a network of its own); then plan each recipe timed, once, at the time all the timing
    took, and take the wider one where it fits at least cfg.wide_from_epochs of its epochs. Every network
    timed is put back to its initial weights and the loader to its first batch (`measuring.probe`)."""
    def timed(recipe: Config, network: gluon.Block) -> Timed:
        with measuring.probe(recipe, network) as probe:
            return Timed(recipe, network, probe, measure_speeds(recipe, data, probe, measuring))

    narrow, wide = timed(cfg, net), None
    if cfg.wide_from_epochs and cfg.model == NARROW_MODEL:
        would_train = epochs_that_fit(cfg, data, narrow.probe, narrow.speeds, measuring.clock())
        if would_train >= WIDE_COST_AT_LEAST * cfg.wide_from_epochs:
            wide_cfg = wider(cfg)
            log.info("time budget: %s would train %g epochs; timing %s (airbench95's recipe) too", cfg.model,
                     would_train, wide_cfg.model)
            wide = timed(wide_cfg, measuring.network(wide_cfg))
    elapsed_s = measuring.clock()  # every recipe planned once, after all the timing
    chosen = PlannedRun(cfg, net, plan_measured(cfg, data, narrow.probe, narrow.speeds, elapsed_s))
    if wide is None:
        return chosen
    try:
        wide_plan = plan_measured(wide.recipe, data, wide.probe, wide.speeds, elapsed_s)
    except ConfigError:
        wide_plan = None  # not even its warm-up fits
    considered = ((cfg.model, chosen.plan.epochs), (wide.recipe.model, wide_plan.epochs if wide_plan else 0))
    if wide_plan is not None and wide_plan.epochs >= cfg.wide_from_epochs:
        chosen = PlannedRun(wide.recipe, wide.net, wide_plan)
    return dataclasses.replace(chosen, plan=dataclasses.replace(chosen.plan, recipes_considered=considered,
                                                                model=chosen.cfg.model))


def epochs_that_fit(cfg: Config, data: TrainingData, probe: TrainingParts, speeds: Speeds, elapsed_s: float,
                    ttas: tuple[str, ...] | None = None) -> float:
    """What a plan made now would give (0: not even the fewest epochs fit): the question whether more is worth
    timing, asked before the plan itself is made."""
    try:
        return plan_measured(cfg, data, probe, speeds, elapsed_s, ttas).epochs
    except ConfigError:
        return 0.0  # (the plan, made later, says what would fit)


@dataclasses.dataclass(frozen=True)
class Speeds:
    """What a recipe's plan is made from, measured on this machine."""

    train_images_per_s: float
    later_images_per_s: float | None  # once the first epochs' parameters are frozen; None: not timed
    prediction: PredictionTiming


def measure_speeds(cfg: Config, data: TrainingData, probe: TrainingParts, measuring: Measuring) -> Speeds:
    """Time training steps of `probe` and the prediction of the test images with cfg's network; the
    frozen speed only for a run that gets past the first epochs."""
    clock = measuring.clock
    started_s = clock()
    train_rate = measuring.training_rate(probe, cfg, False)
    timing_s = clock() - started_s  # what timing the frozen speed too would cost
    speeds = Speeds(train_rate, None, measuring.prediction(cfg, tta_candidates(cfg)))
    first_epochs, frozen = probe.learn_first

    # The epochs after the first ones skip the frozen parameters' backward work: timed too, for a run that
    # gets to them even after timing them (a short budget: 20 s for nothing).
    if first_epochs and epochs_that_fit(cfg, data, probe, speeds, clock() + timing_s,
                                        tta_candidates(cfg)[:1]) > first_epochs:
        probe.start_epoch(first_epochs + 1)
        speeds = dataclasses.replace(speeds, later_images_per_s=measuring.training_rate(probe, cfg, True))
        probe.learns(frozen)  # as the run starts (the probe's block rewinds the weights)
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
        made = budget.plan(budget_s=cfg.time_budget * 60, elapsed_s=elapsed_s,
                           train_images_per_s=speeds.train_images_per_s,
                           train_images=probe.batches_per_epoch * probe.train_data.batch_size,
                           valid_images=data.n_valid, test_images=prediction.test_images,
                           predict_images_per_s=prediction.images_per_s[tta], min_epochs=min_epochs,
                           later_images_per_s=speeds.later_images_per_s, first_epochs=first_epochs, tta=tta,
                           predict_startup_s=prediction.startup_s)
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
