"""The ways out of the training code: MXNet/ONNX exports checked on real images, and the notebook."""
import json
import os

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT, run_script

pytestmark = pytest.mark.slow  # trains, exports and runs the notebook


@pytest.fixture(scope="module")
def trained_run(real_layout, tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    trained = run_script("train.py", "--data-dir", real_layout, "--epochs", "1", "--batch-size", "64",
                         "--out", run, "--no-progress",
                         env={"GLUON_CIFAR_CACHE": str(tmp_path_factory.mktemp("cache"))})
    assert trained.returncode == 0, trained.stderr
    return run


def test_train_reports_confusion_matrix_and_where_things_are(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    confusion = pd.read_csv(trained_run / "confusion.csv", index_col=0)
    assert list(confusion.columns) == list(confusion.index) == config["classes"]
    assert confusion.values.sum() == config["n_valid"]
    per_class = pd.read_csv(trained_run / "per_class.csv")
    assert per_class["images"].sum() == config["n_valid"]
    diagonal = [confusion.loc[c, c] for c in config["classes"]]
    assert per_class["accuracy"].tolist() == pytest.approx([d / n for d, n in zip(diagonal, per_class["images"])])
    metrics = pd.read_csv(trained_run / "metrics.csv")
    assert sum(diagonal) / config["n_valid"] == pytest.approx(metrics["valid_acc"].iloc[-1])
    assert (trained_run / "confusion.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("fmt", ["mxnet", "onnx"])
def test_export_round_trip_on_real_images(trained_run, fmt):
    result = run_script("export.py", trained_run, "--format", fmt)
    assert result.returncode == 0, result.stderr + result.stdout
    out = trained_run / "export" / ("model.onnx" if fmt == "onnx" else "model")
    check = json.loads(open(str(out) + ".check.json").read())
    assert check["passed"] and check["same_classes"] and check["images"] == 50  # every holdout image
    assert check["max_abs_diff"] <= (1e-4 if fmt == "onnx" else 0.0)
    assert max(os.path.getsize(f) for f in check["files"]) > 4e7  # the 11M float32 weights


def test_export_of_a_directory_that_is_not_a_run(tmp_path):
    result = run_script("export.py", tmp_path, "--format", "onnx")
    assert result.returncode == 2 and "config.json does not exist" in result.stderr


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    path = os.path.join(ROOT, "examples", "quickstart.ipynb")
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("PYTHONPATH", ROOT)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # loss curve and predictions
    text = "".join(o.get("text", "") for o in outputs)
    assert "Total params" in text and "steps" in text
