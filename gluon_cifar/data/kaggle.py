"""Read and check the Kaggle CIFAR-10 layout.

    DIR/train/<id>.png      labelled images (50,000 in the competition)
    DIR/trainLabels.csv     id,label with class names
    DIR/test/<id>.png       images to predict (300,000, of which 10,000 are scored)
    DIR/sampleSubmission.csv

Ids are always parsed from file names and ordered numerically, never by listing order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from .. import CIFAR10_CLASSES
from ..errors import LayoutError
from .images import check_headers, first_few

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class LabelledImages:
    """The labelled training set: parallel lists, ordered by numeric id."""

    ids: list[str]
    labels: list[str]
    paths: list[str]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


def id_sort_key(image_id: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order (1, 2, 10), anything else after them as text."""
    return (0, int(image_id)) if image_id.isascii() and image_id.isdigit() else (1, image_id)


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise LayoutError(f"{what} {path} does not exist or is not a directory. Expected the Kaggle "
                          f"CIFAR-10 layout: train/, trainLabels.csv, test/ (or use --demo)")
    return path


def list_images(folder: str) -> dict[str, str]:
    """Map id (file name without extension) to path for every image file in `folder`.

    Anything that would make an id ambiguous or silently missing is an error naming it: a file
    that is not an image (usually an archive unpacked into the wrong place), two files with the
    same id (`7.png` and `7.jpg`), a link that leads nowhere, a directory named like an image.
    """
    images: dict[str, str] = {}
    others: list[str] = []
    same_id: list[str] = []
    broken: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            is_image_name = ext.lower() in IMAGE_EXTENSIONS
            if entry.is_symlink() and not os.path.exists(entry.path):  # dangling, or a loop
                (broken if is_image_name else others).append(entry.name)
            elif entry.is_dir():
                if is_image_name:
                    broken.append(entry.name + "/")
            elif not is_image_name:
                others.append(entry.name)
            elif stem in images:
                same_id.append(" and ".join(sorted([os.path.basename(images[stem]), entry.name])))
            else:
                images[stem] = entry.path
    problems = []
    if others:
        problems.append(f"{len(others)} files that are not .png/.jpg images (first: {first_few(sorted(others))})")
    if same_id:
        problems.append(f"{len(same_id)} ids with more than one file (first: {first_few(sorted(same_id))})")
    if broken:
        problems.append(f"{len(broken)} entries named like images that are not readable files: broken links or "
                        f"directories (first: {first_few(sorted(broken))})")
    if problems:
        raise LayoutError(f"{folder} holds:\n  - " + "\n  - ".join(problems) + f"\nMove them out of {folder}: "
                          "every image there must be one readable file named <id>.png")
    return images


def read_label_csv(path: str) -> pd.DataFrame:
    """Read an id,label CSV as strings; a UTF-8 BOM and CRLF line endings are accepted."""
    if not os.path.isfile(path):
        raise LayoutError(f"{path} is missing: it must hold one 'id,label' row per training image")
    try:
        # index_col=False: with a trailing comma on every row, pandas would take the ids as the index
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    except pd.errors.EmptyDataError:
        raise LayoutError(f"{path} is empty: it must start with the header 'id,label'") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path} is not a readable CSV ({exc}); expected 'id,label' rows") from None
    # A trailing comma on every line (header included) reads as one more, unnamed and empty, column.
    trailing = [c for c in frame.columns[2:] if c.startswith("Unnamed: ") and (frame[c] == "").all()]
    frame = frame.drop(columns=trailing)
    columns = [c.strip() for c in frame.columns]
    if columns != ["id", "label"]:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            header = f.readline().rstrip("\r\n")
        raise LayoutError(f"{path} has header {header!r}; the first line must be exactly 'id,label'")
    frame.columns = columns
    return frame.apply(lambda col: col.str.strip())


def read_train(data_dir: str, classes: tuple[str, ...] = CIFAR10_CLASSES) -> LabelledImages:
    """Read trainLabels.csv and check it against train/, naming the first offenders of each problem."""
    require_dir(data_dir, "data directory")
    train_dir = require_dir(os.path.join(data_dir, "train"), "training image directory")
    csv_path = os.path.join(data_dir, "trainLabels.csv")
    frame = read_label_csv(csv_path)
    images = list_images(train_dir)
    if not images:
        raise LayoutError(f"{train_dir} holds no .png/.jpg images: unpack the Kaggle train archive there")

    problems = []
    duplicated = frame.loc[frame["id"].duplicated(), "id"].tolist()
    if duplicated:
        problems.append(f"{len(duplicated)} duplicate ids (first: {first_few(duplicated)})")
    empty = (frame.index[frame["label"] == ""] + 2).tolist()  # +2: header line and 1-based
    if empty:
        problems.append(f"{len(empty)} empty labels (lines {first_few(empty)})")
    unknown = sorted(set(frame["label"]) - set(classes) - {""})
    if unknown:
        problems.append(f"{len(unknown)} unknown labels ({first_few(unknown)}); valid labels are {', '.join(classes)}")
    listed = set(frame["id"])
    no_image = sorted(listed - set(images), key=id_sort_key)
    if no_image:
        problems.append(f"{len(no_image)} ids without an image in train/ (first: {first_few(no_image)})")
    no_id = sorted(set(images) - listed, key=id_sort_key)
    if no_id:
        problems.append(f"{len(no_id)} images in train/ without a row (first: {first_few(no_id)})")
    if problems:
        raise LayoutError(f"{csv_path} does not match {train_dir}:\n  - " + "\n  - ".join(problems)
                          + "\nFix the CSV or the folder so that every image has exactly one labelled row.")

    frame = frame.iloc[sorted(range(len(frame)), key=lambda i: id_sort_key(frame["id"].iat[i]))]
    ids = frame["id"].tolist()
    paths = [images[i] for i in ids]
    check_headers(paths, train_dir)
    return LabelledImages(ids=ids, labels=frame["label"].tolist(), paths=paths)


def read_test(data_dir: str) -> tuple[list[int], list[str]]:
    """Numeric ids and paths of DIR/test images, in numeric id order.

    The images' headers are not read here: a caller about to predict all of them checks them
    (`images.check_headers`); one that reads a few (export) need not pay for 300,000.
    """
    test_dir = require_dir(os.path.join(data_dir, "test"), "test image directory")
    images = list_images(test_dir)
    if not images:
        raise LayoutError(f"{test_dir} holds no .png/.jpg images: unpack the Kaggle test archive there")
    bad = sorted(i for i in images if not is_test_id(i))
    if bad:
        raise LayoutError(f"{len(bad)} files in {test_dir} are not named <numeric id>.png "
                          f"(first: {first_few([os.path.basename(images[b]) for b in bad])}): ids are ASCII digits "
                          "without leading zeros, below 2**63; move those files out")
    ids = sorted(int(i) for i in images)
    return ids, [images[str(i)] for i in ids]


def is_test_id(stem: str) -> bool:
    """Whether a file name's stem is a test id: ASCII digits ("²" is a digit to str.isdigit), no
    leading zero ("007" would collide with "7"), and small enough for the submission's int64 id
    column."""
    return stem.isascii() and stem.isdigit() and str(int(stem)) == stem and int(stem) < 2 ** 63


def check_sample_submission(data_dir: str, ids: list[int], test_source: str | None = None) -> None:
    """If DIR/sampleSubmission.csv exists, it must list exactly the ids found in `test_source`
    (default DIR/test; e.g. the test.7z they were streamed from)."""
    path = os.path.join(data_dir, "sampleSubmission.csv")
    if not os.path.exists(path):
        return
    frame = read_label_csv(path)
    try:
        expected = set(int(i) for i in frame["id"])
    except ValueError:
        raise LayoutError(f"{path} has non-numeric ids; it must list the numeric ids of test/") from None
    ours = set(ids)
    if expected != ours:
        missing = sorted(expected - ours)
        extra = sorted(ours - expected)
        raise LayoutError(
            f"{path} and {test_source or os.path.join(data_dir, 'test')} disagree: {len(missing)} ids listed but "
            f"without an image (first: {first_few(missing)}), {len(extra)} images not listed (first: "
            f"{first_few(extra)}). "
            "Re-download the test archive or the sample submission.")
