"""Decode a folder of images once into a uint8 array on disk, and reuse it while the files are unchanged.

Decoding a PNG costs more than augmenting it: the per-image pipeline decodes all 50,000 training
images again every epoch. Here they are decoded once, in parallel, into an (N, 32, 32, 3) uint8
`.npy` file (150 MB for 50,000 images) that later runs memory-map. The file is named by a digest
of the images' paths, sizes and modification times, so replacing, adding or touching a file
makes a new one (replacing the old); it is written under another name and renamed into place
when complete, so an interrupted build is never read.
"""
from __future__ import annotations

import glob
import hashlib
import logging
import os

import numpy as np
from mxnet import gluon
from mxnet.gluon.data import Dataset

from ..atomic import atomic_path, exclusive
from ..errors import ConfigError
from ..progress import progress_bar
from .images import SIZE, decode_rgb, files_identity

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when the array's layout or the decoding changes
_CHUNK = 512  # images per decoding task


class _RawImages(Dataset):
    def __init__(self, paths: list[str]) -> None:
        self._paths = paths

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return decode_rgb(self._paths[index])


def _batchify(images: list[np.ndarray]) -> np.ndarray:
    return np.stack(images)


def files_digest(paths: list[str], identity: str | None = None) -> str:
    """Digest of what the decoded array depends on: the decoder's version and every file's identity
    (`identity`: images.files_identity(paths), if the caller has it already)."""
    identity = files_identity(paths) if identity is None else identity
    return hashlib.sha256(f"v{CACHE_VERSION} {SIZE}\n{identity}".encode()).hexdigest()[:24]


def decoded_images(paths: list[str], cache_dir: str, num_workers: int, show_progress: bool = True,
                   identity: str | None = None) -> np.ndarray:
    """The images at `paths`, decoded, as a read-only memory-mapped (N, 32, 32, 3) uint8 RGB array.

    Built on first use (in `num_workers` processes) under `cache_dir`/decoded/, reused afterwards.
    `identity`: images.files_identity(paths) if known (the split tree computed it: 0.2 s saved).
    """
    # One array per source folder: a new one replaces the old (a run still reading the old one
    # keeps its mapping: on POSIX a removed file lives on until its last user closes it).
    folder = hashlib.sha256(os.path.dirname(os.path.abspath(paths[0])).encode()).hexdigest()[:12]
    path = os.path.join(cache_dir, "decoded", f"{folder}-{files_digest(paths, identity)}.npy")
    with exclusive(os.path.join(cache_dir, "decoded", f"{folder}.lock")):  # distributed workers may all get here
        if not os.path.exists(path):
            _build(paths, path, num_workers, show_progress)
            for old in glob.glob(os.path.join(cache_dir, "decoded", f"{folder}-*.npy")):
                if old != path:
                    os.remove(old)
        else:
            log.info("reusing decoded images %s", path)
    images = np.load(path, mmap_mode="r")
    if images.shape != (len(paths), SIZE[1], SIZE[0], 3) or images.dtype != np.uint8:
        raise ConfigError(f"{path} holds {images.dtype} {images.shape}, not {len(paths)} decoded images: "
                           "delete it and run again")
    return images


def _build(paths: list[str], path: str, num_workers: int, show_progress: bool) -> None:
    log.info("decoding %d images once into %s", len(paths), path)
    loader = gluon.data.DataLoader(_RawImages(paths), batch_size=_CHUNK, shuffle=False,
                                   last_batch="keep", num_workers=num_workers, batchify_fn=_batchify)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), SIZE[1], SIZE[0], 3))
        done = 0
        with progress_bar(len(paths), "decode", show_progress, unit="img", leave=False) as bar:
            for chunk in loader:  # numpy (the batchify_fn's), from workers too
                out[done:done + len(chunk)] = chunk
                done += len(chunk)
                bar.update(len(chunk))
        out.flush()
        del out
