"""What a user gives the patient-review page → one :class:`CaseFeatures` plus a status per input.

Five inputs, each optional and each judged on its own: the slide, the ultrasound images, the
ultrasound report, the pathology report and the clinical record. A bad input is reported as
``invalid: <reason>`` and left out (the model compensates for it, as for a missing one); it never
costs the user the other inputs. Features go through the same caches and code as training
(:func:`mrrp.features.slide.slide_features`, :func:`mrrp.features.case.side_tokens`,
:func:`mrrp.features.case.encode_clinical`), so a demo patient scores exactly as in ``mrrp predict``.

Every input also gets a sha256 for the case history (the slide's is :func:`mrrp.io.slides.slide_fingerprint`,
which samples multi-GB files rather than reading every byte).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrrp.errors import InputError
from mrrp.features.case import IMAGE_DIM, CaseFeatures, encode_clinical, side_tokens
from mrrp.features.encoders import torch_threads
from mrrp.schema import CLINICAL_FIELDS, FIELDS_BY_NAME, parse_clinical_record
from mrrp.viewer import UploadedFileData, safe_filename, save_uploads

# The five inputs as the page lists them, and the model modality each one feeds.
INPUTS: tuple[tuple[str, str, str], ...] = (
    ("slide", "H&E slide", "slide"),
    ("us_images", "Ultrasound images", "ultrasound"),
    ("us_report", "Ultrasound report", "ultrasound"),
    ("path_report", "Pathology report", "path_report"),
    ("clinical", "Clinical record", "clinical"),
)
INPUT_LABELS = {key: label for key, label, _ in INPUTS}
MODALITY_LABELS = {
    "slide": "H&E slide",
    "ultrasound": "ultrasound (images and report)",
    "path_report": "pathology report",
    "clinical": "clinical record",
}
MAX_CLINICAL_FILE_BYTES = 1_000_000


def encoder_threads() -> int:
    """Torch threads for encoding a patient's slide and images in the dashboard: ``$MRRP_TORCH_THREADS``, else
    all cores but one.

    The dashboard shares the machine with its own web server and the clinician's browser. Measured on the
    2-core development machine with other work running (benchmarks/results.md, Dashboard): 200 tiles took
    3.6 s on one thread and 11.4-12.9 s on two, because OpenMP threads that spin on a core someone else holds
    stall each other. Leaving one core free keeps the encoder off that cliff.
    """
    env = os.environ.get("MRRP_TORCH_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) - 1)


# progress(fraction 0..1, what is happening)
ProgressFn = Callable[[float, str], None]


class ClinicalFileError(InputError):
    """A clinical CSV/JSON file cannot be read as one patient's record."""


@dataclass(frozen=True)
class InputStatus:
    """How one input fared: ``state`` is "provided", "missing" or "invalid"."""

    key: str
    state: str
    reason: str = ""
    notes: tuple[str, ...] = ()  # e.g. "1 of 3 images skipped: ..."

    @property
    def text(self) -> str:
        """The chip text the page shows."""
        if self.state == "provided":
            return "provided"
        if self.state == "missing":
            return "missing (compensated)"
        return f"invalid: {self.reason}"

    @property
    def label(self) -> str:
        return INPUT_LABELS[self.key]


@dataclass
class CaseInputs:
    """Everything one review can be given. Unset fields are missing inputs.

    Ultrasound images are paths (demo patients, local files) or uploaded bytes; reports are pasted
    text or uploaded bytes (a path for demo patients); the clinical record is form values
    (field → value, None or "unknown" = unknown) or one uploaded CSV/JSON row.
    """

    patient_id: str = ""
    slide_path: Path | None = None
    slide_mpp: float | None = None
    slide_error: str | None = None  # set when the slide could not even be saved (upload errors)
    us_images: list[Path | UploadedFileData] = field(default_factory=list)
    us_report: str | Path | UploadedFileData | None = None
    path_report: str | Path | UploadedFileData | None = None
    clinical_form: dict[str, object] | None = None
    clinical_file: UploadedFileData | None = None


@dataclass
class SlideView:
    """What the heatmap needs besides the explanation: where the slide is and its tissue mask."""

    path: Path
    mpp: float | None
    tissue_mask: np.ndarray  # (h, w) bool
    mask_downsample: float
    n_tiles: int
    from_cache: bool


@dataclass
class IntakeResult:
    case: CaseFeatures
    statuses: dict[str, InputStatus]  # input key → status, in INPUTS order
    input_hashes: dict[str, str]  # input key → sha256 (provided inputs only)
    us_images: list[np.ndarray]  # de-identified (H, W) uint8 images, for the explanation overlay
    us_names: list[str]
    slide: SlideView | None
    clinical_record: dict[str, float | str | None] | None
    us_report_text: str | None
    path_report_text: str | None

    @property
    def compensated(self) -> list[str]:
        """Model modalities that are absent (so compensated), in model order."""
        from mrrp.model.fusion import MODALITIES

        present = self.case.present
        return [m for i, m in enumerate(MODALITIES) if not present[i]]

    def stored_inputs(self) -> dict:
        """What the case history keeps when the user opts in: the record and report texts, image hashes only.

        Ultrasound images are stored as PNG (base64) so a reopened case can show them; the slide is never
        copied into the history (it stays where it is, found again by its fingerprint).
        """
        import base64

        from PIL import Image

        images = []
        for img in self.us_images:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            images.append(base64.b64encode(buf.getvalue()).decode("ascii"))
        return {
            "clinical": self.clinical_record,
            "us_report": self.us_report_text,
            "path_report": self.path_report_text,
            "us_images_png_base64": images,
            "us_image_names": self.us_names,
        }


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_hash(record: dict[str, object]) -> str:
    """sha256 of a parsed clinical record in a canonical form (field order and spelling do not matter)."""
    return sha256_text(json.dumps({k: record.get(k) for k in sorted(record)}, sort_keys=True, default=str))


# -- clinical record --------------------------------------------------------------------------


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


def parse_clinical(
    form: dict[str, object] | None, upload: UploadedFileData | None
) -> tuple[dict[str, float | str | None] | None, InputStatus, str | None]:
    """(parsed record or None, status, sha256). A file wins over the form when both are given."""
    try:
        raw = clinical_record_from_file(upload) if upload is not None else form
        if raw is None:
            return None, InputStatus("clinical", "missing"), None
        record = parse_clinical_record(raw)
    except InputError as exc:
        return None, InputStatus("clinical", "invalid", str(exc)), None
    if all(v is None for v in record.values()):
        # Every field unknown carries no information: the model compensates, as for no record.
        return None, InputStatus("clinical", "missing"), None
    return record, InputStatus("clinical", "provided"), record_hash(record)


# -- reports -----------------------------------------------------------------------------------


def read_report_input(source: str | Path | UploadedFileData, what: str) -> str:
    """Clean report text from pasted text, a file path or uploaded bytes (via :func:`mrrp.io.reports.read_report`).

    Uploaded bytes are checked by the same reader as files (encoding sniffing, binary and size limits),
    through a private temporary copy that is removed straight away.
    """
    from mrrp.io.reports import normalise_report_text, read_report

    if isinstance(source, UploadedFileData):
        with tempfile.TemporaryDirectory(prefix="mrrp-report-") as tmp:
            path = Path(tmp) / safe_filename(source.name or "report.txt")
            path.write_bytes(source.data)
            return read_report(path)
    if isinstance(source, Path):
        return read_report(source)
    return normalise_report_text(source, what=f"The pasted {what}")


def _report(key: str, source, what: str) -> tuple[str | None, InputStatus, str | None]:
    if source is None or (isinstance(source, str) and not source.strip()):
        return None, InputStatus(key, "missing"), None
    try:
        text = read_report_input(source, what)
    except InputError as exc:
        return None, InputStatus(key, "invalid", str(exc)), None
    return text, InputStatus(key, "provided"), sha256_text(text)


# -- ultrasound ----------------------------------------------------------------------------------


def _ultrasound(
    sources: Sequence[Path | UploadedFileData], upload_dir: Path
) -> tuple[list[Path], list[np.ndarray], list[str], InputStatus, str | None]:
    """Valid images (saved paths, de-identified arrays, names), status and one sha256 over all images."""
    from mrrp.io.ultrasound import read_ultrasound

    if not sources:
        return [], [], [], InputStatus("us_images", "missing"), None
    paths: list[Path] = []
    images: list[np.ndarray] = []
    names: list[str] = []
    digests: list[str] = []
    problems: list[str] = []
    for src in sources:
        try:
            if isinstance(src, UploadedFileData):
                if not src.data:
                    raise InputError(f"The ultrasound file '{src.name}' is empty (0 bytes).")
                path = save_uploads([src], upload_dir)
                digest = sha256_bytes(src.data)
            else:
                path = Path(src)
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            us = read_ultrasound(path)
        except InputError as exc:
            problems.append(str(exc))
            continue
        except OSError:
            problems.append(f"The ultrasound file '{getattr(src, 'name', src)}' could not be saved or read.")
            continue
        paths.append(path)
        images.append(us.image)
        names.append(us.source_name)
        digests.append(digest)
    if not paths:
        return [], [], [], InputStatus("us_images", "invalid", " ".join(problems)), None
    notes = tuple(f"{len(problems)} of {len(sources)} images left out: {p}" for p in problems[:1]) + tuple(problems[1:])
    return paths, images, names, InputStatus("us_images", "provided", notes=notes), sha256_text("|".join(digests))


# -- slide -----------------------------------------------------------------------------------------


def _slide(
    path: Path | None, mpp: float | None, cache_dir: Path, progress: ProgressFn | None
) -> tuple[SlideView | None, np.ndarray, np.ndarray, int, InputStatus, str | None]:
    from mrrp.features.encoders import get_encoder
    from mrrp.features.slide import slide_features
    from mrrp.features.store import FeatureCache
    from mrrp.io.slides import slide_fingerprint

    empty = np.zeros((0, IMAGE_DIM), np.float32), np.zeros((0, 2), np.int64), 0
    if path is None:
        return None, *empty, InputStatus("slide", "missing"), None

    def on_tiles(done: int, total: int) -> None:
        if progress:
            progress(done / max(total, 1), f"Encoding slide tiles: {done:,} of {total:,}")

    try:
        fingerprint = slide_fingerprint(path)
        with torch_threads(encoder_threads()):
            analysis = slide_features(
                path, mpp=mpp, encoder=get_encoder(), cache=FeatureCache(cache_dir), progress=on_tiles
            )
    except InputError as exc:  # includes MissingMppError, whose message asks for the resolution
        return None, *empty, InputStatus("slide", "invalid", str(exc)), None
    except OSError:
        return None, *empty, InputStatus("slide", "invalid", f"The slide '{path.name}' could not be read."), None
    feats = analysis.features
    view = SlideView(
        path=path,
        mpp=mpp,
        tissue_mask=analysis.tissue.mask,
        mask_downsample=float(analysis.tissue.downsample),
        n_tiles=len(feats),
        from_cache=analysis.from_cache,
    )
    return view, feats.features, feats.coords_l0, int(feats.tile_size_l0), InputStatus("slide", "provided"), fingerprint


# -- the whole case -------------------------------------------------------------------------------


def build_case(
    inputs: CaseInputs,
    *,
    cache_dir: str | os.PathLike[str],
    upload_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> IntakeResult:
    """Validate every input on its own, compute (or read cached) features, and assemble the case.

    ``progress(fraction, text)`` is called as the slow steps advance (tile encoding dominates on a
    fresh slide). Never raises for a bad input: it shows up as an ``invalid`` status instead.
    """
    root = Path(cache_dir)
    uploads = Path(upload_dir) if upload_dir is not None else root / "uploads"

    def step(fraction: float, text: str) -> None:
        if progress:
            progress(min(max(fraction, 0.0), 1.0), text)

    step(0.0, "Reading the clinical record and reports…")
    record, clin_status, clin_hash = parse_clinical(inputs.clinical_form, inputs.clinical_file)
    us_report, usr_status, usr_hash = _report("us_report", inputs.us_report, "ultrasound report")
    path_report, pr_status, pr_hash = _report("path_report", inputs.path_report, "pathology report")

    step(0.05, "Reading the ultrasound images (identifiers removed)…")
    us_paths, us_arrays, us_names, us_status, us_hash = _ultrasound(inputs.us_images, uploads)

    if inputs.slide_error:
        slide_view, tiles, coords, tile_size = None, np.zeros((0, IMAGE_DIM), np.float32), np.zeros((0, 2), np.int64), 0
        slide_status, slide_hash = InputStatus("slide", "invalid", inputs.slide_error), None
    else:
        step(0.1, "Reading the slide…")
        slide_view, tiles, coords, tile_size, slide_status, slide_hash = _slide(
            inputs.slide_path,
            inputs.slide_mpp,
            root,
            None if progress is None else (lambda f, t: step(0.1 + 0.8 * f, t)),
        )

    step(0.9, "Encoding the ultrasound images and report sentences…")
    with torch_threads(encoder_threads()):
        side = side_tokens(
            us_paths, None, None, cache_dir=root, us_report_text=us_report or "", path_report_text=path_report or ""
        )
    numeric, known, categorical, has_clinical = encode_clinical(record)
    hashes = {
        k: h
        for k, h in (
            ("slide", slide_hash),
            ("us_images", us_hash),
            ("us_report", usr_hash),
            ("path_report", pr_hash),
            ("clinical", clin_hash),
        )
        if h is not None
    }
    patient_id = inputs.patient_id or ("case-" + sha256_text(json.dumps(hashes, sort_keys=True))[:10])
    case = CaseFeatures(
        patient_id=patient_id,
        tiles=tiles,
        tile_coords_l0=coords,
        tile_size_l0=tile_size,
        us_images=side["us_images"],  # type: ignore[arg-type]
        us_report=side["us_report"],  # type: ignore[arg-type]
        us_report_sentences=list(side["us_report_sentences"]),  # type: ignore[arg-type]
        path_report=side["path_report"],  # type: ignore[arg-type]
        path_report_sentences=list(side["path_report_sentences"]),  # type: ignore[arg-type]
        clin_numeric=numeric,
        clin_known=known,
        clin_categorical=categorical,
        has_clinical=has_clinical,
    )
    statuses = {
        "slide": slide_status,
        "us_images": us_status,
        "us_report": usr_status,
        "path_report": pr_status,
        "clinical": clin_status,
    }
    step(1.0, "Inputs ready.")
    return IntakeResult(
        case=case,
        statuses=statuses,
        input_hashes=hashes,
        us_images=us_arrays,
        us_names=us_names,
        slide=slide_view,
        clinical_record=record,
        us_report_text=us_report,
        path_report_text=path_report,
    )


# -- demo patients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoPatient:
    patient_id: str
    title: str
    inputs: CaseInputs


def demo_titles() -> list[tuple[str, str]]:
    """(patient id, title) of the demo patients, without writing their files (the page lists them at once)."""
    from mrrp.synth.demo import DEMO_PATIENTS

    return [(spec.patient_id, spec.title) for spec in DEMO_PATIENTS]


def demo_patients(cache_dir: str | os.PathLike[str]) -> list[DemoPatient]:
    """The five demo patients of :mod:`mrrp.synth.demo` as review inputs (files generated on first use)."""
    from mrrp.io.manifest import read_manifest
    from mrrp.synth.demo import ensure_demo_cohort

    rows = read_manifest(ensure_demo_cohort(cache_dir), require_outcomes=False)
    return [
        DemoPatient(
            patient_id=r.patient_id,
            title=r.extra.get("demo_title", ""),
            inputs=CaseInputs(
                patient_id=r.patient_id,
                slide_path=r.slide_path,
                slide_mpp=r.slide_mpp,
                us_images=list(r.us_image_paths),
                us_report=r.us_report_path,
                path_report=r.path_report_path,
                clinical_form=dict(r.clinical) if r.clinical is not None else None,
            ),
        )
        for r in rows
    ]


def demo_inputs(cache_dir: str | os.PathLike[str], patient_id: str) -> CaseInputs:
    """One demo patient's inputs (writes the demo files on first use, about 15 s)."""
    for demo in demo_patients(cache_dir):
        if demo.patient_id == patient_id:
            return demo.inputs
    raise InputError(f"There is no demo patient '{patient_id}'.")
