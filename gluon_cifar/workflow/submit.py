"""Turn a finished run into submission.csv: check everything first, (retrain,) load, predict, write."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import mxnet as mx

from .. import STARTUP
from ..atomic import write_text
from ..config import Config
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
from ..inference.tta import Ensemble
from ..precision import decide
from ..progress import progress_bar
from ..runs import checkpoint, rundir
from ..submit_options import SubmitOptions
from ..training.schedules import last_epoch
from .outputs import check_output
from .resume import resume, resume_config
from .train import run_training, training_job, training_precision

log = logging.getLogger(__name__)

RETRAIN = "retrain"  # run subdirectory of the train+valid retraining done by submit(retrain=True)


@dataclass
class Submission:
    path: str
    rows: int
    params: list[str]  # the parameters predicted with, one file per run of the ensemble
    record: str | None = None  # for an ensemble: the JSON beside the CSV saying what went in


def submit(options: SubmitOptions, ctxs: list[mx.Context], show_progress: bool = True) -> Submission:
    """Write submission.csv for DIR/test from the finished run options.run (see SubmitOptions), or
    from several: an ensemble averaging their class probabilities with options' weights.

    With options.retrain, first train afresh on train+valid with the run's settings (the book's
    final step) and predict with that network; that training leaves its own run directory, RUN/retrain.
    """
    options.validate()
    run = options.run[0]
    cfg, classes = rundir.load(run)
    members = [(run, cfg)] + [(other, _config_with_classes(other, classes, run)) for other in options.run[1:]]
    precision = decide(options.precision, [c.device_type for c in ctxs], STARTUP, "predict")
    out = _output(options, cfg)
    record = ensemble_record(out)
    if len(members) > 1:
        check_output(record, "--out", "submission.csv", (options.data_dir, cfg.data_dir))  # the record beside it
    given = options.data_dir or cfg.data_dir  # predicting alone needs no extracted training images
    data_dir = kaggle_layout(given, cfg, show_progress, options.retrain) if given else resolve_data_dir(cfg)
    log.info("predicting the test images of %s", given or data_dir)
    archive = archived_test_images(data_dir)
    if archive is None:  # extracted: every check before any work
        ids, paths = read_test(data_dir)
        check_headers(paths, os.path.join(data_dir, "test"))
        check_sample_submission(data_dir, ids)
    if options.retrain:
        params = [_retrained(cfg, classes, ctxs, data_dir, run, show_progress)]
    else:
        params = [rundir.trained_params(member, retrain_flag=True) for member, _ in members]

    nets = [cast_for_inference(load_network(member_cfg, classes, p, ctxs), precision, ctxs)
            for (_, member_cfg), p in zip(members, params)]
    ttas = [options.tta or c.tta for _, c in members]
    net = nets[0] if len(nets) == 1 else Ensemble(tuple(nets), tuple(ttas), tuple(options.run_weights()))
    workers = cfg.num_workers if options.num_workers is None else options.num_workers
    if archive is not None:  # streamed: the ids are known once the archive has been read
        with progress_bar(archive.size, f"predict {archive.label}", show_progress, unit="B", unit_scale=True) as bar:
            ids, predictions = predict_archive(net, archive, ctxs, options.batch_size, workers, bar.update, ttas[0])
        check_sample_submission(data_dir, ids, archive.label)
    else:
        with progress_bar(len(paths), "predict", show_progress, unit="img") as bar:
            predictions = predict_files(net, paths, ctxs, options.batch_size, workers, bar.update, ttas[0])
    write_submission(out, ids, predictions, classes)
    if len(nets) > 1:
        _record_ensemble(record, out, options, params, ttas, precision)
    elif os.path.isfile(record):
        os.remove(record)  # an earlier ensemble's record would describe another submission
    log.info("wrote %s: %d rows, predicted in %s%s", out, len(ids), precision,
             f" by an ensemble of {len(nets)} runs ({record})" if len(nets) > 1 else "")
    return Submission(out, len(ids), params, record if len(nets) > 1 else None)


def _config_with_classes(run: str, classes: list[str], first: str) -> Config:
    """Run `run`'s settings, once its classes are checked to be `first`'s, in the same order."""
    cfg, own = rundir.load(run)
    if own != classes:
        raise ConfigError(f"runs {first} and {run} predict different classes ({', '.join(classes)} vs "
                          f"{', '.join(own)}): an ensemble needs the same classes in the same order")
    return cfg


def ensemble_record(out: str) -> str:
    """Where an ensemble's record goes beside submission `out`: its name without .csv + .ensemble.json."""
    return os.path.splitext(out)[0] + ".ensemble.json"


def _record_ensemble(path: str, out: str, options: SubmitOptions, params: list[str], ttas: list[str],
                     precision: str) -> None:
    """Which runs, parameters, weights and views made submission `out`."""
    members = [{"run": os.path.abspath(run), "params": os.path.abspath(p), "weight": w, "tta": tta}
               for run, p, w, tta in zip(options.run, params, options.run_weights(), ttas)]
    write_text(path, json.dumps({"submission": os.path.abspath(out), "precision": precision, "runs": members},
                                indent=2) + "\n")


def _output(options: SubmitOptions, cfg: Config) -> str:
    """The submission's path, checked before hours of prediction: not in a data folder, not one of a
    run's own files, writable."""
    run = options.run[0]
    if not options.data_dir and cfg.data_dir and not os.path.isabs(cfg.data_dir):
        raise ConfigError(f"run {run} was trained before data folders were saved as absolute paths: its "
                          f"--data-dir {cfg.data_dir!r} depends on the working directory; pass --data-dir with the "
                          "folder it means")
    out = options.out or os.path.join(run, "submission.csv")
    check_output(out, "--out", "submission.csv", (options.data_dir, cfg.data_dir))
    return out


def _retrained(cfg: Config, classes: list[str], ctxs: list[mx.Context], data_dir: str, run: str,
               show_progress: bool) -> str:
    """Train on train+valid into RUN/retrain (a retraining that already ran is reused or continued) with the
    run's settings and plan: its length repeated (a time budget's changes included), nothing planned again;
    its parameters file."""
    asked, plan = rundir.saved_run(os.path.join(run, rundir.CONFIG))
    precision = training_precision(asked, ctxs)
    data = open_training_data(asked, "train_valid", show_progress, data_dir)
    if data.classes != classes:
        raise ConfigError(f"the classes of {data_dir} differ from those of run {run}; retrain on the same data")
    out = os.path.join(run, RETRAIN)
    last = os.path.join(out, checkpoint.LAST)
    if not os.path.exists(last):
        run_training(training_job(asked, ctxs, data, precision, show_progress), out, plan=plan.repeated())
    elif checkpoint.read(last).progress.epoch > last_epoch(cfg.epochs):
        log.info("reusing the finished retraining in %s", out)
    else:
        resume(out, *resume_config(out, {}), ctxs, show_progress, data_dir)
    return os.path.join(out, rundir.PARAMS)
