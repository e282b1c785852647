"""One validated patient (:class:`Case`) and the one route from it to :class:`CaseFeatures` (:func:`assemble`).

Two constructors judge every input on its own and encode nothing:

- :meth:`Case.from_manifest_row`: a row of a cohort manifest (``mrrp predict``/``explain``, batch scoring,
  training, the offline studies);
- :meth:`Case.from_inputs`: what the patient-review page gathers (uploads, pasted text, the form).

Five inputs: the slide, the ultrasound images, the ultrasound report, the pathology report and the
clinical record. Each gets a status: ``provided``, ``missing`` (the model compensates), or ``invalid``
with the sentence a clinician reads; an invalid input is left out and never costs the others. The Case
keeps what was read to judge an input (the slide's fingerprint, the de-identified ultrasound pixels and
each file's sha256, the clean report texts, the parsed clinical record), so :func:`assemble` reads and
hashes no file again.

By default a partly bad patient is assembled from what is usable, exactly as the dashboard shows it;
``strict=True`` refuses the patient instead, with the first problem as one line (training, ``--strict``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrrp._hashing import sha256_bytes, sha256_file, sha256_text
from mrrp._uploads import PRIVATE_COPY_PREFIX, UploadedFileData, safe_filename
from mrrp.errors import InputError
from mrrp.io.clinical import read_clinical_file
from mrrp.io.reports import normalise_report_text, read_report
from mrrp.io.slides import open_slide, slide_fingerprint
from mrrp.io.ultrasound import read_ultrasound
from mrrp.schema import parse_clinical_record

if TYPE_CHECKING:
    from mrrp.features.case import CaseFeatures
    from mrrp.io.manifest import ManifestRow

# The five inputs as the review lists them, and the model modality each one feeds.
INPUTS: tuple[tuple[str, str, str], ...] = (
    ("slide", "H&E slide", "slide"),
    ("us_images", "Ultrasound images", "ultrasound"),
    ("us_report", "Ultrasound report", "ultrasound"),
    ("path_report", "Pathology report", "path_report"),
    ("clinical", "Clinical record", "clinical"),
)
INPUT_LABELS = {key: label for key, label, _ in INPUTS}

ClinicalRecord = dict[str, float | str | None]  # every clinical field, parsed; None = unknown
# progress(fraction 0..1, what is happening)
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class InputStatus:
    """How one input fared: ``state`` is "provided", "missing" or "invalid"."""

    key: str
    state: str
    reason: str = ""
    notes: tuple[str, ...] = ()  # e.g. "1 of 3 images left out: ..."

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

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state, "text": self.text, "reason": self.reason, "notes": list(self.notes)}


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


@dataclass(frozen=True)
class SlideRef:
    """A slide that opened, with its pixels and resolution checked."""

    path: Path
    mpp: float | None  # level-0 µm/px as supplied (manifest, form); None: the slide records its own
    fingerprint: str  # mrrp.io.slides.slide_fingerprint, the feature cache's key


@dataclass(frozen=True, eq=False)
class UltrasoundImage:
    """One de-identified ultrasound frame and the digest of the file it came from."""

    image: np.ndarray  # (H, W) uint8
    source_name: str  # file name only
    sha256: str  # of the file's bytes: the ultrasound tokens' cache key
    note: str = ""  # what the reader chose, e.g. which frame of a multi-frame file (shown in the status)


# -- what each input check hands on -----------------------------------------------------------


@dataclass(frozen=True)
class ClinicalInput:
    """The clinical record as judged: parsed (None unless provided), its status and its canonical sha256."""

    record: ClinicalRecord | None
    status: InputStatus
    sha256: str | None


@dataclass(frozen=True)
class ReportInput:
    """One report as judged: the clean text (None unless provided), its status and the text's sha256."""

    text: str | None
    status: InputStatus
    sha256: str | None


@dataclass(frozen=True, eq=False)
class UltrasoundInputs:
    """The ultrasound images as judged: those that decoded, the status, and why any were left out."""

    images: tuple[UltrasoundImage, ...]
    status: InputStatus
    sha256: str | None  # one digest over all usable images
    problems: tuple[str, ...]  # one sentence per file left out


@dataclass(frozen=True)
class SlideInput:
    """The slide as judged: a reference when it opened with a known resolution, and its status."""

    ref: SlideRef | None
    status: InputStatus


# -- the Case ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Case:
    """One patient's usable inputs, each already validated; invalid and missing inputs are absent here."""

    patient_id: str
    slide: SlideRef | None
    us_images: tuple[UltrasoundImage, ...]
    us_report: str | None  # clean text
    path_report: str | None
    clinical: ClinicalRecord | None
    statuses: Mapping[str, InputStatus]  # input key → status, in INPUTS order
    input_hashes: Mapping[str, str]  # input key → sha256 (provided inputs only; the slide's is its fingerprint)
    problems: tuple[str, ...] = ()  # the sentence of every input (or ultrasound file) left out, in INPUTS order

    @classmethod
    def from_manifest_row(cls, row: ManifestRow) -> Case:
        """Judge the files of a manifest row (the manifest reader has already checked the clinical fields)."""
        record = row.clinical
        if record is None or all(v is None for v in record.values()):
            clinical = ClinicalInput(None, InputStatus("clinical", "missing"), None)
        else:
            clinical = ClinicalInput(dict(record), InputStatus("clinical", "provided"), record_hash(record))
        return cls._build(
            row.patient_id,
            slide=judge_slide(row.slide_path, row.slide_mpp),
            ultrasound=judge_ultrasound(row.us_image_paths),
            us_report=judge_report("us_report", row.us_report_path, "ultrasound report"),
            path_report=judge_report("path_report", row.path_report_path, "pathology report"),
            clinical=clinical,
        )

    @classmethod
    def from_inputs(cls, inputs: CaseInputs, *, upload_dir: str | os.PathLike[str] | None = None) -> Case:
        """Judge what the review page was given. Uploaded files are decoded from private temporary copies
        under ``upload_dir`` (default: the system's temporary folder), removed straight away."""
        folder = Path(upload_dir) if upload_dir is not None else None
        if inputs.slide_error:
            slide = SlideInput(None, InputStatus("slide", "invalid", inputs.slide_error))
        else:
            slide = judge_slide(inputs.slide_path, inputs.slide_mpp)
        return cls._build(
            inputs.patient_id,
            slide=slide,
            ultrasound=judge_ultrasound(inputs.us_images, folder),
            us_report=judge_report("us_report", inputs.us_report, "ultrasound report", folder),
            path_report=judge_report("path_report", inputs.path_report, "pathology report", folder),
            clinical=parse_clinical(inputs.clinical_form, inputs.clinical_file),
        )

    @classmethod
    def _build(
        cls,
        patient_id: str,
        *,
        slide: SlideInput,
        ultrasound: UltrasoundInputs,
        us_report: ReportInput,
        path_report: ReportInput,
        clinical: ClinicalInput,
    ) -> Case:
        statuses = {
            "slide": slide.status,
            "us_images": ultrasound.status,
            "us_report": us_report.status,
            "path_report": path_report.status,
            "clinical": clinical.status,
        }
        digests = {
            "slide": slide.ref.fingerprint if slide.ref is not None else None,
            "us_images": ultrasound.sha256,
            "us_report": us_report.sha256,
            "path_report": path_report.sha256,
            "clinical": clinical.sha256,
        }
        hashes = {k: h for k, h in digests.items() if h is not None}
        problems: list[str] = []
        for key, status in statuses.items():
            if key == "us_images":
                problems += ultrasound.problems
            elif status.state == "invalid":
                problems.append(status.reason)
        # A review without an id gets a pseudonym from its content: the same inputs, the same id.
        pid = patient_id or ("case-" + sha256_text(json.dumps(hashes, sort_keys=True))[:10])
        return cls(
            patient_id=pid,
            slide=slide.ref,
            us_images=ultrasound.images,
            us_report=us_report.text,
            path_report=path_report.text,
            clinical=clinical.record,
            statuses=statuses,
            input_hashes=hashes,
            problems=tuple(problems),
        )

    @property
    def us_arrays(self) -> list[np.ndarray]:
        """The de-identified (H, W) uint8 images, in token order (for Grad-CAM overlays)."""
        return [u.image for u in self.us_images]

    @property
    def us_names(self) -> list[str]:
        return [u.source_name for u in self.us_images]

    def refuse_if_incomplete(self) -> None:
        """Raise InputError naming the patient and the first input that was given but cannot be used."""
        if self.problems:
            raise InputError(f"Patient {self.patient_id}: {self.problems[0]}")

    def statuses_dict(self) -> dict[str, dict[str, object]]:
        """The statuses as JSON (input key → state, text, reason, notes)."""
        return {key: status.to_dict() for key, status in self.statuses.items()}

    def without_slide(self, reason: str) -> Case:
        """This case with its slide left out as invalid (a slide that failed while its tiles were read)."""
        statuses = {**self.statuses, "slide": InputStatus("slide", "invalid", reason)}
        hashes = {k: h for k, h in self.input_hashes.items() if k != "slide"}
        return dataclasses.replace(
            self, slide=None, statuses=statuses, input_hashes=hashes, problems=(reason, *self.problems)
        )


# -- clinical record --------------------------------------------------------------------------


def record_hash(record: Mapping[str, object]) -> str:
    """sha256 of a parsed clinical record in a canonical form (field order and spelling do not matter)."""
    return sha256_text(json.dumps({k: record.get(k) for k in sorted(record)}, sort_keys=True, default=str))


def parse_clinical(form: dict[str, object] | None, upload: UploadedFileData | None) -> ClinicalInput:
    """The clinical record from the form or one uploaded CSV/JSON row; a file wins over the form."""
    try:
        if upload is not None:
            raw_file = read_clinical_file(upload)
            raw, units = raw_file.values, raw_file.units
        else:
            raw, units = form, None
        if raw is None:
            return ClinicalInput(None, InputStatus("clinical", "missing"), None)
        record = parse_clinical_record(raw, units)
    except InputError as exc:
        return ClinicalInput(None, InputStatus("clinical", "invalid", str(exc)), None)
    if all(v is None for v in record.values()):
        # Every field unknown carries no information: the model compensates, as for no record.
        return ClinicalInput(None, InputStatus("clinical", "missing"), None)
    return ClinicalInput(record, InputStatus("clinical", "provided"), record_hash(record))


# -- files given as uploaded bytes ------------------------------------------------------------------


@contextlib.contextmanager
def _private_copy(upload: UploadedFileData, folder: Path | None, default_name: str) -> Iterator[Path]:
    """A temporary copy of an upload, so the file readers (sniffing, size limits, de-identification) judge
    uploaded bytes exactly as they judge files; removed when the block ends."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=PRIVATE_COPY_PREFIX, dir=folder) as tmp:
        path = Path(tmp) / safe_filename(upload.name or default_name)
        path.write_bytes(upload.data)
        yield path


# -- reports -----------------------------------------------------------------------------------


def read_report_input(source: str | Path | UploadedFileData, what: str, *, upload_dir: Path | None = None) -> str:
    """Clean report text from pasted text, a file path or uploaded bytes (via :func:`mrrp.io.reports.read_report`)."""
    if isinstance(source, UploadedFileData):
        with _private_copy(source, upload_dir, "report.txt") as path:
            return read_report(path)
    if isinstance(source, Path):
        return read_report(source)
    return normalise_report_text(source, what=f"The pasted {what}")


def judge_report(
    key: str, source: str | Path | UploadedFileData | None, what: str, upload_dir: Path | None = None
) -> ReportInput:
    if source is None or (isinstance(source, str) and not source.strip()):
        return ReportInput(None, InputStatus(key, "missing"), None)
    try:
        text = read_report_input(source, what, upload_dir=upload_dir)
    except InputError as exc:
        return ReportInput(None, InputStatus(key, "invalid", str(exc)), None)
    except OSError:
        return ReportInput(None, InputStatus(key, "invalid", f"The {what} could not be saved or read."), None)
    return ReportInput(text, InputStatus(key, "provided"), sha256_text(text))


# -- ultrasound ----------------------------------------------------------------------------------


def _read_one_ultrasound(src: Path | UploadedFileData, upload_dir: Path | None) -> UltrasoundImage:
    if isinstance(src, UploadedFileData):
        if not src.data:
            raise InputError(f"The ultrasound file '{safe_filename(src.name)}' is empty (0 bytes).")
        with _private_copy(src, upload_dir, "ultrasound") as path:
            us = read_ultrasound(path)
        digest = sha256_bytes(src.data)
    else:
        us = read_ultrasound(src)  # first: its messages say what is wrong with a missing or odd file
        digest = sha256_file(src)
    return UltrasoundImage(image=us.image, source_name=us.source_name, sha256=digest, note=us.frame_note)


def judge_ultrasound(sources: Sequence[Path | UploadedFileData], upload_dir: Path | None = None) -> UltrasoundInputs:
    """Decode (and de-identify) every image; a bad one is left out with its reason, the rest kept."""
    if not sources:
        return UltrasoundInputs((), InputStatus("us_images", "missing"), None, ())
    images: list[UltrasoundImage] = []
    problems: list[str] = []
    for src in sources:
        try:
            images.append(_read_one_ultrasound(src, upload_dir))
        except InputError as exc:
            problems.append(str(exc))
        except OSError:
            problems.append(
                f"The ultrasound file '{safe_filename(str(getattr(src, 'name', src)))}' could not be saved or read."
            )
    if not images:
        return UltrasoundInputs((), InputStatus("us_images", "invalid", " ".join(problems)), None, tuple(problems))
    notes = tuple(f"{len(problems)} of {len(sources)} images left out: {p}" for p in problems[:1]) + tuple(problems[1:])
    notes += tuple(u.note for u in images if u.note)
    digest = sha256_text("|".join(u.sha256 for u in images))
    return UltrasoundInputs(tuple(images), InputStatus("us_images", "provided", notes=notes), digest, tuple(problems))


# -- slide -----------------------------------------------------------------------------------------


def judge_slide(path: Path | None, mpp: float | None) -> SlideInput:
    """Fingerprint the slide once and check that it opens, its pixels decode and its resolution is known."""
    if path is None:
        return SlideInput(None, InputStatus("slide", "missing"))
    path = Path(path)
    try:
        fingerprint = slide_fingerprint(path)
        with open_slide(path, mpp=mpp) as slide:
            _ = slide.mpp  # MissingMppError asks for the resolution of the scan
    except InputError as exc:
        return SlideInput(None, InputStatus("slide", "invalid", str(exc)))
    except OSError:
        return SlideInput(None, InputStatus("slide", "invalid", f"The slide '{path.name}' could not be read."))
    return SlideInput(SlideRef(path=path, mpp=mpp, fingerprint=fingerprint), InputStatus("slide", "provided"))


# -- the one assembler ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SlideView:
    """What the heatmap needs besides the explanation: where the slide is and its tissue mask."""

    path: Path
    mpp: float | None
    tissue_mask: np.ndarray  # (h, w) bool
    mask_downsample: float
    n_tiles: int
    from_cache: bool


@dataclass(frozen=True, eq=False)
class AssembledCase:
    """A Case's features, with the Case as it ended (a slide whose tiles could not be read is left out)."""

    case: Case
    features: CaseFeatures
    slide: SlideView | None


def assemble(
    case: Case,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    strict: bool = False,
    threads: int | None = None,
) -> AssembledCase:
    """Tokens of every usable input of ``case``, through the feature caches (computed on a miss).

    Reuses what the Case read: the slide's fingerprint keys the tile cache, the decoded ultrasound images
    are encoded as they are, and the digests key the ultrasound/report cache. ``strict`` refuses a patient
    with any unusable input (InputError, one line). ``threads`` caps torch's threads while encoding
    (None: torch's own setting). ``progress(fraction, text)`` follows the slow steps (tile encoding on a
    fresh slide dominates).
    """
    from mrrp._threads import torch_threads
    from mrrp.features.case import CaseFeatures, encode_clinical, side_tokens
    from mrrp.settings import default_cache_dir

    if strict:
        case.refuse_if_incomplete()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def step(fraction: float, text: str) -> None:
        if progress:
            progress(min(max(fraction, 0.0), 1.0), text)

    with torch_threads(threads) if threads else contextlib.nullcontext():
        if case.slide is not None:
            step(0.0, "Reading the slide…")
        slide = _slide_tokens(case, root, strict, None if progress is None else (lambda f, t: step(0.9 * f, t)))
        case = slide.case
        step(0.9, "Encoding the ultrasound images and report sentences…")
        side = side_tokens(
            case.us_arrays,
            case.us_report,
            case.path_report,
            us_image_sha256=[u.sha256 for u in case.us_images],
            us_report_sha256=case.input_hashes.get("us_report"),
            path_report_sha256=case.input_hashes.get("path_report"),
            cache_dir=root,
        )
    numeric, known, categorical, has_clinical = encode_clinical(case.clinical)
    features = CaseFeatures(
        patient_id=case.patient_id,
        tiles=slide.tiles,
        tile_coords_l0=slide.coords_l0,
        tile_size_l0=slide.tile_size_l0,
        us_images=side.us_images,
        us_report=side.us_report,
        us_report_sentences=side.us_report_sentences,
        path_report=side.path_report,
        path_report_sentences=side.path_report_sentences,
        clin_numeric=numeric,
        clin_known=known,
        clin_categorical=categorical,
        has_clinical=has_clinical,
    )
    step(1.0, "Inputs ready.")
    return AssembledCase(case=case, features=features, slide=slide.view)


@dataclass(frozen=True, eq=False)
class _SlideTokens:
    case: Case  # the case as it ended: without its slide if the tiles could not be read
    tiles: np.ndarray  # (N, 1280) float32
    coords_l0: np.ndarray  # (N, 2) int64
    tile_size_l0: int
    view: SlideView | None


def _slide_tokens(case: Case, root: Path, strict: bool, progress: ProgressFn | None) -> _SlideTokens:
    from mrrp.features.case import IMAGE_DIM
    from mrrp.features.encoders import get_encoder
    from mrrp.features.slide import slide_features
    from mrrp.features.store import FeatureCache

    ref = case.slide
    if ref is None:
        return _SlideTokens(case, np.zeros((0, IMAGE_DIM), np.float32), np.zeros((0, 2), np.int64), 0, None)

    def on_tiles(done: int, total: int) -> None:
        if progress:
            progress(done / max(total, 1), f"Encoding slide tiles: {done:,} of {total:,}")

    try:
        analysis = slide_features(
            ref.path,
            mpp=ref.mpp,
            encoder=get_encoder(),
            cache=FeatureCache(root),
            progress=on_tiles,
            fingerprint=ref.fingerprint,
        )
    except (InputError, OSError) as exc:  # e.g. a pyramid level that is damaged halfway through the tiles
        reason = str(exc) if isinstance(exc, InputError) else f"The slide '{ref.path.name}' could not be read."
        if strict:
            raise InputError(f"Patient {case.patient_id}: {reason}") from exc
        return _slide_tokens(case.without_slide(reason), root, strict, progress)
    feats = analysis.features
    view = SlideView(
        path=ref.path,
        mpp=ref.mpp,
        tissue_mask=analysis.tissue.mask,
        mask_downsample=float(analysis.tissue.downsample),
        n_tiles=len(feats),
        from_cache=analysis.from_cache,
    )
    return _SlideTokens(case, feats.features, feats.coords_l0, int(feats.tile_size_l0), view)


def case_features(
    row: ManifestRow, *, cache_dir: str | os.PathLike[str] | None = None, strict: bool = True
) -> CaseFeatures:
    """CaseFeatures of a manifest row through the one route; strict by default (training, the studies):
    a cohort with an unusable file is an error, not a silently smaller patient."""
    return assemble(Case.from_manifest_row(row), cache_dir=cache_dir, strict=strict).features
