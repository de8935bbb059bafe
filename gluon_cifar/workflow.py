"""The two jobs users run, end to end: train a run directory, and turn one into submission.csv.

Scripts parse flags into a Config and resolve contexts, then call these; tests call them too.
"""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass

import mxnet as mx
import numpy as np
from tqdm import tqdm

from . import rundir
from .config import Config, default_cache_dir
from .data import ImageFiles, class_names, eval_loader, image_folder, train_loader
from .demo import ensure_demo_dataset
from .engine import EpochResult, fit, make_trainer
from .errors import ConfigError
from .kaggle import check_sample_submission, read_test, read_train
from .model import build_model, check_model_name
from .predict import check_writable, predict_files, write_submission
from .split import SplitTree, build_split_tree
from .transforms import eval_transform, train_transform

log = logging.getLogger(__name__)

RETRAIN = "retrain"  # run subdirectory of the train+valid retraining done by submit(retrain=True)


def resolve_data_dir(cfg: Config) -> str:
    """The configured data directory, or the demo dataset (generated on first use)."""
    return cfg.data_dir or ensure_demo_dataset(cfg.cache_dir or default_cache_dir())


def prepare_split(cfg: Config, data_dir: str) -> SplitTree:
    images = read_train(data_dir)
    return build_split_tree(images, data_dir, cfg.valid_ratio, cfg.seed, cfg.cache_dir or default_cache_dir())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def _progress(total: int, desc: str, enabled: bool):
    return lambda epoch: tqdm(total=total, desc=f"{desc} {epoch}", unit="img", leave=False, disable=not enabled)


def _train_run(cfg: Config, ctxs: list[mx.Context], data_dir: str, tree: SplitTree, part: str,
               valid_part: str | None, out: str, show_progress: bool) -> list[EpochResult]:
    """Train on the tree's `part`, validate on `valid_part` (if any), and fill run directory `out`."""
    classes = class_names(tree.folder(part))
    rundir.create(out)
    n_train = tree.n_train if valid_part else tree.n_train + tree.n_valid
    rundir.save_start(out, cfg, classes, {"data_dir_resolved": os.path.abspath(data_dir), "split_seed": cfg.seed,
                                          "train_part": part, "n_train": n_train,
                                          "n_valid": tree.n_valid if valid_part else 0,
                                          "contexts": [str(c) for c in ctxs]})
    log.info("data %s: training on %s (%d images) of %s tree %s", data_dir, part, n_train, tree.link_kind, tree.root)

    seed_everything(cfg.seed)
    train_images = image_folder(tree.folder(part), train_transform())
    train_data = train_loader(train_images, cfg.batch_size, cfg.seed, cfg.num_workers)
    valid_data = (eval_loader(image_folder(tree.folder(valid_part), eval_transform()), cfg.batch_size,
                              cfg.num_workers) if valid_part else None)
    net = build_model(cfg.model, len(classes), ctxs, seed=cfg.seed)
    if cfg.hybridize:
        net.hybridize(static_alloc=True)
    trainer = make_trainer(net, cfg, len(train_data))
    history: list[EpochResult] = []

    def on_epoch_end(result: EpochResult) -> None:
        history.append(result)
        rundir.save_metrics(out, history)
        rundir.save_params(out, net)
        valid = f", valid acc {result.valid_acc:.4f}" if result.valid_acc is not None else ""
        log.info("epoch %d/%d: lr %.4g, train loss %.4f, train acc %.4f%s, %.1f examples/s, %.0f s",
                 result.epoch, cfg.epochs, result.lr, result.train_loss, result.train_acc, valid,
                 result.examples_per_sec, result.seconds)

    fit(net, trainer, train_data, valid_data, ctxs, cfg.epochs, cfg.sync_every, on_epoch_end,
        _progress(len(train_images), "epoch", show_progress))
    rundir.save_curves(out, history)
    if history[-1].confusion is not None:
        rundir.save_confusion(out, history[-1].confusion, classes)
    return history


def train(cfg: Config, ctxs: list[mx.Context], out: str, show_progress: bool = True) -> list[EpochResult]:
    """Train on the split's train part, validate on its valid part, fill the run directory `out`."""
    check_model_name(cfg.model)  # before anything is written
    data_dir = resolve_data_dir(cfg)
    tree = prepare_split(cfg, data_dir)
    return _train_run(cfg, ctxs, data_dir, tree, "train", "valid", out, show_progress)


def load_network(cfg: Config, classes: list[str], params: str, ctxs: list[mx.Context]):
    """The run's network with trained parameters `params`, hybridized if the run was."""
    net = build_model(cfg.model, len(classes), ctxs)
    net.load_parameters(params, ctx=ctxs)
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


@dataclass
class Submission:
    path: str
    rows: int
    params: str


def submit(run: str, ctxs: list[mx.Context], out: str | None = None, data_dir: str | None = None,
           retrain: bool = False, batch_size: int = 512, num_workers: int | None = None,
           show_progress: bool = True) -> Submission:
    """Write submission.csv for DIR/test from a finished run.

    With `retrain`, first train afresh on train+valid with the run's settings (the book's final
    step) and predict with that network; that training leaves its own run directory, RUN/retrain.
    """
    cfg, classes = rundir.load(run)
    data_dir = data_dir or resolve_data_dir(cfg)
    out = out or os.path.join(run, "submission.csv")
    check_writable(out)
    ids, paths = read_test(data_dir)
    check_sample_submission(data_dir, ids)
    workers = cfg.num_workers if num_workers is None else num_workers

    if retrain:
        tree = prepare_split(cfg, data_dir)
        if class_names(tree.folder("train_valid")) != classes:
            raise ConfigError(f"the classes of {data_dir} differ from those of run {run}; retrain on the same data")
        retrain_dir = os.path.join(run, RETRAIN)
        _train_run(cfg, ctxs, data_dir, tree, "train_valid", None, retrain_dir, show_progress)
        params = os.path.join(retrain_dir, rundir.PARAMS)
    else:
        params = os.path.join(run, rundir.PARAMS)
        if not os.path.isfile(params):
            raise ConfigError(f"{params} is missing: run {run} did not finish an epoch; train it or use --retrain")

    net = load_network(cfg, classes, params, ctxs)
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not show_progress) as bar:
        predictions = predict_files(net, paths, ctxs, batch_size, workers, bar.update)
    write_submission(out, ids, predictions, classes)
    log.info("wrote %s: %d rows", out, len(ids))
    return Submission(out, len(ids), params)
