"""Every file behind an MRI input (files, folders, zips), in phase order; zips unpacked once per content
(:func:`mrrp.pcr.io.archive.unpacked_zip`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from mrrp.pcr.io.archive import unpacked_zip
from mrrp.pcr.io.errors import MRINotFoundError, MRITooLargeError, UnsupportedMRIFormatError
from mrrp.pcr.io.files import check_file, describe, natural_key, sniff
from mrrp.pcr.io.limits import ACCEPTED, MAX_ZIP_MEMBERS


def walk(folder: Path) -> list[Path]:
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"),
        key=lambda p: natural_key(str(p.relative_to(folder))),
    )
    if len(files) > MAX_ZIP_MEMBERS:
        raise MRITooLargeError(
            f"The folder {describe(folder)} holds {len(files)} files, more than the limit of {MAX_ZIP_MEMBERS}."
        )
    return files


@contextmanager
def expanded(sources: Sequence[Path]) -> Iterator[list[Path]]:
    """Every file behind ``sources`` (files, folders, zips), in order; a zip's files stay until the block ends."""
    with ExitStack() as stack:  # unpacked zips stay in use (not evicted) until the caller is done
        files: list[Path] = []
        for src in sources:
            if not src.exists():
                raise MRINotFoundError(f"The MRI {describe(src)} was not found.")
            if src.is_dir():
                found = walk(src)
                if not found:
                    raise UnsupportedMRIFormatError(f"The folder {describe(src)} is empty; please provide {ACCEPTED}.")
                files.extend(found)
                continue
            check_file(src)
            if sniff(src) == "zip":
                found = stack.enter_context(unpacked_zip(src))
                if not found:
                    raise UnsupportedMRIFormatError(f"The zip file {describe(src)} holds no files.")
                files.extend(found)
            else:
                files.append(src)
        yield files
