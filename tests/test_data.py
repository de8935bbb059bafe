import logging
import os

import numpy as np
import pytest
from PIL import Image

from gluon_cifar import CIFAR10_CLASSES
from gluon_cifar.data.folder import image_folder, train_loader
from gluon_cifar.data.images import check_headers, read_rgb
from gluon_cifar.data.kaggle import LabelledImages, read_train
from gluon_cifar.data.split import build_split_tree, split_train_valid
from gluon_cifar.data.transforms import train_transform
from tests.conftest import write_layout
from tests.test_bad_inputs import save_png


def uneven_images():
    # class sizes 12, 7, 30: n_min = 7
    labels = ["cat"] * 12 + ["dog"] * 7 + ["frog"] * 30
    ids = [str(i + 1) for i in range(len(labels))]
    return LabelledImages(ids=ids, labels=labels, paths=[f"/x/{i}.png" for i in ids])


@pytest.mark.parametrize("ratio,per_class", [(0.1, 1), (0.3, 2), (0.5, 3), (0.99, 6)])
def test_split_follows_the_book_rule(ratio, per_class):
    images = uneven_images()
    train, valid = split_train_valid(images, ratio, seed=0)
    assert set(train).isdisjoint(valid)
    assert sorted(train + valid) == list(range(len(images.ids)))
    for cls in ("cat", "dog", "frog"):
        assert sum(images.labels[i] == cls for i in valid) == per_class  # max(1, floor(7 * ratio))


def test_split_is_seeded():
    images = uneven_images()
    assert split_train_valid(images, 0.3, 1) == split_train_valid(images, 0.3, 1)
    assert split_train_valid(images, 0.3, 1)[1] != split_train_valid(images, 0.3, 2)[1]


@pytest.fixture
def layout(tmp_path):
    labels = {i: CIFAR10_CLASSES[i % 3] for i in range(1, 31)}
    return write_layout(tmp_path / "data", labels)


def tree_files(root, part):
    return sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(root, part)) for f in fs)


def test_tree_links_not_copies_and_is_reused(layout, tmp_path):
    images = read_train(layout)
    tree = build_split_tree(images, layout, 0.2, 0, str(tmp_path / "cache"))
    assert (tree.n_train, tree.n_valid) == (24, 6) and tree.link_kind == "hardlink"
    files = tree_files(tree.root, "train") + tree_files(tree.root, "valid")
    assert len(files) == 30 and len(tree_files(tree.root, "train_valid")) == 30
    originals = {os.path.basename(p): p for p in images.paths}
    for f in files:
        assert os.path.samefile(f, originals[os.path.basename(f)])  # same inode: no bytes copied
    marker = os.stat(os.path.join(tree.root, "manifest.json")).st_mtime_ns
    again = build_split_tree(images, layout, 0.2, 0, str(tmp_path / "cache"))
    assert again == tree and os.stat(os.path.join(tree.root, "manifest.json")).st_mtime_ns == marker


def test_tree_rebuilt_when_split_or_labels_change(layout, tmp_path):
    cache = str(tmp_path / "cache")
    images = read_train(layout)
    first = build_split_tree(images, layout, 0.2, 0, cache)
    valid_first = tree_files(first.root, "valid")
    other_seed = build_split_tree(images, layout, 0.2, 1, cache)
    assert other_seed.root != first.root and tree_files(other_seed.root, "valid") != valid_first
    # relabel image 1: same split settings, so the same tree must be rebuilt with the new label
    csv = os.path.join(layout, "trainLabels.csv")
    text = open(csv).read().replace("\n1,automobile\n", "\n1,truck\n")
    open(csv, "w").write(text)
    relabelled = build_split_tree(read_train(layout), layout, 0.2, 0, cache)
    assert relabelled.root == first.root
    assert any(p.endswith(os.path.join("truck", "1.png")) for p in tree_files(first.root, "train_valid"))


def loader_batches(root, workers, epochs=2):
    loader = train_loader(image_folder(root, train_transform()), 8, seed=3, num_workers=workers)
    return [[(x.asnumpy(), y.asnumpy()) for x, y in loader] for _ in range(epochs)]


def test_augmentation_stream_depends_on_seed_only(layout, tmp_path):
    tree = build_split_tree(read_train(layout), layout, 0.2, 0, str(tmp_path / "cache"))
    in_process = loader_batches(tree.folder("train"), workers=0)
    with_workers = loader_batches(tree.folder("train"), workers=2)
    assert len(in_process[0]) == 3  # 24 images, batch 8
    for epoch_a, epoch_b in zip(in_process, with_workers):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_allclose(xa, xb, atol=1e-6)
    # a new epoch reshuffles and re-augments
    assert not np.array_equal(in_process[0][0][0], in_process[1][0][0])


def test_no_cache_serves_an_image_that_was_replaced(layout, tmp_path):
    """One training image replaced by a new file moved into place (same name, same labels; the
    size and mtime kept, as a re-extraction may): the split tree and the decoded array are rebuilt
    from the new file, not served from the old one their hard links and keys still pointed at."""
    from PIL import Image

    from gluon_cifar.data.decoded import decoded_images

    cache = str(tmp_path / "cache")
    images = read_train(layout)
    tree = build_split_tree(images, layout, 0.0, 0, cache)
    before = decoded_images(images.paths, cache, num_workers=0, show_progress=False)[0].copy()
    source = images.paths[0]
    stat = os.stat(source)
    replacement = os.path.join(layout, "new.png")
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(replacement)
    os.replace(replacement, source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    label = images.labels[0]
    linked = os.path.join(tree.folder("train_valid"), label, os.path.basename(source))
    assert not os.path.samefile(linked, source)  # the old tree now holds the deleted image

    again = build_split_tree(read_train(layout), layout, 0.0, 0, cache)
    assert os.path.samefile(os.path.join(again.folder("train_valid"), label, os.path.basename(source)), source)
    assert again.files_sha256 != tree.files_sha256 and again.labels_sha256 == tree.labels_sha256
    after = decoded_images(images.paths, cache, num_workers=0, show_progress=False)[0]
    assert (after == 7).all() and not np.array_equal(after, before)


def test_grayscale_palette_and_rgba_images_are_converted_with_a_warning(tmp_path, caplog):
    paths = []
    for mode in ("L", "RGBA", "P", "RGB"):
        paths.append(str(tmp_path / f"{mode}.png"))
        save_png(paths[-1], mode="RGB" if mode == "P" else mode)
        if mode == "P":
            Image.open(paths[-1]).convert("P").save(paths[-1])
    with caplog.at_level(logging.WARNING):
        check_headers(paths, str(tmp_path))
    assert "3 images are not RGB (first: L.png (grayscale), RGBA.png (RGBA), P.png (palette))" in caplog.text
    for path in paths:
        expected = np.asarray(Image.open(path).convert("RGB"))  # the palette's 128 is stored as 153
        np.testing.assert_array_equal(read_rgb(path).asnumpy(), expected)
