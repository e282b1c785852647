"""Atomic writes: a reader sees the old file or the whole new one, never half of either.

Every write goes to a hidden temporary name in the target's own folder (``os.replace`` is atomic only
within one filesystem), is flushed to disk, and is renamed over the target only when complete; on any
error the temporary file is removed and the old target is left as it was. Temporary names end in
``.part`` (or a suffix the caller needs, e.g. ``.nii.gz`` for a library that reads the format from the
name), so a stray one left by a killed process is easy to spot and is swept by
``remove_stale_temp_files`` once it is an hour old.

Folders are built aside and swapped in with two renames; a journal beside the folder makes the swap
recoverable, so a process killed between the renames never costs the old folder (``recover_dir_swap``).

Files are created with the ordinary permissions (0666 less the umask), unlike ``tempfile.mkstemp``'s
private 0600: cohorts, caches, bundles and reports are meant to be read by the site's other users.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import time
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
    "recover_dir_swap",
    "remove_stale_temp_files",
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


# A temporary name of ours: ".<name>.<8 hex>.part" (_temp_sibling with the default suffix).
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.part$")
# A write in progress touches its temporary file every few seconds; one untouched for an hour was left
# behind by a process that was killed (or a full disk) and will never be renamed.
STALE_TEMP_AGE_S = 3600.0


def remove_stale_temp_files(
    folder: str | os.PathLike[str], *, older_than_s: float = STALE_TEMP_AGE_S, extra: re.Pattern[str] | None = None
) -> int:
    """Remove, anywhere under ``folder``, the temporary files of atomic writes whose process died, and the
    entries directly in ``folder`` whose name matches ``extra`` (a caller's own temporary folders), once
    untouched for ``older_than_s`` seconds; links are never followed. Returns how many were removed."""
    root = Path(folder)
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for here, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            ours = extra is not None and Path(here) == root and extra.match(name)
            if not (_TEMP_NAME.match(name) or ours):
                continue
            path = Path(here) / name
            try:
                if path.lstat().st_mtime >= cutoff:
                    continue
            except OSError:
                continue  # removed by someone else meanwhile
            _remove(path)
            removed += 1
            if name in dirs:
                dirs.remove(name)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make renames inside ``folder`` durable (a crash after this cannot undo them)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a filesystem that cannot open folders offers no stronger guarantee
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exists(path: Path) -> bool:
    """True for anything at ``path``, a dangling link included."""
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    """Remove a folder, a file or a link (never what a link points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _backup_of(final: Path) -> Path:
    return final.with_name(final.name + ".previous")


def _journal_of(final: Path) -> Path:
    return final.with_name(f".{final.name}.swap")


@contextlib.contextmanager
def _swap_lock(final: Path) -> Iterator[None]:
    """An exclusive lock on ``final``'s swap, so a reader recovering it never runs into a writer's swap in
    progress. The lock file (``.<final>.swap.lock``) is removed by its holder when done; a waiter that then
    finds it holds a removed file opens the new one, so two holders never overlap. A lock dies with its
    process, however it ends."""
    path = final.with_name(f".{final.name}.swap.lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        os.close(fd)


def _recover_locked(final: Path) -> None:
    """Finish or undo a swap of ``final`` that was interrupted; the swap lock is held."""
    journal, backup = _journal_of(final), _backup_of(final)
    if journal.is_file():
        try:
            partial_name = str(json.loads(journal.read_text()).get("partial", ""))
        except (OSError, ValueError, AttributeError):
            partial_name = ""
        partial = final.with_name(partial_name) if partial_name and "/" not in partial_name else None
        if _exists(final):
            if partial is None or not _exists(partial):
                # Both renames happened: ``final`` is the new folder and the backup is no longer needed.
                _remove(backup)
                if _exists(backup):
                    return  # keep the journal, so the next use tries again
            # else the first rename never happened: ``final`` is the old folder, untouched.
        elif _exists(backup):
            os.replace(backup, final)  # stopped between the two renames: the old folder comes back
        journal.unlink(missing_ok=True)
        _fsync_dir(final.parent)
    elif not _exists(final) and backup.is_dir() and not backup.is_symlink():
        # Left by a swap from before journals were kept: the backup is the last complete folder.
        os.replace(backup, final)
        _fsync_dir(final.parent)


def recover_dir_swap(final: str | os.PathLike[str]) -> bool:
    """Finish or undo an interrupted :func:`replace_dir_atomically` of ``final``; True if there was one.

    A process killed between the two renames of a swap leaves ``<final>.previous`` and no ``final``:
    the previous folder is put back (never deleted). Killed after both, the leftover backup is removed.
    Called before every swap and by readers (loading a bundle) before they look at ``final``; cheap when
    there is nothing to do, and it writes nothing then (a read-only install stays untouched). A folder
    that cannot be written is left as it is: the reader then finds ``final`` missing and says so.
    """
    dst = Path(os.path.abspath(final))
    if not dst.name or not (_journal_of(dst).is_file() or (not _exists(dst) and _backup_of(dst).is_dir())):
        return False
    try:
        with _swap_lock(dst):
            _recover_locked(dst)
    except OSError:
        return False
    return True


def replace_dir_atomically(
    partial: str | os.PathLike[str],
    final: str | os.PathLike[str],
    *,
    check_replaceable: Callable[[Path], None] | None = None,
) -> Path:
    """Swap the finished folder ``partial`` in for ``final``.

    A folder cannot be renamed over a non-empty one, so an existing ``final`` is first moved aside to
    ``<final>.previous`` and removed only after the new folder is in place: at every instant ``final``
    is either the old complete folder, absent for the moment between two renames, or the new one. A
    journal (``.<final>.swap``) is written before the first rename and removed after the cleanup, so a
    process killed in between is recovered on the next use (:func:`recover_dir_swap`): the old folder is
    restored, never deleted. ``check_replaceable(final)``, called under the swap lock just before
    ``final`` is moved aside, raises to refuse replacing what is there now.

    Raises FileExistsError when a ``<final>.previous`` that no journal accounts for is in the way: it
    may be someone's folder, so it is neither used nor removed.
    """
    src, dst = Path(os.path.abspath(partial)), Path(os.path.abspath(final))
    backup, journal = _backup_of(dst), _journal_of(dst)
    with _swap_lock(dst):
        _recover_locked(dst)
        if _exists(backup):
            raise FileExistsError(f"'{backup}' is in the way of replacing '{dst.name}'; move it away first")
        if check_replaceable is not None:
            check_replaceable(dst)
        atomic_write_json(journal, {"final": dst.name, "backup": backup.name, "partial": src.name})
        _fsync_dir(dst.parent)
        try:
            if _exists(dst):
                os.replace(dst, backup)
            os.replace(src, dst)
        except BaseException:
            _recover_locked(dst)  # the new folder did not go in: the old one is put back at once
            raise
        _fsync_dir(dst.parent)
        _remove(backup)
        if not _exists(backup):
            journal.unlink(missing_ok=True)
            _fsync_dir(dst.parent)
    return dst


def build_dir_atomically(
    final: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    check_replaceable: Callable[[Path], None] | None = None,
) -> Path:
    """Build a folder with ``write(folder)`` in ``<final>.partial`` and swap it in for ``final`` only when
    ``write`` returns; if it raises, the partial folder is removed and ``final`` is untouched.

    An interrupted earlier swap of ``final`` is recovered first; ``check_replaceable(final)`` is called
    before the work starts and again just before the swap (see :func:`replace_dir_atomically`).
    """
    dst = Path(os.path.abspath(final))
    if not dst.name:
        raise ValueError(f"cannot build a folder at the filesystem root '{final}'")
    recover_dir_swap(dst)
    if check_replaceable is not None:
        check_replaceable(dst)
    partial = dst.with_name(dst.name + ".partial")
    _remove(partial)
    partial.mkdir(parents=True)
    try:
        write(partial)
        return replace_dir_atomically(partial, dst, check_replaceable=check_replaceable)
    finally:
        _remove(partial)  # gone after a swap; after a failure, nothing half-built stays behind
