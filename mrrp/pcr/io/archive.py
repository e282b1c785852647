"""Unpacking a zip of MRI files safely: member, size and compression-ratio limits, no path escapes.

Limits are checked on the zip's directory before anything is written (member count, total size, the
ratio of the total to the zip's own size, each member's ratio) and again while writing (the directory
can lie). A page reruns its script on every click, so :func:`unpacked_zip` keeps the last few unpacked
zips, keyed by their sha256, in one temporary folder per process (removed when the process ends):
the same upload is unpacked once.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from mrrp.pcr.io.errors import CorruptMRIError, MRITooLargeError
from mrrp.pcr.io.files import describe, natural_key
from mrrp.pcr.io.limits import (
    MAX_CACHED_ZIPS,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_RATIO,
    MAX_ZIP_TOTAL_BYTES,
    MAX_ZIP_TOTAL_RATIO,
    ZIP_FREE_ALLOWANCE_BYTES,
)


def _total_limit(zip_path: Path) -> int:
    """Bytes the whole zip may unpack to: the absolute cap, or less for a small zip (ratio with a floor)."""
    by_ratio = max(ZIP_FREE_ALLOWANCE_BYTES, MAX_ZIP_TOTAL_RATIO * zip_path.stat().st_size)
    return min(MAX_ZIP_TOTAL_BYTES, by_ratio)


def _too_large(zip_path: Path, total: int | None, limit: int) -> MRITooLargeError:
    """The refusal for a zip that unpacks past ``limit`` (``total``: its declared size; None: found while writing)."""
    if limit < MAX_ZIP_TOTAL_BYTES:  # the ratio limit bit first
        size = zip_path.stat().st_size
        amount = f"more than {limit / 1024**2:,.0f} MB" if total is None else f"{total / 1024**2:,.0f} MB"
        ratio = max(limit if total is None else total, 1) / max(size, 1)
        return MRITooLargeError(
            f"The zip file {describe(zip_path)} unpacks to {amount}, {ratio:,.0f} times its own size, which image "
            "data never reaches; it looks like a zip bomb and was not unpacked."
        )
    amount = "more than" if total is None else f"{total / 1024**3:.1f} GB, more than"
    return MRITooLargeError(
        f"The zip file {describe(zip_path)} unpacks to {amount} the {MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GB limit."
    )


def check_zip(zip_path: Path, infos: list[zipfile.ZipInfo]) -> int:
    """Refuse a zip by its directory alone (count, total, ratios); returns the byte limit for unpacking."""
    if len(infos) > MAX_ZIP_MEMBERS:
        raise MRITooLargeError(
            f"The zip file {describe(zip_path)} holds {len(infos)} files, more than the limit of {MAX_ZIP_MEMBERS}."
        )
    limit = _total_limit(zip_path)
    declared = sum(i.file_size for i in infos)
    if declared > limit:
        raise _too_large(zip_path, declared, limit)
    for i in infos:
        if i.file_size > 1_000_000 and i.file_size > MAX_ZIP_RATIO * max(i.compress_size, 1):
            raise MRITooLargeError(
                f"The zip file {describe(zip_path)} is compressed {i.file_size // max(i.compress_size, 1)}:1, "
                "which image data never reaches; it looks like a zip bomb and was not unpacked."
            )
    return limit


def safe_extract(zip_path: Path, dest: Path) -> list[Path]:
    """Extract a zip member by member with limits that hold even when the zip's own header lies.

    Members are written under new names (``00001_<basename>``), so '../' or absolute names cannot
    escape ``dest``; the natural order of the original names is kept for phase ordering.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CorruptMRIError(f"The zip file {describe(zip_path)} is damaged and cannot be opened.") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        limit = check_zip(zip_path, infos)
        infos.sort(key=lambda i: natural_key(i.filename))
        out: list[Path] = []
        written = 0
        for k, info in enumerate(infos):
            base = Path(info.filename.replace("\\", "/")).name
            if not base or base.startswith("."):
                continue  # macOS resource forks (__MACOSX/._x), hidden files
            target = dest / f"{k:05d}_{re.sub(r'[^A-Za-z0-9._-]', '_', base)[:100]}"
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    while block := src.read(1 << 20):
                        written += len(block)
                        if written > limit:
                            raise _too_large(zip_path, None, limit)
                        dst.write(block)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise  # disk full or not writable: not the user's file
                raise CorruptMRIError(
                    f"The zip file {describe(zip_path)} is damaged (a member cannot be unpacked); please create it again."
                ) from None
            out.append(target)
        return out


class _UnpackedZips:
    """The last :data:`MAX_CACHED_ZIPS` unpacked zips of this process, by sha256; entries in use are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root: Path | None = None
        self._entries: OrderedDict[str, list[Path]] = OrderedDict()
        self._in_use: dict[str, int] = {}
        self.unpacked = 0  # zips actually unpacked (not found in the cache): what the tests count

    def _folder(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="mrrp-mri-zips-"))
            atexit.register(shutil.rmtree, self._root, True)
        return self._root

    @contextmanager
    def open(self, zip_path: Path) -> Iterator[list[Path]]:
        from mrrp._hashing import sha256_file

        key = sha256_file(zip_path)
        with self._lock:  # one unpacking at a time: a second session asking for the same zip waits for it
            files = self._entries.get(key)
            if files is None or not all(f.exists() for f in files):
                dest = self._folder() / key
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                try:
                    files = safe_extract(zip_path, dest)
                except BaseException:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise
                self.unpacked += 1
                self._entries[key] = files
            self._entries.move_to_end(key)
            self._in_use[key] = self._in_use.get(key, 0) + 1
            self._evict()
        try:
            yield list(files)
        finally:
            with self._lock:
                self._in_use[key] -= 1
                if not self._in_use[key]:
                    del self._in_use[key]
                self._evict()

    def _evict(self) -> None:
        for key in [k for k in self._entries if k not in self._in_use][: max(0, len(self._entries) - MAX_CACHED_ZIPS)]:
            del self._entries[key]
            shutil.rmtree(self._folder() / key, ignore_errors=True)


UNPACKED = _UnpackedZips()


def unpacked_zip(zip_path: Path) -> AbstractContextManager[list[Path]]:
    """Context manager: the files of ``zip_path`` unpacked safely (:func:`safe_extract`), once per content."""
    return UNPACKED.open(zip_path)
