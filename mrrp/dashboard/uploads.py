"""What the browser uploaded → mrrp's inputs: the files as :class:`~mrrp._uploads.UploadedFileData`, a
slide saved where the pipeline can open it, and one patient's :class:`~mrrp.case.CaseInputs`.

The pages hand over Streamlit's ``UploadedFile`` objects (anything with ``name`` and ``getvalue()``);
nothing here imports Streamlit, so the rules (an uploaded report wins over pasted text, an empty text
box is no report, a slide that cannot be saved is a sentence, not a traceback) are tested directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mrrp._uploads import UploadedFileData, safe_filename, save_uploads
from mrrp.case import CaseInputs
from mrrp.errors import InputError
from mrrp.io.dicom_deid import deidentified_dicom_bytes, is_dicom_file

SLIDE_NOT_SAVED = "The slide could not be saved on this computer (disk full or not writable)."


class BrowserFile(Protocol):
    """One uploaded file as a web framework hands it over (Streamlit's ``UploadedFile``)."""

    @property
    def name(self) -> str: ...

    def getvalue(self) -> bytes: ...


def file_data(upload: BrowserFile | None) -> UploadedFileData | None:
    """The file's name and bytes, or None when nothing was uploaded."""
    return None if upload is None else UploadedFileData(upload.name, upload.getvalue())


def files_data(uploads: Iterable[BrowserFile] | None) -> list[UploadedFileData]:
    """Every uploaded file's name and bytes, in upload order (none: an empty list)."""
    return [UploadedFileData(u.name, u.getvalue()) for u in uploads or []]


def report_input(upload: BrowserFile | None, pasted: str | None) -> UploadedFileData | str | None:
    """A report given as a file or pasted text: the file wins; an empty text box is no report."""
    data = file_data(upload)
    if data is not None:
        return data
    return pasted or None


@dataclass(frozen=True)
class SavedSlide:
    """Where an uploaded slide was saved, or the sentence saying why it could not be (never both)."""

    path: Path | None = None
    error: str | None = None


def save_slide_upload(uploads: Iterable[BrowserFile] | None, upload_dir: str | os.PathLike[str]) -> SavedSlide:
    """Save the files of one uploaded slide (one file, a DICOM series or a MIRAX set) and return the file to
    open. Nothing uploaded: an empty SavedSlide; an unusable upload or a full disk: its error sentence."""
    files = files_data(uploads)
    if not files:
        return SavedSlide()
    try:
        return SavedSlide(path=save_uploads(kept_slide_files(files), upload_dir))
    except InputError as exc:
        return SavedSlide(error=str(exc))
    except OSError:
        return SavedSlide(error=SLIDE_NOT_SAVED)


def kept_slide_files(files: list[UploadedFileData]) -> list[UploadedFileData]:
    """What of an uploaded slide is stored: DICOM files de-identified (PS3.15 basic profile, pixels byte for
    byte) under neutral names, a single file under a neutral name; a multi-file set of another format (MIRAX)
    keeps its names, which its index file refers to."""
    if all(is_dicom_file(f.data) for f in files):
        kept = []
        for k, f in enumerate(files):
            try:
                kept.append(UploadedFileData(f"{k:05d}.dcm", deidentified_dicom_bytes(f.data)))
            except ValueError:
                raise InputError(f"The DICOM file '{safe_filename(f.name)}' is damaged and cannot be read.") from None
        return kept
    if len(files) == 1:
        return [UploadedFileData("slide" + Path(safe_filename(files[0].name)).suffix.lower(), files[0].data)]
    return files


def review_inputs(
    *,
    slide: SavedSlide | Path | None,
    slide_mpp: float | None,
    us_images: Iterable[BrowserFile] | None,
    us_report_file: BrowserFile | None,
    us_report_text: str | None,
    path_report_file: BrowserFile | None,
    path_report_text: str | None,
    clinical_form: Mapping[str, object],
    clinical_file: BrowserFile | None,
) -> CaseInputs:
    """One patient's inputs as the patient-review form gathered them.

    ``slide`` is an upload already saved (:func:`save_slide_upload`, whose error is reported as the slide's
    status) or a local slide file; ``clinical_form`` maps field names to values (None: unknown).
    """
    saved = slide if isinstance(slide, SavedSlide) else SavedSlide(path=slide)
    return CaseInputs(
        slide_path=saved.path,
        slide_mpp=slide_mpp,
        slide_error=saved.error,
        us_images=files_data(us_images),
        us_report=report_input(us_report_file, us_report_text),
        path_report=report_input(path_report_file, path_report_text),
        clinical_form=dict(clinical_form),
        clinical_file=file_data(clinical_file),
    )
