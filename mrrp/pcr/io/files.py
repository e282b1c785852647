"""Finding the files behind an MRI input: sniffing formats from bytes, size checks, folders and zips."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from mrrp.pcr.io.errors import EmptyMRIFileError, MRINotFoundError, MRITooLargeError, UnsupportedMRIFormatError
from mrrp.pcr.io.limits import ACCEPTED, MAX_FILE_BYTES


def describe(p: Path) -> str:
    return f"'{p.name}'"


def natural_key(name: str) -> list[object]:
    """'phase_10' after 'phase_2': numbers compared as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def sniff(p: Path) -> str | None:
    """'dicom', 'nifti', 'zip' or None, from the bytes (extensions are not trusted)."""
    with open(p, "rb") as fh:
        head = fh.read(352)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(p, "rb") as gz:
                head = gz.read(352)
        except (OSError, EOFError):
            return "gzip-damaged"
    if len(head) >= 348:
        for order in ("<", ">"):
            size = int(np.frombuffer(head[:4], dtype=f"{order}i4")[0])
            if size == 348 and head[344:347] in (b"n+1", b"ni1"):
                return "nifti"
            if size == 540 and head[4:7] in (b"n+2", b"ni2"):
                return "nifti"
    return None


_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\xd0\xcf\x11\xe0", "an Office document"),
)


def unsupported(p: Path) -> UnsupportedMRIFormatError:
    with open(p, "rb") as fh:
        head = fh.read(8)
    what = next((desc for magic, desc in _OTHER_MAGIC if head.startswith(magic)), None)
    if what is not None:
        return UnsupportedMRIFormatError(f"{describe(p)} is {what}, not an MRI; please provide {ACCEPTED}.")
    return UnsupportedMRIFormatError(f"{describe(p)} is not an MRI file mrrp can read; please provide {ACCEPTED}.")


def check_file(p: Path) -> None:
    if not p.exists():
        raise MRINotFoundError(f"The MRI file {describe(p)} was not found.")
    size = p.stat().st_size
    if size == 0:
        raise EmptyMRIFileError(f"The file {describe(p)} is empty (0 bytes); it may not have finished copying.")
    if size > MAX_FILE_BYTES:
        raise MRITooLargeError(
            f"The file {describe(p)} is {size / 1024**3:.1f} GB, more than the {MAX_FILE_BYTES / 1024**3:.0f} GB limit "
            "for one MRI file."
        )
