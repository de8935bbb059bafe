"""Train a run directory: `train` (a new run), `resume` (continue one), both through `run_training`.

A run, top to bottom: open the data once; build the network and loaders once; plan the time budget
on them (fresh runs with --time-budget: a few steps with a trainer of their own, then the weights
put back; with --wide-from-epochs, airbench95's wider network too, which may replace the run's);
build the trainer for the final settings; open the run directory with them; train; finish.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import mxnet as mx
import numpy as np

from .. import STARTUP
from ..atomic import refuse_inside
from ..config import RESUMABLE, TTA_AUTO, Config, changed_settings
from ..data.source import TrainingData, open_training_data
from ..data.split import warn_if_unbalanced
from ..distributed import cluster as distributed
from ..errors import ConfigError
from ..models import check_model_name
from ..precision import decide
from ..runs import checkpoint, rundir
from ..runs.recorder import open_run
from ..settings import flag
from ..training.budget import BudgetPlan
from ..training.engine import fit
from ..training.loaders import make_loaders, whitening_sample
from ..training.optim import enable_mixed_precision
from ..training.parts import TrainingParts, build_network, build_training, weights_digest
from ..training.records import EpochProgress, EpochResult
from ..training.reporting import RunHooks
from ..training.schedules import last_epoch, with_warmup_decided
from ..training.timing import process_clock
from .budget import plan_run, this_machine

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


def train(cfg: Config, ctxs: list[mx.Context], out: str, show_progress: bool = True) -> Trained:
    """Train on the split's train part, validate on its valid part, fill the run directory `out`.

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
    return run_training(training_job(cfg, ctxs, data, precision, show_progress), out)


def run_training(job: TrainingJob, out: str, resume_from: checkpoint.Checkpoint | None = None) -> Trained:
    """Train `job` into run directory `out` (rank 0 writes it; other workers train and write nothing);
    with `resume_from`, continue that checkpoint of run `out`."""
    cfg, ctxs, cluster, data = job.cfg, job.ctxs, job.cluster, job.data
    enable_mixed_precision(job.precision)
    seed_everything(cfg.seed)
    if cluster.is_root:
        warn_if_unbalanced(data.tree.folder(data.part))
    train_data, valid_data = make_loaders(cfg, data, cluster, ctxs, with_valid=cluster.is_root,  # rank 0 validates
                                          show_progress=job.show_progress)
    sample = whitening_sample(cfg, data) if resume_from is None else None  # a checkpoint holds the filters
    net = build_network(cfg, ctxs, len(data.classes), sample)
    plan, clock = None, process_clock()  # the budget's one clock, from its plan to its last replan
    if cfg.time_budget and resume_from is None:
        planned = plan_run(cfg, data, net, this_machine(ctxs, cluster, data, train_data, job.precision, sample, clock))
        cfg, net, plan = planned.cfg, planned.net, planned.plan
        log.info("%s", plan.summary())
    elif cfg.tta == TTA_AUTO:
        cfg = dataclasses.replace(cfg, tta="flip")  # only a time budget weighs six views against epochs
    decided = with_warmup_decided(cfg)  # --warmup-epochs auto, from the run's length
    if decided.warmup_epochs != cfg.warmup_epochs:
        log.info("--warmup-epochs auto: %d epoch(s) of warm-up for a %g-epoch run", decided.warmup_epochs, cfg.epochs)
    cfg = decided
    parts = build_training(cfg, ctxs, cluster, net, train_data, valid_data, job.precision)
    history, start = _restore(resume_from, parts, ctxs) if resume_from is not None else ([], None)
    log.info("data %s: training on %s of %s tree %s, %s loader, %d batches%s", data.data_dir, data.part,
             data.tree.link_kind, data.tree.root, cfg.loader, len(train_data),
             f" on worker {cluster.rank} of {cluster.num_workers}" if cluster.distributed else "")
    with open_run(out, cfg, data.classes, data.tree.data_fingerprint, _run_info(job, plan),
                  writes=cluster.is_root, resume_from=resume_from) as recorder:
        hooks = RunHooks(cfg, parts, recorder, history, plan, job.show_progress, clock)
        fit(parts, ctxs, cfg.epochs, sync_every=hooks.sync_every, start=start, hooks=hooks)
        if cluster.distributed:
            # Identical on every worker if the updates really were synchronised (a test compares them).
            log.info("worker %d of %d: trained weights digest %s", cluster.rank, cluster.num_workers,
                     weights_digest(parts.net))
        recorder.finish(hooks.history)
    return Trained(out, hooks.history, cluster.is_root, hooks.run_length(cfg.epochs))


def _run_info(job: TrainingJob, plan: BudgetPlan | None) -> dict[str, Any]:
    """What config.json records beside the settings."""
    data = job.data
    return {"data_dir_resolved": os.path.abspath(data.data_dir), "split_seed": job.cfg.seed, "train_part": data.part,
            "n_train": data.n_train, "n_valid": data.n_valid, "contexts": [str(c) for c in job.ctxs],
            "workers": job.cluster.num_workers, "precision_used": job.precision, "startup": STARTUP.as_record(),
            **({"time_budget_plan": plan.as_record()} if plan else {})}


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


def resume_config(run: str, overrides: dict[str, Any]) -> Config:
    """The run's saved config with `overrides` applied; only RESUMABLE settings may change."""
    saved, _ = rundir.load(run)
    wanted = Config.from_dict({**saved.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
    changed = changed_settings(saved, wanted)
    if changed:
        listed = ", ".join(f"--{flag(k)} ({old} -> {new})" for k, (old, new) in changed.items())
        raise ConfigError(f"cannot change {listed} when resuming {run}: only {', '.join(RESUMABLE)} may change. "
                          "Start a new run (another --out) to train with different settings")
    return wanted


def resume(run: str, cfg: Config, ctxs: list[mx.Context], show_progress: bool = True,
           data_dir: str | None = None) -> Trained:
    """Continue run `run` from RUN/checkpoint-last.zip with `cfg` (from resume_config); `data_dir`:
    the layout already resolved from cfg.data_dir, if the caller has it."""
    precision = training_precision(cfg, ctxs)
    with rundir.locked(run):
        pass  # only to fail at once, named, while another process still runs it
    last = checkpoint.read(os.path.join(run, checkpoint.LAST))
    changed = changed_settings(Config.from_dict(last.config, last.path), cfg)
    if changed:
        raise ConfigError(f"{last.path} was written with other settings than {run}/config.json "
                          f"({', '.join(f'{k}: {a} vs {b}' for k, (a, b) in changed.items())}): it does not belong "
                          "to this run; start a new run")
    if last.progress.epoch > last_epoch(cfg.epochs):
        raise ConfigError(f"{run} already finished its {cfg.epochs} epochs; pass --epochs with a larger number "
                          "to train longer")
    part = rundir.info(run).get("train_part", "train")  # RUN/retrain trained on train_valid
    data = open_training_data(cfg, part, show_progress, data_dir)
    labels, _, files = last.data_fingerprint.partition(":")  # older checkpoints hold the labels' digest alone
    if data.tree.labels_sha256 != labels:
        raise ConfigError(f"{data.data_dir}/trainLabels.csv changed since {run} started: resuming would train on "
                          "other data. Restore the original labels or start a new run")
    if files and data.tree.files_sha256 != files:
        raise ConfigError(f"training images in {data.data_dir} were replaced or modified since {run} started (same "
                          "labels, other files): resuming would train on other data. Restore them or start a new run")
    return run_training(training_job(cfg, ctxs, data, precision, show_progress), run, last)
