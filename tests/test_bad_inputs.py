"""Every bad input a user can hand us: exit code 2, a message naming the offender, nothing left behind.

The scripts run in this process (as `python scripts/X.py` would run them) so that the whole
catalogue costs seconds, not one MXNet start-up per case.
"""
import contextlib
import glob
import json
import logging
import os
import runpy
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from gluon_cifar.data.split import warn_if_unbalanced
from tests.conftest import ROOT, write_layout
from tests.conftest import run_in_process as run

pytestmark = pytest.mark.slow  # trains tiny networks in this process, one per case

LABELS = {i: ("cat" if i % 2 else "dog") for i in range(1, 13)}  # 12 images: 10 train, 2 valid
# float32: `auto` would switch this whole pytest process to bfloat16 on some CPUs (MXNet's AMP
# patches its operators process-wide), and the tests that run after it with it.
TRAIN = ["--model", "cifar_resnet20_v1", "--epochs", "1", "--batch-size", "4", "--precision", "float32", "--no-progress"]




def save_png(path, size=(32, 32), mode="RGB"):
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
    Image.fromarray(np.full(shape, 128, dtype=np.uint8), mode).save(path)


def truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # the header survives: only decoding finds it


def csv(text):
    return lambda root: open(os.path.join(root, "trainLabels.csv"), "w").write(text)


def remove(name):
    return lambda root: os.remove(os.path.join(root, name))


def rows(labels):
    return "id,label\n" + "".join(f"{i},{c}\n" for i, c in labels.items())


TRAIN_CASES = {
    "empty train/": (lambda root: [os.remove(os.path.join(root, "train", n)) for n in os.listdir(
        os.path.join(root, "train"))], "holds no .png/.jpg images"),
    "missing trainLabels.csv": (remove("trainLabels.csv"), "trainLabels.csv is missing"),
    "empty trainLabels.csv": (csv(""), "trainLabels.csv is empty"),
    "header-less trainLabels.csv": (csv("1,cat\n2,dog\n"), "the first line must be exactly 'id,label'"),
    "duplicate ids": (csv(rows(LABELS) + "3,cat\n"), "1 duplicate ids (first: 3)"),
    "ids without images": (csv(rows({**LABELS, 40: "cat"})), "1 ids without an image in train/ (first: 40)"),
    "images without ids": (csv(rows({k: v for k, v in LABELS.items() if k != 7})),
                           "1 images in train/ without a row (first: 7)"),
    "empty label": (csv(rows({**LABELS, 5: ""})), "1 empty labels (lines 6)"),
    "non-image file in train/": (lambda root: open(os.path.join(root, "train", "notes.txt"), "w").write("x"),
                                 "1 files that are not .png/.jpg images (first: notes.txt)"),
    "text file named .png": (lambda root: open(os.path.join(root, "train", "4.png"), "w").write("not a png"),
                             "1 files are not PNG/JPEG images or are truncated (first: 4.png)"),
    "image not 32x32": (lambda root: save_png(os.path.join(root, "train", "9.png"), size=(64, 48)),
                        "1 images are not 32x32 (first: 9.png (64x48))"),
    "valid header, garbage data": (lambda root: garble(os.path.join(root, "train", "6.png")),
                                   "train/6.png cannot be decoded"),
    "7.png and 7.jpg": (lambda root: shutil.copy(os.path.join(root, "train", "7.png"),
                                                 os.path.join(root, "train", "7.jpg")),
                        "1 ids with more than one file (first: 7.jpg and 7.png)"),
    "dangling link": (lambda root: relink(os.path.join(root, "train", "3.png"), "/nonexistent/3.png"),
                      "broken links or directories (first: 3.png)"),
    "looping link": (lambda root: relink(os.path.join(root, "train", "3.png"), os.path.join(root, "train", "3.png")),
                     "broken links or directories (first: 3.png)"),
    "directory named like an image": (lambda root: os.mkdir(os.path.join(root, "train", "13.png")),
                                      "broken links or directories (first: 13.png/)"),
}


def garble(path):
    """Keep the signature and IHDR chunk (33 bytes), replace the rest with noise: OpenCV decodes
    such a file to an all-black image without an error."""
    head = open(path, "rb").read()[:33]
    with open(path, "wb") as f:
        f.write(head + np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())


def relink(path, target):
    os.remove(path)
    os.symlink(target, path)


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_bad_training_input(case, tmp_path, capsys):
    root = write_layout(tmp_path / "data", LABELS)
    damage, message = TRAIN_CASES[case]
    damage(root)
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--out", tmp_path / "run", capsys=capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_found_mid_training_is_named_and_the_half_run_removed(tmp_path, capsys, workers):
    root = write_layout(tmp_path / "data", LABELS)
    truncate(os.path.join(root, "train", "8.png"))
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--num-workers", workers, "--out", tmp_path / "run",
                    capsys=capsys)
    assert code == 2, err
    assert f"{os.path.join(root, 'train', '8.png')} cannot be decoded" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_unwritable_run_directory(tmp_path, capsys):
    root = write_layout(tmp_path / "data", LABELS)
    (tmp_path / "file").write_text("")
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--out", tmp_path / "file" / "run", capsys=capsys)
    assert code == 2 and f"cannot create run directory {tmp_path / 'file' / 'run'}" in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run and its data, shared by the prediction cases."""
    base = tmp_path_factory.mktemp("trained")
    root = write_layout(base / "data", LABELS, test_ids=range(1, 6), sample_ids=range(1, 6))
    argv = sys.argv
    sys.argv = ["train.py", "--data-dir", root, *TRAIN, "--out", str(base / "run"), "--cache-dir", str(base / "cache")]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(os.path.join(ROOT, "scripts", "train.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0
    return root, base / "run"


SUBMIT_CASES = {
    "non-numeric test file": (lambda root: save_png(os.path.join(root, "test", "cat.png")),
                              "1 files in {test} are not named <numeric id>.png (first: cat.png)"),
    "digit that is not ASCII": (lambda root: save_png(os.path.join(root, "test", "\u00b2.png")),
                                "1 files in {test} are not named <numeric id>.png (first: \u00b2.png)"),
    "id too large for int64": (lambda root: save_png(os.path.join(root, "test", "99999999999999999999.png")),
                               "(first: 99999999999999999999.png)"),
    "non-image file in test/": (lambda root: open(os.path.join(root, "test", "3.txt"), "w").write("x"),
                                "{test} holds:\n  - 1 files that are not .png/.jpg images (first: 3.txt)"),
    "valid header, garbage data": (lambda root: garble(os.path.join(root, "test", "2.png")),
                                   "{test}/2.png cannot be decoded"),
    "7.png and 7.jpg": (lambda root: shutil.copy(os.path.join(root, "test", "5.png"), os.path.join(root, "test", "5.jpg")),
                        "1 ids with more than one file (first: 5.jpg and 5.png)"),
    "dangling link, no sampleSubmission.csv": (
        lambda root: [os.remove(os.path.join(root, "sampleSubmission.csv")),
                      relink(os.path.join(root, "test", "3.png"), "/nonexistent/3.png")],
        "broken links or directories (first: 3.png)"),
    "truncated model.params": (None, "model.params cannot be loaded"),
    "sampleSubmission disagrees": (lambda root: os.remove(os.path.join(root, "test", "4.png")),
                                   "1 ids listed but without an image (first: 4)"),
    "test image not 32x32": (lambda root: save_png(os.path.join(root, "test", "2.png"), size=(31, 32)),
                             "1 images are not 32x32 (first: 2.png (31x32))"),
    "truncated test image": (lambda root: truncate(os.path.join(root, "test", "5.png")),
                             "{test}/5.png cannot be decoded"),
}


@pytest.mark.parametrize("case", SUBMIT_CASES)
def test_bad_prediction_input(case, trained, tmp_path, capsys):
    source, run_dir = trained
    root = str(tmp_path / "data")
    shutil.copytree(source, root)
    damage, message = SUBMIT_CASES[case]
    if damage is None:  # damage the run instead of the data
        run_dir = tmp_path / "run"
        shutil.copytree(trained[1], run_dir)
        truncate(run_dir / "model.params")
    else:
        damage(root)
    out = tmp_path / "submission.csv"
    code, err = run("submit.py", "--run", run_dir, "--data-dir", root, "--out", out, "--no-progress",
                    capsys=capsys)
    assert code == 2, err
    assert message.format(test=os.path.join(root, "test")) in err and "Traceback" not in err
    assert not out.exists() and sorted(os.listdir(tmp_path)) in (["data"], ["data", "run"])  # no temporary file


def test_prediction_input_that_is_fine(trained, tmp_path, capsys):
    """The control for the cases above: the same copy, undamaged, gives a full submission."""
    source, run_dir = trained
    out = tmp_path / "submission.csv"
    code, err = run("submit.py", "--run", run_dir, "--data-dir", source, "--out", out, "--no-progress",
                    capsys=capsys)
    assert code == 0, err
    assert out.read_text().splitlines()[0] == "id,label" and len(out.read_text().splitlines()) == 6


@pytest.mark.parametrize("flags,message", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "inf"], "--lr must be a finite number, got inf"),
    (["--wd", "nan"], "--wd must be a finite number, got nan"),
    (["--time-budget", "-1"], "--time-budget must be 0 to 10080 minutes (a week), got -1"),
    (["--time-budget", "100000"], "--time-budget must be 0 to 10080 minutes (a week), got 100000"),
    (["--wide-from-epochs", "-1"], "--wide-from-epochs must be >= 0 epochs (0: never), got -1"),
    (["--time-budget", "5", "--kvstore", "dist_sync"], "with --kvstore dist_sync give --epochs instead"),
    (["--precision", "float16"], "--precision float16 (formerly --amp) needs GPU contexts"),  # bfloat16 on GPUs:
    # test_precision.py (here the missing GPU would be named first)
])
def test_bad_flag_values_are_named_before_any_work(flags, message, tmp_path, capsys):
    root = write_layout(tmp_path / "data", LABELS)
    code, err = run("train.py", "--data-dir", root, *TRAIN, *flags, "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_cache_directory_that_cannot_be_made_is_named(tmp_path, capsys):
    root = write_layout(tmp_path / "data", LABELS)
    (tmp_path / "file").write_text("")
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--cache-dir", tmp_path / "file" / "cache",
                    "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and f"cannot create the cache directory {tmp_path / 'file' / 'cache'}" in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("header", ["id,label", "id,label,"], ids=["rows", "every-line"])
def test_a_trailing_comma_on_every_row_reads_as_the_same_labels(header, tmp_path, capsys):
    root = write_layout(tmp_path / "data", LABELS)
    with open(os.path.join(root, "trainLabels.csv"), "w") as f:
        f.write(f"{header}\n" + "".join(f"{i},{c},\n" for i, c in LABELS.items()))
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--out", tmp_path / "run", capsys=capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["classes"] == ["cat", "dog"] and config["n_train"] + config["n_valid"] == len(LABELS)


@pytest.mark.parametrize("out,message", [
    ("{dir}", "cannot write {dir}: it is a directory; give --out a file name, e.g. {dir}/submission.csv"),
    ("/proc/submission.csv", "cannot write /proc/submission.csv: no file can be created in /proc"),
    ("{dir}/no/such/folder.csv", "cannot write {dir}/no/such/folder.csv: the folder {dir}/no/such does not exist; "
                                 "create it (mkdir -p {dir}/no/such) or choose --out elsewhere"),
])
def test_submit_to_a_place_it_cannot_write_fails_before_predicting(out, message, trained, tmp_path, capsys):
    source, run_dir = trained
    out = out.format(dir=tmp_path)
    code, err = run("submit.py", "--run", run_dir, "--data-dir", source, "--out", out, "--no-progress", capsys=capsys)
    assert code == 2 and message.format(dir=tmp_path) in err and "Traceback" not in err, err


def test_classes_that_cannot_train_well_are_warned_about(tmp_path, caplog):
    folder = tmp_path / "train"
    for name, count in {"cat": 40, "dog": 38, "frog": 3, "ship": 0}.items():
        (folder / name).mkdir(parents=True)
        for i in range(count):
            (folder / name / f"{i}.png").write_text("")
    with caplog.at_level(logging.WARNING):
        assert warn_if_unbalanced(str(folder)) == {"cat": 40, "dog": 38, "frog": 3, "ship": 0}
    assert "classes with no training images after the split: ship (0)" in caplog.text
    assert "far fewer training images than the median class (38): frog (3)" in caplog.text
    caplog.clear()
    for name in ("dog", "frog", "ship"):
        shutil.rmtree(folder / name)
    with caplog.at_level(logging.WARNING):
        warn_if_unbalanced(str(folder))
    assert "one class only (cat (40))" in caplog.text


@pytest.mark.parametrize("flags,message", [
    (["--check-images", "0"], "--check-images must be at least 1"),
    (["--out", "{file}/model.onnx"], "cannot create the folder {file} ("),
    (["--params", "missing.params"], "missing.params is missing"),
    (["--out", "{dir}"], "cannot write {dir}: it is a directory; give --out a file name, e.g. {dir}/model.onnx"),
    (["--out", "/proc/model.onnx"], "cannot write /proc/model.onnx: no file can be created in /proc"),
])
def test_bad_export_requests_are_named_before_any_work(flags, message, trained, tmp_path, capsys):
    _, run_dir = trained
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = [flag.format(file=blocker, dir=tmp_path) for flag in flags]
    code, err = run("export.py", run_dir, "--format", "onnx", *args, capsys=capsys)
    assert code == 2 and message.format(file=blocker, dir=tmp_path) in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["file"]  # nothing written


def test_training_never_writes_into_the_data_folder_or_over_the_users_files(tmp_path, capsys):
    root = write_layout(tmp_path / "data", LABELS)
    before = sorted(os.listdir(root))
    for out in (root, os.path.join(root, "runs", "r1")):
        code, err = run("train.py", "--data-dir", root, *TRAIN, "--out", out, capsys=capsys)
        assert code == 2 and f"--out {out} is inside the data folder {root}, which is only read" in err, err
    assert sorted(os.listdir(root)) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("{}\n")
    (mine / "metrics.csv").write_text("a,b\n")
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--out", mine, capsys=capsys)
    assert code == 2 and "is not a run directory of gluon_cifar (it holds config.json, metrics.csv)" in err, err
    assert (mine / "config.json").read_text() == "{}\n" and sorted(os.listdir(mine)) == ["config.json", "metrics.csv"]


@pytest.mark.parametrize("target,message", [
    ("{data}/sampleSubmission.csv", "is inside the data folder {data}, which is only read"),
    ("{data}/trainLabels.csv", "is inside the data folder {data}, which is only read"),
    ("{data}/test/new.csv", "is inside the data folder {data}, which is only read"),
    ("{run}/model.params", "is one of run {run}'s own files"),
    ("{run}/config.json", "is one of run {run}'s own files"),
])
def test_submit_never_overwrites_an_input(target, message, trained, capsys):
    source, run_dir = trained
    before = {name: os.path.getmtime(os.path.join(source, name)) for name in os.listdir(source)}
    out = target.format(data=source, run=run_dir)
    code, err = run("submit.py", "--run", run_dir, "--data-dir", source, "--out", out, "--no-progress", capsys=capsys)
    assert code == 2 and f"--out {out} " + message.format(data=source, run=run_dir) in err and "Traceback" not in err
    assert {name: os.path.getmtime(os.path.join(source, name)) for name in os.listdir(source)} == before
    assert not os.path.exists(os.path.join(source, "test", "new.csv"))


@pytest.mark.parametrize("command", ["submit", "predict", "export"])
@pytest.mark.parametrize("target,message", [
    ("{data}/sampleSubmission.csv", " is inside the data folder {data}, which is only read"),
    ("{data}/test/new.onnx", " is inside the data folder {data}, which is only read"),
    ("{run}/model.params", " is one of run {run}'s own files"),
    ("{run}/config.json", " is one of run {run}'s own files"),
    ("{run}/checkpoint-last.zip", " is one of run {run}'s own files"),
    ("{other}/metrics.csv", " is one of run {other}'s own files"),  # a run that is not the one used
])
def test_no_command_writes_into_the_data_folder_or_over_a_runs_files(command, target, message, trained, tmp_path,
                                                                    capsys):
    """One guard for submit, predict and export (each once wrote over a run's config.json or weights, or into
    the data folder): refused before any work, named, nothing touched."""
    source, run_dir = trained
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    names = {"data": source, "run": run_dir, "other": other}
    out = target.format(**names)
    before = {path: os.path.getmtime(path) for folder in (source, run_dir, other)
              for path in glob.glob(os.path.join(folder, "**"), recursive=True)}
    image = os.path.join(source, "test", "1.png")
    args = {"submit": ["submit.py", "--run", run_dir, "--data-dir", source, "--no-progress"],
            "predict": ["predict.py", run_dir, image, "--no-progress"],
            "export": ["export.py", run_dir, "--format", "onnx"]}[command]
    code, err = run(*args, "--out", out, capsys=capsys)
    if command == "predict" and not out.endswith((".csv", ".json")):
        message = ": name a .csv or a .json file"  # refused as what predict cannot write at all
    assert code == 2 and f"--out {out}" + message.format(**names) in err and "Traceback" not in err, err
    after = {path: os.path.getmtime(path) for folder in (source, run_dir, other)
             for path in glob.glob(os.path.join(folder, "**"), recursive=True)}
    assert after == before  # nothing written, not even a folder


def test_training_over_a_finished_run_whose_checkpoints_were_deleted_is_refused(trained, tmp_path, capsys):
    source, run_dir = trained
    finished = tmp_path / "finished"
    shutil.copytree(run_dir, finished)
    for name in ("checkpoint-last.zip", "checkpoint-best.zip"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(finished / name)
    weights = (finished / "model.params").read_bytes()
    code, err = run("train.py", "--data-dir", source, *TRAIN, "--out", finished, capsys=capsys)
    assert code == 2 and f"{finished} holds a trained run (model.params) without its checkpoints" in err, err
    assert (finished / "model.params").read_bytes() == weights


@pytest.mark.parametrize("command", ["train --config", "train --resume", "submit", "predict"])
@pytest.mark.parametrize("key, value", [("epochs", "three"), ("hybridize", "false"), ("seed", None),
                                        ("plan:length_changes", "abc")])
def test_every_command_names_the_key_and_file_of_a_hand_edited_config(command, key, value, trained, tmp_path,
                                                                       capsys):
    source, run_dir = trained
    edited = tmp_path / "edited"
    shutil.copytree(run_dir, edited)
    saved = json.loads((edited / "config.json").read_text())
    part, _, key = key.rpartition(":")
    saved[part or "config"][key] = value
    (edited / "config.json").write_text(json.dumps(saved))
    named = f"plan key {key!r} has the wrong type" if part else f'"{key}" must be '
    args = {"train --config": ["train.py", "--config", edited / "config.json", "--out", tmp_path / "again"],
            "train --resume": ["train.py", "--resume", edited],
            "submit": ["submit.py", "--run", edited, "--out", tmp_path / "s.csv", "--no-progress"],
            "predict": ["predict.py", edited, os.path.join(source, "test", "1.png")]}[command]
    code, err = run(*args, capsys=capsys)
    assert code == 2 and f'{edited / "config.json"}: {named}' in err and "Traceback" not in err, err
    assert not (tmp_path / "again").exists() and not (tmp_path / "s.csv").exists()


def test_a_finished_run_missing_its_parameters_says_they_were_removed(trained, tmp_path, capsys):
    source, trained_run = trained
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    os.remove(run_dir / "model.params")
    code, err = run("submit.py", "--run", run_dir, "--data-dir", source, "--out", tmp_path / "s.csv", "--no-progress",
                    capsys=capsys)
    assert code == 2 and f"{run_dir}/model.params is missing although run {run_dir} trained (it has " \
                          "checkpoint-last.zip): it was deleted or moved" in err, err
    assert "did not finish an epoch" not in err


def test_a_run_keeps_its_data_folder_whatever_the_working_directory(tmp_path, capsys, caplog, monkeypatch):
    """Trained with a relative --data-dir, then submitted from another folder that has a ../data of its
    own: the run's folder is predicted, and named; a run saved with a relative path is refused."""
    ours = write_layout(tmp_path / "a" / "data", LABELS, test_ids=range(1, 6), sample_ids=range(1, 6))
    write_layout(tmp_path / "b" / "data", LABELS, test_ids=range(1, 9), sample_ids=range(1, 9))
    for side in "ab":
        (tmp_path / side / "work").mkdir()
    monkeypatch.chdir(tmp_path / "a" / "work")
    code, err = run("train.py", "--data-dir", "../data", *TRAIN, "--out", tmp_path / "run", capsys=capsys)
    assert code == 0, err
    config_path = tmp_path / "run" / "config.json"
    saved = json.loads(config_path.read_text())
    assert saved["config"]["data_dir"] == os.path.realpath(ours)
    monkeypatch.chdir(tmp_path / "b" / "work")
    with caplog.at_level(logging.INFO):
        code, err = run("submit.py", "--run", tmp_path / "run", "--out", tmp_path / "s.csv", "--no-progress",
                        capsys=capsys)
    assert code == 0, err
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 1 + 5  # a's 5 test images, not b's 8
    assert f"predicting the test images of {os.path.realpath(ours)}" in caplog.text
    saved["config"]["data_dir"] = "../data"  # as runs of earlier versions saved it
    config_path.write_text(json.dumps(saved))
    code, err = run("submit.py", "--run", tmp_path / "run", "--out", tmp_path / "t.csv", "--no-progress",
                    capsys=capsys)
    assert code == 2 and "its --data-dir '../data' depends on the working directory; pass --data-dir" in err, err


def test_resume_after_a_training_image_was_replaced_says_so(tmp_path, capsys):
    root = write_layout(tmp_path / "data", LABELS)
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--out", tmp_path / "run", capsys=capsys)
    assert code == 0, err
    source = os.path.join(root, "train", "3.png")
    save_png(os.path.join(root, "new.png"))
    os.replace(os.path.join(root, "new.png"), source)
    code, err = run("train.py", "--resume", tmp_path / "run", "--epochs", "2", "--no-progress", capsys=capsys)
    assert code == 2 and f"training images in {root} were replaced or modified since {tmp_path / 'run'} started" in err
    assert "Traceback" not in err


def test_resume_goes_on_with_the_data_moved_to_where_data_dir_says_and_only_with_the_same_data(tmp_path, capsys):
    """The data folder moved (to another disk: new paths and inodes) after a run's first epoch: --resume is
    pointed at the new place with --data-dir, checks it holds the images the run trained on (labels, names and
    sizes), trains on, and records the new place for submit.py. Other data at the new place is refused."""
    root = write_layout(tmp_path / "data", LABELS, test_ids=range(1, 5), sample_ids=range(1, 5))
    code, err = run("train.py", "--data-dir", root, *TRAIN, "--out", tmp_path / "run", capsys=capsys)
    assert code == 0, err
    shutil.copytree(root, tmp_path / "elsewhere" / "data")  # new inodes and mtimes: not the same files any more
    shutil.rmtree(root)
    code, err = run("train.py", "--resume", tmp_path / "run", "--epochs", "2", capsys=capsys)
    assert code == 2 and f"the data {root} does not exist (moved or deleted?): give --data-dir" in err, err
    other = write_layout(tmp_path / "other" / "data", LABELS)
    Image.new("RGB", (32, 32), (9, 9, 9)).save(os.path.join(other, "train", "3.png"))  # a flat image: smaller
    code, err = run("train.py", "--resume", tmp_path / "run", "--epochs", "2", "--data-dir", other, capsys=capsys)
    assert code == 2 and f"the training images in {other} are not those {tmp_path / 'run'} trained on in {root}" in err
    moved = tmp_path / "elsewhere" / "data"
    code, err = run("train.py", "--resume", tmp_path / "run", "--epochs", "2", "--data-dir", moved, capsys=capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["data_dir"] == str(moved) and saved["plan"]["epochs"] == 2
    code, err = run("submit.py", "--run", tmp_path / "run", "--out", tmp_path / "s.csv", "--no-progress", capsys=capsys)
    assert code == 0 and len((tmp_path / "s.csv").read_text().splitlines()) == 1 + 4, err
