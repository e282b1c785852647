"""Unpacking a zip of MRI files safely: member, size and compression-ratio limits, no path escapes."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from mrrp.pcr.io.errors import CorruptMRIError, MRITooLargeError
from mrrp.pcr.io.files import describe, natural_key
from mrrp.pcr.io.limits import MAX_ZIP_MEMBERS, MAX_ZIP_RATIO, MAX_ZIP_TOTAL_BYTES


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
        if len(infos) > MAX_ZIP_MEMBERS:
            raise MRITooLargeError(
                f"The zip file {describe(zip_path)} holds {len(infos)} files, more than the limit of {MAX_ZIP_MEMBERS}."
            )
        declared = sum(i.file_size for i in infos)
        if declared > MAX_ZIP_TOTAL_BYTES:
            raise MRITooLargeError(
                f"The zip file {describe(zip_path)} unpacks to {declared / 1024**3:.1f} GB, more than the "
                f"{MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GB limit."
            )
        for i in infos:
            if i.file_size > 1_000_000 and i.file_size > MAX_ZIP_RATIO * max(i.compress_size, 1):
                raise MRITooLargeError(
                    f"The zip file {describe(zip_path)} is compressed {i.file_size // max(i.compress_size, 1)}:1, "
                    "which image data never reaches; it looks like a zip bomb and was not unpacked."
                )
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
                        if written > MAX_ZIP_TOTAL_BYTES:
                            raise MRITooLargeError(
                                f"The zip file {describe(zip_path)} unpacks to more than the "
                                f"{MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GB limit."
                            )
                        dst.write(block)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise  # disk full or not writable: not the user's file
                raise CorruptMRIError(
                    f"The zip file {describe(zip_path)} is damaged (a member cannot be unpacked); please create it again."
                ) from None
            out.append(target)
        return out
