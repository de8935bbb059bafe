"""Train a run directory: `train` (a new run, or one repeated with its plan) through `run_training`, which
`resume` (resume.py) continues a run with too.

A run, top to bottom: open the data once; build the network and loaders once; decide the run's plan, once
(`decide_plan`: with --time-budget, measured on them, a few steps with a trainer of their own, then the
weights put back; with --wide-from-epochs, airbench95's wider network too, which may replace the run's), or
take the plan given; build the trainer for the plan's settings; open the run directory with both; train;
finish.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
from dataclasses import dataclass
from typing import Any, Iterable

import mxnet as mx
import numpy as np
from mxnet import gluon

from .. import STARTUP
from ..atomic import refuse_inside
from ..config import TTA_AUTO, WARMUP_AUTO, Config
from ..data.source import TrainingData, open_training_data
from ..data.split import warn_if_unbalanced
from ..distributed import cluster as distributed
from ..models import check_model_name
from ..precision import decide
from ..runs import checkpoint, rundir
from ..runs.recorder import open_run
from ..runtime import peak_memory_mb
from ..training.budget import BudgetPlan
from ..training.engine import fit
from ..training.loaders import make_loaders, whitening_sample
from ..training.optim import enable_mixed_precision
from ..training.parts import TrainingParts, build_network, build_training, weights_digest
from ..training.records import EpochProgress, EpochResult
from ..training.reporting import RunHooks
from ..training.run_plan import RunLength, RunPlan
from ..training.schedules import auto_warmup_epochs
from .budget import Budgeting, Loaders, plan_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingJob:
    """One training: its settings, devices, place among the workers, precision and data."""

    cfg: Config
    ctxs: list[mx.Context]
    cluster: distributed.Cluster
    data: TrainingData
    precision: str  # precision.decide's, for "train"
    show_progress: bool = True


@dataclass(frozen=True)
class Trained:
    out: str
    history: list[EpochResult]  # every epoch of the run (a resumed run's earlier ones too)
    wrote: bool  # False on distributed workers other than rank 0: they train and write nothing
    epochs: float  # the run's length as it trained (a time budget's choice, replans included)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def absolute_paths(cfg: Config) -> Config:
    """`cfg` with its data and cache folders resolved once, from where the run starts: saved so,
    the run means the same folders to submit.py and --resume from any working directory."""
    return dataclasses.replace(cfg, **{name: os.path.realpath(path) for name, path in
                                       (("data_dir", cfg.data_dir), ("cache_dir", cfg.cache_dir)) if path})


def training_precision(cfg: Config, ctxs: list[mx.Context]) -> str:
    """The one precision decision of a training (ConfigError if cfg.precision cannot run on `ctxs`)."""
    return decide(cfg.precision, [c.device_type for c in ctxs], STARTUP, "train")


def training_job(cfg: Config, ctxs: list[mx.Context], data: TrainingData, precision: str,
                 show_progress: bool = True) -> TrainingJob:
    """The job of training on `data` (this process joins cfg.kvstore's cluster)."""
    return TrainingJob(cfg, ctxs, distributed.connect(cfg.kvstore, ctxs), data, precision, show_progress)


def train(cfg: Config, ctxs: list[mx.Context], out: str, show_progress: bool = True,
          plan: RunPlan | None = None, budgeting: Budgeting | None = None) -> Trained:
    """Train on the split's train part, validate on its valid part, fill the run directory `out`; as `plan`
    decided (a run repeated: `--config RUN`), or as this run decides (with a time budget, kept by `budgeting`:
    this machine's by default).

    With cfg.valid_ratio 0: train on every labelled image (train_valid), without validation.
    """
    check_model_name(cfg.model)  # everything that needs no data is checked before any work
    precision = training_precision(cfg, ctxs)
    cfg = absolute_paths(cfg)
    if cfg.data_dir and os.path.isdir(cfg.data_dir):
        refuse_inside(out, cfg.data_dir, "--out")
    if os.path.isdir(out):  # now, not after minutes of preparation (again, locked, when the run opens it)
        rundir.check_new(out)
    data = open_training_data(cfg, show_progress=show_progress)
    return run_training(training_job(cfg, ctxs, data, precision, show_progress), out,
                        plan=plan.repeated() if plan is not None else None, budgeting=budgeting)


def run_training(job: TrainingJob, out: str, resume_from: checkpoint.Checkpoint | None = None,
                 plan: RunPlan | None = None, budgeting: Budgeting | None = None) -> Trained:
    """Train `job` into run directory `out` (rank 0 writes it; other workers train and write nothing) as `plan`
    decided it (a resumed or repeated run's), or, without one, as the run decides now (`decide_plan`, a time
    budget kept by `budgeting`); with `resume_from`, continue that checkpoint of run `out`."""
    cfg, ctxs, cluster, data = job.cfg, job.ctxs, job.cluster, job.data
    enable_mixed_precision(job.precision)
    seed_everything(cfg.seed)
    if cluster.is_root:
        warn_if_unbalanced(data.tree.folder(data.part))
    loaders = recipe_loaders(job)
    # from the loader the run (or, without a plan yet, the budget's first probe) steps: no other is made for it.
    # A checkpoint holds the filters.
    first = cfg if plan is None else plan.settings(cfg)
    sample = whitening_sample(first, data, loaders(first)[0]) if resume_from is None else None
    budget, budgeting = None, budgeting or Budgeting()
    if plan is None:
        plan, net, budget = decide_plan(job, build_network(cfg, ctxs, len(data.classes), sample), loaders, sample,
                                        budgeting)
        settings = plan.settings(cfg)
    else:
        settings = plan.settings(cfg)
        net = build_network(settings, ctxs, len(data.classes), sample)
    train_data, valid_data = loaders(settings)
    parts = build_training(settings, ctxs, cluster, net, train_data, valid_data, job.precision, plan.length)
    history, start = _restore(resume_from, parts, ctxs) if resume_from is not None else ([], None)
    log.info("data %s: training on %s of %s tree %s, %s loader, %d batches%s", data.data_dir, data.part,
             data.tree.link_kind, data.tree.root, cfg.loader, len(train_data),
             f" on worker {cluster.rank} of {cluster.num_workers}" if cluster.distributed else "")
    with open_run(out, cfg, plan, data.classes, data.tree.data_fingerprint, _run_info(job),
                  writes=cluster.is_root, resume_from=resume_from) as recorder:
        hooks = RunHooks(settings, parts, recorder, history, plan, job.show_progress,
                         budget=budget, clock=budgeting.clock, replan=budgeting.replan)
        fit(parts, ctxs, sync_every=hooks.sync_every, start=start, hooks=hooks)
        if cluster.distributed:
            # Identical on every worker if the updates really were synchronised (a test compares them).
            log.info("worker %d of %d: trained weights digest %s", cluster.rank, cluster.num_workers,
                     weights_digest(parts.net))
        peak_mb = peak_memory_mb()
        log.info("peak resident memory of the training process: %.2f GB (--batch-pieces %d)", peak_mb / 1024,
                 settings.batch_pieces)
        recorder.finish(hooks.history, peak_mb)
    return Trained(out, hooks.history, cluster.is_root, plan.length.epochs)


def recipe_loaders(job: TrainingJob) -> Loaders:
    """The run's (training, validation) loaders for a recipe's settings, made once per batch size: airbench95's
    wider recipe, which a time budget may choose, trains on batches of its own size."""
    made: dict[int, tuple[Iterable, Iterable | None]] = {}

    def loaders(recipe: Config) -> tuple[Iterable, Iterable | None]:
        if recipe.batch_size not in made:
            made[recipe.batch_size] = make_loaders(recipe, job.data, job.cluster, job.ctxs,
                                                   with_valid=job.cluster.is_root,  # rank 0 validates
                                                   show_progress=job.show_progress)
        return made[recipe.batch_size]
    return loaders


def decide_plan(job: TrainingJob, net: gluon.Block, loaders: Loaders, sample: np.ndarray | None,
                budgeting: Budgeting) -> tuple[RunPlan, gluon.Block, BudgetPlan | None]:
    """Everything a fresh run decides before its first epoch, once: with --time-budget, its length, views and
    recipe from the speeds `budgeting` measures (plan_run: the recipe's network is returned, `net` or the wider
    one's); its warm-up where --warmup-epochs is auto; and the precision already decided."""
    cfg, budget = job.cfg, None
    if cfg.time_budget:
        measuring = budgeting.measuring(job.ctxs, job.cluster, job.data, loaders, job.precision, sample,
                                        budgeting.clock)
        planned = plan_run(cfg, job.data, net, measuring, budgeting.wider)
        recipe, net, budget = planned.cfg, planned.net, planned.plan
        epochs, tta = budget.epochs, budget.tta
        log.info("%s", budget.summary())
    else:  # only a time budget weighs six views against epochs
        recipe, epochs, tta = cfg, cfg.epochs, "flip" if cfg.tta == TTA_AUTO else cfg.tta
    warmup = recipe.warmup_epochs
    if warmup == WARMUP_AUTO:
        warmup = auto_warmup_epochs(epochs)
        log.info("--warmup-epochs auto: %d epoch(s) of warm-up for a %g-epoch run", warmup, epochs)
    changed = {k: v for k, v in recipe.to_dict().items()
               if getattr(cfg, k) != v and k not in ("epochs", "warmup_epochs", "tta")}  # the plan holds those
    plan = RunPlan(RunLength(epochs), warmup, tta, job.precision, changed, budget.as_record() if budget else None)
    return plan, net, budget


def _run_info(job: TrainingJob) -> dict[str, Any]:
    """What config.json records beside the settings and the plan."""
    data = job.data
    return {"data_dir_resolved": os.path.abspath(data.data_dir), "split_seed": job.cfg.seed, "train_part": data.part,
            "n_train": data.n_train, "n_valid": data.n_valid, "contexts": [str(c) for c in job.ctxs],
            "workers": job.cluster.num_workers, "startup": STARTUP.as_record()}


def _restore(last: checkpoint.Checkpoint, parts: TrainingParts,
             ctxs: list[mx.Context]) -> tuple[list[EpochResult], EpochProgress]:
    """Put `parts` where checkpoint `last` left them; returns its history and position."""
    checkpoint.restore(last, parts.net, parts.trainer, ctxs)
    if parts.lookahead is not None:
        parts.lookahead.start_from_weights()
    start = last.progress
    parts.train_data.start_at(start.epoch, start.batches)
    log.info("resuming %s at epoch %d, batch %d of %d", os.path.dirname(last.path), start.epoch, start.batches,
             parts.batches_per_epoch)
    return [EpochResult(**row) for row in last.history], start
