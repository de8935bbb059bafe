"""Reading the Kaggle layout: every inconsistency is reported with counts and offenders."""
import os

import pytest

from gluon_cifar.data.kaggle import check_sample_submission, read_test, read_train
from gluon_cifar.errors import LayoutError
from tests.conftest import write_layout

LABELS = {1: "cat", 2: "dog", 10: "frog", 100: "cat"}


def edit_csv(root, text):
    with open(os.path.join(root, "trainLabels.csv"), "w", newline="") as f:
        f.write(text)


def test_reads_in_numeric_order(tmp_path):
    root = write_layout(tmp_path, LABELS)
    images = read_train(root)
    assert images.ids == ["1", "2", "10", "100"]
    assert images.labels == ["cat", "dog", "frog", "cat"]
    assert images.paths[2].endswith(os.path.join("train", "10.png"))


def test_bom_and_crlf_are_accepted(tmp_path):
    root = write_layout(tmp_path, LABELS)
    edit_csv(root, "\ufeffid,label\r\n1,cat\r\n2,dog\r\n10,frog\r\n100,cat\r\n")
    assert read_train(root).labels == ["cat", "dog", "frog", "cat"]


@pytest.mark.parametrize("csv,message", [
    ("id,label\n1,cat\n2,dog\n10,frog\n100,cat\n2,dog\n", "1 duplicate ids (first: 2)"),
    ("id,label\n1,cat\n2,dog\n10,frog\n100,cat\n7,cat\n", "1 ids without an image in train/ (first: 7)"),
    ("id,label\n1,cat\n2,dog\n10,frog\n", "1 images in train/ without a row (first: 100)"),
    ("id,label\n1,cat\n2,\n10,frog\n100,cat\n", "1 empty labels (lines 3)"),
    ("id,label\n1,cat\n2,wolf\n10,frog\n100,cat\n", "1 unknown labels (wolf)"),
    ("name,class\n1,cat\n", "has header 'name,class'; the first line must be exactly 'id,label'"),
    # the file's own first line, not pandas' column names ("Unnamed: 2" for a trailing comma)
    ("id,label,extra,\n1,cat,x,\n", "has header 'id,label,extra,'; the first line must be exactly 'id,label'"),
    ("id;label\n1;cat\n", "has header 'id;label'; the first line must be exactly 'id,label'"),
    ("", "is empty"),
])
def test_bad_labels_are_named(tmp_path, csv, message):
    root = write_layout(tmp_path, LABELS)
    edit_csv(root, csv)
    with pytest.raises(LayoutError) as err:
        read_train(root)
    assert message in str(err.value) and "trainLabels.csv" in str(err.value)


def test_missing_pieces(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        read_train(str(tmp_path / "nowhere"))
    root = write_layout(tmp_path / "d", LABELS)
    os.remove(os.path.join(root, "trainLabels.csv"))
    with pytest.raises(LayoutError, match="trainLabels.csv is missing"):
        read_train(root)


def test_test_ids_numeric_and_sample_submission_checked(tmp_path):
    root = write_layout(tmp_path, LABELS, test_ids=[10, 2, 1, 100], sample_ids=[1, 2, 10, 100])
    ids, paths = read_test(root)
    assert ids == [1, 2, 10, 100] and paths[3].endswith("100.png")
    check_sample_submission(root, ids)


def test_sample_submission_mismatch_is_an_error(tmp_path):
    root = write_layout(tmp_path, LABELS, test_ids=[1, 2, 10], sample_ids=[1, 2, 10, 5])
    ids, _ = read_test(root)
    with pytest.raises(LayoutError, match=r"1 ids listed but without an image \(first: 5\), 0 images not listed"):
        check_sample_submission(root, ids)


def test_non_numeric_test_file_is_named(tmp_path):
    root = write_layout(tmp_path, LABELS, test_ids=[1, "notes"])
    with pytest.raises(LayoutError, match="notes.png"):
        read_test(root)
