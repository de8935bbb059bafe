"""`predict`: a user's own images through a finished run, and `train.py --config` to repeat a run."""
import json
import os
import shutil

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import gluon_cifar
from gluon_cifar.cli import run_main
from gluon_cifar.commands.predict import main as predict_command
from gluon_cifar.commands.train import get_args_parser as train_parser
from gluon_cifar.commands.train import main as train_command
from gluon_cifar.commands.train import repeat_config
from gluon_cifar.data.user_images import find_images, load_image
from gluon_cifar.errors import LayoutError
from tests.conftest import run_script, train_small_run

# ---- making any image a CIFAR-10-sized one (no network needed)

def test_a_32x32_image_passes_unchanged_and_a_larger_one_is_scaled_like_cifars(real_layout, tmp_path):
    original = os.path.join(real_layout, "train", "1.png")
    pixels = np.asarray(Image.open(original).convert("RGB"))
    np.testing.assert_array_equal(load_image(original), pixels)
    doubled = tmp_path / "doubled.jpg"  # a 64x64 JPEG of the same picture
    Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(doubled, quality=95)
    again = load_image(str(doubled))
    assert again.shape == (32, 32, 3) and again.dtype == np.uint8
    assert np.abs(again.astype(int) - pixels).mean() < 8  # the same picture back, up to JPEG and resampling
    wide = tmp_path / "wide.png"  # 96x64: shorter side to 32 (48x32), then the centre 32x32
    canvas = np.zeros((64, 96, 3), dtype=np.uint8)
    canvas[:, 16:80] = np.asarray(Image.fromarray(pixels).resize((64, 64), Image.NEAREST))
    Image.fromarray(canvas).save(wide)
    assert np.abs(load_image(str(wide)).astype(int) - pixels).mean() < 8


def test_inputs_expand_to_files_once_and_name_what_matches_nothing(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/1.png", "a/deep/2.JPG", "a/notes.txt", "b.png"):
        (tmp_path / name).write_bytes(b"x")
    found = find_images([str(tmp_path / "a"), str(tmp_path / "*.png"), str(tmp_path / "a" / "1.png")])
    assert found == [str(tmp_path / "a" / "1.png"), str(tmp_path / "a" / "deep" / "2.JPG"), str(tmp_path / "b.png")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="holds no image files"):
        find_images([str(tmp_path / "empty")])
    with pytest.raises(LayoutError, match="names no file, folder or files matching it"):
        find_images([str(tmp_path / "*.gif")])
    with pytest.raises(LayoutError, match=r"notes.txt cannot be read as an image"):
        load_image(str(tmp_path / "a" / "notes.txt"))


# ---- with a trained run

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_small_run(tmp_path_factory, 0, 2)


@pytest.fixture
def other_run(half_trained_run):
    """Another seed, half trained: it disagrees with `run` on some images, so its votes show."""
    return half_trained_run


@pytest.mark.slow
def test_predict_gives_submits_labels_for_the_same_images(run, tmp_path):
    """The same network, views and precision: the DataFrame's labels are the submission's."""
    submitted = run_script("submit.py", "--run", run, "--precision", "float32", "--out", tmp_path / "s.csv",
                           "--no-progress")
    assert submitted.returncode == 0, submitted.stderr
    test_dir = os.path.join(json.loads(open(os.path.join(run, "config.json")).read())["data_dir_resolved"], "test")
    table = gluon_cifar.predict(run, test_dir, top_k=3, precision="float32")
    assert isinstance(table, pd.DataFrame) and len(table) == 200 and table["error"].isna().all()
    table["id"] = [int(os.path.basename(p).split(".")[0]) for p in table["path"]]
    submission = pd.read_csv(tmp_path / "s.csv")
    merged = submission.merge(table, on="id", suffixes=("_submit", "_predict"))
    assert len(merged) == 200 and (merged["label_submit"] == merged["label_predict"]).all()
    # probabilities: ranked, each at most the one before, summing (over all classes) to at most 1
    assert (table["probability"] >= table["probability_2"]).all()
    assert (table["probability_2"] >= table["probability_3"]).all()
    assert ((table["probability"] + table["probability_2"] + table["probability_3"]) <= 1 + 1e-5).all()
    # three contexts, batches of 67 split 23/22/22 and a last one of 66: the same predictions
    split = gluon_cifar.predict(run, test_dir, top_k=3, precision="float32", ctxs=[mx.cpu(i) for i in range(3)],
                                batch_size=67)
    assert (split["path"] == table["path"]).all() and (split["label_3"] == table["label_3"]).all()
    np.testing.assert_allclose(split["probability"], table["probability"], rtol=1e-5)


@pytest.mark.slow
def test_the_command_skips_what_it_cannot_read_names_it_and_says_so_in_its_exit_code(run, real_layout, tmp_path):
    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    shutil.copy(os.path.join(real_layout, "train", "1.png"), photos / "a.png")
    Image.open(os.path.join(real_layout, "train", "2.png")).resize((200, 120)).save(photos / "more" / "b.jpg")
    (photos / "broken.png").write_bytes(b"not an image")
    done = run_script("predict.py", run, photos, "--top-k", "2", "--cpus", "2", "--no-progress")
    assert done.returncode == 3, done.stderr
    assert f"{photos / 'broken.png'} cannot be read as an image" in done.stderr
    assert "1 of 3 images could not be read and were skipped" in done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{photos / 'a.png'}: ") and lines[1].startswith(
        f"{photos / 'more' / 'b.jpg'}: ") and all(line.count(", ") == 1 for line in lines)
    written = run_script("predict.py", run, photos / "a.png", photos / "more", "--out", tmp_path / "p.json",
                         "--no-progress")
    assert written.returncode == 0, written.stderr
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [r["path"] for r in rows] == [str(photos / "a.png"), str(photos / "more" / "b.jpg")]
    assert all(r["label"] in gluon_cifar.CIFAR10_CLASSES and 0 < r["probability"] <= 1 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["EMPTY"], "holds no image files"),
    (["NOWHERE/*.png"], "names no file, folder or files matching it"),
    (["EMPTY", "--out", "preds.txt"], "name a .csv or a .json file"),
    (["EMPTY", "--top-k", "11"], "--top-k must be between 1 and the run's 10 classes, got 11"),
    (["EMPTY", "--top-k", "0"], "--top-k must be at least 1, got 0"),
    (["EMPTY", "--cpus", "0"], "--cpus must be at least 1, got 0"),
])
def test_bad_predict_inputs_are_one_line_errors(run, tmp_path, args, message, capsys):
    (tmp_path / "EMPTY").mkdir()
    args = [str(tmp_path / a) if a.startswith(("EMPTY", "NOWHERE")) else a for a in args]
    with pytest.raises(SystemExit) as exited:  # in this process, as scripts/predict.py runs it
        run_main(lambda: predict_command([run, *args, "--no-progress"]))
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and "Traceback" not in err, err


@pytest.mark.slow
def test_config_repeats_a_run_bit_for_bit_and_refuses_another_versions(run, tmp_path, capsys):
    again = tmp_path / "again"
    repeated = run_script("train.py", "--config", os.path.join(run, "config.json"), "--out", again, "--no-progress")
    assert repeated.returncode == 0, repeated.stderr
    first, second = mx.nd.load(os.path.join(run, "model.params")), mx.nd.load(str(again / "model.params"))
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name].asnumpy(), second[name].asnumpy(), err_msg=name)
    args = train_parser().parse_args(["--config", run, "--epochs", "3", "--lr", "0.5", "--out", "x"])
    (overridden, plan), saved = repeat_config(args), json.loads(open(os.path.join(run, "config.json")).read())
    assert (overridden.epochs, overridden.lr, overridden.model) == (3, 0.5, saved["config"]["model"])  # flags win
    assert plan is None  # another length: planned afresh
    cut = json.loads(open(os.path.join(run, "config.json")).read())  # as a budget that cut 5 epochs to 2 leaves it
    cut["config"].update(time_budget=10)
    cut["plan"].update(epochs=2, length_changes=[[1, 5]], tta="flip-shift")
    (tmp_path / "cut.json").write_text(json.dumps(cut))
    asked, repeated_plan = repeat_config(train_parser().parse_args(["--config", str(tmp_path / "cut.json"), "--out",
                                                                    "x"]))
    assert asked.time_budget == 10 and repeated_plan.settings(asked).tta == "flip-shift"  # the run's, not planned
    assert (repeated_plan.length.epochs, repeated_plan.length.changes) == (2, ((1, 5),))
    for flags in (["--epochs", "4"], ["--time-budget", "20"]):  # another length: its own schedule from the start
        _, other = repeat_config(train_parser().parse_args(["--config", str(tmp_path / "cut.json"), "--out", "x",
                                                            *flags]))
        assert other is None
    old = json.loads(open(os.path.join(run, "config.json")).read())
    old["config"]["mixup"] = 0.2
    old["versions"]["gluon_cifar"] = "9.9.9"
    (tmp_path / "old.json").write_text(json.dumps(old))
    for argv, messages in [(["--config", str(tmp_path / "old.json"), "--out", str(tmp_path / "x")],
                            ["was written by gluon_cifar 9.9.9, this is", "unknown settings ['mixup']"]),
                           (["--config", run], ["give --out"])]:
        with pytest.raises(SystemExit) as exited:  # in this process: both fail before any training
            run_main(lambda argv=argv: train_command([*argv, "--no-progress"]))
        err = capsys.readouterr().err
        assert exited.value.code == 2 and all(m in err for m in messages) and "Traceback" not in err, err
    assert not (tmp_path / "x").exists()


# ---- ensembles

def _probabilities(run, folder):
    """{image id: the run's class probabilities, in class order} from the DataFrame's top 10."""
    table = gluon_cifar.predict(run, folder, top_k=10, precision="float32")
    classes = list(gluon_cifar.CIFAR10_CLASSES)
    result = {}
    for _, row in table.iterrows():
        p = np.zeros(10)
        for label, prob in [("label", "probability")] + [(f"label_{k}", f"probability_{k}") for k in range(2, 11)]:
            p[classes.index(row[label])] = row[prob]
        result[int(os.path.basename(row["path"]).split(".")[0])] = p
    return result


@pytest.mark.slow
def test_an_ensemble_averages_its_runs_probabilities_with_their_weights(run, other_run, tmp_path):
    out = tmp_path / "ensemble.csv"
    done = run_script("submit.py", "--run", run, "--run", other_run, "--weights", "1,3", "--precision", "float32",
                      "--out", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "ensemble.ensemble.json").read_text())
    assert [m["run"] for m in record["runs"]] == [run, other_run]
    assert [m["weight"] for m in record["runs"]] == [0.25, 0.75] and record["precision"] == "float32"
    test_dir = os.path.join(json.loads(open(os.path.join(run, "config.json")).read())["data_dir_resolved"], "test")
    first, second = _probabilities(run, test_dir), _probabilities(other_run, test_dir)
    submission = pd.read_csv(out)
    expected = [gluon_cifar.CIFAR10_CLASSES[int(np.argmax(0.25 * first[i] + 0.75 * second[i]))]
                for i in submission["id"]]
    assert len(submission) == 200 and (submission["label"] == expected).mean() >= 0.99  # float32 sums, ties aside
    # the second run's votes count: weighted 1000:1, the ensemble is that run, where it disagrees with the first
    leaning = run_script("submit.py", "--run", run, "--run", other_run, "--weights", "1,1000", "--precision",
                         "float32", "--out", tmp_path / "leaning.csv", "--no-progress")
    assert leaning.returncode == 0, leaning.stderr
    labels = pd.read_csv(tmp_path / "leaning.csv").set_index("id")["label"]
    first_says = {i: gluon_cifar.CIFAR10_CLASSES[int(np.argmax(p))] for i, p in first.items()}
    second_says = {i: gluon_cifar.CIFAR10_CLASSES[int(np.argmax(p))] for i, p in second.items()}
    disagree = [i for i in first if first_says[i] != second_says[i]]
    # (the first run's 1/1001 share moves a probability by under 0.001: only a near tie of the second's can turn)
    clear = [i for i in disagree if np.diff(np.sort(second[i])[-2:])[0] > 0.002]
    assert clear and all(labels[i] == second_says[i] for i in clear)
    single = run_script("submit.py", "--run", run, "--precision", "float32", "--out", out, "--no-progress")
    assert single.returncode == 0, single.stderr
    assert not (tmp_path / "ensemble.ensemble.json").exists()  # it described the ensemble, not this


@pytest.mark.slow
def test_an_ensemble_of_runs_with_other_classes_or_bad_weights_is_refused(run, other_run, tmp_path):
    shuffled = tmp_path / "shuffled"
    shutil.copytree(run, shuffled)
    classes = (shuffled / "classes.txt").read_text().split()
    (shuffled / "classes.txt").write_text("\n".join(classes[::-1]) + "\n")
    for args, message in [(["--run", run, "--run", shuffled], "predict different classes"),
                          (["--run", run, "--run", other_run, "--weights", "1"], "one positive number per --run (2)"),
                          (["--run", run, "--run", other_run, "--retrain"], "--retrain retrains one run")]:
        done = run_script("submit.py", *args, "--out", tmp_path / "x.csv", "--no-progress")
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "x.csv").exists()
    # the second run's own files are as safe as the first's
    params = os.path.join(other_run, "model.params")
    before = os.path.getmtime(params)
    done = run_script("submit.py", "--run", run, "--run", other_run, "--out", params, "--no-progress")
    assert done.returncode == 2 and f"--out {params} is one of run {other_run}'s own files" in done.stderr, done.stderr
    assert os.path.getmtime(params) == before
