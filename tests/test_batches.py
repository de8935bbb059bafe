"""The decoded loader: cache, batch augmentation, and the same batches as the folder loader."""
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_cifar import CIFAR10_CLASSES
from gluon_cifar.data.augment import (
    BookAugment,
    crop_flip_matrices,
    normalize,
    resample,
    to_context,
)
from gluon_cifar.data.batches import DecodedEvalLoader, DecodedTrainLoader, decoded_part
from gluon_cifar.data.decoded import decoded_images
from gluon_cifar.data.folder import (
    EpochShuffleSampler,
    eval_loader,
    image_folder,
    sample_images,
    train_loader,
)
from gluon_cifar.data.images import read_rgb
from gluon_cifar.data.kaggle import read_train
from gluon_cifar.data.split import build_split_tree
from gluon_cifar.data.transforms import MEAN, STD, eval_transform
from gluon_cifar.errors import LayoutError
from tests.conftest import write_layout


@pytest.fixture
def layout(tmp_path):
    labels = {i: CIFAR10_CLASSES[i % 3] for i in range(1, 41)}
    return write_layout(tmp_path / "data", labels)


@pytest.fixture
def gradient():
    """Two 32x32 images whose red channel is the column index and green the row index."""
    image = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    image[..., 0] = np.arange(32)[None, None, :]
    image[..., 1] = np.arange(32)[None, :, None]
    return to_context(image, mx.cpu())


def pixels(normalised, channel):
    """Undo the normalisation of one channel: back to 0..255 units."""
    return normalised[:, channel] * STD[channel] * 255 + MEAN[channel] * 255


def test_identity_and_mirror_matrices(gradient):
    identity = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (2, 1))
    mirror = np.tile(np.array([-1, 0, 0, 0, 1, 0], np.float32), (2, 1))
    np.testing.assert_allclose(resample(gradient, identity).asnumpy(), normalize(gradient).asnumpy(), atol=1e-4)
    np.testing.assert_allclose(resample(gradient, mirror).asnumpy(), normalize(gradient).asnumpy()[..., ::-1],
                               atol=1e-4)
    # normalize is the book's ToTensor + Normalize
    book = eval_transform()(mx.nd.array(gradient.asnumpy()[0], dtype=np.uint8)).asnumpy()
    np.testing.assert_allclose(normalize(gradient).asnumpy()[0], book, atol=1e-5)


def test_a_crop_samples_the_square_it_names(gradient):
    # a square of half the side, centred in the top-left quadrant: columns and rows 0..15.5, stretched
    matrices = np.tile(np.array([0.5, 0, -0.5, 0, 0.5, -0.5], np.float32), (2, 1))
    out = resample(gradient, matrices).asnumpy()
    np.testing.assert_allclose(pixels(out, 0)[0, 0], np.linspace(0, 15.5, 32), atol=1e-3)
    np.testing.assert_allclose(pixels(out, 1)[0, :, 0], np.linspace(0, 15.5, 32), atol=1e-3)


def test_random_squares_stay_inside_and_follow_the_book_distribution():
    m = crop_flip_matrices(np.random.default_rng(0), 20000)
    side, centre_x, centre_y = np.abs(m[:, 0]), m[:, 2], m[:, 5]
    np.testing.assert_array_equal(side, m[:, 4])  # squares
    assert side.min() >= 0.8 and side.max() <= 1.0  # 64-100% of the area
    assert (np.abs(centre_x) + side <= 1 + 1e-6).all() and (np.abs(centre_y) + side <= 1 + 1e-6).all()
    assert abs((m[:, 0] < 0).mean() - 0.5) < 0.02  # half mirrored
    assert abs((side ** 2).mean() - 0.82) < 0.005  # area uniform on [0.64, 1]


def test_decoded_cache_matches_the_files_and_is_rebuilt_when_one_changes(layout, tmp_path):
    paths = read_train(layout).paths
    cache = str(tmp_path / "cache")
    images = decoded_images(paths, cache, num_workers=2, show_progress=False)
    for i in (0, 17, 39):
        np.testing.assert_array_equal(images[i], read_rgb(paths[i]).asnumpy())
    assert decoded_images(paths, cache, 0, False).filename == images.filename  # reused
    os.utime(paths[5], ns=(0, 0))  # touched (or replaced): a new array
    again = decoded_images(paths, cache, 0, False)
    assert again.filename != images.filename
    assert [f for f in os.listdir(os.path.join(cache, "decoded")) if f.endswith(".npy")] == [
        os.path.basename(again.filename)]  # the stale array is gone: the cache does not grow


def test_a_corrupt_image_is_named_and_no_half_cache_is_left(layout, tmp_path):
    paths = read_train(layout).paths
    with open(paths[3], "r+b") as f:
        f.truncate(60)  # header intact, pixels gone
    cache = tmp_path / "cache"
    with pytest.raises(LayoutError, match=os.path.basename(paths[3])):
        decoded_images(paths, str(cache), num_workers=0, show_progress=False)
    assert not [f for f in os.listdir(cache / "decoded") if f.endswith(".npy") or f.endswith(".tmp")]


def no_augmentation(images, rng, rows, epoch, ctx):
    return normalize(to_context(images, ctx))


def decoded_part_and_tree(layout, tmp_path):
    images = read_train(layout)
    tree = build_split_tree(images, layout, 0.2, 0, str(tmp_path / "cache"))
    decoded = decoded_images(images.paths, str(tmp_path / "cache"), 0, False)
    return tree, decoded_part(tree.folder("train"), decoded, images.paths)


def test_decoded_loader_gives_the_folder_loaders_images_in_the_same_batches(layout, tmp_path):
    tree, part = decoded_part_and_tree(layout, tmp_path)
    # Augmentation off on both sides, so the batches must be equal, not merely alike.
    decoded = DecodedTrainLoader(part, 8, 3, no_augmentation)
    folder = train_loader(image_folder(tree.folder("train"), eval_transform()), 8, 3, 0)
    assert len(decoded) == len(folder) == 4  # 34 training images, batch 8: the last 2 sit out
    for _ in range(2):  # two epochs: both reshuffle alike
        for (x, y), (fx, fy) in zip(decoded, folder):
            assert x.shape == (8, 3, 32, 32) and x.dtype == np.float32
            np.testing.assert_array_equal(y.asnumpy(), fy.asnumpy())
            np.testing.assert_allclose(x.asnumpy(), fx.asnumpy(), atol=1e-5)
    valid = decoded_part(tree.folder("valid"), part.images, read_train(layout).paths)
    folder_valid = eval_loader(image_folder(tree.folder("valid"), eval_transform()), 4, 0)
    assert len(DecodedEvalLoader(valid, 4)) == 2  # 6 images: a last batch of 2 is kept
    for (x, y), (fx, fy) in zip(DecodedEvalLoader(valid, 4), folder_valid):
        np.testing.assert_array_equal(y.asnumpy(), fy.asnumpy())
        np.testing.assert_allclose(x.asnumpy(), fx.asnumpy(), atol=1e-5)


def test_the_whitening_sample_from_the_decoded_array_is_the_files_sample(layout, tmp_path):
    """A fastnet's whitening filters come from these images: taken from the decoded array, they must be the
    very bytes folder.sample_images reads from the files, so a run computes the same filters either way."""
    tree, part = decoded_part_and_tree(layout, tmp_path)
    loader = DecodedTrainLoader(part, 8, 3, no_augmentation)
    for n in (5, 34, 100):  # spaced over the part; all of it; more than there are
        sample = loader.spaced_sample(n)
        np.testing.assert_array_equal(sample, sample_images(tree.folder("train"), n))
        assert sample.shape == (min(n, 34), 3, 32, 32) and sample.dtype == np.float32
    assert len({image.tobytes() for image in loader.spaced_sample(5)}) == 5


def test_decoded_stream_is_seeded_and_resumes_mid_epoch(layout, tmp_path):
    _, part = decoded_part_and_tree(layout, tmp_path)
    loader = DecodedTrainLoader(part, 8, 3, BookAugment())
    epochs = [[x.asnumpy() for x, _ in loader] for _ in range(2)]
    again = DecodedTrainLoader(part, 8, 3, BookAugment())
    np.testing.assert_array_equal(next(iter(again))[0].asnumpy(), epochs[0][0])
    again.start_at(epoch=2, batch=1)
    rest = [x.asnumpy() for x, _ in again]
    assert len(rest) == 3  # of 4
    for got, want in zip(rest, epochs[1][1:]):
        np.testing.assert_array_equal(got, want)
    other_seed = DecodedTrainLoader(part, 8, 4, BookAugment())
    assert not np.array_equal(next(iter(other_seed))[0].asnumpy(), epochs[0][0])
    assert not np.array_equal(epochs[0][0], epochs[1][0])


def test_distributed_workers_get_disjoint_decoded_batches(layout, tmp_path):
    _, part = decoded_part_and_tree(layout, tmp_path)
    seen = []
    for worker in range(2):
        loader = DecodedTrainLoader(part, 4, 3, no_augmentation, worker=worker, num_workers=2)
        assert len(loader) == 4  # 17 images each: 4 batches of 4
        seen.append({image.tobytes() for x, _ in loader for image in x.asnumpy()})
    assert len(seen[0]) == len(seen[1]) == 16 and not seen[0] & seen[1]


@pytest.mark.parametrize("parts", [2, 3])
def test_worker_shards_are_disjoint_equal_and_reshuffled(parts):
    length = 100
    epochs = []
    for epoch in range(2):
        shards = []
        for part in range(parts):
            sampler = EpochShuffleSampler(length, seed=7, part=part, num_parts=parts)
            sampler.set_epoch(epoch)
            shards.append([key - epoch * length for key in sampler])
        assert all(len(s) == length // parts for s in shards)
        flat = [i for s in shards for i in s]
        assert len(set(flat)) == len(flat) == parts * (length // parts)  # disjoint; at most parts-1 sit out
        epochs.append(shards)
    assert epochs[0][0] != epochs[1][0]  # a different share every epoch
