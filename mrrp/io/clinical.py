"""One patient's clinical record from an uploaded CSV (a header and one row) or JSON object.

Columns are matched to the clinical fields of :mod:`mrrp.schema` by field name or label, case-insensitive;
other columns (an id, notes) are ignored. The values are returned raw: :func:`mrrp.schema.parse_clinical_record`
checks units and ranges.
"""

from __future__ import annotations

import csv
import io
import json

from mrrp._uploads import UploadedFileData
from mrrp.errors import InputError
from mrrp.schema import CLINICAL_FIELDS, FIELDS_BY_NAME

__all__ = ["MAX_CLINICAL_FILE_BYTES", "ClinicalFileError", "clinical_record_from_file"]

MAX_CLINICAL_FILE_BYTES = 1_000_000


class ClinicalFileError(InputError):
    """A clinical CSV/JSON file cannot be read as one patient's record."""


def _field_for_column(column: str) -> str | None:
    """A CSV/JSON column name → clinical field name (by field name or label, case-insensitive)."""
    key = column.strip().lower().replace(" ", "_").replace("-", "_")
    for f in CLINICAL_FIELDS:
        if key == f.name or key == f.label.lower().replace(" ", "_").replace("-", "_"):
            return f.name
    return None


def _rows_from_file(upload: UploadedFileData) -> list[dict[str, object]]:
    name = upload.name
    if len(upload.data) == 0:
        raise ClinicalFileError(f"The clinical file '{name}' is empty.")
    if len(upload.data) > MAX_CLINICAL_FILE_BYTES:
        raise ClinicalFileError(
            f"The clinical file '{name}' is {len(upload.data) / 1e6:.1f} MB; one patient's record is a few hundred bytes."
        )
    try:
        text = upload.data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ClinicalFileError(f"The clinical file '{name}' is not UTF-8 text (CSV or JSON).") from None
    stripped = text.lstrip()
    if name.lower().endswith(".json") or stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClinicalFileError(
                f"The clinical file '{name}' is not valid JSON (line {exc.lineno}): {exc.msg}."
            ) from None
        rows = data if isinstance(data, list) else [data]
        if not all(isinstance(r, dict) for r in rows):
            raise ClinicalFileError(f"The clinical file '{name}' must hold one JSON object of field: value pairs.")
        return rows
    reader = csv.DictReader(io.StringIO(text))
    return [dict(r) for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]


def clinical_record_from_file(upload: UploadedFileData) -> dict[str, object]:
    """One patient's raw clinical values from a CSV (header + one row) or JSON object; columns by field name or label."""
    rows = _rows_from_file(upload)
    if len(rows) != 1:
        raise ClinicalFileError(
            f"The clinical file '{upload.name}' holds {len(rows)} rows; it must hold exactly one patient's record."
        )
    raw: dict[str, object] = {}
    for column, value in rows[0].items():
        if column is None:
            continue
        name = _field_for_column(str(column))
        if name is not None:
            raw[name] = value
    if not raw:
        expected = ", ".join(FIELDS_BY_NAME)
        raise ClinicalFileError(
            f"The clinical file '{upload.name}' has none of the clinical fields; expected columns such as {expected}."
        )
    return raw
