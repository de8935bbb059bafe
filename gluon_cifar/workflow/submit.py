"""Turn a finished run into submission.csv: check everything first, (retrain,) load, predict, write."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import mxnet as mx

from .. import STARTUP
from ..atomic import check_output_file, refuse_inside
from ..config import Config, SubmitOptions
from ..data.images import check_headers
from ..data.kaggle import check_sample_submission, read_test
from ..data.layout import archived_test_images
from ..data.source import kaggle_layout, open_training_data, resolve_data_dir
from ..errors import ConfigError
from ..inference.network import load_network
from ..inference.predict import (
    cast_for_inference,
    predict_archive,
    predict_files,
    write_submission,
)
from ..precision import decide
from ..progress import progress_bar
from ..runs import checkpoint, rundir
from .train import resume, resume_config, run_training, training_job, training_precision

log = logging.getLogger(__name__)

RETRAIN = "retrain"  # run subdirectory of the train+valid retraining done by submit(retrain=True)


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
    precision = decide(options.precision, [c.device_type for c in ctxs], STARTUP, "predict")
    out = _output(options, cfg)
    given = options.data_dir or cfg.data_dir  # predicting alone needs no extracted training images
    data_dir = kaggle_layout(given, cfg, show_progress, options.retrain) if given else resolve_data_dir(cfg)
    log.info("predicting the test images of %s", given or data_dir)
    archive = archived_test_images(data_dir)
    if archive is None:  # extracted: every check before any work
        ids, paths = read_test(data_dir)
        check_headers(paths, os.path.join(data_dir, "test"))
        check_sample_submission(data_dir, ids)
    params = _retrained(cfg, classes, ctxs, data_dir, run, show_progress) if options.retrain else _trained(run)

    net = cast_for_inference(load_network(cfg, classes, params, ctxs), precision, ctxs)
    tta = options.tta or cfg.tta
    workers = cfg.num_workers if options.num_workers is None else options.num_workers
    if archive is not None:  # streamed: the ids are known once the archive has been read
        with progress_bar(archive.size, f"predict {archive.label}", show_progress, unit="B", unit_scale=True) as bar:
            ids, predictions = predict_archive(net, archive, ctxs, options.batch_size, workers, bar.update, tta)
        check_sample_submission(data_dir, ids, archive.label)
    else:
        with progress_bar(len(paths), "predict", show_progress, unit="img") as bar:
            predictions = predict_files(net, paths, ctxs, options.batch_size, workers, bar.update, tta)
    write_submission(out, ids, predictions, classes)
    log.info("wrote %s: %d rows, predicted in %s", out, len(ids), precision)
    return Submission(out, len(ids), params)


def _output(options: SubmitOptions, cfg: Config) -> str:
    """The submission's path, checked before hours of prediction: not in a data folder, not one of the
    run's own files, writable."""
    run = options.run
    if not options.data_dir and cfg.data_dir and not os.path.isabs(cfg.data_dir):
        raise ConfigError(f"run {run} was trained before data folders were saved as absolute paths: its "
                          f"--data-dir {cfg.data_dir!r} depends on the working directory; pass --data-dir with the "
                          "folder it means")
    out = options.out or os.path.join(run, "submission.csv")
    for folder in {options.data_dir, cfg.data_dir} - {None}:
        if os.path.isdir(folder):
            refuse_inside(out, folder, "--out")  # first: not even a write probe goes there
    check_output_file(out, "--out", "submission.csv")
    if os.path.samefile(os.path.dirname(os.path.abspath(out)), run) and os.path.basename(out) in rundir.OWN_FILES:
        raise ConfigError(f"--out {out} is one of run {run}'s own files: choose another name, e.g. the default "
                          f"{os.path.join(run, 'submission.csv')}")
    return out


def _trained(run: str) -> str:
    """The finished run's parameters file."""
    params = os.path.join(run, rundir.PARAMS)
    if not os.path.isfile(params) and rundir.has_checkpoint(run):
        raise ConfigError(f"{params} is missing although run {run} trained (it has {checkpoint.LAST}): it was "
                          "deleted or moved: put it back, or predict with --retrain")
    if not os.path.isfile(params):
        raise ConfigError(f"{params} is missing: run {run} did not finish an epoch; train it or use --retrain")
    return params


def _retrained(cfg: Config, classes: list[str], ctxs: list[mx.Context], data_dir: str, run: str,
               show_progress: bool) -> str:
    """Train on train+valid into RUN/retrain (a retraining that already ran is reused or continued);
    its parameters file."""
    precision = training_precision(cfg, ctxs)
    data = open_training_data(cfg, "train_valid", show_progress, data_dir)
    if data.classes != classes:
        raise ConfigError(f"the classes of {data_dir} differ from those of run {run}; retrain on the same data")
    out = os.path.join(run, RETRAIN)
    last = os.path.join(out, checkpoint.LAST)
    if not os.path.exists(last):
        run_training(training_job(cfg, ctxs, data, precision, show_progress), out)
    elif checkpoint.read(last).progress.epoch > cfg.epochs:
        log.info("reusing the finished retraining in %s", out)
    else:
        resume(out, resume_config(out, cfg.to_dict()), ctxs, show_progress, data_dir)
    return os.path.join(out, rundir.PARAMS)
