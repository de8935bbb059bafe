"""Whole-batch augmentations: shifts with mean-colour or mirrored borders, cutout, alternating flips."""

import mxnet as mx
import numpy as np

from gluon_cifar.data.augment import (
    ShiftAugment,
    alternating_mirror,
    cutout_masks,
    make_augment,
    normalize,
    random_shifts,
    shifted_windows,
    to_context,
)


def test_shift_moves_whole_pixels_and_pads_with_the_mean_colour():
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    out = ShiftAugment(max_shift=4)(images, np.random.default_rng(1), ctx=mx.cpu()).asnumpy()
    dy, dx, mirror = random_shifts(np.random.default_rng(1), 32, 4)  # the same draws
    padded = np.pad(normalize(to_context(images, mx.cpu())).asnumpy(), ((0, 0), (0, 0), (4, 4), (4, 4)))  # 0: mean
    for i in range(32):
        assert abs(dx[i]) <= 4 and abs(dy[i]) <= 4
        window = padded[i, :, 4 + dy[i]:36 + dy[i], 4 + dx[i]:36 + dx[i]]
        np.testing.assert_allclose(out[i], window[:, :, ::-1] if mirror[i] else window, atol=1e-6)
    assert len(set(zip(dy, dx, mirror))) > 20  # the shifts and mirrors vary
    again = ShiftAugment(max_shift=4)(images, np.random.default_rng(1)).asnumpy()
    np.testing.assert_array_equal(again, out)


def test_shifted_windows_equal_the_affine_resampling_they_replace():
    """The whole-pixel gather computes what the bilinear sampler did with the same shift matrices."""
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    dy, dx, mirror = random_shifts(np.random.default_rng(1), 16, 2)
    pixel = 2.0 / 35  # one pixel in [-1, 1] coordinates of the 36-pixel padded image
    scale = 31 * pixel / 2
    matrices = np.stack([np.where(mirror, -scale, scale), 0 * dx, dx * pixel, 0 * dx, scale + 0 * dx, dy * pixel],
                        axis=1).astype(np.float32)
    # what ShiftAugment computed before: reflect-pad the normalised batch, then resample it
    padded = mx.nd.pad(normalize(to_context(images, mx.cpu())), mode="reflect", pad_width=(0, 0, 0, 0, 2, 2, 2, 2))
    grid = mx.nd.GridGenerator(mx.nd.array(matrices), transform_type="affine", target_shape=(32, 32))
    resampled = mx.nd.BilinearSampler(padded, grid).asnumpy()
    windows, inside = shifted_windows(images, dy, dx, mirror, 2, reflect=True)
    assert inside.all() == False  # noqa: E712  (some windows read the padding)
    gathered = normalize(to_context(windows, mx.cpu())).asnumpy()
    np.testing.assert_allclose(gathered, resampled, atol=1e-4)


def test_shifted_windows_are_each_pixel_read_from_its_own_shifted_and_mirrored_place():
    """The windows, cut a shift at a time, hold the very bytes a gather of every pixel by its own index reads."""
    images = np.random.default_rng(0).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    for max_shift, reflect in ((2, True), (4, False)):
        dy, dx, mirror = random_shifts(np.random.default_rng(max_shift), 300, max_shift)
        padded = np.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)),
                        mode="reflect" if reflect else "constant")
        ys = (max_shift + dy)[:, None] + np.arange(32)
        xs = (max_shift + dx)[:, None] + np.arange(32)
        xs = np.where(mirror[:, None], xs[:, ::-1], xs)
        gathered = padded[np.arange(300)[:, None, None], ys[:, :, None], xs[:, None, :]]
        windows, inside = shifted_windows(images, dy, dx, mirror, max_shift, reflect)
        np.testing.assert_array_equal(windows, gathered)
        rows, cols = (ys >= max_shift) & (ys < 32 + max_shift), (xs >= max_shift) & (xs < 32 + max_shift)
        np.testing.assert_array_equal(inside, rows[:, :, None] & cols[:, None])  # not read from the padding
        assert inside.sum() == ((32 - abs(dy)) * (32 - abs(dx))).sum() and not inside.all()


def test_cutout_blanks_a_square_of_the_given_side():
    masks = cutout_masks(np.random.default_rng(1), 500, (32, 32), 16)
    blanked = (masks == 0).sum(axis=(1, 2, 3))
    assert blanked.max() == 256 and blanked.min() >= 64  # whole square inside, or a corner of it
    assert (blanked == 256).mean() > 0.2
    image = np.full((4, 32, 32, 3), 255, np.uint8)
    out = make_augment("pad-crop-cutout")(image, np.random.default_rng(2)).asnumpy()
    white = normalize(to_context(image, mx.cpu())).asnumpy()[0, :, 16, 16]
    assert ((out == 0).all(axis=1).sum(axis=(1, 2)) >= 64).all()  # blank: the mean colour
    assert np.isclose(out, white[None, :, None, None]).all(axis=1).any()


def test_alternating_flips_mirror_every_image_in_every_other_epoch():
    rows = np.arange(10_000)
    first, second, third = (alternating_mirror(rows, epoch, seed=5) for epoch in range(3))
    assert 0.47 < first.mean() < 0.53  # a fair coin per image
    np.testing.assert_array_equal(second, ~first)
    np.testing.assert_array_equal(third, first)
    assert (alternating_mirror(rows, 0, seed=6) != first).mean() > 0.4  # another seed, other coins


def test_reflected_shift_moves_whole_pixels_with_mirrored_borders_and_alternates_flips():
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    padded = np.pad(normalize(to_context(images, mx.cpu())).asnumpy(), ((0, 0), (0, 0), (2, 2), (2, 2)),
                    mode="reflect")
    augment = make_augment("reflect-shift-altflip", seed=3)
    rows = np.arange(40) * 7
    for epoch in (0, 1):
        out = augment(images, np.random.default_rng(epoch), rows, epoch, mx.cpu()).asnumpy()
        mirrored = alternating_mirror(rows, epoch, seed=3)
        shifts = set()
        for i in range(40):
            source = padded[i, :, :, ::-1] if mirrored[i] else padded[i]
            # exactly one of the 25 whole-pixel windows of the padded image: no interpolation blur
            matches = [(dy, dx) for dy in range(5) for dx in range(5)
                       if np.allclose(out[i], source[:, dy:dy + 32, dx:dx + 32], atol=1e-4)]
            assert len(matches) == 1, (epoch, i, matches)
            shifts.add(matches[0])
        assert len(shifts) > 12  # the shifts vary
