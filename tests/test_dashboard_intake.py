"""Intake: each input judged on its own; a bad one is reported and left out, never costing the others."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from mrrp._uploads import UploadedFileData
from mrrp.case import parse_clinical, read_report_input, record_hash
from mrrp.dashboard.intake import CaseInputs, build_case, demo_inputs, demo_titles
from mrrp.io.clinical import clinical_record_from_file

RECORD = {
    "age_years": 52,
    "tumour_size_mm": 18,
    "histological_grade": 2,
    "ki67_percent": "25%",
    "lymphovascular_invasion": "No",
    "menopausal_status": "post",
}


def test_form_record_provided_unknown_and_invalid() -> None:
    parsed = parse_clinical(RECORD, None)
    record = parsed.record
    assert parsed.status.text == "provided" and record["ki67_percent"] == 25.0
    assert record["lymphovascular_invasion"] == "no"
    assert record["er_percent"] is None  # not given = unknown
    assert parsed.sha256 == record_hash(dict(reversed(list(record.items()))))  # order does not matter
    parsed = parse_clinical({"age_years": None, "ki67_percent": "unknown"}, None)
    assert parsed.record is None and parsed.status.text == "missing (compensated)" and parsed.sha256 is None
    parsed = parse_clinical({**RECORD, "age_years": 130, "histological_grade": 2.5}, None)
    assert parsed.record is None and parsed.status.state == "invalid"
    assert "Age: 130 years is outside 18–100 years" in parsed.status.text
    assert "Histological grade" in parsed.status.text
    assert parse_clinical(None, None).status.text == "missing (compensated)"


def test_clinical_file_csv_and_json_rows() -> None:
    csv_bytes = b"patient_id,Age,ki67_percent,Histological grade\nX,61,40,3\n"
    raw = clinical_record_from_file(UploadedFileData("row.csv", csv_bytes))
    assert raw == {"age_years": "61", "ki67_percent": "40", "histological_grade": "3"}
    parsed = parse_clinical({"age_years": 20}, UploadedFileData("row.csv", csv_bytes))
    assert parsed.status.text == "provided" and parsed.record["age_years"] == 61.0  # the file wins over the form
    js = json.dumps([{"age_years": 45, "chemotherapy": "yes"}]).encode()
    parsed = parse_clinical(None, UploadedFileData("row.json", js))
    assert parsed.status.text == "provided" and parsed.record["chemotherapy"] == "yes"


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("two.csv", b"age_years\n50\n60\n", "holds 2 rows; it must hold exactly one"),
        ("none.csv", b"foo,bar\n1,2\n", "has none of the clinical fields"),
        ("bad.json", b'{"age_years": 50,', "is not valid JSON"),
        ("list.json", b"[1, 2]", "must hold one JSON object"),
        ("empty.csv", b"", "is empty"),
        ("latin.csv", "âge\n50\n".encode("utf-16"), "is not UTF-8 text"),
        ("range.csv", b"age_years,er_percent\n50,140\n", "ER: 140 % is outside 0–100 %"),
    ],
)
def test_bad_clinical_files_are_invalid_with_the_reason(name: str, data: bytes, expected: str) -> None:
    parsed = parse_clinical(None, UploadedFileData(name, data))
    assert parsed.record is None and parsed.status.state == "invalid" and expected in parsed.status.reason


def test_report_inputs() -> None:
    assert read_report_input("  Grade 2 carcinoma.\r\nMargins clear.  ", "pathology report") == (
        "Grade 2 carcinoma.\nMargins clear."
    )
    legacy = UploadedFileData("report.txt", "Résumé: 23 mm hypoechoic mass.".encode("cp1252"))
    assert read_report_input(legacy, "ultrasound report") == "Résumé: 23 mm hypoechoic mass."
    from mrrp.io.reports import ReportError

    with pytest.raises(ReportError, match="is a PDF document"):
        read_report_input(UploadedFileData("report.pdf", b"%PDF-1.7 ..."), "pathology report")


def _png_bytes(shape=(120, 160), seed=0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_inputs_are_reported_and_the_rest_is_kept(tmp_path: Path, testdata: Path) -> None:
    """A slide that is not a slide, one bad ultrasound image among two, a PDF as report: each reported, rest used."""
    progress: list[float] = []
    inputs = CaseInputs(
        slide_path=testdata / "unopenable.tiff",
        us_images=[UploadedFileData("good.png", _png_bytes()), UploadedFileData("notes.png", b"not an image at all")],
        us_report="Irregular hypoechoic mass of 23 mm at 10 o'clock. No suspicious axillary nodes.",
        path_report=UploadedFileData("path.pdf", b"%PDF-1.4 binary"),
        clinical_form=RECORD,
    )
    result = build_case(inputs, cache_dir=tmp_path / "cache", progress=lambda f, _t: progress.append(f))
    s = result.statuses
    assert s["slide"].state == "invalid" and "cannot be opened" in s["slide"].reason
    assert s["us_images"].state == "provided" and len(result.us_images) == 1
    assert s["us_images"].notes and "1 of 2 images left out" in s["us_images"].notes[0]
    assert s["us_report"].text == "provided" and s["clinical"].text == "provided"
    assert s["path_report"].state == "invalid" and "PDF" in s["path_report"].reason
    case = result.case
    assert case.present.tolist() == [False, True, False, True]
    assert result.compensated == ["slide", "path_report"]
    assert case.us_images.shape == (5, 1280) and len(case.us_report_sentences) == 2
    assert case.tiles.shape == (0, 1280) and case.path_report.shape == (0, 384)
    assert set(result.input_hashes) == {"us_images", "us_report", "clinical"}
    assert all(len(h) == 64 for h in result.input_hashes.values())
    assert result.case.patient_id.startswith("case-")
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    stored = result.stored_inputs()
    assert stored["us_report"].startswith("Irregular") and len(stored["us_images_png_base64"]) == 1


def test_nothing_given_is_all_compensated(tmp_path: Path) -> None:
    result = build_case(CaseInputs(), cache_dir=tmp_path / "cache")
    assert {k: s.text for k, s in result.statuses.items()} == dict.fromkeys(
        ("slide", "us_images", "us_report", "path_report", "clinical"), "missing (compensated)"
    )
    assert not result.case.present.any() and result.input_hashes == {}


def test_upload_error_is_the_slide_status(tmp_path: Path) -> None:
    result = build_case(CaseInputs(slide_error="No file was uploaded.", clinical_form=RECORD), cache_dir=tmp_path)
    assert result.statuses["slide"].text == "invalid: No file was uploaded."
    assert result.statuses["clinical"].text == "provided"


def test_demo_patients_are_listed_without_writing_files(tmp_path: Path) -> None:
    titles = demo_titles()
    assert [pid for pid, _ in titles] == ["DEMO-01", "DEMO-02", "DEMO-03", "DEMO-04", "DEMO-05"]
    assert not (tmp_path / "demo-v1").exists()
    from mrrp.errors import InputError

    with pytest.raises(InputError, match="no demo patient 'DEMO-99'"):
        demo_inputs(Path(__import__("os").environ["MRRP_CACHE_DIR"]), "DEMO-99")


def test_demo_patient_intake_matches_the_manifest_pipeline() -> None:
    """DEMO-04 (no slide) through the dashboard intake gives the same tokens as mrrp's manifest path."""
    import os

    from mrrp.case import case_features
    from mrrp.io.manifest import read_manifest
    from mrrp.synth.demo import ensure_demo_cohort

    cache = Path(os.environ["MRRP_CACHE_DIR"])
    inputs = demo_inputs(cache, "DEMO-04")
    result = build_case(inputs, cache_dir=cache)
    assert result.statuses["slide"].text == "missing (compensated)"
    assert all(result.statuses[k].text == "provided" for k in ("us_images", "us_report", "path_report", "clinical"))
    row = next(r for r in read_manifest(ensure_demo_cohort(cache), require_outcomes=False) if r.patient_id == "DEMO-04")
    ref = case_features(row, cache_dir=cache)
    assert result.case.patient_id == "DEMO-04"
    np.testing.assert_allclose(result.case.us_images, ref.us_images, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.case.path_report, ref.path_report, rtol=1e-5, atol=1e-5)
    assert result.case.path_report_sentences == ref.path_report_sentences
    np.testing.assert_array_equal(result.case.clin_numeric, ref.clin_numeric)
    np.testing.assert_array_equal(result.case.clin_categorical, ref.clin_categorical)
    assert len(result.us_images) == len(row.us_image_paths)
