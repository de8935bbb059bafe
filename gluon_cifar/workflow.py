"""The two jobs users run, end to end: train a run directory, and turn one into submission.csv.

Scripts parse flags into a Config and resolve contexts, then call these; tests call them too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Iterable

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp
from tqdm import tqdm

from . import STARTUP
from .config import RESUMABLE, TTAS, Config, changed_settings, default_cache_dir
from .data.augment import make_augment
from .data.batches import DecodedEvalLoader, DecodedTrainLoader, decoded_part
from .data.decoded import decoded_images
from .data.demo import ensure_demo_dataset
from .data.folder import ImageFiles, class_names, eval_loader, image_folder, sample_images, train_loader
from .data.images import check_headers
from .data.kaggle import check_sample_submission, read_test, read_train
from .data.split import SplitTree, build_split_tree, warn_if_unbalanced
from .data.transforms import eval_transform, train_transform
from .distributed import cluster as distributed
from .errors import ConfigError, LayoutError
from .inference.predict import cast_for_inference, check_dtype, check_writable, predict_files, write_submission
from .models import FASTNETS, build_model, check_model_name
from .runs import checkpoint, rundir
from .atomic import writable_dir
from .runtime import PRECISIONS, resolve_precision
from .training import budget
from .training.averaging import Lookahead
from .training.engine import (
    EpochProgress,
    EpochResult,
    enable_mixed_precision,
    fit,
    lr_schedule,
    make_loss,
    make_trainer,
    train_one_epoch,
)

log = logging.getLogger(__name__)

PREDICT_SAMPLE = 4096  # test images whose prediction is timed to plan a time budget
SUBMIT_BATCH = 512  # scripts/submit.py's default --batch-size
RETRAIN = "retrain"  # run subdirectory of the train+valid retraining done by submit(retrain=True)
WHITENING_SAMPLE = 5000  # training images whose 2x2 patches set a fastnet's whitening filters


def cache_dir(cfg: Config) -> str:
    """The cache directory in force (made if needed), checked writable before any long work."""
    path = cfg.cache_dir or default_cache_dir()
    writable_dir(path, "the cache directory", "point --cache-dir or GLUON_CIFAR_CACHE to a writable place")
    return path


def resolve_data_dir(cfg: Config) -> str:
    """The configured data directory, or the demo dataset (generated on first use)."""
    return cfg.data_dir or ensure_demo_dataset(cache_dir(cfg))


def prepare_split(cfg: Config, data_dir: str) -> SplitTree:
    images = read_train(data_dir)
    return build_split_tree(images, data_dir, cfg.valid_ratio, cfg.seed, cache_dir(cfg))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def _progress(total: int, desc: str, enabled: bool):
    return lambda epoch: tqdm(total=total, desc=f"{desc} {epoch}", unit="img", leave=False, disable=not enabled)


def _train_run(cfg: Config, ctxs: list[mx.Context], data_dir: str, tree: SplitTree, part: str,
               valid_part: str | None, out: str, show_progress: bool,
               resume_from: checkpoint.Checkpoint | None = None, plan_budget: bool = False) -> list[EpochResult]:
    """Train on the tree's `part`, validate on `valid_part` (if any), and fill run directory `out`.

    With `plan_budget` and cfg.time_budget, the epochs are chosen to fit the budget (budget.py).

    With `resume_from`, continue that checkpoint of run `out` instead of starting afresh. In a
    distributed run every worker trains; only rank 0 validates and writes `out`.
    """
    cluster = distributed.connect(cfg.kvstore, ctxs)
    precision = _enable_precision(cfg, ctxs)
    classes = class_names(tree.folder(part))
    if not cluster.is_root:
        return _train_loop(cfg, ctxs, cluster, data_dir, tree, part, None, classes, None, show_progress, resume_from)
    created = rundir.create(out)
    try:
        with rundir.locked(out):
            if resume_from is None:
                rundir.check_new(out)
            return _train_run_locked(cfg, ctxs, cluster, precision, data_dir, tree, part, valid_part, classes, out,
                                     show_progress, resume_from, plan_budget)
    finally:
        if created:
            rundir.remove_if_empty(out)  # a run that failed before its first checkpoint leaves nothing


def _train_run_locked(cfg: Config, ctxs: list[mx.Context], cluster: distributed.Cluster, precision: str,
                      data_dir: str, tree: SplitTree, part: str, valid_part: str | None, classes: list[str],
                      out: str, show_progress: bool, resume_from: checkpoint.Checkpoint | None,
                      plan_budget: bool) -> list[EpochResult]:
    """_train_run's part for the process that owns run directory `out` (holding its lock)."""
    checkpoint.remove_temporaries(out)  # safe: no other live process writes here
    warn_if_unbalanced(tree.folder(part))
    n_train = tree.n_train if valid_part else tree.n_train + tree.n_valid
    try:
        planned, plan = {}, None
        if plan_budget and cfg.time_budget:
            plan = _plan_budget(cfg, ctxs, cluster, data_dir, tree, part, valid_part, len(classes), show_progress)
            log.info("%s", plan.summary())
            cfg, planned = dataclasses.replace(cfg, epochs=plan.epochs), {"time_budget_plan": plan.as_record()}
        rundir.save_start(out, cfg, classes, {"data_dir_resolved": os.path.abspath(data_dir), "split_seed": cfg.seed,
                                              "train_part": part, "n_train": n_train,
                                              "n_valid": tree.n_valid if valid_part else 0,
                                              "contexts": [str(c) for c in ctxs], "workers": cluster.num_workers,
                                              "precision_used": precision, "startup": STARTUP.as_record(),
                                              **planned})
        return _train_loop(cfg, ctxs, cluster, data_dir, tree, part, valid_part, classes, out, show_progress,
                           resume_from, plan)
    except BaseException:
        if not rundir.has_checkpoint(out):
            rundir.discard(out)
        raise


def _enable_precision(cfg: Config, ctxs: list[mx.Context]) -> str:
    """Set up the run's arithmetic before any network is built; return the training precision."""
    precision = resolve_precision(cfg.precision, [c.device_type for c in ctxs], STARTUP, "train")
    if cfg.amp:
        enable_mixed_precision(ctxs, "float16")
    elif precision == "bfloat16":
        enable_mixed_precision(ctxs, "bfloat16")
    return "float16" if cfg.amp else precision


def _plan_budget(cfg: Config, ctxs: list[mx.Context], cluster: distributed.Cluster, data_dir: str, tree: SplitTree,
                 part: str, valid_part: str | None, n_classes: int, show_progress: bool) -> budget.BudgetPlan:
    """Measure training and prediction speed on a throwaway copy of the run's network (built,
    initialised and averaged as the run will be), then plan cfg.time_budget."""
    train_data, _ = make_loaders(cfg, ctxs[0], cluster, data_dir, tree, part, None, show_progress)
    sample = sample_images(tree.folder(part), WHITENING_SAMPLE) if cfg.model in FASTNETS else None
    probe = build_model(cfg.model, n_classes, ctxs, seed=cfg.seed, sample=sample)
    if cfg.hybridize:
        probe.hybridize(static_alloc=True)
    trainer = make_trainer(probe, cfg, len(train_data), cluster.kvstore, False)
    loss_fn = make_loss(cfg)
    lookahead = Lookahead(probe, cfg.lookahead_every, len(train_data), cfg.epochs) if cfg.lookahead_every else None

    def train_steps(batches: Iterable) -> int:
        return train_one_epoch(probe, batches, loss_fn, trainer, ctxs, sync_every=1 << 30,  # reads the loss: waits
                               after_step=lookahead)[2]

    # Chunks of cfg.lookahead_every batches, so that each includes one averaging step.
    train_rate = budget.measure_rate(train_steps, train_data, chunk=max(1, cfg.lookahead_every), min_batches=5,
                                     min_seconds=10.0)
    try:
        _, test_paths = read_test(data_dir)
    except LayoutError:
        test_paths = []  # a layout without test images: nothing to predict
    predict_rate = 1.0
    if test_paths:
        precision = resolve_precision("auto", [c.device_type for c in ctxs], STARTUP, "predict")  # submit's default
        net = cast_for_inference(probe, precision, ctxs)
        sample = test_paths[::max(1, len(test_paths) // PREDICT_SAMPLE)][:PREDICT_SAMPLE]
        predict_files(net, sample[:SUBMIT_BATCH], ctxs, SUBMIT_BATCH, cfg.num_workers, tta=cfg.tta)  # warm-up
        start = time.perf_counter()  # one pass like submit's, decoding workers' start included
        predict_files(net, sample, ctxs, SUBMIT_BATCH, cfg.num_workers, tta=cfg.tta)
        predict_rate = len(sample) / (time.perf_counter() - start)
    min_epochs = cfg.warmup_epochs + 1 if cfg.schedule != "step" else 1
    return budget.plan(cfg.time_budget * 60, budget.process_age_s(), train_rate,
                       len(train_data) * train_data.batch_size, tree.n_valid if valid_part else 0, len(test_paths),
                       predict_rate, min_epochs)


def make_loaders(cfg: Config, ctx: mx.Context, cluster: distributed.Cluster, data_dir: str, tree: SplitTree,
                 part: str, valid_part: str | None, show_progress: bool = False) -> tuple[Iterable, Iterable | None]:
    """(training loader, validation loader or None) over the tree's parts, as `cfg.loader` says.

    Both kinds give the same images in the same batches for a given seed; `ctx`: where the decoded
    loader assembles and augments its batches.
    """
    batch_size = distributed.worker_batch_size(cfg.batch_size, cluster)
    if cfg.loader == "decoded":
        paths = read_train(data_dir).paths
        images = decoded_images(paths, cache_dir(cfg), cfg.num_workers, show_progress)
        train = DecodedTrainLoader(decoded_part(tree.folder(part), images, paths), batch_size, cfg.seed,
                                   make_augment(cfg.augment, cfg.seed), cluster.rank, cluster.num_workers, ctx)
        valid = (DecodedEvalLoader(decoded_part(tree.folder(valid_part), images, paths), cfg.batch_size, ctx)
                 if valid_part else None)
        return train, valid
    source = os.path.join(data_dir, "train")
    train = train_loader(image_folder(tree.folder(part), train_transform(), source), batch_size, cfg.seed,
                         cfg.num_workers, cluster.rank, cluster.num_workers)
    valid = (eval_loader(image_folder(tree.folder(valid_part), eval_transform(), source), cfg.batch_size,
                         cfg.num_workers) if valid_part else None)
    return train, valid


def _train_loop(cfg: Config, ctxs: list[mx.Context], cluster: distributed.Cluster, data_dir: str, tree: SplitTree,
                part: str, valid_part: str | None, classes: list[str], out: str | None, show_progress: bool,
                resume_from: checkpoint.Checkpoint | None, plan: budget.BudgetPlan | None = None) -> list[EpochResult]:
    """The training itself; `out` None: write nothing (a distributed worker other than rank 0).
    `plan`: the time budget's, to warn when the run falls behind it."""
    seed_everything(cfg.seed)
    train_data, valid_data = make_loaders(cfg, ctxs[0], cluster, data_dir, tree, part, valid_part, show_progress)
    log.info("data %s: training on %s of %s tree %s, %s loader, %d batches%s", data_dir, part, tree.link_kind,
             tree.root, cfg.loader, len(train_data),
             f" on worker {cluster.rank} of {cluster.num_workers}" if cluster.distributed else "")
    sample = sample_images(tree.folder(part), WHITENING_SAMPLE) if cfg.model in FASTNETS and not resume_from else None
    net = build_model(cfg.model, len(classes), ctxs, seed=cfg.seed, sample=sample)
    if cfg.hybridize:
        net.hybridize(static_alloc=True)
    # Lookahead rewrites the weights between steps: they must be the ones the optimizer updates,
    # not a kvstore's copy (which MXNet keeps for several local contexts unless told not to).
    update_on_kvstore = False if cfg.lookahead_every else cluster.update_on_kvstore
    trainer = make_trainer(net, cfg, len(train_data), cluster.kvstore, update_on_kvstore)
    lookahead = Lookahead(net, cfg.lookahead_every, len(train_data), cfg.epochs) if cfg.lookahead_every else None
    if cluster.distributed:
        distributed.initialize_kvstore(trainer)
    if cfg.amp:
        amp.init_trainer(trainer)
    history: list[EpochResult] = []
    best: float | None = None  # validation accuracy of checkpoint-best.zip
    start = None
    if resume_from is not None:
        checkpoint.restore(resume_from, net, trainer, ctxs)
        if lookahead is not None:
            lookahead.start_from_weights()
        # The pickled schedule is the old run's; a fresh one honours a changed --epochs.
        trainer.optimizer.lr_scheduler = lr_schedule(cfg, len(train_data))
        history = [EpochResult(**row) for row in resume_from.history]
        best, start = resume_from.best_valid_acc, resume_from.progress
        train_data.start_at(start.epoch, start.batches)
        log.info("resuming %s at epoch %d, batch %d of %d", out, start.epoch, start.batches, len(train_data))

    def save_checkpoint(position: EpochProgress) -> None:
        checkpoint.save(out, net, trainer, position, [h.as_row() for h in history], cfg.to_dict(),
                        tree.labels_sha256, best)

    def on_sync(progress: EpochProgress) -> None:
        if (out and cfg.checkpoint_every and progress.batches % cfg.checkpoint_every == 0
                and progress.batches < len(train_data)):
            save_checkpoint(progress)

    def on_epoch_end(result: EpochResult) -> None:
        nonlocal best
        history.append(result)
        valid = f", valid acc {result.valid_acc:.4f}" if result.valid_acc is not None else ""
        log.info("epoch %d/%d: lr %.4g, train loss %.4f, train acc %.4f%s, %.1f examples/s, %.0f s",
                 result.epoch, cfg.epochs, result.lr, result.train_loss, result.train_acc, valid,
                 result.examples_per_sec, result.seconds)
        if plan is not None:
            pace = sum(h.seconds for h in history) / len(history)
            late = budget.projected_overrun_s(plan, result.epoch, pace)
            if late > 0:
                log.warning("at this pace (%.0f s an epoch, %.0f planned) training and the submission will end %.1f "
                            "min after the %.0f-minute budget: the machine has slowed down since the start",
                            pace, plan.epoch_s, late / 60, plan.budget_s / 60)
        if out is None:
            return
        rundir.save_metrics(out, history)
        rundir.save_params(out, net)
        improved = result.valid_acc is not None and (best is None or result.valid_acc > best)
        if improved:
            best = result.valid_acc
        save_checkpoint(EpochProgress(epoch=result.epoch + 1))
        if improved:
            checkpoint.mark_best(out)

    # Sync (read metrics, check for NaN) at least wherever a checkpoint is due.
    sync_every = math.gcd(cfg.sync_every, cfg.checkpoint_every) if cfg.checkpoint_every else cfg.sync_every
    fit(net, trainer, train_data, valid_data, ctxs, cfg.epochs, sync_every, on_epoch_end,
        _progress(len(train_data) * train_data.batch_size, "epoch", show_progress), on_sync, start,
        cluster.num_workers, cfg.amp, make_loss(cfg), lookahead)
    if cluster.distributed:
        # Identical on every worker if the updates really were synchronised (a test compares them).
        log.info("worker %d of %d: trained weights digest %s", cluster.rank, cluster.num_workers,
                 weights_digest(net))
    if out is not None:
        rundir.save_curves(out, history)
        if history[-1].confusion is not None:
            rundir.save_confusion(out, history[-1].confusion, classes)
    return history


def weights_digest(net: gluon.Block) -> str:
    """sha256 of the trainable weights (not BatchNorm statistics: those are per worker by design)."""
    digest = hashlib.sha256()
    for param in net.collect_params().values():
        if param.grad_req != "null":
            digest.update(param.data().asnumpy().tobytes())
    return digest.hexdigest()[:16]


def train(cfg: Config, ctxs: list[mx.Context], out: str, show_progress: bool = True) -> list[EpochResult]:
    """Train on the split's train part, validate on its valid part, fill the run directory `out`.

    With cfg.valid_ratio 0: train on every labelled image (train_valid), without validation.
    """
    check_model_name(cfg.model)  # before anything is written
    data_dir = resolve_data_dir(cfg)
    tree = prepare_split(cfg, data_dir)
    if not cfg.valid_ratio:
        return _train_run(cfg, ctxs, data_dir, tree, "train_valid", None, out, show_progress, plan_budget=True)
    return _train_run(cfg, ctxs, data_dir, tree, "train", "valid", out, show_progress, plan_budget=True)


def resume_config(run: str, overrides: dict[str, Any]) -> Config:
    """The run's saved config with `overrides` applied; only RESUMABLE settings may change."""
    saved, _ = rundir.load(run)
    wanted = Config.from_dict({**saved.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
    changed = changed_settings(saved, wanted)
    if changed:
        listed = ", ".join(f"--{k.replace('_', '-')} ({old} -> {new})" for k, (old, new) in changed.items())
        raise ConfigError(f"cannot change {listed} when resuming {run}: only {', '.join(RESUMABLE)} may change. "
                          "Start a new run (another --out) to train with different settings")
    return wanted


def resume(run: str, cfg: Config, ctxs: list[mx.Context], show_progress: bool = True) -> list[EpochResult]:
    """Continue run `run` from RUN/checkpoint-last.zip with `cfg` (from resume_config)."""
    with rundir.locked(run):
        pass  # only to fail at once, named, while another process still runs it
    last = checkpoint.read(os.path.join(run, checkpoint.LAST))
    changed = changed_settings(Config.from_dict(last.config), cfg)
    if changed:
        raise ConfigError(f"{last.path} was written with other settings than {run}/config.json "
                          f"({', '.join(f'{k}: {a} vs {b}' for k, (a, b) in changed.items())}): it does not belong "
                          "to this run; start a new run")
    if last.progress.epoch > cfg.epochs:
        raise ConfigError(f"{run} already finished its {cfg.epochs} epochs; pass --epochs with a larger number "
                          "to train longer")
    data_dir = resolve_data_dir(cfg)
    tree = prepare_split(cfg, data_dir)
    if tree.labels_sha256 != last.data_fingerprint:
        raise ConfigError(f"{data_dir}/trainLabels.csv changed since {run} started: resuming would train on other "
                          "data. Restore the original labels or start a new run")
    part = rundir.info(run).get("train_part", "train")  # RUN/retrain trained on train_valid
    return _train_run(cfg, ctxs, data_dir, tree, part, "valid" if part == "train" else None, run, show_progress, last)


def load_network(cfg: Config, classes: list[str], params: str, ctxs: list[mx.Context]):
    """The run's network with trained parameters `params`, hybridized if the run was."""
    net = build_model(cfg.model, len(classes), ctxs)
    try:
        net.load_parameters(params, ctx=ctxs)
    except (mx.base.MXNetError, AssertionError, ValueError, RuntimeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[-1][:200]  # MXNet's message ends with the reason
        raise ConfigError(f"{params} cannot be loaded ({reason}): it is damaged "
                          "or belongs to another network; train the run again (or pass another --params)") from None
    if cfg.hybridize:
        net.hybridize(static_alloc=True)
    return net


def load_for_export(run: str, params_name: str, n_images: int):
    """The run's network on the CPU and the first `n_images` test images of its data, transformed."""
    cfg, classes = rundir.load(run)
    params = os.path.join(run, params_name)
    if not os.path.isfile(params):
        raise ConfigError(f"{params} is missing: train the run first (or pass --params)")
    net = load_network(cfg, classes, params, [mx.cpu()])
    _, paths = read_test(resolve_data_dir(cfg))
    test_images = ImageFiles(paths[:n_images])
    images = mx.nd.stack(*[test_images[i][0] for i in range(len(test_images))])
    return net, images


def _retrain(cfg: Config, ctxs: list[mx.Context], data_dir: str, tree: SplitTree, out: str,
             show_progress: bool) -> None:
    """Train on train+valid into `out`; a retraining that already ran is reused or continued."""
    last = os.path.join(out, checkpoint.LAST)
    if not os.path.exists(last):
        _train_run(cfg, ctxs, data_dir, tree, "train_valid", None, out, show_progress)
    elif checkpoint.read(last).progress.epoch > cfg.epochs:
        log.info("reusing the finished retraining in %s", out)
    else:
        resume(out, resume_config(out, cfg.to_dict()), ctxs, show_progress)


@dataclass
class Submission:
    path: str
    rows: int
    params: str


def submit(run: str, ctxs: list[mx.Context], out: str | None = None, data_dir: str | None = None,
           retrain: bool = False, batch_size: int = SUBMIT_BATCH, num_workers: int | None = None,
           show_progress: bool = True, precision: str = "auto", tta: str | None = None) -> Submission:
    """Write submission.csv for DIR/test from a finished run; `tta`: the run's cfg.tta unless given.

    `precision` "auto": bfloat16 on CPUs that compute it natively (measured faster), else float32.

    With `retrain`, first train afresh on train+valid with the run's settings (the book's final
    step) and predict with that network; that training leaves its own run directory, RUN/retrain.
    """
    if batch_size < 1 or (num_workers is not None and num_workers < 0):
        raise ConfigError(f"--batch-size must be at least 1 and --num-workers at least 0, got {batch_size} and "
                          f"{num_workers}")
    cfg, classes = rundir.load(run)
    data_dir = data_dir or resolve_data_dir(cfg)
    out = out or os.path.join(run, "submission.csv")
    check_writable(out)
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = resolve_precision(precision, [c.device_type for c in ctxs], STARTUP, "predict")
    check_dtype(dtype, ctxs)
    if tta is not None and tta not in TTAS:
        raise ConfigError(f"--tta must be one of {', '.join(TTAS)}, got {tta!r}")
    ids, paths = read_test(data_dir)
    check_headers(paths, os.path.join(data_dir, "test"))
    check_sample_submission(data_dir, ids)
    workers = cfg.num_workers if num_workers is None else num_workers

    if retrain:
        tree = prepare_split(cfg, data_dir)
        if class_names(tree.folder("train_valid")) != classes:
            raise ConfigError(f"the classes of {data_dir} differ from those of run {run}; retrain on the same data")
        retrain_dir = os.path.join(run, RETRAIN)
        _retrain(cfg, ctxs, data_dir, tree, retrain_dir, show_progress)
        params = os.path.join(retrain_dir, rundir.PARAMS)
    else:
        params = os.path.join(run, rundir.PARAMS)
        if not os.path.isfile(params):
            raise ConfigError(f"{params} is missing: run {run} did not finish an epoch; train it or use --retrain")

    net = cast_for_inference(load_network(cfg, classes, params, ctxs), dtype, ctxs)
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not show_progress) as bar:
        predictions = predict_files(net, paths, ctxs, batch_size, workers, bar.update, tta or cfg.tta)
    write_submission(out, ids, predictions, classes)
    log.info("wrote %s: %d rows, predicted in %s", out, len(ids), dtype)
    return Submission(out, len(ids), params)
