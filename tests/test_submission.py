"""Submission rows: ids from file names, numeric order, class names, atomic write."""
import dataclasses
import os

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from mxnet import gluon, nd
from PIL import Image

from gluon_cifar import CIFAR10_CLASSES, STARTUP
from gluon_cifar.data.kaggle import read_test
from gluon_cifar.data.transforms import MEAN, STD
from gluon_cifar.errors import ConfigError, GluonCifarError
from gluon_cifar.inference import predict
from gluon_cifar.inference.predict import (
    cast_for_inference,
    predict_files,
    write_submission,
)
from gluon_cifar.models import build_model
from gluon_cifar.precision import decide
from gluon_cifar.submit_options import SubmitOptions
from tests.conftest import needs_bfloat16_kernels

IDS = [1, 2, 10, 100, 11, 3, 1000, 20, 9, 99]  # string order and numeric order differ


class BrightnessNet(gluon.Block):
    """Predicts class k for an image whose pixels are all 20 * k: output follows the image."""

    def forward(self, x):
        red = x[:, 0].mean(axis=(1, 2)) * STD[0] + MEAN[0]  # undo Normalize: back to [0, 1]
        return nd.one_hot(nd.round(red * 255 / 20), 10)


def expected_class(image_id):
    return image_id % 10


@pytest.fixture
def test_dir(tmp_path):
    os.makedirs(tmp_path / "test")
    for image_id in IDS:
        pixels = np.full((32, 32, 3), 20 * expected_class(image_id), np.uint8)
        Image.fromarray(pixels).save(tmp_path / "test" / f"{image_id}.png")
    return str(tmp_path)


@pytest.mark.parametrize("n_ctx,batch", [(1, 4), (3, 4), (2, 3)])
def test_predictions_follow_file_ids(test_dir, tmp_path, n_ctx, batch):
    ids, paths = read_test(test_dir)
    ctxs = [mx.cpu(i) for i in range(n_ctx)]
    predictions = predict_files(BrightnessNet(), paths, ctxs, batch_size=batch, num_workers=0)
    out = tmp_path / "submission.csv"
    write_submission(str(out), ids, predictions, list(CIFAR10_CLASSES))
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", "label"]
    assert frame["id"].tolist() == sorted(IDS)
    assert frame["label"].tolist() == [CIFAR10_CLASSES[expected_class(i)] for i in sorted(IDS)]


def test_crash_mid_write_keeps_the_previous_submission(tmp_path, monkeypatch):
    out = tmp_path / "submission.csv"
    write_submission(str(out), [1, 2], np.array([0, 1]), list(CIFAR10_CLASSES))
    before = out.read_text()

    def crash_half_way(self, path, **kwargs):
        with open(path, "w") as f:
            f.write("id,label\n1,air")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_submission(str(out), [1, 2], np.array([3, 3]), list(CIFAR10_CLASSES))
    assert out.read_text() == before
    assert os.listdir(tmp_path) == ["submission.csv"]  # no temporary file left behind
    with pytest.raises(GluonCifarError, match="missing does not exist; create it"):
        write_submission(str(tmp_path / "missing" / "submission.csv"), [1], np.array([0]), ["cat"])


@needs_bfloat16_kernels
def test_bfloat16_inference_agrees_with_float32():
    ctxs = [mx.cpu(0), mx.cpu(1)]
    net = build_model("cifar_resnet20_v1", 10, ctxs, seed=0)  # not hybridized: the conversion does it
    x = nd.random.uniform(-2, 2, shape=(64, 3, 32, 32), ctx=ctxs[1])
    low = cast_for_inference(net, "bfloat16", ctxs)
    assert cast_for_inference(net, "float32", ctxs) is net
    out, ref = low(x), net(x)  # on the second context: the copy lives on every context
    assert out.dtype == np.float32 and out.context == ctxs[1]
    assert np.abs(out.asnumpy() - ref.asnumpy()).max() < 0.1 * np.abs(ref.asnumpy()).max()
    assert (out.argmax(axis=1) == ref.argmax(axis=1)).mean().asscalar() >= 0.9


def test_bfloat16_inference_misuses_are_named():
    net = build_model("cifar_resnet20_v1", 10, [mx.cpu()], seed=0)
    with pytest.raises(ConfigError, match="CPU contexts only"):
        decide("bfloat16", ["gpu"], STARTUP, "predict")
    with pytest.raises(ConfigError, match="float16 is for training on GPUs"):
        decide("float16", ["cpu", "cpu"], STARTUP, "predict")
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        cast_for_inference(net, "float16", [mx.cpu()])


@pytest.mark.parametrize("compute, faster, said", [
    (False, False, "bfloat16 is emulated"),
    (True, False, "computes bfloat16 without AMX: measured no faster"),
    (True, True, None),
])
def test_forced_bfloat16_prediction_warns_where_auto_would_not_choose_it(monkeypatch, caplog, compute, faster, said):
    monkeypatch.setattr(predict, "STARTUP", dataclasses.replace(STARTUP, bf16_compute=compute, bf16_faster=faster))
    net = build_model("fastnet_small", 10, [mx.cpu()], seed=0, sample=np.zeros((64, 3, 32, 32), np.float32))
    with caplog.at_level("WARNING"):
        cast_for_inference(net, "bfloat16", [mx.cpu()])
    warned = [r.getMessage() for r in caplog.records if "float32 (--precision auto here)" in r.getMessage()]
    assert [said in w for w in warned] == ([True] if said else [])


@pytest.mark.parametrize("weights, expected", [("1e308,1e308", [0.5, 0.5]), ("1,3", [0.25, 0.75]),
                                               ("5e-324,5e-324", [0.5, 0.5]), (None, [0.5, 0.5])])
def test_ensemble_weights_sum_to_one_whatever_their_scale(weights, expected):
    """--weights 1e308,1e308 overflowed to zero weights and submitted all-airplane, exit 0."""
    assert SubmitOptions(run=["a", "b"], weights=weights).run_weights() == pytest.approx(expected)
