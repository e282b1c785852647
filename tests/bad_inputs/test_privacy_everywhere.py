"""Privacy, end to end: a full patient review leaves no identifier anywhere it writes or says.

A patient whose ultrasound DICOM (PatientName, PatientID, AccessionNumber, InstitutionName,
ReferringPhysicianName, OperatorsName, StudyDescription, ImageComments), report files and pasted reports
(a name, an MRN, an address) and upload file names carry identifiers is reviewed as the patient-review page
runs it: uploads saved, :func:`mrrp.dashboard.review.analyse`, the history save with the default settings,
the PDF (:func:`review_pdf`) and the JSON export, with every log record (DEBUG, every logger) and the
process's stdout/stderr captured. Then every identifier is looked for, in UTF-8, UTF-16-LE/BE and
ignoring case: in every file (and name) under the cache folder, the history file's bytes and decoded rows,
the logs and streams, the PDF bytes and its text, and the JSON.

Report text is shown on screen by design. The PDF names the three sentences of each report that moved the
risk most by their place only, unless the clinician chooses to quote them (the third case: then a
report-borne identifier may appear in the PDF, only inside such a quoted sentence). The history keeps
report text only when the user opts in (the second case): then it is in the history, and still nowhere in
the logs or the cache.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from pathlib import Path

import pydicom
import pytest

from bad_inputs.test_privacy import _BrowserUpload, _us_dicom

FAMILY, GIVEN = "Quillfeather", "Marisol"
MRN = "48213977"
ADDRESS = "17 Larkspur Crescent"
ACCESSION = "ACC55119024"
INSTITUTION = "Saint Brigid Hospital"
REFERRER = "Thornbury"
OPERATOR = "Velasquez-Oduya"
DICOM_ONLY = (ACCESSION, INSTITUTION, REFERRER, OPERATOR)  # in the DICOM alone, never quoted anywhere
REPORT_BORNE = (FAMILY, GIVEN, MRN, ADDRESS)  # also in the report text, which is quoted by design
ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")

US_REPORT = (
    f"Breast ultrasound for {GIVEN} {FAMILY}, MRN {MRN}, of {ADDRESS}. "
    "Irregular hypoechoic mass at 2 o'clock, 14 mm, not parallel. BI-RADS 4C."
)
PATH_REPORT = (
    f"Patient: {FAMILY.upper()}, {GIVEN}. Hospital number {MRN}. Address {ADDRESS}. "
    "Invasive ductal carcinoma, grade 2. ER positive, HER2 negative. Margins clear."
)


def _dicom_with_identifiers(tmp_path: Path) -> bytes:
    ds = pydicom.dcmread(_us_dicom(tmp_path / "us.dcm", "NO", seed=21))
    ds.PatientName = f"{FAMILY}^{GIVEN}"
    ds.PatientID, ds.AccessionNumber = MRN, ACCESSION
    ds.InstitutionName = INSTITUTION
    ds.InstitutionAddress = ADDRESS
    ds.ReferringPhysicianName = f"{REFERRER}^Ann^^DR"
    ds.OperatorsName = f"{OPERATOR}^Lee"
    ds.StudyDescription = f"US breast {FAMILY} {GIVEN}"
    ds.ImageComments = f"{GIVEN} {FAMILY} MRN {MRN}"
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def _variants(text: str) -> list[bytes]:
    out = []
    for form in {text, text.lower(), text.upper()}:
        out += [form.encode(e) for e in ENCODINGS]
    return out


def _hits(data: bytes | str, identifiers) -> list[str]:
    """The identifiers found in ``data``, in any of the encodings, in any case."""
    if isinstance(data, str):
        folded = data.casefold()
        return [t for t in identifiers if t.casefold() in folded]
    lowered = data.lower()  # ASCII case folding of the bytes: the UTF-16 forms of ASCII text fold too
    return [t for t in identifiers if any(v.lower() in lowered for v in _variants(t))]


def test_the_search_finds_an_identifier_in_every_encoding_and_case() -> None:
    for encoding in ENCODINGS:
        for form in (FAMILY, FAMILY.upper(), FAMILY.lower()):
            assert _hits(b"x" + form.encode(encoding) + b"y", [FAMILY]) == [FAMILY], (encoding, form)
    assert _hits(f"PATIENT {FAMILY.upper()}", [FAMILY]) == [FAMILY]
    assert _hits(b"nothing here", [FAMILY, MRN]) == []


def _review(
    tmp_path: Path, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture, *, opt_in: bool, quote: bool = False
):
    """The page's whole sequence; returns (cache folder, history file, the review, PDF, JSON, logs and streams)."""
    from mrrp.dashboard.export import prediction_json
    from mrrp.dashboard.history import CaseHistory
    from mrrp.dashboard.models import BUNDLED_MODEL_DIR, load_model
    from mrrp.dashboard.review import Review, analyse, export_stem, model_label, review_pdf
    from mrrp.dashboard.uploads import review_inputs
    from mrrp.settings import load_settings

    # DEBUG at the root: every propagating logger's records; what a non-propagating one (Streamlit's)
    # writes goes to the streams, which capfd holds.
    caplog.set_level(logging.DEBUG)
    settings = load_settings()
    stem = f"{FAMILY}_{GIVEN}_{MRN}"
    inputs = review_inputs(
        slide=None,
        slide_mpp=None,
        us_images=[_BrowserUpload(f"{stem}.dcm", _dicom_with_identifiers(tmp_path))],
        us_report_file=_BrowserUpload(f"{stem}_ultrasound.txt", US_REPORT.encode()),
        us_report_text=None,
        path_report_file=None,
        path_report_text=PATH_REPORT,
        clinical_form={"age_years": 58},
        clinical_file=None,
    )
    # The inputs do carry every identifier, so finding none afterwards means something.
    assert set(_hits(_dicom_with_identifiers(tmp_path), everything := [*REPORT_BORNE, *DICOM_ONLY])) == set(everything)
    assert set(_hits(US_REPORT + PATH_REPORT, REPORT_BORNE)) == set(REPORT_BORNE)
    bundle = load_model(str(BUNDLED_MODEL_DIR))
    review = analyse(bundle, inputs, cache_dir=settings.cache_dir, upload_dir=settings.upload_dir)
    assert isinstance(review, Review), review
    shown = " ".join(x.sentence for x in [*review.explanation.us_report, *review.explanation.path_report])
    assert set(_hits(shown, REPORT_BORNE)) == set(REPORT_BORNE)  # on screen, by design
    assert review.statuses["us_images"].state == "provided" and review.statuses["path_report"].state == "provided"
    history = CaseHistory()
    review.case_id = history.record(review.prediction, review.input_hashes, explanation=review.explanation.to_dict())
    if opt_in:  # the checkbox under the export tab
        history.record(
            review.prediction,
            review.input_hashes,
            inputs=review.intake.stored_inputs(),
            explanation=review.explanation.to_dict(),
            store_inputs=True,
        )
    label = model_label(True, BUNDLED_MODEL_DIR)
    pdf = review_pdf(review, model_label=label, cutoff_text="", heatmap_png=None, quote_report_sentences=quote)
    doc = prediction_json(review, model_label=label)
    assert not _hits(export_stem(review), [*REPORT_BORNE, *DICOM_ONLY])  # the downloads' file names
    out, err = capfd.readouterr()
    assert caplog.records  # the capture works: the review does log (without identifiers)
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    return settings.cache_dir, settings.history_db, review, pdf, doc, logs + out + err


def _lines_with(said: str, identifiers) -> list[str]:
    """The log and stream lines that carry an identifier: what a failure shows."""
    return [line for line in said.splitlines() if _hits(line, identifiers)]


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())


def _history_rows(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return json.dumps(conn.execute("SELECT * FROM cases").fetchall())


def _assert_cache_clean(cache: Path) -> None:
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.suffix == ".npz" for p in files), files  # the side tokens were cached
    for p in cache.rglob("*"):
        assert not _hits(str(p.relative_to(cache)), [*REPORT_BORNE, *DICOM_ONLY]), p
        if p.is_file():
            assert not _hits(p.read_bytes(), [*REPORT_BORNE, *DICOM_ONLY]), p.relative_to(cache)


def _assert_history_bytes(db: Path, identifiers) -> None:
    for f in db.parent.glob(db.name + "*"):  # the database and any -wal / -journal beside it
        assert not _hits(f.read_bytes(), identifiers), f.name


@pytest.mark.slow
def test_a_default_review_leaves_no_identifier_anywhere(
    dashboard_env: Path, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:

    cache, db, review, pdf, doc, said = _review(dashboard_env, capfd, caplog, opt_in=False)
    everything = [*REPORT_BORNE, *DICOM_ONLY]
    assert not _hits(said, everything), _lines_with(said, everything)
    _assert_cache_clean(cache)
    _assert_history_bytes(db, everything)
    assert not _hits(_history_rows(db), everything)
    assert not _hits(doc, everything) and not _hits(doc.decode(), everything)
    # The PDF: no identifier at all, in its bytes or its text (report sentences are named by place only).
    assert not _hits(pdf, everything)  # the PDF's bytes (its text is compressed; the metadata is not)
    text = _pdf_text(pdf)
    assert not _hits(text, everything)
    assert "Report sentences are not quoted in this PDF" in text


@pytest.mark.slow
def test_quoting_report_sentences_in_the_pdf_quotes_only_them(
    dashboard_env: Path, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    from mrrp.dashboard import charts

    _cache, _db, review, pdf, _doc, said = _review(dashboard_env, capfd, caplog, opt_in=False, quote=True)
    text = _pdf_text(pdf)
    assert not _hits(text, DICOM_ONLY) and not _hits(said, [*REPORT_BORNE, *DICOM_ONLY])
    quoted = " ".join(
        sentence
        for items in (review.explanation.us_report, review.explanation.path_report)
        for sentence, _ in charts.top_sentences(items, 3)
    )
    quoted_here = _hits(text, REPORT_BORNE)
    assert quoted_here  # the quoted sentences carry the report's identifiers here
    for ident in quoted_here:
        assert ident.casefold() in quoted.casefold(), ident


@pytest.mark.slow
def test_opting_in_keeps_report_text_in_the_history_only(
    dashboard_env: Path, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    cache, db, _review_, _pdf, doc, said = _review(dashboard_env, capfd, caplog, opt_in=True)
    rows = _history_rows(db)
    assert GIVEN in rows and MRN in rows and ADDRESS in rows  # the report text, as the user asked
    assert not _hits(rows, DICOM_ONLY)  # the stored images are the de-identified ones
    assert not _hits(said, [*REPORT_BORNE, *DICOM_ONLY]), _lines_with(said, [*REPORT_BORNE, *DICOM_ONLY])
    _assert_cache_clean(cache)
    assert not _hits(doc, [*REPORT_BORNE, *DICOM_ONLY])
