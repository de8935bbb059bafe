"""A user's own images (any size, any format Pillow reads) as the 32x32 RGB input the network knows.

CIFAR-10's images are photos scaled down to 32x32. An image here is made the same way: its shorter
side resized to 32 (Pillow's bicubic filter, which averages over the whole footprint when it
shrinks, so small details do not alias), then the centre 32x32 square cut out. A 32x32 image
passes through unchanged; anything not square loses the ends of its longer side.
"""
from __future__ import annotations

import glob
import os

import numpy as np
from PIL import Image, ImageFile

from ..errors import LayoutError
from .images import SIZE, as_rgb

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")  # what a folder's search takes


def find_images(inputs: list[str]) -> list[str]:
    """The image files that `inputs` name, in order, each once: files as given (whatever their
    suffix), folders searched recursively for files with an image suffix (sorted), and glob
    patterns. LayoutError, in one line, for an input that names nothing or a folder without images."""
    found: dict[str, None] = {}
    for given in inputs:
        if os.path.isdir(given):
            files = sorted(p for p in glob.glob(os.path.join(glob.escape(given), "**", "*"), recursive=True)
                           if p.lower().endswith(SUFFIXES) and os.path.isfile(p))
            if not files:
                raise LayoutError(f"{given} holds no image files ({', '.join(SUFFIXES)}, searched recursively): "
                                  "point to the images themselves or to a folder that has some")
        elif os.path.exists(given):
            files = [given]
        else:
            files = sorted(p for p in glob.glob(given, recursive=True) if os.path.isfile(p))
            if not files:
                raise LayoutError(f"{given} names no file, folder or files matching it: check the path (quote a "
                                  "glob pattern so that the shell does not expand it)")
        found.update(dict.fromkeys(files))
    return list(found)


def load_image(path: str) -> np.ndarray:
    """`path` as a (32, 32, 3) uint8 RGB array, made like CIFAR-10's (see the module doc).
    LayoutError naming the file if Pillow cannot read it whole."""
    tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False  # see images.decode_rgb
    try:
        with Image.open(path) as image:
            image.load()
            rgb = as_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise LayoutError(f"{path} cannot be read as an image ({str(exc).splitlines()[0][:160]})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
    return np.asarray(centre_crop(rgb))


def centre_crop(image: Image.Image) -> Image.Image:
    """Shorter side to 32 (bicubic), then the centre 32x32."""
    width, height = image.size
    side_w, side_h = SIZE
    if (width, height) != SIZE:
        scale = max(side_w / width, side_h / height)
        image = image.resize((max(side_w, round(width * scale)), max(side_h, round(height * scale))), Image.BICUBIC)
        width, height = image.size
    left, top = (width - side_w) // 2, (height - side_h) // 2
    return image.crop((left, top, left + side_w, top + side_h))
