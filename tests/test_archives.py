"""Reading the Kaggle download as it arrives: cifar-10.zip, or a folder with train.7z / test.7z."""
import glob
import json
import os
import zipfile

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

from gluon_cifar.config import Config
from gluon_cifar.data.archives import Member, find_download, iter_pngs
from gluon_cifar.data.kaggle import read_test
from gluon_cifar.data.layout import archived_test_images, materialise
from gluon_cifar.errors import LayoutError
from gluon_cifar.inference.predict import predict_archive, predict_files
from gluon_cifar.models import build_model
from tests.conftest import run_script
from tests.helpers.archives import folder_members, pack_7z, pack_download

PNG = bytes.fromhex("89504e470d0a1a0a")


@pytest.fixture(scope="module")
def downloads(real_layout, tmp_path_factory):
    root = tmp_path_factory.mktemp("downloads")
    return {"zip": pack_download(real_layout, root / "zip", "zip"), "7z": pack_download(real_layout, root / "7z", "7z")}


@pytest.mark.parametrize("kind", ["zip", "7z"])
def test_the_layout_made_from_the_download_holds_the_same_files(real_layout, downloads, kind, tmp_path):
    layout = materialise(find_download(downloads[kind]), str(tmp_path), show_progress=False)
    for name in ("trainLabels.csv", "sampleSubmission.csv"):
        assert open(os.path.join(layout, name), "rb").read() == open(os.path.join(real_layout, name), "rb").read()
    extracted = sorted(os.listdir(os.path.join(layout, "train")))
    assert extracted == sorted(os.listdir(os.path.join(real_layout, "train"))) and len(extracted) == 1000
    assert all(open(os.path.join(layout, "train", n), "rb").read() == open(os.path.join(real_layout, "train", n), "rb")
               .read() for n in extracted[::97])
    assert not os.path.exists(os.path.join(layout, "test"))  # streamed, never extracted
    assert archived_test_images(layout).label.endswith("test.7z")
    assert materialise(find_download(downloads[kind]), str(tmp_path), show_progress=False) == layout  # reused


def test_an_extracted_layout_is_used_as_it_is(real_layout):
    assert find_download(real_layout) is None


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_prediction_equals_prediction_from_the_files(real_layout, downloads, workers):
    ctxs = [mx.cpu(0), mx.cpu(1)]
    net = build_model("fastnet_small", 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    ids, paths = read_test(real_layout)
    from_files = predict_files(net, paths, ctxs, 16, workers, tta="flip")
    seen = []
    streamed_ids, streamed = predict_archive(net, Member("test.7z", downloads["zip"]), ctxs, 16, workers,
                                             seen.append, tta="flip")
    order = np.argsort(streamed_ids)
    assert sorted(streamed_ids) == ids and len(ids) == 50
    np.testing.assert_array_equal(streamed[order], from_files)
    assert sum(seen) == Member("test.7z", downloads["zip"]).size  # the bar ends at the archive's size


@pytest.mark.slow
def test_train_and_submit_from_the_zip_equal_the_extracted_layout(real_layout, downloads, tmp_path):
    # The 7z-folder form reaches the same code once materialised (the layout test above compares
    # its files); it trains and submits end to end in the damaged-test-archive test below.
    kind = "zip"
    flags = ["--model", "fastnet_small", "--batch-size", "64", "--epochs", "1", "--precision", "float32",
             "--loader", "decoded", "--no-progress"]
    results = {}
    for name, data in (("extracted", real_layout), (kind, downloads[kind])):
        run, cache = tmp_path / name, tmp_path / f"cache-{name}"
        trained = run_script("train.py", "--data-dir", data, *flags, "--out", run, "--cache-dir", cache)
        assert trained.returncode == 0, trained.stderr
        assert "extract train.7z" not in trained.stderr  # --no-progress silences the extraction bar too
        submitted = run_script("submit.py", "--run", run, "--precision", "float32", "--no-progress")
        assert submitted.returncode == 0, submitted.stderr
        for said in (trained.stderr, submitted.stderr):  # libarchive 3.6's note on import, once a run: not ours
            assert "entry digests" not in said and "libarchive" not in said, said
        record = json.loads((run / "config.json").read_text())
        decoded = glob.glob(str(cache / "decoded" / "*.npy"))
        results[name] = (record["n_train"], record["n_valid"], sorted(os.listdir(cache / "splits")) and
                         sorted(os.listdir(glob.glob(str(cache / "splits" / "*" / "valid" / "cat"))[0])),
                         np.load(decoded[0]), mx.nd.load(str(run / "model.params")),
                         (run / "submission.csv").read_text())
    (n_train, n_valid, valid_cats, pixels, params, csv), theirs = results["extracted"], results[kind]
    assert (n_train, n_valid, valid_cats) == theirs[:3]  # the same split
    np.testing.assert_array_equal(pixels, theirs[3])  # the same decoded pixels
    for key, value in params.items():
        np.testing.assert_array_equal(value.asnumpy(), theirs[4][key].asnumpy(), err_msg=key)
    assert csv == theirs[5] and len(pd.read_csv(tmp_path / kind / "submission.csv")) == 50


def _damaged(tmp_path, real_layout, part, mangle):
    """A 7z folder download whose `part`.7z went through `mangle(path)`."""
    folder = pack_download(real_layout, tmp_path / "download", "7z")
    mangle(os.path.join(folder, f"{part}.7z"))
    return folder


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def not_a_7z(path):
    with open(path, "wb") as f:
        f.write(b"<html>404 Not Found</html>\n")


def encrypted(path):
    py7zr = pytest.importorskip("py7zr")
    os.remove(path)
    with py7zr.SevenZipFile(path, "w", password="secret") as archive:
        archive.writestr(PNG, "train/1.png")


@pytest.mark.parametrize("mangle, reason", [(truncate, "cannot be read as a 7z archive"),
                                            (not_a_7z, "cannot be read as a 7z archive"),
                                            (encrypted, "encrypted")])
def test_a_damaged_train_archive_is_named_and_leaves_nothing(real_layout, tmp_path, mangle, reason):
    folder = _damaged(tmp_path, real_layout, "train", mangle)
    with pytest.raises(LayoutError, match=reason) as error:
        materialise(find_download(folder), str(tmp_path / "cache"), show_progress=False)
    assert f"{folder}/train.7z" in str(error.value) and "download it again" in str(error.value)
    assert [os.path.basename(p) for p in glob.glob(str(tmp_path / "cache" / "kaggle" / "*"))] == [
        os.path.basename(p) for p in glob.glob(str(tmp_path / "cache" / "kaggle" / "*.lock"))]  # no half layout


@pytest.mark.parametrize("members, reason", [
    ({"train/1.png": PNG, "train/notes.txt": b"hello"}, "holds train/notes.txt, not train/<id>.png"),
    ({"train/1.png": PNG, "other/2.png": PNG}, "holds other/2.png, not train/<id>.png"),
])
def test_a_member_that_is_not_a_training_png_is_named(tmp_path, members, reason):
    pack_7z(tmp_path / "train.7z", members)
    with pytest.raises(LayoutError, match=reason):
        list(iter_pngs(Member(str(tmp_path / "train.7z")), "train"))


def test_an_id_twice_in_the_train_archive_is_an_error(real_layout, tmp_path):
    members = folder_members(real_layout, "train")
    first = next(iter(members))
    pack_7z(tmp_path / "train.7z", {**members, f"{first[:-4]}.PNG": members[first]})
    for name in ("trainLabels.csv",):
        (tmp_path / name).write_bytes(open(os.path.join(real_layout, name), "rb").read())
    with pytest.raises(LayoutError, match=f"holds train/{os.path.basename(first)[:-4]}.png twice"):
        materialise(find_download(str(tmp_path)), str(tmp_path / "cache"), show_progress=False)


def test_a_zip_that_is_not_the_competition_download_is_named(tmp_path):
    zipped = tmp_path / "cifar-10.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("train/1.png", PNG)
    with pytest.raises(LayoutError, match="holds no train.7z, test.7z, trainLabels.csv at its top level"):
        find_download(str(zipped))


@pytest.mark.slow
def test_submit_from_a_damaged_test_archive_fails_named_and_writes_nothing(real_layout, tmp_path):
    folder = pack_download(real_layout, tmp_path / "download", "7z")
    run = tmp_path / "run"
    trained = run_script("train.py", "--data-dir", folder, "--model", "fastnet_small", "--batch-size", "64",
                         "--epochs", "1", "--precision", "float32", "--out", run, "--no-progress",
                         "--cache-dir", tmp_path / "cache")
    assert trained.returncode == 0, trained.stderr
    truncate(os.path.join(folder, "test.7z"))
    submitted = run_script("submit.py", "--run", run, "--no-progress", env={"GLUON_CIFAR_CACHE": str(tmp_path / "c2")})
    assert submitted.returncode == 2, submitted.stderr
    assert f"error: {folder}/test.7z cannot be read as a 7z archive" in submitted.stderr
    assert "Traceback" not in submitted.stderr and not (run / "submission.csv").exists()


def test_the_time_budget_times_the_archived_test_images_as_submit_reads_them(real_layout, downloads, tmp_path):
    """With test.7z still archived, the budget counts sampleSubmission.csv's rows and times the
    streaming predictor on the archive's own first images (not on training PNGs)."""
    from gluon_cifar.training.timing import process_clock
    from gluon_cifar.workflow.predict_timing import SUBMIT_IMPORTS_S, _sample_predictor, prediction_speeds
    layout = materialise(find_download(downloads["zip"]), str(tmp_path), show_progress=False)
    cfg, ctxs = Config(model="fastnet_small", num_workers=0, tta="auto"), [mx.cpu()]
    net = build_model(cfg.model, 10, ctxs, seed=0)
    net.hybridize(static_alloc=True)
    sample = _sample_predictor(layout, cfg, ctxs, process_clock())
    assert sample.test_images == 50 and sample.unread_check_s == 0  # streamed: no header scan of a folder
    assert sample.predict(net, 7, "flip") == 7 and sample.predict(net, 10_000, "flip") == 50  # the archive: 50
    timing = prediction_speeds(cfg, 10, ctxs, layout, ("flip", "flip-shift"), process_clock())
    assert timing.test_images == 50 and set(timing.images_per_s) == {"flip", "flip-shift"}
    assert min(timing.images_per_s.values()) > 0 and timing.startup_s > SUBMIT_IMPORTS_S
    extracted = prediction_speeds(cfg, 10, ctxs, real_layout, ("flip",), process_clock())
    assert extracted.test_images == 50  # extracted: test/ counted


def test_the_folder_the_zip_was_downloaded_into_means_the_zip(downloads):
    folder = os.path.dirname(downloads["zip"])
    found = find_download(folder)
    assert found.origin == downloads["zip"] and found.test == Member("test.7z", downloads["zip"])


def test_a_zip_damaged_inside_its_test_member_is_named(downloads, tmp_path):
    damaged = tmp_path / "cifar-10.zip"
    data = bytearray(open(downloads["zip"], "rb").read())
    with zipfile.ZipFile(downloads["zip"]) as archive:
        info = archive.getinfo("test.7z")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle:middle + 4096] = bytes(4096)  # what a bad sector or a broken copy leaves
    damaged.write_bytes(bytes(data))
    # zipfile's CRC error is raised inside libarchive's read callback, where ctypes would swallow it:
    # it must come out as what it is, not as a damaged 7z
    with pytest.raises(LayoutError, match=f"{damaged} is damaged: reading test.7z failed \\(Bad CRC-32"):
        list(iter_pngs(Member("test.7z", str(damaged)), "test"))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated train.7z", "not a zip"])
def test_training_from_a_damaged_download_exits_2_named_and_writes_nothing(real_layout, tmp_path, damage):
    if damage == "not a zip":
        data = tmp_path / "cifar-10.zip"
        data.write_text("<html>404 Not Found</html>\n")
        expected = f"error: {data} is a file but not a zip archive"
    else:
        data = _damaged(tmp_path, real_layout, "train", truncate)
        expected = f"error: {data}/train.7z cannot be read as a 7z archive"
    trained = run_script("train.py", "--data-dir", data, "--epochs", "1", "--out", tmp_path / "run",
                         "--cache-dir", tmp_path / "cache", "--no-progress")
    assert trained.returncode == 2 and expected in trained.stderr and "Traceback" not in trained.stderr
    assert not (tmp_path / "run").exists()
    assert not glob.glob(str(tmp_path / "cache" / "kaggle" / "*[!k]"))  # only the lock file, no half layout


def test_an_oversized_member_is_refused_while_reading_and_nothing_is_kept(real_layout, tmp_path):
    """A 'PNG' of several MB in train.7z is refused as soon as it passes the limit, named, and the
    half-extracted layout is removed: the cache keeps nothing of it."""
    members = folder_members(real_layout, "train")
    pack_7z(tmp_path / "train.7z", {**members, "train/99999.png": PNG + os.urandom(3 << 20)})
    (tmp_path / "trainLabels.csv").write_bytes(open(os.path.join(real_layout, "trainLabels.csv"), "rb").read())
    with pytest.raises(LayoutError, match=r"train.7z holds train/99999.png of [\d,]+ bytes or more, far larger than "
                                          r"any 32x32 image \(at most 1,048,576 accepted\)"):
        materialise(find_download(str(tmp_path)), str(tmp_path / "cache"), show_progress=False)
    assert [p for p in glob.glob(str(tmp_path / "cache" / "kaggle" / "*")) if not p.endswith(".lock")] == []


@pytest.mark.parametrize("kind", ["zip", "7z"])
def test_prediction_alone_does_not_extract_the_training_archive(downloads, kind, tmp_path):
    download = find_download(downloads[kind])
    cache = str(tmp_path / "cache")
    layout = materialise(download, cache, show_progress=False, with_train=False)
    assert not os.path.exists(os.path.join(layout, "train")) and archived_test_images(layout) is not None
    assert os.path.isfile(os.path.join(layout, "sampleSubmission.csv"))
    full = materialise(download, cache, show_progress=False)  # training: extracted, in its own folder
    assert full != layout and len(os.listdir(os.path.join(full, "train"))) > 0
    assert materialise(download, cache, show_progress=False, with_train=False) == full  # then reused


def test_libarchive_warnings_do_not_reach_the_user_while_an_archive_is_read(real_layout, tmp_path, caplog):
    import logging

    pack_7z(tmp_path / "train.7z", {"train/1.png": PNG})
    with caplog.at_level(logging.DEBUG):
        for _ in iter_pngs(Member(str(tmp_path / "train.7z")), "train"):
            logging.getLogger("libarchive").warning("Cannot check the digest")  # as libarchive-c logs one
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "libarchive: Cannot check the digest" in caplog.text  # kept, at debug level
    logging.getLogger("libarchive").warning("outside a read")  # nothing else is filtered
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == ["outside a read"]


def test_an_archive_replaced_by_another_file_is_not_taken_for_the_old_one(tmp_path):
    """The extraction cache's key changes when test.7z / train.7z / the zip is replaced, even by a
    file of the same size and modification time (a copy made with cp -p, a re-download)."""
    path = tmp_path / "train.7z"
    path.write_bytes(b"7z-old")
    before = Member(str(path)).fingerprint()
    stat = os.stat(path)
    (tmp_path / "new").write_bytes(b"7z-new")
    os.utime(tmp_path / "new", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(tmp_path / "new", path)
    assert os.stat(path).st_size == stat.st_size and os.stat(path).st_mtime_ns == stat.st_mtime_ns
    assert Member(str(path)).fingerprint() != before
