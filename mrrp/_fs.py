"""Atomic writes: a reader sees the old file or the whole new one, never half of either.

Every write goes to a hidden temporary name in the target's own folder (``os.replace`` is atomic only
within one filesystem), is flushed to disk, and is renamed over the target only when complete; on any
error the temporary file is removed and the old target is left as it was. Temporary names end in
``.part`` (or a suffix the caller needs, e.g. ``.nii.gz`` for a library that reads the format from the
name), so a stray one is easy to spot.

Files are created with the ordinary permissions (0666 less the umask), unlike ``tempfile.mkstemp``'s
private 0600: cohorts, caches, bundles and reports are meant to be read by the site's other users.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "build_dir_atomically",
    "replace_dir_atomically",
]


def _temp_sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".part") -> Iterator[Path]:
    """A temporary path beside ``path`` for a library that writes by file name (h5py, PIL, tifffile,
    pydicom, nibabel); renamed to ``path`` when the block ends without error, removed otherwise.

    The temporary path does not exist when the block starts.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(out, suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``"wb"`` or ``"w"``); on success it is flushed,
    fsynced and renamed to ``path``; on error it is removed and ``path`` keeps its old content."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes a whole file; mode must be 'wb' or 'w', not {mode!r}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(out, ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if mode == "w":
            fh: IO[Any] = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        else:
            fh = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation: what is given is what is stored)."""
    with atomic_open(path, "w", encoding=encoding, newline="") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: object, **json_kw: Any) -> Path:
    """``json.dump(obj, **json_kw)`` to ``path`` atomically. The text is serialised first, so an object
    that cannot be encoded raises before anything is written."""
    return atomic_write_text(path, json.dumps(obj, **json_kw))


def replace_dir_atomically(partial: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    """Swap the finished folder ``partial`` in for ``final``.

    A folder cannot be renamed over a non-empty one, so an existing ``final`` is first moved aside to
    ``<final>.previous`` and removed only after the new folder is in place: at every instant ``final``
    is either the old complete folder, absent for the moment between two renames, or the new one.
    """
    src, dst = Path(partial), Path(final)
    backup = dst.with_name(dst.name + ".previous")
    shutil.rmtree(backup, ignore_errors=True)
    if dst.exists():
        os.replace(dst, backup)
    os.replace(src, dst)
    shutil.rmtree(backup, ignore_errors=True)
    return dst


def build_dir_atomically(final: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Build a folder with ``write(folder)`` in ``<final>.partial`` and swap it in for ``final`` only when
    ``write`` returns; if it raises, the partial folder is removed and ``final`` is untouched."""
    dst = Path(final)
    partial = dst.with_name(dst.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return replace_dir_atomically(partial, dst)
