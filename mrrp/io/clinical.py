"""One patient's clinical record from an uploaded CSV (a header and one row) or JSON object.

Columns are matched to the clinical fields of :mod:`mrrp.schema` by field name, label or a synonym
a clinician or an export uses ("Ki67", "MIB-1", "Nottingham grade", "LN+", "Tumour size (cm)"),
case-insensitive; a unit in the header applies to the values below it. The manifest's identifier
and outcome columns (patient_id, site, split, file paths, time_months, event) are recognised and
not used. Any other column is an error naming it: a record is never taken as provided while part
of it was dropped. Two columns for one field, a row with more or fewer values than the header has
columns, more than one patient, and anything JSON or CSV cannot carry safely (numbers of
thousands of digits, deep nesting, cells past the CSV field limit) are errors too, each one
:class:`ClinicalFileError` sentence. The values are returned raw with their header units:
:func:`mrrp.schema.parse_clinical_record` reads notations, units and ranges.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from mrrp._uploads import UploadedFileData
from mrrp.errors import InputError
from mrrp.schema import FIELDS_BY_NAME, field_for_column, shown

__all__ = [
    "MAX_CLINICAL_FILE_BYTES",
    "NON_CLINICAL_COLUMNS",
    "ClinicalFileError",
    "RawClinicalRecord",
    "clinical_record_from_file",
    "read_clinical_file",
]

MAX_CLINICAL_FILE_BYTES = 1_000_000
MAX_JSON_DEPTH = 4  # [ { "field": value } ] is depth 2; a record never needs more
MAX_JSON_INT_DIGITS = 20  # no clinical value has more digits; Python refuses to parse past 4300 anyway
MAX_COLUMNS_LISTED = 12

# Columns of the manifest (docs/manifest.md) that identify the patient or carry outcomes, not clinical
# inputs: a manifest row uploaded as a record reads without error, and these are not used.
NON_CLINICAL_COLUMNS = frozenset(
    {
        "patient_id",
        "site",
        "split",
        "slide_path",
        "slide_mpp",
        "us_image_paths",
        "us_report_path",
        "path_report_path",
        "time_months",
        "event",
    }
)


class ClinicalFileError(InputError):
    """A clinical CSV/JSON file cannot be read as one patient's record."""


@dataclass(frozen=True)
class RawClinicalRecord:
    """One record as the file gave it: raw values and header units by field name, and the columns not used."""

    values: dict[str, object]
    units: dict[str, str | None] = field(default_factory=dict)
    identifier_columns: tuple[str, ...] = ()  # recognised, deliberately not used


class _TooDeep(Exception):
    pass


class _TooManyDigits(Exception):
    pass


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise _TooManyDigits
    return int(text)


def _json_depth(obj: object, limit: int, depth: int = 0) -> None:
    """Raise _TooDeep past ``limit`` levels (iterative over siblings, recursive only as deep as the limit)."""
    if depth > limit:
        raise _TooDeep
    if isinstance(obj, dict):
        for v in obj.values():
            _json_depth(v, limit, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _json_depth(v, limit, depth + 1)


def _no_duplicate_keys(name: str):
    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out:
                raise ClinicalFileError(f"The clinical file '{name}' gives '{shown(key)}' twice.")
            out[key] = value
        return out

    return hook


def _json_rows(text: str, name: str) -> list[tuple[list[str], list[object]]]:
    try:
        data = json.loads(text, parse_int=_json_int, object_pairs_hook=_no_duplicate_keys(name))
        _json_depth(data, MAX_JSON_DEPTH)
    except _TooManyDigits:
        raise ClinicalFileError(
            f"The clinical file '{name}' holds a number of more than {MAX_JSON_INT_DIGITS} digits; "
            "no clinical value is that long."
        ) from None
    except (_TooDeep, RecursionError):
        raise ClinicalFileError(
            f"The clinical file '{name}' is nested too deeply; it must hold one JSON object of field: value pairs."
        ) from None
    except json.JSONDecodeError as exc:
        raise ClinicalFileError(
            f"The clinical file '{name}' is not valid JSON (line {exc.lineno}): {exc.msg}."
        ) from None
    except ValueError:  # e.g. a number Python will not convert
        raise ClinicalFileError(f"The clinical file '{name}' is not valid JSON.") from None
    rows = data if isinstance(data, list) else [data]
    if not all(isinstance(r, dict) for r in rows):
        raise ClinicalFileError(f"The clinical file '{name}' must hold one JSON object of field: value pairs.")
    return [(list(r), list(r.values())) for r in rows]


def _delimiter(header_line: str) -> str:
    """',' unless the header clearly uses ';' (spreadsheets in comma-decimal locales) or tabs."""
    if "," in header_line:
        return ","
    if ";" in header_line:
        return ";"
    return "\t" if "\t" in header_line else ","


def _csv_rows(text: str, name: str) -> list[tuple[list[str], list[object]]]:
    first_line = text.split("\n", 1)[0]
    try:
        table = list(csv.reader(io.StringIO(text), delimiter=_delimiter(first_line), strict=True))
    except csv.Error as exc:
        if "field limit" in str(exc):
            reason = f"a cell is longer than {csv.field_size_limit() // 1024} kB"
        else:
            reason = "it is not well-formed CSV (check the quotes)"
        raise ClinicalFileError(f"The clinical file '{name}' cannot be read: {reason}.") from None
    table = [r for r in table if any(c.strip() for c in r)]
    if not table:
        raise ClinicalFileError(f"The clinical file '{name}' has no header row.")
    header, rows = table[0], table[1:]
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ClinicalFileError(
                f"The clinical file '{name}' has {len(header)} column name(s) but its row {line - 1} has "
                f"{len(row)} value(s); every value needs a column name."
            )
    return [(header, list(row)) for row in rows]


def _rows_from_file(upload: UploadedFileData) -> list[tuple[list[str], list[object]]]:
    name = shown(upload.name)
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
    if "\x00" in text:
        raise ClinicalFileError(f"The clinical file '{name}' holds binary data, not CSV or JSON text.")
    if upload.name.lower().endswith(".json") or text.lstrip().startswith(("{", "[")):
        return _json_rows(text, name)
    return _csv_rows(text, name)


def _column_name(column: str, position: int) -> str:
    return f"'{shown(column)}'" if column.strip() else f"the unnamed column {position}"


def read_clinical_file(upload: UploadedFileData) -> RawClinicalRecord:
    """One patient's raw clinical values and header units from a CSV (header + one row) or JSON object.

    Raises ClinicalFileError naming every column that is not understood, and every field given twice.
    """
    name = shown(upload.name)
    rows = _rows_from_file(upload)
    if len(rows) != 1:
        raise ClinicalFileError(
            f"The clinical file '{name}' holds {len(rows)} rows; it must hold exactly one patient's record."
        )
    columns, cells = rows[0]
    values: dict[str, object] = {}
    units: dict[str, str | None] = {}
    source: dict[str, str] = {}
    unknown: list[str] = []
    identifiers: list[str] = []
    problems: list[str] = []
    for position, (column, value) in enumerate(zip(columns, cells, strict=True), start=1):
        if column.strip().lower() in NON_CLINICAL_COLUMNS:
            identifiers.append(column.strip())
            continue
        match = field_for_column(column)
        if match is None:
            unknown.append(_column_name(column, position))
            continue
        f, unit = match
        if f.name in source:
            problems.append(f"{f.label} is given twice (columns '{shown(source[f.name])}' and '{shown(column)}')")
            continue
        source[f.name], values[f.name], units[f.name] = column, value, unit
    if unknown and not values:
        expected = ", ".join(FIELDS_BY_NAME)
        raise ClinicalFileError(
            f"The clinical file '{name}' has none of the clinical fields; expected columns such as {expected}."
        )
    if unknown:
        listed = ", ".join(unknown[:MAX_COLUMNS_LISTED])
        more = f" and {len(unknown) - MAX_COLUMNS_LISTED} more" if len(unknown) > MAX_COLUMNS_LISTED else ""
        problems.append(
            f"column(s) {listed}{more} are not clinical fields mrrp knows; rename them (see docs/manifest.md) "
            "or remove them, so that nothing given is left out"
        )
    if problems:
        raise ClinicalFileError(f"The clinical file '{name}': " + "; ".join(problems) + ".")
    if not values:
        raise ClinicalFileError(f"The clinical file '{name}' has none of the clinical fields.")
    return RawClinicalRecord(values, units, tuple(identifiers))


def clinical_record_from_file(upload: UploadedFileData) -> dict[str, object]:
    """One patient's raw clinical values by field name (see :func:`read_clinical_file`, which also gives units)."""
    return read_clinical_file(upload).values
