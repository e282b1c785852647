"""What the pCR page needs besides drawing: saving uploads, the clinical form's options, cached prediction inputs.

Kept out of pages/pcr.py so it is testable without Streamlit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mrrp._uploads import UploadedFileData, safe_filename, save_content_addressed, upload_relpath
from mrrp.errors import InputError
from mrrp.pcr.clinical import PCR_CLINICAL_FIELDS, ClinicalRecord, parse_pcr_clinical
from mrrp.pcr.io import MAX_FILE_BYTES

UNKNOWN = "unknown"
MRI_UPLOAD_TYPES = ["zip", "dcm", "nii", "gz"]
MASK_UPLOAD_TYPES = ["nii", "gz"]


def save_uploads(files: Iterable[tuple[str, bytes]], upload_dir: str | os.PathLike[str]) -> list[Path]:
    """Save (name, bytes) uploads into one content-addressed folder, atomically; paths in natural order of
    the names as uploaded (relative paths of a folder upload included).

    Every file is kept: 120 DICOM slices from four phase folders that share their file names are 120
    files (each image is stored under its own neutral name, and mrrp._uploads keeps same-named files with
    other bytes apart in any case). Natural order matters for 3D NIfTI phases uploaded together (phase_0,
    phase_1, ... phase_10).
    """
    from mrrp.pcr.io.files import natural_key
    from mrrp.pcr.uploads import deidentified_mri_uploads

    uploads = [UploadedFileData(name, data) for name, data in files]
    for f in uploads:
        if len(f.data) == 0:
            raise InputError(f"The uploaded file '{safe_filename(f.name)}' is empty (0 bytes).")
        if len(f.data) > MAX_FILE_BYTES:
            raise InputError(f"The uploaded file '{safe_filename(f.name)}' is larger than the limit for one MRI file.")
    # Only de-identified images under neutral names (in the uploads' natural order) are kept, never the
    # bytes or names as uploaded (mrrp.pcr.uploads).
    uploads = deidentified_mri_uploads(uploads)
    paths = save_content_addressed(uploads, Path(upload_dir) / "pcr")
    order = sorted(
        zip(uploads, paths, strict=True), key=lambda t: (natural_key(str(upload_relpath(t[0].name))), str(t[1]))
    )
    return list(dict.fromkeys(path for _, path in order))


def form_options(field_name: str) -> list[str]:
    """Choices of a categorical (or small integer) clinical field, 'unknown' first."""
    f = next(f for f in PCR_CLINICAL_FIELDS if f.name == field_name)
    if f.kind == "categorical":
        return [UNKNOWN, *f.categories]
    return [UNKNOWN, *[str(v) for v in range(int(f.minimum), int(f.maximum) + 1)]]


def record_from_form(values: dict[str, object]) -> ClinicalRecord:
    """Form values ('unknown' or None = unknown) → validated record; raises InvalidValueError listing bad fields."""
    return parse_pcr_clinical({k: (None if v in (None, UNKNOWN, "") else v) for k, v in values.items()})


def form_values_from_record(record: ClinicalRecord) -> dict[str, object]:
    """A record → values for the form's widgets (numbers stay numbers, categories strings, unknown 'unknown')."""
    out: dict[str, object] = {}
    for f in PCR_CLINICAL_FIELDS:
        v = record.get(f.name)
        if f.kind == "numeric" and not f.integer:
            out[f.name] = None if v is None else float(v)
        else:
            out[f.name] = UNKNOWN if v is None else str(v)
    return out
