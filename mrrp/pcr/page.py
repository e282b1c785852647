"""What the pCR page needs besides drawing: saving uploads, the clinical form's options, cached prediction inputs.

Kept out of pages/pcr.py so it is testable without Streamlit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mrrp._uploads import UploadedFileData, safe_filename, save_content_addressed
from mrrp.errors import InputError
from mrrp.pcr.clinical import PCR_CLINICAL_FIELDS, ClinicalRecord, parse_pcr_clinical
from mrrp.pcr.io import MAX_FILE_BYTES

UNKNOWN = "unknown"
MRI_UPLOAD_TYPES = ["zip", "dcm", "nii", "gz"]
MASK_UPLOAD_TYPES = ["nii", "gz"]


def save_uploads(files: Iterable[tuple[str, bytes]], upload_dir: str | os.PathLike[str]) -> list[Path]:
    """Save (name, bytes) uploads into one content-addressed folder, atomically; paths in natural name order.

    Natural order matters for 3D NIfTI phases uploaded together (phase_0, phase_1, ... phase_10).
    """
    from mrrp.pcr.io.files import natural_key

    uploads = [UploadedFileData(name, data) for name, data in files]
    for f in uploads:
        if len(f.data) == 0:
            raise InputError(f"The uploaded file '{safe_filename(f.name)}' is empty (0 bytes).")
        if len(f.data) > MAX_FILE_BYTES:
            raise InputError(f"The uploaded file '{safe_filename(f.name)}' is larger than the limit for one MRI file.")
    paths = save_content_addressed(uploads, Path(upload_dir) / "pcr")
    return sorted(set(paths), key=lambda p: natural_key(p.name))


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
