"""Continue a run where its last checkpoint left it (`--resume`): its saved settings and plan, the few that may
change, and the checks that the checkpoint, the settings and the data are still the run's."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import mxnet as mx

from ..config import RESUMABLE, Config, changed_settings
from ..data.source import TrainingData, open_training_data
from ..errors import ConfigError
from ..runs import checkpoint, rundir
from ..settings import flag
from ..training.run_plan import RunLength, RunPlan, read_run
from ..training.schedules import last_epoch
from .train import Trained, run_training, training_job, training_precision

log = logging.getLogger(__name__)


def resume_config(run: str, overrides: dict[str, Any]) -> tuple[Config, RunPlan]:
    """The run's saved settings and plan with `overrides` applied; only RESUMABLE settings may change
    (--epochs and --tta change the plan's length and views)."""
    saved, plan = _saved_or_checkpointed(run)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("data_dir"):  # the data's new place, saved as the run's (as train saves it)
        overrides["data_dir"] = os.path.realpath(overrides["data_dir"])
    wanted = Config.from_dict({**saved.to_dict(), **overrides})
    changed = changed_settings(saved, wanted)
    if changed:
        listed = ", ".join(f"--{flag(k)} ({old} -> {new})" for k, (old, new) in changed.items())
        raise ConfigError(f"cannot change {listed} when resuming {run}: only "
                          f"{', '.join('--' + flag(k) for k in RESUMABLE)} may change. "
                          "Start a new run (another --out) to train with different settings")
    if overrides.get("epochs") is not None:
        plan.length = RunLength(overrides["epochs"], plan.length.changes)
    if overrides.get("tta") is not None:
        plan.tta = overrides["tta"]
    plan.settings(wanted).validate()  # e.g. a warm-up no shorter than the epochs now asked for
    return wanted, plan


def _saved_or_checkpointed(run: str) -> tuple[Config, RunPlan]:
    """The run's settings and plan from its config.json or, where that was deleted, from checkpoint-last.zip,
    which holds them too (the run writes config.json again as it resumes)."""
    config, last = os.path.join(run, rundir.CONFIG), os.path.join(run, checkpoint.LAST)
    if os.path.exists(config) or not os.path.isfile(last):
        return rundir.saved_run(config)
    log.warning("%s is missing: resuming with the settings and plan %s holds", config, last)
    held = checkpoint.read(last)
    return read_run(held.saved(), held.path)


def resume(run: str, cfg: Config, plan: RunPlan, ctxs: list[mx.Context], show_progress: bool = True,
           data_dir: str | None = None) -> Trained:
    """Continue run `run` from RUN/checkpoint-last.zip with `cfg` and `plan` (from resume_config); `data_dir`:
    the layout already resolved from cfg.data_dir, if the caller has it."""
    precision = training_precision(cfg, ctxs)
    with rundir.locked(run):
        pass  # only to fail at once, named, while another process still runs it
    last = checkpoint.read(os.path.join(run, checkpoint.LAST))
    held = read_run(last.saved(), last.path)[0]
    trained_on = held.data_dir  # where the data was: --data-dir may give its new place
    changed = changed_settings(held, cfg)
    if changed:
        raise ConfigError(f"{last.path} was written with other settings than {run}/config.json "
                          f"({', '.join(f'{k}: {a} vs {b}' for k, (a, b) in changed.items())}): it does not belong "
                          "to this run; start a new run")
    if last.progress.epoch > last_epoch(plan.length.epochs):
        raise ConfigError(f"{run} already finished its {plan.length.epochs:g} epochs; pass --epochs with a larger "
                          "number to train longer")
    # RUN/retrain trained on train_valid; without config.json, the part cfg's split trains
    part = rundir.info(run).get("train_part") if os.path.exists(os.path.join(run, rundir.CONFIG)) else None
    data = open_training_data(cfg, part, show_progress, data_dir)
    check_same_data(run, data, last, moved_from=trained_on if trained_on != cfg.data_dir else None)
    plan = dataclasses.replace(plan, precision=precision)  # this part's (the machine may be another)
    return run_training(training_job(cfg, ctxs, data, precision, show_progress), run, last, plan)


def check_same_data(run: str, data: TrainingData, last: checkpoint.Checkpoint, moved_from: str | None) -> None:
    """ConfigError unless `data` holds the images `run` trained on until checkpoint `last`: the same labels, and
    the same image files, or, where the data moved (`moved_from`: its old place), files of the same names and
    sizes."""
    labels, files, names = (last.data_fingerprint.split(":") + ["", ""])[:3]  # older checkpoints hold fewer
    if data.tree.labels_sha256 != labels:
        raise ConfigError(f"{data.data_dir}/trainLabels.csv is not the one {run} trained with (it changed, or it is "
                          "other data): resuming would train on other data. Restore the original labels or start a "
                          "new run")
    if not files or data.tree.files_sha256 == files:
        return
    if moved_from is None:
        raise ConfigError(f"training images in {data.data_dir} were replaced or modified since {run} started (same "
                          "labels, other files): resuming would train on other data. Restore them or start a new run")
    if names and data.tree.names_sha256 != names:
        raise ConfigError(f"the training images in {data.data_dir} are not those {run} trained on in {moved_from} "
                          "(same labels, other file names or sizes): give --data-dir the folder the data was moved "
                          "to, or start a new run")
    log.info("the data %s moved to %s: same labels%s; resuming %s with it (config.json now names it)", moved_from,
             data.data_dir, ", image names and sizes" if names else "", run)
