"""The pCR cohort manifest: one CSV row per patient, in the style of the recurrence manifest (docs/manifest.md).

Columns: ``patient_id, site, split, mri_path, mask_path, <clinical fields>, pcr``. Paths are relative
to the manifest's folder; ``mri_path`` is a DICOM folder, a zip, one 4D NIfTI, or several 3D NIfTI
files separated by ``;`` in phase order; an empty ``mask_path`` means no mask; an empty clinical cell
means unknown; ``pcr`` is 1 (pathological complete response) or 0. A bad manifest fails before any
work with one message listing every bad row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mrrp.errors import InvalidValueError
from mrrp.io.manifest import MAX_ERRORS_LISTED, ManifestError, open_manifest_csv, write_csv_atomic
from mrrp.pcr.clinical import PCR_CLINICAL_NAMES, ClinicalRecord, parse_pcr_clinical

ID_COLUMNS = ("patient_id", "site", "split")
FILE_COLUMNS = ("mri_path", "mask_path")
LABEL_COLUMN = "pcr"
PCR_COLUMNS = (*ID_COLUMNS, *FILE_COLUMNS, *PCR_CLINICAL_NAMES, LABEL_COLUMN)
PCR_SPLITS = ("train", "val", "test", "external", "predict")
PATH_SEPARATOR = ";"


@dataclass
class PCRRow:
    patient_id: str
    site: str
    split: str
    mri_paths: list[Path]  # one entry (folder, zip, 4D NIfTI) or one 3D NIfTI per phase
    mask_path: Path | None
    clinical: ClinicalRecord
    pcr: int | None


def read_pcr_manifest(path: str | os.PathLike[str], *, require_labels: bool = True) -> list[PCRRow]:
    """Parse and validate a pCR manifest; raises ManifestError listing every problem row by row."""
    p = Path(path)
    reader = open_manifest_csv(p, [*ID_COLUMNS, "mri_path", *([LABEL_COLUMN] if require_labels else [])])
    base = p.parent
    rows, problems, seen = [], [], set()
    for line, raw in enumerate(reader, start=2):
        errs = []
        pid = (raw.get("patient_id") or "").strip()
        if not pid:
            errs.append("no patient_id")
        elif pid in seen:
            errs.append(f"patient_id {pid} appears twice")
        seen.add(pid)
        split = (raw.get("split") or "").strip()
        if split not in PCR_SPLITS:
            errs.append(f"split '{split}' is not one of {', '.join(PCR_SPLITS)}")
        cells = [c.strip() for c in (raw.get("mri_path") or "").split(PATH_SEPARATOR) if c.strip()]
        mri = [Path(c) if Path(c).is_absolute() else base / c for c in cells]
        if not mri:
            errs.append("no mri_path")
        for m in mri:
            if not m.exists():
                errs.append(f"MRI '{m.name}' not found")
        mask_cell = (raw.get("mask_path") or "").strip()
        mask = None
        if mask_cell:
            mask = Path(mask_cell) if Path(mask_cell).is_absolute() else base / mask_cell
            if not mask.is_file():
                errs.append(f"mask '{mask.name}' not found")
        try:
            clinical = parse_pcr_clinical({k: raw.get(k) for k in PCR_CLINICAL_NAMES})
        except InvalidValueError as exc:
            errs.append(str(exc).rstrip("."))
            clinical = {}
        label_cell = (raw.get(LABEL_COLUMN) or "").strip()
        label = None
        if label_cell:
            if label_cell not in ("0", "1"):
                errs.append(f"pcr '{label_cell}' must be 1 or 0")
            else:
                label = int(label_cell)
        elif require_labels and split != "predict":
            errs.append("no pcr label")
        if errs:
            problems.append(f"row {line} ({pid or 'no id'}): {'; '.join(errs)}")
            continue
        rows.append(PCRRow(pid, (raw.get("site") or "").strip(), split, mri, mask, clinical, label))
    if problems:
        listed = problems[:MAX_ERRORS_LISTED]
        more = f" (and {len(problems) - len(listed)} more)" if len(problems) > len(listed) else ""
        raise ManifestError(f"The manifest '{p.name}' has {len(problems)} bad row(s){more}: " + " | ".join(listed))
    if not rows:
        raise ManifestError(f"The manifest '{p.name}' has no patients.")
    return rows


def write_pcr_manifest(rows: list[dict[str, object]], path: str | os.PathLike[str]) -> Path:
    """Write rows (dicts keyed by column; None → empty cell) atomically."""
    return write_csv_atomic(rows, Path(path), list(PCR_COLUMNS))
