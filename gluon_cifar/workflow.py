"""The two jobs users run, end to end: train a run directory, and turn one into submission.csv.

Scripts parse flags into a Config and resolve contexts, then call these; tests call them too.
"""
from __future__ import annotations

import dataclasses
import glob
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
from tqdm import tqdm

from . import STARTUP
from .atomic import check_output_file, refuse_inside, writable_dir
from .config import (
    RESUMABLE,
    Config,
    SubmitOptions,
    changed_settings,
    default_cache_dir,
    flag,
)
from .data.archives import (
    SAMPLE,
    archived_test_images,
    find_download,
    first_test_images,
    materialise,
)
from .data.augment import make_augment
from .data.batches import DecodedEvalLoader, DecodedTrainLoader, decoded_part
from .data.decoded import decoded_images
from .data.demo import ensure_demo_dataset
from .data.folder import (
    class_names,
    eval_loader,
    image_folder,
    sample_images,
    train_loader,
)
from .data.images import check_headers
from .data.kaggle import check_sample_submission, read_label_csv, read_test, read_train
from .data.split import SplitTree, build_split_tree, warn_if_unbalanced
from .data.transforms import eval_transform, train_transform
from .distributed import cluster as distributed
from .errors import ConfigError, LayoutError
from .inference.predict import (
    cast_for_inference,
    predict_archive,
    predict_files,
    write_submission,
)
from .models import FASTNETS, build_model, check_model_name
from .runs import checkpoint, rundir
from .runs.recorder import NullRecorder, open_run
from .runtime import resolve_precision
from .training import budget
from .training.engine import fit, train_one_epoch
from .training.optim import enable_mixed_precision
from .training.parts import TrainingParts, build_training
from .training.records import EpochProgress, EpochResult
from .training.reporting import RunHooks
from .training.schedules import lr_schedule

log = logging.getLogger(__name__)

PREDICT_SAMPLE = 4096  # test images whose prediction is timed to plan a time budget
RETRAIN = "retrain"  # run subdirectory of the train+valid retraining done by submit(retrain=True)
WHITENING_SAMPLE = 5000  # training images whose 2x2 patches set a fastnet's whitening filters


def cache_dir(cfg: Config) -> str:
    """The cache directory in force (made if needed), checked writable before any long work."""
    path = cfg.cache_dir or default_cache_dir()
    writable_dir(path, "the cache directory", "point --cache-dir or GLUON_CIFAR_CACHE to a writable place")
    return path


def resolve_data_dir(cfg: Config, show_progress: bool = True) -> str:
    """The configured data directory in the Kaggle layout, or the demo dataset (generated on first use)."""
    return kaggle_layout(cfg.data_dir, cfg, show_progress) if cfg.data_dir else ensure_demo_dataset(cache_dir(cfg))


def kaggle_layout(data_dir: str, cfg: Config, show_progress: bool = True, with_train: bool = True) -> str:
    """`data_dir` itself if extracted; for the competition zip or a folder with train.7z / test.7z,
    the layout made from it once in the cache (archives.materialise: test.7z stays an archive;
    train.7z is extracted only `with_train`)."""
    download = find_download(data_dir)
    return data_dir if download is None else materialise(download, cache_dir(cfg), show_progress, with_train)


def prepare_split(cfg: Config, data_dir: str) -> SplitTree:
    images = read_train(data_dir)
    return build_split_tree(images, data_dir, cfg.valid_ratio, cfg.seed, cache_dir(cfg))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


@dataclass(frozen=True)
class TrainingJob:
    """One training: its settings, devices and place among the workers, and the data it trains on."""

    cfg: Config
    ctxs: list[mx.Context]
    cluster: distributed.Cluster
    data_dir: str
    tree: SplitTree
    part: str  # the split tree's folder to train on: "train" (validated on "valid") or "train_valid"
    classes: list[str]
    show_progress: bool = True

    @property
    def valid_part(self) -> str | None:
        return "valid" if self.part == "train" else None


def training_job(cfg: Config, ctxs: list[mx.Context], data_dir: str, tree: SplitTree, part: str,
                 show_progress: bool = True) -> TrainingJob:
    """The job of training on `part` of split `tree` (this process joins cfg.kvstore's cluster)."""
    cluster = distributed.connect(cfg.kvstore, ctxs)
    return TrainingJob(cfg, ctxs, cluster, data_dir, tree, part, class_names(tree.folder(part)), show_progress)


def _train_run(job: TrainingJob, out: str, resume_from: checkpoint.Checkpoint | None = None,
               plan_budget: bool = False) -> list[EpochResult]:
    """Train `job` into run directory `out` (rank 0 writes it; other workers train and write nothing).

    With `plan_budget` and cfg.time_budget, the epochs are chosen to fit the budget (budget.py).
    With `resume_from`, continue that checkpoint of run `out` instead of starting afresh.
    """
    precision = _enable_precision(job.cfg, job.ctxs)
    with open_run(out, job.cfg, job.classes, job.tree.data_fingerprint, writes=job.cluster.is_root,
                  resume_from=resume_from) as recorder:
        plan = None
        if job.cluster.is_root:
            warn_if_unbalanced(job.tree.folder(job.part))
            if plan_budget and job.cfg.time_budget:
                plan = _plan_budget(job)
                log.info("%s", plan.summary())
                job = dataclasses.replace(job, cfg=dataclasses.replace(job.cfg, epochs=plan.epochs))
            recorder.start(job.cfg, _run_info(job, precision, plan))
        return _train_loop(job, recorder, resume_from, plan)


def _run_info(job: TrainingJob, precision: str, plan: budget.BudgetPlan | None) -> dict[str, Any]:
    """What config.json records beside the settings."""
    tree, valid = job.tree, job.valid_part is not None
    return {"data_dir_resolved": os.path.abspath(job.data_dir), "split_seed": job.cfg.seed, "train_part": job.part,
            "n_train": tree.n_train if valid else tree.n_train + tree.n_valid, "n_valid": tree.n_valid if valid else 0,
            "contexts": [str(c) for c in job.ctxs], "workers": job.cluster.num_workers, "precision_used": precision,
            "startup": STARTUP.as_record(), **({"time_budget_plan": plan.as_record()} if plan else {})}


def _enable_precision(cfg: Config, ctxs: list[mx.Context]) -> str:
    """Set up the run's arithmetic before any network is built; return the training precision."""
    precision = resolve_precision(cfg.precision, [c.device_type for c in ctxs], STARTUP, "train")
    if cfg.amp:
        enable_mixed_precision(ctxs, "float16")
    elif precision == "bfloat16":
        enable_mixed_precision(ctxs, "bfloat16")
    return "float16" if cfg.amp else precision


def _whitening_sample(job: TrainingJob) -> np.ndarray | None:
    """The images a fastnet's whitening filters are computed from (None for other networks)."""
    return sample_images(job.tree.folder(job.part), WHITENING_SAMPLE) if job.cfg.model in FASTNETS else None


def _plan_budget(job: TrainingJob) -> budget.BudgetPlan:
    """Measure training and prediction speed on a throwaway copy of the run's network (built,
    initialised and averaged as the run will be), then plan cfg.time_budget."""
    cfg, ctxs = job.cfg, job.ctxs
    train_data, _ = make_loaders(job, with_valid=False)
    probe = build_training(cfg, ctxs, job.cluster, train_data, None, len(job.classes), _whitening_sample(job))

    def train_steps(batches: Iterable) -> int:
        return train_one_epoch(probe, batches, ctxs, sync_every=1 << 30)[2]  # reads the loss at the end: waits

    # Chunks of cfg.lookahead_every batches, so that each includes one averaging step.
    train_rate = budget.measure_rate(train_steps, train_data, chunk=max(1, cfg.lookahead_every), min_batches=5,
                                     min_seconds=10.0)
    n_test, sample_paths = _prediction_workload(job.data_dir, job.tree.folder(job.part))
    predict_rate = _predict_rate(probe.net, sample_paths, job) if n_test else 1.0
    min_epochs = cfg.warmup_epochs + 1 if cfg.schedule != "step" else 1
    return budget.plan(cfg.time_budget * 60, budget.process_age_s(), train_rate,
                       len(train_data) * train_data.batch_size, job.tree.n_valid if job.valid_part else 0,
                       n_test, predict_rate, min_epochs)


def _prediction_workload(data_dir: str, train_folder: str) -> tuple[int, list[str]]:
    """(test images submit.py will predict, image files to time that on). With test.7z not
    extracted, the count is sampleSubmission.csv's and the timing is on the training images under
    `train_folder` (already checked; the same size and format; the archive's reading is not in it)."""
    if archived_test_images(data_dir) is not None:
        sample = os.path.join(data_dir, SAMPLE)
        n_test = len(read_label_csv(sample)) if os.path.isfile(sample) else 0
        return n_test, sorted(glob.glob(os.path.join(train_folder, "**", "*.png"), recursive=True))
    try:
        _, test_paths = read_test(data_dir)
    except LayoutError:
        return 0, []  # a layout without test images: nothing to predict
    return len(test_paths), test_paths


def _predict_rate(net: gluon.Block, test_paths: list[str], job: TrainingJob) -> float:
    """Test images a second that submit.py's defaults will predict with `net`, timed on a sample."""
    batch = SubmitOptions.batch_size
    precision = resolve_precision(SubmitOptions.precision, [c.device_type for c in job.ctxs], STARTUP, "predict")
    net = cast_for_inference(net, precision, job.ctxs)
    sample = test_paths[::max(1, len(test_paths) // PREDICT_SAMPLE)][:PREDICT_SAMPLE]
    predict_files(net, sample[:batch], job.ctxs, batch, job.cfg.num_workers, tta=job.cfg.tta)  # warm-up
    start = time.perf_counter()  # one pass like submit's, decoding workers' start included
    predict_files(net, sample, job.ctxs, batch, job.cfg.num_workers, tta=job.cfg.tta)
    return len(sample) / (time.perf_counter() - start)


def make_loaders(job: TrainingJob, with_valid: bool = True) -> tuple[Iterable, Iterable | None]:
    """(training loader, validation loader or None) over the job's parts, as cfg.loader says.

    Both kinds give the same images in the same batches for a given seed; the decoded loader
    assembles and augments its batches on the first context.
    """
    cfg, cluster, tree = job.cfg, job.cluster, job.tree
    valid_part = job.valid_part if with_valid else None
    batch_size = distributed.worker_batch_size(cfg.batch_size, cluster)
    if cfg.loader == "decoded":
        paths = read_train(job.data_dir).paths
        images = decoded_images(paths, cache_dir(cfg), cfg.num_workers, job.show_progress)
        train = DecodedTrainLoader(decoded_part(tree.folder(job.part), images, paths), batch_size, cfg.seed,
                                   make_augment(cfg.augment, cfg.seed), cluster.rank, cluster.num_workers,
                                   job.ctxs[0])
        valid = (DecodedEvalLoader(decoded_part(tree.folder(valid_part), images, paths), cfg.batch_size, job.ctxs[0])
                 if valid_part else None)
        return train, valid
    source = os.path.join(job.data_dir, "train")
    train = train_loader(image_folder(tree.folder(job.part), train_transform(), source), batch_size, cfg.seed,
                         cfg.num_workers, cluster.rank, cluster.num_workers)
    valid = (eval_loader(image_folder(tree.folder(valid_part), eval_transform(), source), cfg.batch_size,
                         cfg.num_workers) if valid_part else None)
    return train, valid


def _train_loop(job: TrainingJob, recorder: NullRecorder, resume_from: checkpoint.Checkpoint | None,
                plan: budget.BudgetPlan | None) -> list[EpochResult]:
    """The training itself, top to bottom; returns every epoch's result (a resumed run's earlier ones too).
    `plan`: the time budget's, to warn when the run falls behind it."""
    cfg, ctxs, cluster = job.cfg, job.ctxs, job.cluster
    seed_everything(cfg.seed)
    train_data, valid_data = make_loaders(job, with_valid=cluster.is_root)  # rank 0 alone validates
    log.info("data %s: training on %s of %s tree %s, %s loader, %d batches%s", job.data_dir, job.part,
             job.tree.link_kind, job.tree.root, cfg.loader, len(train_data),
             f" on worker {cluster.rank} of {cluster.num_workers}" if cluster.distributed else "")
    sample = _whitening_sample(job) if resume_from is None else None  # a checkpoint holds the filters
    parts = build_training(cfg, ctxs, cluster, train_data, valid_data, len(job.classes), sample)
    history: list[EpochResult] = []
    start = None
    if resume_from is not None:
        history, start = _restore(resume_from, parts, cfg, ctxs)
    hooks = RunHooks(cfg, parts, recorder, history, plan, job.show_progress)
    # Sync (read metrics, check for NaN) at least wherever a checkpoint is due.
    sync_every = math.gcd(cfg.sync_every, cfg.checkpoint_every) if cfg.checkpoint_every else cfg.sync_every
    fit(parts, ctxs, cfg.epochs, sync_every=sync_every, start=start, hooks=hooks)
    if cluster.distributed:
        # Identical on every worker if the updates really were synchronised (a test compares them).
        log.info("worker %d of %d: trained weights digest %s", cluster.rank, cluster.num_workers,
                 weights_digest(parts.net))
    recorder.finish(history)
    return history


def _restore(last: checkpoint.Checkpoint, parts: TrainingParts, cfg: Config,
             ctxs: list[mx.Context]) -> tuple[list[EpochResult], EpochProgress]:
    """Put `parts` where checkpoint `last` left them; returns its history and position."""
    checkpoint.restore(last, parts.net, parts.trainer, ctxs)
    if parts.lookahead is not None:
        parts.lookahead.start_from_weights()
    # The pickled schedule is the old run's; a fresh one honours a changed --epochs.
    parts.trainer.optimizer.lr_scheduler = lr_schedule(cfg, parts.batches_per_epoch)
    start = last.progress
    parts.train_data.start_at(start.epoch, start.batches)
    log.info("resuming %s at epoch %d, batch %d of %d", os.path.dirname(last.path), start.epoch, start.batches,
             parts.batches_per_epoch)
    return [EpochResult(**row) for row in last.history], start


def weights_digest(net: gluon.Block) -> str:
    """sha256 of the trainable weights (not BatchNorm statistics: those are per worker by design)."""
    digest = hashlib.sha256()
    for param in net.collect_params().values():
        if param.grad_req != "null":
            digest.update(param.data().asnumpy().tobytes())
    return digest.hexdigest()[:16]


def absolute_paths(cfg: Config) -> Config:
    """`cfg` with its data and cache folders resolved once, from where the run starts: saved so,
    the run means the same folders to submit.py and --resume from any working directory."""
    return dataclasses.replace(cfg, **{name: os.path.realpath(path) for name, path in
                                       (("data_dir", cfg.data_dir), ("cache_dir", cfg.cache_dir)) if path})


def train(cfg: Config, ctxs: list[mx.Context], out: str, show_progress: bool = True) -> list[EpochResult]:
    """Train on the split's train part, validate on its valid part, fill the run directory `out`.

    With cfg.valid_ratio 0: train on every labelled image (train_valid), without validation.
    """
    check_model_name(cfg.model)  # before anything is written
    cfg = absolute_paths(cfg)
    if cfg.data_dir and os.path.isdir(cfg.data_dir):
        refuse_inside(out, cfg.data_dir, "--out")
    data_dir = resolve_data_dir(cfg, show_progress)
    tree = prepare_split(cfg, data_dir)
    part = "train" if cfg.valid_ratio else "train_valid"
    return _train_run(training_job(cfg, ctxs, data_dir, tree, part, show_progress), out, plan_budget=True)


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
    data_dir = resolve_data_dir(cfg, show_progress)
    tree = prepare_split(cfg, data_dir)
    labels, _, files = last.data_fingerprint.partition(":")  # older checkpoints hold the labels' digest alone
    if tree.labels_sha256 != labels:
        raise ConfigError(f"{data_dir}/trainLabels.csv changed since {run} started: resuming would train on other "
                          "data. Restore the original labels or start a new run")
    if files and tree.files_sha256 != files:
        raise ConfigError(f"training images in {data_dir} were replaced or modified since {run} started (same "
                          "labels, other files): resuming would train on other data. Restore them or start a new run")
    part = rundir.info(run).get("train_part", "train")  # RUN/retrain trained on train_valid
    return _train_run(training_job(cfg, ctxs, data_dir, tree, part, show_progress), run, last)


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
    return net, first_test_images(resolve_data_dir(cfg), n_images)


def _retrain(cfg: Config, ctxs: list[mx.Context], data_dir: str, tree: SplitTree, out: str,
             show_progress: bool) -> None:
    """Train on train+valid into `out`; a retraining that already ran is reused or continued."""
    last = os.path.join(out, checkpoint.LAST)
    if not os.path.exists(last):
        _train_run(training_job(cfg, ctxs, data_dir, tree, "train_valid", show_progress), out)
    elif checkpoint.read(last).progress.epoch > cfg.epochs:
        log.info("reusing the finished retraining in %s", out)
    else:
        resume(out, resume_config(out, cfg.to_dict()), ctxs, show_progress)


@dataclass
class Submission:
    path: str
    rows: int
    params: str


def submit(options: SubmitOptions, ctxs: list[mx.Context], show_progress: bool = True) -> Submission:
    """Write submission.csv for DIR/test from the finished run options.run (see SubmitOptions).

    With options.retrain, first train afresh on train+valid with the run's settings (the book's
    final step) and predict with that network; that training leaves its own run directory, RUN/retrain.
    """
    options.validate()
    run = options.run
    cfg, classes = rundir.load(run)
    if not options.data_dir and cfg.data_dir and not os.path.isabs(cfg.data_dir):
        raise ConfigError(f"run {run} was trained before data folders were saved as absolute paths: its "
                          f"--data-dir {cfg.data_dir!r} depends on the working directory; pass --data-dir with the "
                          "folder it means")
    out = options.out or os.path.join(run, "submission.csv")
    for folder in {options.data_dir, cfg.data_dir} - {None}:
        if os.path.isdir(folder):
            refuse_inside(out, folder, "--out")  # first: not even a write probe goes there
    check_output_file(out, "--out", "submission.csv")  # before hours of prediction
    if os.path.samefile(os.path.dirname(os.path.abspath(out)), run) and os.path.basename(out) in rundir.OWN_FILES:
        raise ConfigError(f"--out {out} is one of run {run}'s own files: choose another name, e.g. the default "
                          f"{os.path.join(run, 'submission.csv')}")
    given = options.data_dir or cfg.data_dir  # predicting alone needs no extracted training images
    data_dir = kaggle_layout(given, cfg, show_progress, options.retrain) if given else resolve_data_dir(cfg)
    log.info("predicting the test images of %s", given or data_dir)
    dtype = resolve_precision(options.precision, [c.device_type for c in ctxs], STARTUP, "predict")
    archive = archived_test_images(data_dir)
    if archive is None:  # extracted: every check before any work
        ids, paths = read_test(data_dir)
        check_headers(paths, os.path.join(data_dir, "test"))
        check_sample_submission(data_dir, ids)
    workers = cfg.num_workers if options.num_workers is None else options.num_workers

    if options.retrain:
        tree = prepare_split(cfg, data_dir)
        if class_names(tree.folder("train_valid")) != classes:
            raise ConfigError(f"the classes of {data_dir} differ from those of run {run}; retrain on the same data")
        retrain_dir = os.path.join(run, RETRAIN)
        _retrain(cfg, ctxs, data_dir, tree, retrain_dir, show_progress)
        params = os.path.join(retrain_dir, rundir.PARAMS)
    else:
        params = os.path.join(run, rundir.PARAMS)
        if not os.path.isfile(params) and rundir.has_checkpoint(run):
            raise ConfigError(f"{params} is missing although run {run} trained (it has {checkpoint.LAST}): it was "
                              "deleted or moved: put it back, or predict with --retrain")
        if not os.path.isfile(params):
            raise ConfigError(f"{params} is missing: run {run} did not finish an epoch; train it or use --retrain")

    net = cast_for_inference(load_network(cfg, classes, params, ctxs), dtype, ctxs)
    tta = options.tta or cfg.tta
    if archive is not None:  # streamed: the ids are known once the archive has been read
        with tqdm(total=archive.size, desc=f"predict {archive.label}", unit="B", unit_scale=True,
                  disable=not show_progress) as bar:
            ids, predictions = predict_archive(net, archive, ctxs, options.batch_size, workers, bar.update, tta)
        check_sample_submission(data_dir, ids, archive.label)
    else:
        with tqdm(total=len(paths), desc="predict", unit="img", disable=not show_progress) as bar:
            predictions = predict_files(net, paths, ctxs, options.batch_size, workers, bar.update, tta)
    write_submission(out, ids, predictions, classes)
    log.info("wrote %s: %d rows, predicted in %s", out, len(ids), dtype)
    return Submission(out, len(ids), params)
