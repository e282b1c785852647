"""Batch scoring of a manifest CSV: every patient through the active model, as a downloadable table.

The manifest is checked whole before any work (one message listing every bad row, from
:func:`mrrp.io.manifest.read_manifest`); outcomes are optional. Features go through the same
caches as a single patient's review, so a second run is fast. Patients are predicted in chunks so
that padding every patient to the largest slide in the batch never costs more than one chunk.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mrrp._fs import atomic_write_text
from mrrp._hashing import sha256_bytes
from mrrp._uploads import safe_filename
from mrrp.io.manifest import FILE_COLUMNS, PATH_SEPARATOR, ManifestError, read_manifest

if TYPE_CHECKING:
    from mrrp.model.bundle import LoadedBundle
    from mrrp.model.predict import Prediction

PREDICT_CHUNK = 16  # patients per forward pass
# What a clinician reads first comes first; the log-risk (model units) after the probabilities.
RESULT_COLUMNS = (
    "patient_id",
    "site",
    "split",
    "risk_group",
    "percentile",
    "recurrence_5y",
    "recurrence_5y_lower",
    "recurrence_5y_upper",
    "recurrence_3y",
    "recurrence_3y_lower",
    "recurrence_3y_upper",
    "recurrence_7y",
    "recurrence_7y_lower",
    "recurrence_7y_upper",
    "compensated",
    "inputs_left_out",
    "log_risk",
    "log_risk_lower",
    "log_risk_upper",
    "model_version",
)

# A text cell a spreadsheet would run as a formula (=HYPERLINK(...), @SUM(...), +cmd, -2+3): OWASP's first
# characters, tab and carriage return included, and their full-width forms, which some spreadsheets read alike.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise_cell(value: object) -> object:
    """A text cell that starts like a formula, prefixed with a single quote (OWASP CSV injection guidance) so
    a spreadsheet shows it as text; numbers, negative ones included, stay numbers.

    A carriage return inside a cell becomes a line feed: the csv module quotes a cell with a line feed but
    not one with a bare carriage return, which a spreadsheet reads as a new row, whose first cell would then
    be an unneutralised formula.
    """
    if not isinstance(value, str):
        return value
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + text if value.startswith(FORMULA_TRIGGERS) else text


# progress(done, total, what): ``done`` of ``total`` steps (one per patient, then the prediction) finished;
# ``what`` names the step now running, in words ("Patient 3 of 40 (INT-0003): reading and encoding the inputs").
Progress = Callable[[int, int, str], None]


@dataclass
class BatchResult:
    """The predictions of one manifest and the table that is shown and downloaded."""

    predictions: list[Prediction]
    rows: list[dict[str, object]]  # one per patient, keys RESULT_COLUMNS (+ "notice")
    model_version: str
    notice: str | None  # the synthetic-data notice, carried in every row, for the bundled model

    def to_csv(self) -> bytes:
        """UTF-8 CSV of the rows; the notice is a column so it survives any spreadsheet. Every text cell that a
        spreadsheet would run as a formula (a patient id or file name from the manifest) is neutralised."""
        buf = io.StringIO()
        columns = [*RESULT_COLUMNS, *(["notice"] if self.notice else [])]
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: neutralise_cell(v) for k, v in row.items()} for row in self.rows)
        return buf.getvalue().encode("utf-8")


def result_row(prediction: Prediction, site: str, split: str, left_out: Sequence[str] = ()) -> dict[str, object]:
    """One patient's line of the result table (probabilities rounded to 4 decimals); ``left_out`` are the
    clinician's sentences about inputs that were given but could not be used."""
    row: dict[str, object] = {
        "patient_id": prediction.patient_id,
        "site": site,
        "split": split,
        "risk_group": prediction.risk_group,
        "percentile": round(prediction.percentile, 1),
        "log_risk": round(prediction.log_risk, 4),
        "log_risk_lower": round(prediction.log_risk_interval[0], 4),
        "log_risk_upper": round(prediction.log_risk_interval[1], 4),
        "compensated": PATH_SEPARATOR.join(prediction.compensated),
        "inputs_left_out": " | ".join(left_out),
        "model_version": prediction.model_version,
    }
    for h in prediction.horizons:
        name = f"{h.years}y"  # the CSV's column names: recurrence_5y, recurrence_5y_lower, ...
        row[f"recurrence_{name}"] = round(h.probability, 4)
        row[f"recurrence_{name}_lower"] = round(h.lower, 4)
        row[f"recurrence_{name}_upper"] = round(h.upper, 4)
    return row


def score_manifest(
    bundle: LoadedBundle,
    manifest: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    notice: str | None = None,
    progress: Progress | None = None,
    strict: bool = False,
) -> BatchResult:
    """Predict every patient of ``manifest`` with ``bundle``.

    Raises ManifestError (every bad row in one message) before any work. A patient's file that turns out
    unusable is left out and named in the row's ``inputs_left_out`` (the model compensates), as the
    patient review does; ``strict`` raises an InputError naming the patient instead.
    """
    from mrrp.case import Case, assemble
    from mrrp.model.predict import predict_cases

    rows = read_manifest(manifest, require_outcomes=False)
    total = len(rows) + 1  # + 1 for the prediction step
    assembled = []
    for i, row in enumerate(rows):
        if progress:
            progress(i, total, f"Patient {i + 1} of {len(rows)} ({row.patient_id}): reading and encoding the inputs")
        assembled.append(assemble(Case.from_manifest_row(row), cache_dir=cache_dir, strict=strict))
    cases = [a.features for a in assembled]
    if progress:
        progress(len(rows), total, f"Predicting {len(rows)} patients")
    predictions: list[Prediction] = []
    for start in range(0, len(cases), PREDICT_CHUNK):
        predictions += predict_cases(bundle, cases[start : start + PREDICT_CHUNK])
    if progress:
        progress(total, total, "Done")
    table = [
        result_row(p, r.site, r.split, a.case.problems) for p, r, a in zip(predictions, rows, assembled, strict=True)
    ]
    if notice:
        for t in table:
            t["notice"] = notice
    version = predictions[0].model_version if predictions else ""
    return BatchResult(predictions, table, version, notice)


def _absolute_cells(cell: str, base: Path) -> str:
    parts = [p.strip() for p in cell.split(PATH_SEPARATOR)]
    out = [str(base / p) if p and not Path(p).is_absolute() else p for p in parts]
    return PATH_SEPARATOR.join(out)


def save_uploaded_manifest(
    data: bytes, name: str, base_dir: str | os.PathLike[str], upload_dir: str | os.PathLike[str]
) -> Path:
    """Store an uploaded manifest so that its relative paths resolve against ``base_dir``.

    A manifest's paths are relative to its own folder, which an uploaded file does not have; they are
    made absolute against the folder the user names (by default the local slide folder) and the CSV is
    written atomically under ``upload_dir``. Cells are rewritten with the csv module, so quoting is kept.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"The manifest '{name}' is not a UTF-8 text CSV file.") from None
    base = Path(base_dir).expanduser()
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    try:
        for raw in reader:
            for col in FILE_COLUMNS:
                if raw.get(col):
                    raw[col] = _absolute_cells(raw[col], base)
            writer.writerow({k: v for k, v in raw.items() if k is not None})
    except csv.Error as exc:
        raise ManifestError(f"The manifest '{name}' is not a valid CSV file ({exc}).") from None
    # One folder per content: two sessions uploading different files of the same name never collide,
    # and the file keeps its name so messages about it read as the user knows it.
    folder = Path(upload_dir) / "manifests" / sha256_bytes(data + str(base).encode())[:16]
    return atomic_write_text(folder / safe_filename(name), buf.getvalue())


def summary_counts(rows: Iterable[dict[str, object]]) -> dict[str, int]:
    """Patients per risk group, for the line above the table."""
    out = {"low": 0, "intermediate": 0, "high": 0}
    for r in rows:
        g = str(r.get("risk_group"))
        out[g] = out.get(g, 0) + 1
    return out
