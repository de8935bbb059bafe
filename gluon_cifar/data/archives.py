"""The Kaggle download as it arrives: `cifar-10.zip`, or a folder with `train.7z` and `test.7z`.

    cifar-10.zip            train.7z, test.7z, trainLabels.csv, sampleSubmission.csv
    DIR/train.7z            train/<id>.png (50,000); DIR/train/ instead if already extracted
    DIR/test.7z             test/<id>.png (300,000); DIR/test/ instead if already extracted

The 7z archives are read with libarchive (`libarchive-c`, the `archives` extra), member by member
in one forward pass, straight out of the zip when they are inside one: nothing is unpacked to
disk first. Training needs files (the split is a tree of links, and the book's loader reads
files), so layout.py's `materialise` extracts `train.7z` once into the cache; the test images
are never extracted: `iter_pngs` streams them to the predictor.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import numpy as np

from ..errors import ConfigError, LayoutError
from .images import decode_rgb, files_identity

log = logging.getLogger(__name__)

ZIP, TRAIN_7Z, TEST_7Z = "cifar-10.zip", "train.7z", "test.7z"
LABELS, SAMPLE = "trainLabels.csv", "sampleSubmission.csv"
MAX_IMAGE_BYTES = 1 << 20  # a 32x32 PNG is a few kB; a member this large is no image of the Kaggle download
_INSTALL = ("reading the Kaggle archives needs libarchive: pip install 'gluon_cifar[archives]' (libarchive-c) "
            "and the system library (Debian/Ubuntu: apt install libarchive13), or extract them yourself "
            "(7z x train.7z) and pass the folder")


@dataclass(frozen=True)
class Member:
    """One file of the download: `name` inside zip `container`, or the file `name` itself."""

    name: str
    container: str | None = None

    @property
    def label(self) -> str:
        """How errors name it: cifar-10.zip:train.7z, or the path."""
        return f"{self.container}:{self.name}" if self.container else self.name

    @property
    def size(self) -> int:
        if self.container is None:
            return os.path.getsize(self.name)
        with zipfile.ZipFile(self.container) as archive:
            return archive.getinfo(self.name).file_size

    def fingerprint(self) -> str:
        """Changes when the file (or the zip holding it) is replaced or touched (images.files_identity)."""
        return f"{files_identity([self.container or self.name])}\0{self.name}"

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A seekable binary stream of the member (decompressed from the zip as it is read)."""
        if self.container is None:
            with open(self.name, "rb") as f:
                yield f
            return
        with _zip(self.container) as archive, archive.open(self.name) as f:
            yield f


@dataclass(frozen=True)
class Download:
    """Where each part of a Kaggle download is: an archive member, or (None) extracted in `folder`."""

    origin: str  # what the user gave: the zip or the folder
    folder: str | None  # the folder holding extracted parts and the CSV files; None for a zip
    train: Member | None
    test: Member | None

    def csv(self, name: str) -> bytes | None:
        """The bytes of trainLabels.csv or sampleSubmission.csv, None if the download has none."""
        if self.folder is not None:
            path = os.path.join(self.folder, name)
            if not os.path.isfile(path):
                return None
            with open(path, "rb") as f:
                return f.read()
        with _zip(self.origin) as archive:
            return archive.read(name) if name in archive.namelist() else None


def find_download(data_dir: str) -> Download | None:
    """The download at `data_dir` if it is the competition zip (or a folder holding only that), or
    a folder with train.7z or test.7z in place of the extracted folder; None for an extracted layout."""
    if os.path.isfile(data_dir):
        if not zipfile.is_zipfile(data_dir):
            raise LayoutError(f"{data_dir} is a file but not a zip archive: pass the Kaggle download cifar-10.zip "
                              "itself, or the folder it was extracted into")
        with _zip(data_dir) as archive:
            names = set(archive.namelist())
        missing = [n for n in (TRAIN_7Z, TEST_7Z, LABELS) if n not in names]
        if missing:
            raise LayoutError(f"{data_dir} holds no {', '.join(missing)} at its top level (it holds "
                              f"{', '.join(sorted(names)[:5]) or 'nothing'}{', ...' if len(names) > 5 else ''}): "
                              "it is not the Kaggle CIFAR-10 download; download cifar-10.zip again")
        return Download(data_dir, None, Member(TRAIN_7Z, data_dir), Member(TEST_7Z, data_dir))
    zipped = os.path.join(data_dir, ZIP)
    if os.path.isfile(zipped) and not any(os.path.exists(os.path.join(data_dir, n)) for n in ("train", TRAIN_7Z)):
        return find_download(zipped)  # the folder the zip was downloaded into
    train, test = _still_archived(data_dir, "train"), _still_archived(data_dir, "test")
    return Download(data_dir, data_dir, train, test) if train or test else None


def _still_archived(data_dir: str, part: str) -> Member | None:
    """DIR/part.7z, unless DIR/part/ is there (extracted: used as it is)."""
    archive = os.path.join(data_dir, f"{part}.7z")
    return Member(archive) if os.path.isfile(archive) and not os.path.isdir(os.path.join(data_dir, part)) else None


def iter_pngs(member: Member, folder: str,
              on_bytes: Callable[[int], None] | None = None) -> Iterator[tuple[str, bytes]]:
    """(id, PNG bytes) for every image of 7z archive `member`, in the archive's order.

    Members must be `folder/<id>.png` (or `<id>.png`); anything else, and a damaged, truncated,
    encrypted or non-7z archive, is a LayoutError naming the archive. `on_bytes(n)`: n more bytes
    of the archive itself were read (for a progress bar).
    """
    libarchive = _libarchive()
    with member.open() as raw, _libarchive_warnings_logged_quietly():
        stream, read = _ReadErrorsKept(raw), 0
        try:
            with libarchive.stream_reader(stream, format_name="7zip", block_size=1 << 16) as entries:
                for entry in entries:
                    if entry.isdir:
                        continue
                    image_id = _image_id(entry.pathname, folder, member)
                    if not entry.isfile:
                        raise LayoutError(f"{member.label} holds {entry.pathname}, which is not a regular file: "
                                          "the archive is not the Kaggle one; download it again")
                    if entry.size is not None and entry.size > MAX_IMAGE_BYTES:
                        raise _oversized(member, entry.pathname, entry.size)
                    data = bytearray()
                    for block in entry.get_blocks():  # the header's size may lie: count what comes
                        data += block
                        if len(data) > MAX_IMAGE_BYTES:
                            raise _oversized(member, entry.pathname, len(data))
                    data = bytes(data)
                    if on_bytes is not None:
                        now = stream.tell()
                        on_bytes(now - read)
                        read = now
                    yield image_id, data
        except libarchive.ArchiveError as exc:
            stream.raise_kept(member)
            raise LayoutError(f"{member.label} cannot be read as a 7z archive ({_reason(exc)}): it is damaged "
                              "(truncated download?), encrypted, or not a 7z file; download it again") from None
        stream.raise_kept(member)


@contextlib.contextmanager
def _libarchive_warnings_logged_quietly() -> Iterator[None]:
    """libarchive-c logs the C library's notes: on import, at INFO, what it lacks (libarchive 3.6: "doesn't
    support modifying entry digests", on every run from an archive); while reading, at WARNING, a digest it
    cannot check. Noise to a user, since every member is checked here: they go to our debug log instead."""
    def to_debug(record: logging.LogRecord) -> bool:
        log.debug("libarchive: %s", record.getMessage())
        return False

    logger = logging.getLogger("libarchive")
    logger.addFilter(to_debug)
    try:
        yield
    finally:
        logger.removeFilter(to_debug)


def _oversized(member: Member, pathname: str, size: int) -> LayoutError:
    return LayoutError(f"{member.label} holds {pathname} of {size:,} bytes or more, far larger than any 32x32 image "
                       f"(at most {MAX_IMAGE_BYTES:,} accepted): the archive is not the Kaggle one; download it again")


_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


class _ReadErrorsKept:
    """A stream for libarchive's read callback, which cannot raise (ctypes would print the error
    and report end of file): a read error, e.g. a zip member failing its CRC, is kept here and
    raised, named, once libarchive returns."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream, self.error = stream, None

    def readinto(self, buffer) -> int:  # noqa: ANN001  (a ctypes buffer)
        try:
            return self._stream.readinto(buffer)
        except _READ_ERRORS as exc:
            self.error = self.error or exc
            return 0

    def seekable(self) -> bool:
        return self._stream.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        try:  # a zip member seeks by reading (and checking) up to the offset
            return self._stream.seek(offset, whence)
        except _READ_ERRORS as exc:
            self.error = self.error or exc
            return self._stream.tell()

    def tell(self) -> int:
        return self._stream.tell()

    def raise_kept(self, member: Member) -> None:
        if self.error is not None:
            raise LayoutError(f"{member.container or member.name} is damaged: reading {member.name} failed "
                              f"({_reason(self.error)}); download it again") from None


def decode_member(member: Member, folder: str, image_id: str, data: bytes) -> np.ndarray:
    """`images.decode_rgb` for an image read out of `member`, named member:folder/<id>.png in errors."""
    return decode_rgb(io.BytesIO(data), f"{member.label}:{folder}/{image_id}.png")


def _image_id(pathname: str, folder: str, member: Member) -> str:
    head, name = os.path.split(pathname.replace("\\", "/").rstrip("/"))
    stem, ext = os.path.splitext(name)
    if head not in ("", folder) or ext.lower() != ".png" or not stem:
        raise LayoutError(f"{member.label} holds {pathname}, not {folder}/<id>.png: the archive is not the Kaggle "
                          f"{folder} archive (or was repacked); download it again")
    return stem


def _reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


@contextlib.contextmanager
def _zip(path: str) -> Iterator[zipfile.ZipFile]:
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive
    except zipfile.BadZipFile as exc:
        raise LayoutError(f"{path} is not a readable zip archive ({exc}): download cifar-10.zip again") from None


def _libarchive():
    try:
        with _libarchive_warnings_logged_quietly():  # its import notes, at INFO, what the C library lacks
            import libarchive
    except (ImportError, OSError) as exc:  # OSError: the binding is there, the system library is not
        raise ConfigError(f"{_INSTALL} ({exc})") from None
    return libarchive
