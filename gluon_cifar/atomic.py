"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from typing import Iterator

from .errors import DiskFull, GluonCifarError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temporary file lives in the same directory so that `os.replace` is a rename on one
    filesystem, which POSIX makes atomic.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the rename makes it visible (power loss)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        named = _named_write_error(exc, path)
        if named is None:
            raise
        raise named from None


@contextlib.contextmanager
def write_errors_named(path: str | os.PathLike) -> Iterator[None]:
    """A full disk (or another failed write) while writing `path` in the block: a GluonCifarError
    naming the file, not an OSError or MXNet's "FileStream.Write incomplete"."""
    try:
        yield
    except BaseException as exc:
        named = _named_write_error(exc, os.fspath(path))
        if named is None:
            raise
        raise named from None


def _named_write_error(exc: BaseException, path: str) -> DiskFull | None:
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    if not (full or "Write incomplete" in str(exc)):  # the latter: MXNet's FileStream, whatever the cause
        return None
    directory = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(directory).free
    reason = "no space left on device" if full or free < 64 << 20 else str(exc).strip().splitlines()[0][:200]
    return DiskFull(f"cannot write {path}: {reason} ({free / 2**20:.0f} MB free in {directory}); free some space "
                    "and run again")


def writable_dir(path: str, what: str, fix: str) -> bool:
    """Make directory `path` (parents too) if needed, checked writable before any long work;
    return whether it had to be made. `what` names it in the error, `fix` says what to do."""
    existed = os.path.isdir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise GluonCifarError(f"cannot create {what} {path} ({exc.strerror}); {fix}") from None
    if not os.access(path, os.W_OK):
        raise GluonCifarError(f"{what} {path} is not writable; {fix}")
    return not existed


def check_output_file(path: str, flag: str, example: str) -> None:
    """Fail before the work, not after it: `path` must be a file name (not a directory) in an
    existing folder where a file can really be created (a write probe: permissions alone do not
    tell, e.g. under /proc). `example` names a file to suggest when `path` is a directory."""
    if os.path.isdir(path):
        raise GluonCifarError(f"cannot write {path}: it is a directory; give {flag} a file name, e.g. "
                              f"{os.path.join(path, example)}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise GluonCifarError(f"cannot write {path}: the folder {directory} does not exist; create it (mkdir -p "
                              f"{directory}) or choose {flag} elsewhere")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=directory)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise GluonCifarError(f"cannot write {path}: no file can be created in {directory} ({exc.strerror}); "
                              f"choose {flag} elsewhere") from None


def refuse_inside(path: str, folder: str, flag: str) -> None:
    """Refuse an output `path` equal to or inside `folder`, the data folder that gluon_cifar only reads."""
    target, data = os.path.realpath(path), os.path.realpath(folder)
    if target == data or target.startswith(data.rstrip(os.sep) + os.sep):
        raise GluonCifarError(f"{flag} {path} is inside the data folder {folder}, which is only read, never written: "
                              f"choose {flag} outside it")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an advisory lock on `lock_path` (created if needed) for the block.

    For work several processes may start at once, e.g. the workers of a distributed run all
    preparing the same split tree: the first builds it, the others wait and then reuse it.
    """
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
