"""What an uploaded MRI is kept as: de-identified images under neutral names, never the bytes as uploaded.

The pCR page keeps uploads in the cache folder so a rerun reads them again; what it keeps is, per image:

- DICOM: the dataset after :func:`mrrp.io.dicom_deid.deidentify` (PS3.15 basic profile), pixels byte for byte;
- NIfTI (``.nii``, ``.nii.gz``): the header's free-text fields (``descrip``, ``aux_file``, ``db_name``) blanked
  and header extensions (which can hold a whole DICOM header) zeroed; the voxel data byte for byte, and a
  gzip stream rewritten without the original file name or time;
- a zip: its DICOM and NIfTI members, each treated as above and kept as separate files (other members, such
  as reports or thumbnails, are dropped, as the reader ignores them anyway).

Files are renamed ``00000.dcm``, ``00001.nii.gz``, … in the natural order of the original names (the order 3D
NIfTI phases are read in), so no patient name in a file name is kept. Reading the kept files gives the same
volumes as reading the uploads. Anything else is refused with the reader's own message.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mrrp._uploads import UploadedFileData, safe_filename, upload_relpath
from mrrp.pcr.io.errors import CorruptMRIError, MRITooLargeError, UnsupportedMRIFormatError
from mrrp.pcr.io.limits import ACCEPTED, MAX_ZIP_TOTAL_BYTES

# NIfTI header text fields: (offset, length) in bytes, by header size (NIfTI-1: 348, NIfTI-2: 540).
_NIFTI_TEXT_FIELDS = {348: ((4, 18), (148, 80), (228, 24)), 540: ((240, 80), (320, 24))}


def deidentified_mri_uploads(files: Iterable[UploadedFileData]) -> list[UploadedFileData]:
    """The uploads as they may be stored: de-identified DICOM/NIfTI images under neutral names, in order.

    Raises an :class:`mrrp.pcr.io.MRIError` for a lone file that is no MRI, a damaged DICOM or gzip, a zip
    inside a zip or a zip without images, with the reader's wording.
    """
    from mrrp.pcr.io.archive import safe_extract
    from mrrp.pcr.io.files import describe, natural_key, sniff, unsupported

    # The order the page reads them in: natural order of the relative paths as uploaded.
    files = sorted(files, key=lambda f: natural_key(str(upload_relpath(f.name))))
    out: list[UploadedFileData] = []

    def keep(kind: str, data: bytes, compressed: bool) -> None:
        ext = ".dcm" if kind == "dicom" else ".nii.gz" if compressed else ".nii"
        out.append(UploadedFileData(f"{len(out):05d}{ext}", data))

    with tempfile.TemporaryDirectory(prefix="mrrp-mri-upload-") as tmp:
        for k, upload in enumerate(files):
            path = Path(tmp) / f"{k:05d}" / safe_filename(upload.name or "mri")
            path.parent.mkdir()
            path.write_bytes(upload.data)
            kind = sniff(path)
            if kind == "zip":
                dest = path.parent / "members"
                dest.mkdir()
                members = safe_extract(path, dest)
                before = len(out)
                for member in members:
                    member_kind = sniff(member)
                    if member_kind == "zip":
                        raise UnsupportedMRIFormatError(
                            f"{describe(member)} is a zip archive found among the image files (or inside another "
                            "zip); please provide it on its own or unpack it."
                        )
                    if member_kind in ("dicom", "nifti") and not member.name.upper().endswith("DICOMDIR"):
                        keep(member_kind, _clean(member, member_kind), _is_gzip(member))
                    elif member_kind == "gzip-damaged":
                        raise CorruptMRIError(
                            f"The compressed file {describe(member)} is damaged and cannot be unpacked."
                        )
                if len(out) == before:
                    raise UnsupportedMRIFormatError(
                        f"No DICOM or NIfTI image was found in {describe(path)}; please provide {ACCEPTED}."
                    )
            elif kind in ("dicom", "nifti"):
                keep(kind, _clean(path, kind), _is_gzip(path))
            elif kind == "gzip-damaged":
                raise CorruptMRIError(f"The compressed file {describe(path)} is damaged and cannot be unpacked.")
            elif len(files) == 1:
                raise unsupported(path)
            # another file beside the images (a report, a thumbnail): the reader ignores it, so it is not kept
    return out


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _clean(path: Path, kind: str) -> bytes:
    from mrrp.pcr.io.files import describe

    if kind == "dicom":
        return _deidentified_dicom(path, describe(path))
    if not _is_gzip(path):
        return _clean_nifti(path.read_bytes())
    try:
        with gzip.open(path, "rb") as gz:
            raw = gz.read(MAX_ZIP_TOTAL_BYTES + 1)
    except (OSError, EOFError):
        raise CorruptMRIError(f"The compressed file {describe(path)} is damaged and cannot be unpacked.") from None
    if len(raw) > MAX_ZIP_TOTAL_BYTES:
        raise MRITooLargeError(
            f"The file {describe(path)} unpacks to more than the {MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GB limit."
        )
    # mtime=0 and no file name: the gzip header would otherwise keep the original name and time.
    return gzip.compress(_clean_nifti(raw), compresslevel=6, mtime=0)


def _deidentified_dicom(path: Path, label: str) -> bytes:
    """The DICOM file de-identified (header only), written back as a DICOM file with its preamble."""
    from mrrp.io.dicom_deid import deidentified_dicom_bytes

    try:
        return deidentified_dicom_bytes(path.read_bytes())
    except ValueError:
        raise CorruptMRIError(f"The DICOM file {label} is truncated or damaged and cannot be read.") from None


def _clean_nifti(raw: bytes) -> bytes:
    """A single-file NIfTI-1/2 with its text fields blanked and its extensions zeroed; voxels untouched."""
    import numpy as np

    data = bytearray(raw)
    for order in ("<", ">"):
        size = int(np.frombuffer(bytes(data[:4]), dtype=f"{order}i4")[0])
        if size in _NIFTI_TEXT_FIELDS and len(data) >= size:
            break
    else:
        return bytes(data)  # not a header we know: sniffing said NIfTI, so this does not happen
    for offset, length in _NIFTI_TEXT_FIELDS[size]:
        data[offset : offset + length] = bytes(length)
    if size == 348:
        vox_offset = int(np.frombuffer(bytes(data[108:112]), dtype=f"{order}f4")[0])
    else:
        vox_offset = int(np.frombuffer(bytes(data[168:176]), dtype=f"{order}i8")[0])
    end = min(max(vox_offset, size), len(data))
    data[size:end] = bytes(end - size)  # extension flag and extensions (e.g. an embedded DICOM header)
    return bytes(data)
