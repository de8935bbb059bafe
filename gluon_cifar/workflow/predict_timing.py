"""How fast submit.py will predict the test images, timed before a budgeted run (workflow/budget.py): its
start-up (the test folder listed and its headers checked, the check timed on a sample; a network built and
cast as submit.py builds one; an allowance for the imports), then the same precision choice, test-time
views, batch size and decoding workers on a sample of the test folder or, with test.7z still archived, on
its first images streamed out of the archive. Timed by a Clock passed in (training/timing.py)."""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import mxnet as mx

from .. import STARTUP
from ..config import Config
from ..data.archives import SAMPLE
from ..data.images import check_headers
from ..data.kaggle import read_label_csv, read_test
from ..data.layout import archived_test_images
from ..errors import LayoutError
from ..inference.predict import cast_for_inference, predict_archive, predict_files
from ..models import build_model
from ..precision import decide
from ..submit_options import SubmitOptions
from ..training.timing import Clock

# Test images whose prediction is timed: at most a fifth of the test set, for timing most of a small one
# (the 5,000-image holdout) would cost about what predicting it does; at least two batches.
PREDICT_SAMPLE = 4096
# submit.py's Python, MXNet and package imports and reading the run: the part of its start-up not timed here
# (about 3 s of its 9-12 on the holdout, on the AMX Xeon; the imports alone 1.5 s). 5 s had given the 5,000-image
# holdout's prediction 2 s too many of budgets of 6-7 minutes; the plan's margin covers a slower host.
SUBMIT_IMPORTS_S = 3.0


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


def _sample_predictor(data_dir: str, cfg: Config, ctxs: list[mx.Context], clock: Clock,
                      check: Callable[[list[str], str], None] = check_headers) -> _Sample | None:
    """The test images read the way submit.py reads them: streamed out of test.7z, or files spread over
    test/, listed and their headers checked as submit.py will (`check`, timed by `clock` on the sample, for the
    whole folder)."""
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
    check(spread, os.path.join(data_dir, "test"))  # (a bad file fails here, before the run, named)
    per_image_s = (clock() - start) / len(spread)
    return _Sample(len(paths), lambda net, n, tta: len(predict_files(net, spread[:n], ctxs, batch, workers, tta=tta)),
                   per_image_s * (len(paths) - len(spread)))
