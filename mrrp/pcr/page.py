"""What the pCR page needs besides drawing: saving uploads, the clinical form's options, cached prediction inputs.

Kept out of pages/pcr.py so it is testable without Streamlit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

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
    from mrrp.pcr.io import _natural_key
    from mrrp.viewer import safe_filename

    files = list(files)
    if not files:
        raise InputError("No file was uploaded.")
    for name, data in files:
        if len(data) == 0:
            raise InputError(f"The uploaded file '{safe_filename(name)}' is empty (0 bytes).")
        if len(data) > MAX_FILE_BYTES:
            raise InputError(f"The uploaded file '{safe_filename(name)}' is larger than the limit for one MRI file.")
    h = hashlib.sha256()
    for name, data in sorted(files, key=lambda f: f[0]):
        h.update(safe_filename(name).encode())
        h.update(hashlib.sha256(data).digest())
    folder = Path(upload_dir) / "pcr" / h.hexdigest()[:24]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files:
        target = folder / safe_filename(name)
        if not target.exists() or target.stat().st_size != len(data):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        paths.append(target)
    return sorted(set(paths), key=lambda p: _natural_key(p.name))


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
