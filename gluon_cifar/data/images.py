"""Checking and decoding image files.

`check_headers` reads the first 33 bytes of each PNG (signature and IHDR chunk): enough to catch
files that are not PNGs, wrong sizes and non-RGB colour types over 350,000 files in seconds,
before any training starts. A file damaged past its header is only found when decoded:
`read_rgb` checks every decode and names it then.
"""
from __future__ import annotations

import hashlib
import logging
import os
import struct
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np
from PIL import Image, ImageFile, ImageOps

from ..errors import LayoutError

log = logging.getLogger(__name__)

SIZE = (32, 32)  # CIFAR-10: width, height
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
# PNG colour types (IHDR byte 25) other than 2 (RGB); decoding converts them all to RGB.
_CONVERTED_COLOURS = {0: "grayscale", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}
_SHOW = 5


@dataclass
class HeaderReport:
    not_images: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)  # "name (WxH)"
    converted: list[str] = field(default_factory=list)  # "name (colour type)"

    def raise_or_warn(self, folder: str) -> None:
        problems = []
        if self.not_images:
            problems.append(f"{len(self.not_images)} files are not PNG/JPEG images or are truncated "
                            f"(first: {first_few(self.not_images)})")
        if self.wrong_size:
            problems.append(f"{len(self.wrong_size)} images are not {SIZE[0]}x{SIZE[1]} "
                            f"(first: {first_few(self.wrong_size)})")
        if problems:
            raise LayoutError(f"{folder}:\n  - " + "\n  - ".join(problems) + "\nReplace those files with the "
                              f"originals from the Kaggle archive, or move them out of {folder}.")
        if self.converted:
            log.warning("%s: %d images are not RGB (first: %s); they are converted to RGB when read",
                        folder, len(self.converted), first_few(self.converted))


def files_identity(paths: list[str]) -> str:
    """sha256 over what identifies each file's contents without reading them: path, device, inode,
    size and modification time. A file replaced by another (a re-extracted or repaired download
    moved into place) has another inode even with the same name, size and mtime, so a cache keyed
    on this is rebuilt rather than served stale; the split tree's hard links keep the old inode
    alive, so it cannot be handed to the new file. Not the change time: linking a split tree (or
    removing an old one) changes every source's ctime, which would invalidate every cache."""
    return file_identities(paths)[0]


def file_identities(paths: list[str]) -> tuple[str, str]:
    """`files_identity(paths)`, and a digest of the files' names and sizes alone (`portable`): the same files
    moved to another folder or disk (a resumed run's data, moved) keep it, where their inodes and paths change."""
    digest, portable = hashlib.sha256(), hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        portable.update(f"{os.path.basename(path)}\0{st.st_size}\n".encode())
    return digest.hexdigest(), portable.hexdigest()


def first_few(items: list) -> str:
    """The first offenders, for an error message that names them without flooding the screen."""
    return ", ".join(str(i) for i in items[:_SHOW]) + (", ..." if len(items) > _SHOW else "")


def check_headers(paths: list[str], folder: str) -> None:
    """Raise LayoutError naming files that are not 32x32 PNG/JPEG images; warn about non-RGB ones."""
    report = HeaderReport()
    for path in paths:
        name = os.path.basename(path)
        with open(path, "rb") as f:
            head = f.read(33)
        if head.startswith(_JPEG_SIGNATURE):
            continue  # sizes live deep in JPEG files: checked when decoded
        if not head.startswith(_PNG_SIGNATURE) or len(head) < 33 or head[12:16] != b"IHDR":
            report.not_images.append(name)
            continue
        width, height = struct.unpack(">II", head[16:24])
        if (width, height) != SIZE:
            report.wrong_size.append(f"{name} ({width}x{height})")
        elif head[25] in _CONVERTED_COLOURS:
            report.converted.append(f"{name} ({_CONVERTED_COLOURS[head[25]]})")
    report.raise_or_warn(folder)


def read_rgb(path: str, shown_as: str | None = None) -> mx.nd.NDArray:
    """`decode_rgb` as an MXNet array."""
    return mx.nd.array(decode_rgb(path, shown_as), dtype=np.uint8)


def decode_rgb(path: str, shown_as: str | None = None) -> np.ndarray:
    """Decode `path` as a (32, 32, 3) uint8 RGB image; a damaged file is a LayoutError naming it.

    Pillow, not `mx.image.imread`: OpenCV's PNG reader returns an all-black image without any
    error for a file whose header is valid and whose data is garbage (libpng only prints to
    stderr), while Pillow's `load` raises. Every mode becomes RGB as it looks (`as_rgb`).
    `shown_as`: the name to give in errors, e.g. the original of a linked file.
    """
    shown_as = shown_as or path
    # GluonCV (gluoncv/data/mhp.py) sets Pillow's process-wide LOAD_TRUNCATED_IMAGES on import,
    # which makes load() pad a truncated file instead of raising: insist on the default here.
    tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(path) as image:
            image.load()  # the whole decode, checked: raises on damaged data
            pixels = np.asarray(as_rgb(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise LayoutError(f"{shown_as} cannot be decoded ({exc}); replace it with the original from the Kaggle "
                          "archive or remove it") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
    if pixels.shape[:2] != SIZE[::-1]:
        raise LayoutError(f"{shown_as} is {pixels.shape[1]}x{pixels.shape[0]}, not {SIZE[0]}x{SIZE[1]}; CIFAR-10 images "
                          f"are {SIZE[0]}x{SIZE[1]}: replace it with the original")
    return pixels


# Pillow's modes of more than 8 bits per grey value; Image.convert clips them to 255 instead of scaling.
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def as_rgb(image: Image.Image) -> Image.Image:
    """`image` as it looks, in 8-bit RGB: turned upright by its EXIF orientation (a phone's photo), 16-bit grey
    (and 32-bit integer grey, which holds 16-bit data: PNG and TIFF scans) scaled to 8 bits, every other mode
    (1, L, LA, P with or without transparency, RGBA, CMYK, YCbCr, ...) converted by Pillow, alpha dropped.
    Pillow's own conversion clips wide grey to 255: a 16-bit photo came out white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_GREY:
        grey = np.asarray(image, dtype=np.float64) / 257  # 65535 -> 255, 257 -> 1: a 16-bit level in 8 bits
        image = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")
