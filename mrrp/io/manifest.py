"""The cohort manifest: one CSV row per patient, the format a hospital fills in to train on its own data.

See docs/manifest.md. Paths are relative to the manifest's folder; an empty cell means the
modality is missing. A bad manifest fails before any work with one message that lists every
bad row.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from mrrp._fs import atomic_open
from mrrp.errors import InputError, InvalidValueError
from mrrp.schema import CLINICAL_FIELD_NAMES, FIELDS_BY_NAME, MAX_SHOWN_PATH_CHARS, shown

ID_COLUMNS = ("patient_id", "site", "split")
FILE_COLUMNS = ("slide_path", "us_image_paths", "us_report_path", "path_report_path")
OUTCOME_COLUMNS = ("time_months", "event")
REQUIRED_COLUMNS = (*ID_COLUMNS, *FILE_COLUMNS, *CLINICAL_FIELD_NAMES, *OUTCOME_COLUMNS)
OPTIONAL_COLUMNS = ("slide_mpp",)  # for slides that do not record their resolution
SPLITS = ("train", "test", "external", "predict")
PATH_SEPARATOR = ";"  # between several ultrasound images in one cell
MAX_ERRORS_LISTED = 50


class ManifestError(InputError):
    """The manifest cannot be used; the message lists every bad row."""


@dataclass
class ManifestRow:
    patient_id: str
    site: str
    split: str
    slide_path: Path | None
    us_image_paths: list[Path]
    us_report_path: Path | None
    path_report_path: Path | None
    clinical: dict[str, float | str | None] | None  # None: no clinical record at all
    time_months: float | None
    event: int | None
    slide_mpp: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def present(self) -> dict[str, bool]:
        return {
            "slide": self.slide_path is not None,
            "ultrasound": bool(self.us_image_paths),
            "us_report": self.us_report_path is not None,
            "path_report": self.path_report_path is not None,
            "clinical": self.clinical is not None,
        }


def _resolve(base: Path, cell: str) -> Path | None:
    cell = cell.strip()
    if not cell:
        return None
    p = Path(cell)
    return p if p.is_absolute() else base / p


def open_manifest_csv(p: Path, required: list[str]) -> list[dict[str, str]]:
    """A UTF-8 CSV manifest's rows as dicts keyed by column, after checking the file exists, decodes, has
    ``required`` columns once each, and every row as many values as the header has columns.

    The whole table is read here, so a malformed file (a cell past the CSV field limit, a stray quote)
    is one ManifestError naming the line, never an exception half-way through the rows.
    """
    if not p.is_file():
        raise ManifestError(f"The manifest '{p.name}' was not found.")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"The manifest '{p.name}' is not a UTF-8 text CSV file.") from None
    if "\x00" in text:
        raise ManifestError(f"The manifest '{p.name}' holds binary data; it must be a UTF-8 text CSV file.")
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        table = list(reader)
    except csv.Error as exc:
        if "field limit" in str(exc):
            reason = f"a cell is longer than {csv.field_size_limit() // 1024} kB"
        else:
            reason = "it is not well-formed CSV (check the quotes)"
        raise ManifestError(f"The manifest '{p.name}' cannot be read at line {reader.line_num}: {reason}.") from None
    while table and not table[0]:  # as csv.DictReader: the header is the first non-empty line
        table.pop(0)
    header = table[0] if table else []
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise ManifestError(f"The manifest '{p.name}' has column(s) more than once: {', '.join(duplicated)}.")
    missing = [c for c in required if c not in header]
    if missing:
        raise ManifestError(f"The manifest '{p.name}' lacks column(s): {', '.join(missing)}.")
    rows = [r for r in table[1:] if r]  # empty lines are not patients
    ragged = [
        f"line {line}: {len(r)} values for {len(header)} columns"
        for line, r in enumerate(table[1:], start=2)
        if len(r) > len(header)
    ]
    if ragged:
        raise ManifestError(
            f"The manifest '{p.name}' has row(s) with more values than columns; nothing was done: "
            + "; ".join(ragged[:MAX_ERRORS_LISTED])
        )
    return [dict(zip(header, [*r, *[""] * (len(header) - len(r))], strict=True)) for r in rows]


def _row_identity(raw: dict[str, str], line_no: int, seen: dict[str, int], problems: list[str]) -> tuple[str, str]:
    """(patient_id, split); records the id's first line in ``seen`` so duplicates name it."""
    pid = (raw.get("patient_id") or "").strip()
    if not pid:
        problems.append("empty patient_id")
    elif pid in seen:
        problems.append(f"patient_id {shown(pid)} duplicates line {seen[pid]}")
    else:
        seen[pid] = line_no
    split = (raw.get("split") or "").strip().lower()
    if split not in SPLITS:
        problems.append(f"split '{shown(split)}' is not one of {', '.join(SPLITS)}")
    return pid, split


def _row_files(
    raw: dict[str, str], base: Path, check_files: bool, problems: list[str]
) -> tuple[dict[str, Path | None], list[Path]]:
    """(single-file columns → resolved path, ultrasound image paths), each checked to exist if asked."""
    files: dict[str, Path | None] = {}
    for col in ("slide_path", "us_report_path", "path_report_path"):
        files[col] = _resolve(base, raw.get(col) or "")
        if check_files and files[col] is not None and not files[col].is_file():
            problems.append(f"{col} '{shown(raw[col], MAX_SHOWN_PATH_CHARS)}' not found")
    us_paths = [q for q in (_resolve(base, c) for c in (raw.get("us_image_paths") or "").split(PATH_SEPARATOR)) if q]
    if check_files:
        problems += [
            f"us_image_paths '{shown(q.name, MAX_SHOWN_PATH_CHARS)}' not found" for q in us_paths if not q.is_file()
        ]
    return files, us_paths


def _row_clinical(raw: dict[str, str], problems: list[str]) -> dict[str, float | str | None] | None:
    """The typed clinical fields, or None when the row has none at all."""
    clinical: dict[str, float | str | None] = {}
    for name in CLINICAL_FIELD_NAMES:
        try:
            clinical[name] = FIELDS_BY_NAME[name].parse(raw.get(name))
        except InvalidValueError as exc:
            problems.append(str(exc))
    return clinical if any(v is not None for v in clinical.values()) else None


def _row_outcome(raw: dict[str, str], require_outcomes: bool, problems: list[str]) -> tuple[float | None, int | None]:
    """(time_months, event); both checked when outcomes are required or either cell is filled in."""
    time_months: float | None = None
    event: int | None = None
    t_cell, e_cell = (raw.get("time_months") or "").strip(), (raw.get("event") or "").strip()
    if require_outcomes or t_cell or e_cell:
        try:
            time_months = float(t_cell)
            if not math.isfinite(time_months) or time_months <= 0:
                problems.append(f"time_months {shown(t_cell)} must be a positive number of months")
        except ValueError:
            problems.append(f"time_months '{shown(t_cell)}' is not a number")
        if e_cell not in ("0", "1"):
            problems.append(f"event '{shown(e_cell)}' must be 0 (censored) or 1 (recurrence)")
        else:
            event = int(e_cell)
    return time_months, event


def _row_slide_mpp(raw: dict[str, str], problems: list[str]) -> float | None:
    slide_mpp = None
    if (raw.get("slide_mpp") or "").strip():
        try:
            slide_mpp = float(raw["slide_mpp"])
            if not (0.05 <= slide_mpp <= 20):
                problems.append(f"slide_mpp {slide_mpp:g} is outside 0.05–20 µm/pixel")
        except ValueError:
            problems.append(f"slide_mpp '{shown(raw['slide_mpp'])}' is not a number")
    return slide_mpp


def _parse_row(
    raw: dict[str, str],
    line_no: int,
    base: Path,
    seen: dict[str, int],
    *,
    require_outcomes: bool,
    check_files: bool,
) -> ManifestRow | str:
    """One CSV row as a ManifestRow, or one line naming every problem in it (checked in column order)."""
    problems: list[str] = []
    pid, split = _row_identity(raw, line_no, seen, problems)
    files, us_paths = _row_files(raw, base, check_files, problems)
    clinical = _row_clinical(raw, problems)
    time_months, event = _row_outcome(raw, require_outcomes, problems)
    slide_mpp = _row_slide_mpp(raw, problems)
    if problems:
        return f"line {line_no} ({shown(pid) if pid else 'no id'}): " + "; ".join(problems)
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    return ManifestRow(
        patient_id=pid,
        site=(raw.get("site") or "").strip(),
        split=split,
        slide_path=files["slide_path"],
        us_image_paths=us_paths,
        us_report_path=files["us_report_path"],
        path_report_path=files["path_report_path"],
        clinical=clinical,
        time_months=time_months,
        event=event,
        slide_mpp=slide_mpp,
        extra={k: v for k, v in raw.items() if k not in known and k is not None},
    )


def read_manifest(
    path: str | os.PathLike[str], *, require_outcomes: bool = True, check_files: bool = True
) -> list[ManifestRow]:
    """Parse and validate a manifest. Raises ManifestError listing every problem, row by row."""
    p = Path(path)
    required = [c for c in REQUIRED_COLUMNS if require_outcomes or c not in OUTCOME_COLUMNS]
    reader = open_manifest_csv(p, required)
    rows: list[ManifestRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(reader, start=2):  # line 1 is the header
        parsed = _parse_row(raw, line_no, p.parent, seen, require_outcomes=require_outcomes, check_files=check_files)
        if isinstance(parsed, str):
            errors.append(parsed)
        else:
            rows.append(parsed)
    if errors:
        shown = errors[:MAX_ERRORS_LISTED]
        more = f"\n… and {len(errors) - len(shown)} more bad rows" if len(errors) > len(shown) else ""
        raise ManifestError(
            f"The manifest '{p.name}' has {len(errors)} bad row(s); nothing was done:\n" + "\n".join(shown) + more
        )
    if not rows:
        raise ManifestError(f"The manifest '{p.name}' has no patients.")
    return rows


def write_manifest(
    rows: list[dict[str, object]], path: str | os.PathLike[str], extra_columns: tuple[str, ...] = ()
) -> Path:
    """Write manifest rows (dicts keyed by column) atomically; ``None`` becomes an empty cell."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = [*REQUIRED_COLUMNS, *[c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)], *extra_columns]
    return write_csv_atomic(rows, out, columns)


def write_csv_atomic(rows: list[dict[str, object]], out: Path, columns: list[str]) -> Path:
    """Rows (dicts keyed by column; ``None`` → empty cell, other keys ignored) to ``out`` via a temporary file."""
    with atomic_open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: "" if r.get(c) is None else r.get(c) for c in columns})
    return out
