"""The Kaggle layout made from a download that arrived as archives, once, in the cache.

`materialise` extracts `train.7z` (checked, atomically) and reuses the result while the archive is
unchanged; `test.7z` stays where it is and is streamed to the predictor (archives.iter_pngs).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil

import mxnet as mx
import numpy as np

from ..atomic import exclusive
from ..errors import LayoutError
from ..progress import progress_bar
from .archives import LABELS, SAMPLE, Download, Member, decode_member, iter_pngs
from .images import decode_rgb
from .kaggle import read_test
from .transforms import eval_transform

log = logging.getLogger(__name__)

LAYOUT_VERSION = 1  # bump when materialise's output changes, so old copies are rebuilt


def materialise(download: Download, cache_dir: str, show_progress: bool = True, with_train: bool = True) -> str:
    """A directory in the Kaggle layout for `download`, made once under `cache_dir`/kaggle/:
    trainLabels.csv and sampleSubmission.csv copied, train/ extracted from train.7z (or linked to
    the extracted folder), test/ linked when extracted. test.7z is left where it is (`iter_pngs`).
    `with_train` False (prediction only): the full layout if one was made, else one without
    train.7z's extraction.

    Built in a temporary folder and renamed into place; reused while the download is unchanged.
    """
    root = _layout_root(download, cache_dir, with_train=True)
    if not with_train and not os.path.isfile(os.path.join(root, "source.json")):
        root = _layout_root(download, cache_dir, with_train=False)
    with exclusive(f"{root}.lock"):  # workers of a distributed run may all get here at once
        if os.path.isfile(os.path.join(root, "source.json")):
            log.info("reusing %s, extracted from %s", root, download.origin)
            return root
        tmp = f"{root}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _build_layout(download, tmp, show_progress, with_train)
            shutil.rmtree(root, ignore_errors=True)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _layout_root(download: Download, cache_dir: str, with_train: bool) -> str:
    parts = [download.origin, download.train.fingerprint() if download.train else "",
             download.test.fingerprint() if download.test else "", str(LAYOUT_VERSION)]
    key = hashlib.sha256("\n".join(parts + ([] if with_train else ["without train"])).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, "kaggle", key)


def _build_layout(download: Download, out: str, show_progress: bool, with_train: bool) -> None:
    os.makedirs(out)
    for name in (LABELS, SAMPLE):
        data = download.csv(name)
        if data is None and name == LABELS:
            raise LayoutError(f"{download.origin} holds no {LABELS}: it must hold one 'id,label' row per "
                              "training image")
        if data is not None:
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
    for part, member in (("train", download.train), ("test", download.test)):
        if member is None and (with_train or part == "test"):  # extracted already: link the user's folder
            os.symlink(os.path.abspath(os.path.join(download.folder, part)), os.path.join(out, part))
    if download.train is not None and with_train:
        extract_pngs(download.train, "train", os.path.join(out, "train"), show_progress)
    record = {"origin": os.path.abspath(download.origin),
              "archived_test_images": None if download.test is None else
              {"name": os.path.abspath(download.test.name) if download.test.container is None else download.test.name,
               "container": download.test.container and os.path.abspath(download.test.container)}}
    with open(os.path.join(out, "source.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)


def extract_pngs(member: Member, folder: str, out: str, show_progress: bool = True) -> int:
    """Write every image of `member` to `out`/<id>.png (checked like `iter_pngs`); returns how many."""
    os.makedirs(out)
    log.info("extracting %s into %s (once: later runs reuse it)", member.label, out)
    count = 0
    with progress_bar(member.size, f"extract {os.path.basename(member.name)}", show_progress, unit="B",
                      unit_scale=True, leave=False) as bar:
        for image_id, data in iter_pngs(member, folder, bar.update):
            path = os.path.join(out, f"{image_id}.png")
            try:
                with open(path, "xb") as f:  # "x": an id twice in the archive is an error, not an overwrite
                    f.write(data)
            except FileExistsError:
                raise LayoutError(f"{member.label} holds {folder}/{image_id}.png twice: download it again") from None
            count += 1
    return count


def archived_test_images(layout: str) -> Member | None:
    """The test.7z that `materialise` left out of `layout` (None: test/ is a folder there)."""
    path = os.path.join(layout, "source.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f)["archived_test_images"]
    return Member(record["name"], record["container"]) if record else None


def first_test_images(layout: str, n: int) -> mx.nd.NDArray:
    """The first `n` test images of `layout` (from test/, or from the start of test.7z), as the
    predictor sees them: (n, 3, 32, 32), normalised."""
    archive = archived_test_images(layout)
    if archive is None:
        _, paths = read_test(layout)
        pixels = [decode_rgb(path) for path in paths[:n]]
    else:
        first = itertools.islice(iter_pngs(archive, "test"), n)
        pixels = [decode_member(archive, "test", name, data) for name, data in first]
    transform = eval_transform()
    return mx.nd.stack(*[transform(mx.nd.array(p, dtype=np.uint8)) for p in pixels])
