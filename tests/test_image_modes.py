"""Every image is read as it looks (issue 45, item 2): each mode Pillow reads, against its 8-bit RGB
equivalent, in the decoders (the dataset's and a user's images) and in train, submit and predict."""
import io
import os

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import gluon_cifar
from gluon_cifar.data.images import decode_rgb
from gluon_cifar.data.user_images import load_image
from tests.conftest import SMALL_RUN, run_script


def picture(seed: int = 0) -> np.ndarray:
    """A 32x32 RGB picture with smooth gradients and edges (random noise would hide a misread)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([x * 8, y * 8, (x + y) * 4], axis=-1) + rng.integers(0, 40, 3)
    base[8:20, 10:26] = rng.integers(0, 256, 3)
    return np.clip(base, 0, 255).astype(np.uint8)


def grey_of(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def stacked(grey: np.ndarray) -> np.ndarray:
    return np.stack([grey] * 3, axis=-1)


def in_mode(rgb: np.ndarray, mode: str) -> tuple[Image.Image, str, np.ndarray]:
    """`rgb` stored in `mode`: (the image, the format to save it in, its 8-bit RGB equivalent)."""
    grey = grey_of(rgb)
    alpha = np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8)
    if mode == "1":
        image = Image.fromarray(grey > 127).convert("1")
        return image, "PNG", stacked(np.where(grey > 127, 255, 0).astype(np.uint8))
    if mode == "L":
        return Image.fromarray(grey), "PNG", stacked(grey)
    if mode == "LA":
        return Image.fromarray(np.stack([grey, alpha], -1), "LA"), "PNG", stacked(grey)
    if mode in ("P", "P-transparent"):
        image = Image.fromarray(rgb).quantize(64)
        if mode == "P-transparent":
            image.info["transparency"] = 0
        return image, "PNG", np.asarray(Image.fromarray(rgb).quantize(64).convert("RGB"))
    if mode == "RGB":
        return Image.fromarray(rgb), "PNG", rgb
    if mode == "RGBA":
        return Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA"), "PNG", rgb
    if mode == "I;16":  # a 16-bit grey PNG: 257 x the 8-bit level (65535 is white)
        return Image.fromarray(grey.astype(np.uint16) * 257), "PNG", stacked(grey)
    if mode == "I":  # 32-bit integer grey, as a TIFF holds 16-bit scans
        return Image.fromarray(grey.astype(np.int32) * 257, "I"), "TIFF", stacked(grey)
    raise ValueError(mode)


LOSSLESS = ["1", "L", "LA", "P", "P-transparent", "RGB", "RGBA", "I;16", "I"]


def saved(image: Image.Image, fmt: str, path: str, **options) -> str:
    if fmt == "PNG" and "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    image.save(path, fmt, **options)
    return path


@pytest.mark.parametrize("mode", LOSSLESS)
def test_each_lossless_mode_decodes_to_its_8_bit_rgb_equivalent(mode, tmp_path):
    """The dataset's decoder and a user's-image loader alike; a 16-bit grey PNG used to come out white."""
    image, fmt, expected = in_mode(picture(), mode)
    path = saved(image, fmt, str(tmp_path / f"image.{fmt.lower()}"))
    with Image.open(path) as check:
        assert check.mode == {"P-transparent": "P"}.get(mode, mode)  # the file really holds that mode
    np.testing.assert_array_equal(decode_rgb(path), expected)
    np.testing.assert_array_equal(load_image(path), expected)


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=100, subsampling=0, **options)
    return buffer.getvalue()


def decoded_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_a_cmyk_jpeg_and_an_exif_rotated_jpeg_read_as_they_look(tmp_path):
    """A CMYK JPEG reads as its RGB picture; a phone's JPEG stored sideways with an EXIF orientation reads
    upright (it was read sideways). JPEG is lossy: each is compared with the RGB JPEG of the same picture."""
    rgb = picture(1)
    reference = decoded_jpeg(jpeg(Image.fromarray(rgb)))
    cmyk = tmp_path / "cmyk.jpg"
    cmyk.write_bytes(jpeg(Image.fromarray(rgb).convert("CMYK")))
    sideways = Image.fromarray(rgb).transpose(Image.ROTATE_90)  # stored turned left; orientation 6: turn right
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(jpeg(sideways, exif=exif.tobytes()))
    for path in (cmyk, rotated):
        for read in (decode_rgb, load_image):
            assert np.abs(read(str(path)).astype(int) - reference).max() <= 12, (path, read)
    assert np.abs(decode_rgb(str(rotated)).astype(int) - np.asarray(sideways).astype(int)).mean() > 20


def mode_layouts(root) -> tuple[str, str]:
    """Two Kaggle layouts of the same pictures (64 training images of 10 classes, 20 test images): one holds
    each image in a mode of its own (cycling through LOSSLESS), the other the 8-bit RGB equivalents."""
    as_modes, as_rgb = os.path.join(root, "modes"), os.path.join(root, "rgb")
    labels = {i: ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"][i % 10]
              for i in range(1, 65)}
    for layout in (as_modes, as_rgb):
        for part in ("train", "test"):
            os.makedirs(os.path.join(layout, part))
        with open(os.path.join(layout, "trainLabels.csv"), "w") as f:
            f.write("id,label\n" + "".join(f"{i},{c}\n" for i, c in labels.items()))
        with open(os.path.join(layout, "sampleSubmission.csv"), "w") as f:
            f.write("id,label\n" + "".join(f"{i},cat\n" for i in range(1, 21)))
    for part, ids in (("train", labels), ("test", range(1, 21))):
        for k, image_id in enumerate(ids):
            mode = "RGB" if part == "train" and k < 10 else LOSSLESS[k % len(LOSSLESS)]
            image, fmt, expected = in_mode(picture(image_id + 1000 * (part == "test")), "L" if mode == "I" else mode)
            # (TIFF is not a Kaggle file: the layout's files are PNGs, so "I" is tested by the decoders above)
            saved(image, fmt, os.path.join(as_modes, part, f"{image_id}.png"))
            Image.fromarray(expected).save(os.path.join(as_rgb, part, f"{image_id}.png"))
    return as_modes, as_rgb


@pytest.mark.slow
def test_train_submit_and_predict_read_every_mode_as_its_rgb_equivalent(tmp_path):
    """The same pictures in assorted modes (grey, 1-bit, palette with and without transparency, alpha,
    16-bit grey) and as 8-bit RGB: training trains the same bits, submit writes the same rows, predict gives
    the same probabilities."""
    as_modes, as_rgb = mode_layouts(tmp_path)
    runs = {}
    for name, layout in (("modes", as_modes), ("rgb", as_rgb)):
        runs[name] = tmp_path / f"run-{name}"
        trained = run_script("train.py", "--data-dir", layout, *SMALL_RUN, "--batch-size", "16", "--warmup-epochs",
                             "0", "--epochs", "1", "--out", runs[name],
                             env={"GLUON_CIFAR_CACHE": str(tmp_path / f"cache-{name}")})
        assert trained.returncode == 0, trained.stderr
    first, second = (mx.nd.load(str(runs[name] / "model.params")) for name in ("modes", "rgb"))
    for key, value in second.items():
        np.testing.assert_array_equal(first[key].asnumpy(), value.asnumpy(), err_msg=key)
    submissions = []
    for layout in (as_modes, as_rgb):
        out = tmp_path / f"{os.path.basename(layout)}.csv"
        done = run_script("submit.py", "--run", runs["rgb"], "--data-dir", layout, "--precision", "float32", "--out",
                          out, "--no-progress")
        assert done.returncode == 0, done.stderr
        submissions.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(*submissions)
    tables = [gluon_cifar.predict(str(runs["rgb"]), os.path.join(layout, "test"), top_k=3, precision="float32")
              for layout in (as_modes, as_rgb)]
    assert tables[0]["label"].tolist() == tables[1]["label"].tolist()
    np.testing.assert_array_equal(tables[0]["probability"], tables[1]["probability"])
