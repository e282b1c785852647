"""Bad inputs: the clinical record, the manifest's cells, degenerate MRI and ultrasound, long upload names.

Each case asserts the error class or the clinician's sentence, and where the input is one of several
(a patient's clinical record beside reports and images, one ultrasound image among two) that the other
inputs survived. The record read from a synonym or a notation must equal the canonical record: a
field that was given is never silently unknown.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrrp._uploads import UploadedFileData, safe_filename
from mrrp.case import Case, CaseInputs, parse_clinical
from mrrp.errors import InvalidValueError
from mrrp.io.clinical import ClinicalFileError, read_clinical_file
from mrrp.io.manifest import REQUIRED_COLUMNS, ManifestError, read_manifest, write_manifest
from mrrp.io.ultrasound import UltrasoundTooSmallError, read_ultrasound
from mrrp.pcr import io as pio
from mrrp.schema import CLINICAL_FIELD_NAMES, FIELDS_BY_NAME, field_for_column, parse_clinical_record

US_REPORT = "Irregular hypoechoic mass of 23 mm at 10 o'clock. No suspicious axillary nodes."
PATH_REPORT = "Invasive carcinoma of no special type, grade 2. Margins clear."


def _csv(header: list[str], row: list[str]) -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerow(row)
    return buf.getvalue().encode()


def _png(shape: tuple[int, int] = (120, 160)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _case(clinical_file: UploadedFileData | None = None, **kw: object) -> Case:
    """A patient with two pasted reports and a good ultrasound image beside the clinical input under test."""
    inputs = CaseInputs(
        patient_id="P1",
        us_report=US_REPORT,
        path_report=PATH_REPORT,
        us_images=kw.pop("us_images", [UploadedFileData("good.png", _png())]),  # type: ignore[arg-type]
        clinical_file=clinical_file,
        **kw,  # type: ignore[arg-type]
    )
    return Case.from_inputs(inputs)


def _others_survived(case: Case) -> None:
    for key in ("us_report", "path_report", "us_images"):
        assert case.statuses[key].state == "provided", key


# -- column synonyms and value notations: read, and read right ----------------------------------------

SYNONYMS = [
    ("Ki67", "25", "ki67_percent", 25.0),
    ("Ki-67", "25%", "ki67_percent", 25.0),
    ("MIB-1", "25 %", "ki67_percent", 25.0),
    ("Ki67 (%)", "25", "ki67_percent", 25.0),
    ("grade", "II", "histological_grade", 2),
    ("Histologic grade", "G3", "histological_grade", 3),
    ("Nottingham grade", "grade 1", "histological_grade", 1),
    ("Histological grade", "2/3", "histological_grade", 2),
    ("tumour grade", "III", "histological_grade", 3),
    ("nodes", "3", "positive_lymph_nodes", 3),
    ("positive nodes", "3/12", "positive_lymph_nodes", 3),
    ("LN+", "0/14", "positive_lymph_nodes", 0),
    ("tumour size", "22 mm", "tumour_size_mm", 22.0),
    ("tumor size", "2.2 cm", "tumour_size_mm", 22.0),
    ("Tumour size (cm)", "2.2", "tumour_size_mm", 22.0),
    ("tumor_size_cm", "1.5", "tumour_size_mm", 15.0),
    ("pT size", "18mm", "tumour_size_mm", 18.0),
    ("LVI", "present", "lymphovascular_invasion", "yes"),
    ("lymphovascular invasion", "Absent", "lymphovascular_invasion", "no"),
    ("LVI", "positive", "lymphovascular_invasion", "yes"),
    ("LVI (yes/no)", "Y", "lymphovascular_invasion", "yes"),
    ("histology", "IDC", "histological_type", "invasive carcinoma of no special type"),
    ("Histologic type", "lobular", "histological_type", "invasive lobular carcinoma"),
    ("histological type", "NST", "histological_type", "invasive carcinoma of no special type"),
    ("Age", "54 years", "age_years", 54.0),
    ("age at diagnosis", "61", "age_years", 61.0),
    ("ER", "95%", "er_percent", 95.0),
    ("oestrogen receptor", "80", "er_percent", 80.0),
    ("ER", "0.5%", "er_percent", 0.5),
    ("PR", "40 %", "pr_percent", 40.0),
    ("PgR", "0", "pr_percent", 0.0),
    ("menopause", "postmenopausal", "menopausal_status", "post"),
    ("Menopausal status", "Pre-menopausal", "menopausal_status", "pre"),
    ("chemo", "yes", "chemotherapy", "yes"),
    ("hormone therapy", "no", "endocrine_therapy", "no"),
    ("radiation", "Yes", "radiotherapy", "yes"),
]


@pytest.mark.parametrize(("column", "value", "field", "expected"), SYNONYMS)
def test_synonym_columns_and_notations_are_read(column: str, value: str, field: str, expected: object) -> None:
    parsed = parse_clinical(None, UploadedFileData("record.csv", _csv(["patient_id", column], ["X", value])))
    assert parsed.status.state == "provided", parsed.status.reason
    assert parsed.record is not None and parsed.record[field] == expected
    # the same record written canonically gives the same digest: spelling does not change the patient
    canonical = parse_clinical({field: f"{expected:g}%" if field.endswith("_percent") else expected}, None)
    assert parsed.sha256 == canonical.sha256


@pytest.mark.parametrize(
    ("payload", "field", "expected"),
    [
        ({"LVI": True}, "lymphovascular_invasion", "yes"),
        ({"chemotherapy": False}, "chemotherapy", "no"),
        ({"lymphovascular_invasion": 1}, "lymphovascular_invasion", "yes"),
        ({"Ki-67": 30}, "ki67_percent", 30.0),
        ({"grade": "I"}, "histological_grade", 1),
        ({"histological_grade": 2.0}, "histological_grade", 2),
        ({"grade": "GX"}, "histological_grade", None),
    ],
)
def test_json_values_in_their_natural_types(payload: dict, field: str, expected: object) -> None:
    payload = {"age_years": 50, **payload}
    parsed = parse_clinical(None, UploadedFileData("record.json", json.dumps(payload).encode()))
    assert parsed.status.state == "provided", parsed.status.reason
    assert parsed.record is not None and parsed.record[field] == expected


def test_a_manifest_row_reads_as_a_record() -> None:
    """The manifest's identifier and outcome columns are known, not clinical: no error, not used."""
    header = ["patient_id", "site", "split", "time_months", "event", "age_years", "er_percent"]
    raw = read_clinical_file(UploadedFileData("row.csv", _csv(header, ["A", "x", "train", "12", "0", "50", "90"])))
    assert raw.values == {"age_years": "50", "er_percent": "90"}
    assert raw.identifier_columns == ("patient_id", "site", "split", "time_months", "event")


def test_semicolon_separated_export() -> None:
    parsed = parse_clinical(None, UploadedFileData("record.csv", b"Age;ER;Grade\n54;95;II\n"))
    assert parsed.record is not None and parsed.record["er_percent"] == 95.0 and parsed.record["age_years"] == 54.0


# -- columns not understood, duplicates, extra values: an error naming them -----------------------------

REFUSED_FILES = [
    ("unknown.csv", b"age_years,er_percent,Her2 score,notes\n54,95,2+,see letter\n", "'Her2 score', 'notes'"),
    ("unnamed.csv", b",age_years\n0,54\n", "the unnamed column 1"),
    ("same-name.csv", b"age_years,age_years\n54,55\n", "Age is given twice"),
    ("two-spellings.csv", b"Ki67,ki67_percent\n20,25\n", "Ki-67 is given twice (columns 'Ki67' and 'ki67_percent')"),
    ("extra.csv", b"age_years,er_percent\n54,95,40\n", "2 column name(s) but its row 1 has 3 value(s)"),
    ("short.csv", b"age_years,er_percent,pr_percent\n54,95\n", "3 column name(s) but its row 1 has 2 value(s)"),
    ("dup.json", b'{"age_years": 54, "age_years": 60}', "gives 'age_years' twice"),
    ("spell.json", b'{"Ki67": 20, "MIB-1": 25}', "Ki-67 is given twice"),
    ("other.json", b'{"age_years": 54, "bmi": 31}', "'bmi'"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("nested.json", b'[[[[[{"age_years": 50}]]]]]', "nested too deeply"),
    ("bigint.json", b'{"age_years": ' + b"9" * 5000 + b"}", "more than 20 digits"),
    ("bigint2.json", b'{"age_years": ' + b"1" * 25 + b"}", "more than 20 digits"),
    ("bigcell.csv", b"age_years,er_percent\n54," + b"9" * 200_000 + b"\n", "a cell is longer than"),
    ("quotes.csv", b'age_years,er_percent\n54,"95\n', "not well-formed CSV"),
    ("nul.csv", b"age_years\n5\x004\n", "binary data"),
    ("header-only.csv", b"age_years,er_percent\n", "holds 0 rows"),
    ("two.csv", b"age_years\n50\n60\n", "holds 2 rows"),
    ("none.csv", b"foo,bar\n1,2\n", "has none of the clinical fields"),
    ("empty.json", b"{}", "has none of the clinical fields"),
    ("scalar.json", b"42", "must hold one JSON object"),
]


@pytest.mark.parametrize(("name", "data", "expected"), REFUSED_FILES)
def test_files_that_cannot_be_read_whole_are_refused_by_name(name: str, data: bytes, expected: str) -> None:
    with pytest.raises(ClinicalFileError) as info:
        read_clinical_file(UploadedFileData(name, data))
    assert expected in str(info.value)
    assert len(str(info.value)) < 1000 and "\n" not in str(info.value)
    case = _case(UploadedFileData(name, data))
    assert case.statuses["clinical"].state == "invalid" and expected in case.statuses["clinical"].reason
    assert case.clinical is None
    _others_survived(case)


def test_every_column_not_understood_is_listed() -> None:
    header = ["age_years", *[f"extra {i}" for i in range(20)]]
    with pytest.raises(ClinicalFileError) as info:
        read_clinical_file(UploadedFileData("wide.csv", _csv(header, ["54", *["1"] * 20])))
    msg = str(info.value)
    assert "'extra 0'" in msg and "'extra 11'" in msg and "and 8 more" in msg and "nothing given is left out" in msg


# -- values: notations refused clearly, ER as a fraction never 0.95 % -----------------------------------

REFUSED_VALUES = [
    ("er_percent", "0.95", "looks like a fraction"),
    ("er_percent", 0.95, "looks like a fraction"),
    ("pr_percent", ".4", "looks like a fraction"),
    ("ki67_percent", "0.2", "looks like a fraction"),
    ("er_percent", "positive", "is not a percentage"),
    ("er_percent", "95 mm", "the unit in '95 mm' is not understood"),
    ("er_percent", "<1%", "is not a percentage"),
    ("er_percent", "20-30%", "'20-30%' is a range; give one value (in %)"),
    ("tumour_size_mm", "2 to 3 cm", "is a range"),
    ("tumour_size_mm", "2 inches", "give it in mm or cm"),
    ("tumour_size_mm", "30 cm", "300 mm is outside 0.5–200 mm"),
    ("positive_lymph_nodes", "13/12", "more positive nodes than nodes examined"),
    ("positive_lymph_nodes", "1.5", "whole number"),
    ("positive_lymph_nodes", "N1", "is not a number"),
    ("histological_grade", "IV", "is not a grade 1, 2 or 3"),
    ("histological_grade", "4", "4 is outside 1–3"),
    ("histological_grade", "2.5", "whole number"),
    ("histological_grade", True, "is not a grade"),
    ("age_years", "54%", "the unit in '54%' is not understood"),
    ("age_years", "1e999", "is not a number"),
    ("age_years", 10**400, "far outside 18–100 years"),
    ("age_years", float("inf"), "is not a number"),
    ("age_years", [54], "expected one value"),
    ("age_years", {"value": 54}, "expected one value"),
    ("lymphovascular_invasion", "focal", "is not one of yes, no"),
    ("lymphovascular_invasion", 2, "is not one of yes, no"),
    ("menopausal_status", "peri", "is not one of pre, post"),
    ("histological_type", "x" * 200_000, "is not one of"),
]


@pytest.mark.parametrize(("field", "value", "expected"), REFUSED_VALUES)
def test_values_that_would_be_guessed_are_refused(field: str, value: object, expected: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        FIELDS_BY_NAME[field].parse(value)
    assert expected in str(info.value) and str(info.value).startswith(FIELDS_BY_NAME[field].label)
    assert len(str(info.value)) < 400  # a 200 kB cell is quoted, not pasted
    parsed = parse_clinical({field: value, "age_years": 50} if field != "age_years" else {field: value}, None)
    assert parsed.status.state == "invalid" and expected in parsed.status.reason


def test_a_header_unit_applies_and_a_written_unit_wins() -> None:
    parsed = parse_clinical(None, UploadedFileData("r.csv", b"Tumour size (cm),Age\n2.5,50\n"))
    assert parsed.record is not None and parsed.record["tumour_size_mm"] == 25.0
    parsed = parse_clinical(None, UploadedFileData("r.csv", b"Tumour size (cm),Age\n25 mm,50\n"))
    assert parsed.record is not None and parsed.record["tumour_size_mm"] == 25.0
    parsed = parse_clinical(None, UploadedFileData("r.csv", b"Tumour size (inches),Age\n1,50\n"))
    assert parsed.status.state == "invalid" and "the column's unit 'inches' is not understood" in parsed.status.reason


def test_keys_that_are_not_fields_are_never_dropped() -> None:
    with pytest.raises(InvalidValueError, match="'Ki67' is not a clinical field"):
        parse_clinical_record({"age_years": 50, "Ki67": 20})


def test_no_two_fields_share_a_column_spelling() -> None:
    for f in FIELDS_BY_NAME.values():
        for spelling in (f.name, f.label, *f.aliases):
            match = field_for_column(spelling)
            assert match is not None and match[0] is f, spelling


def test_the_canonical_manifest_values_read_as_before(tmp_path: Path) -> None:
    """The synthetic cohort's plain numbers and canonical words: parsing is the identity on them."""
    from conftest import CLINICAL_RECORD

    assert parse_clinical_record(CLINICAL_RECORD) == {
        k: (float(v) if isinstance(v, int) and k not in ("histological_grade", "positive_lymph_nodes") else v)
        for k, v in CLINICAL_RECORD.items()
    }


# -- the manifest: cells past the CSV limit, duplicate columns, extra values ----------------------------


def _manifest(tmp_path: Path, **cells: str) -> Path:
    row = {c: "" for c in REQUIRED_COLUMNS} | {"patient_id": "A", "site": "s", "split": "train"}
    row |= {"time_months": "12", "event": "0"} | cells
    return write_manifest([row], tmp_path / "m.csv")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace(",12,0", ",12," + "0" * 140_000),
            "cannot be read at line 2: a cell is longer than 128 kB",
        ),
        (lambda t: t.replace("patient_id,", "patient_id,patient_id,", 1), "has column(s) more than once: patient_id"),
        (lambda t: t.rstrip("\n") + ",surplus\n", "line 2: 47 values for 46 columns"),
        (lambda t: t.replace(",12,", ',"12,', 1), "not well-formed CSV"),
        (lambda t: t.replace("train", "tr\x00ain"), "binary data"),
    ],
)
def test_manifest_structure_is_one_clear_error(tmp_path: Path, edit, expected: str) -> None:
    path = _manifest(tmp_path)
    text = edit(path.read_text())
    if "values for" in expected:
        expected = f"line 2: {len(REQUIRED_COLUMNS) + 1} values for {len(REQUIRED_COLUMNS)} columns"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, check_files=False)
    assert expected in str(info.value) and len(str(info.value)) < 2000


def test_manifest_messages_quote_long_cells_briefly(tmp_path: Path) -> None:
    path = _manifest(tmp_path, time_months="9" * 100_000, split="s" * 100_000)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, check_files=False)
    assert "time_months" in str(info.value) and len(str(info.value)) < 1000


def test_manifest_reads_clinical_notations_in_canonical_columns(tmp_path: Path) -> None:
    path = _manifest(tmp_path, histological_grade="II", tumour_size_mm="2.2 cm", er_percent="0.9")
    with pytest.raises(ManifestError, match="ER: '0.9' looks like a fraction"):
        read_manifest(path, check_files=False)
    (row,) = read_manifest(_manifest(tmp_path, histological_grade="II", tumour_size_mm="2.2 cm"), check_files=False)
    assert row.clinical is not None and row.clinical["histological_grade"] == 2
    assert row.clinical["tumour_size_mm"] == 22.0
    assert set(row.clinical) == set(CLINICAL_FIELD_NAMES)


# -- MRI without signal or with degenerate geometry ------------------------------------------------------


def _nifti(path: Path, data: np.ndarray, spacing=(2.0, 2.0, 3.0)) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([*spacing, 1.0])), str(path))
    return path


def _signal(shape=(48, 48, 24, 3)) -> np.ndarray:
    return np.random.default_rng(0).random(shape).astype(np.float32) * 100


def _zero_pixdim_without_affine(path: Path) -> Path:
    """pixdim[1:4] = 0 and no qform/sform: nibabel would silently read the voxels as 1 mm."""
    raw = bytearray(path.read_bytes())
    raw[80:92] = np.zeros(3, "<f4").tobytes()  # pixdim[1], pixdim[2], pixdim[3]
    raw[252:256] = np.zeros(2, "<i2").tobytes()  # qform_code, sform_code
    path.write_bytes(bytes(raw))
    return path


MRI_CASES = [
    ("blank", lambda p: _nifti(p, np.zeros((48, 48, 24, 3))), pio.NoSignalMRIError, "has no signal in phase 1"),
    ("nan", lambda p: _nifti(p, np.full((48, 48, 24, 3), np.nan)), pio.NoSignalMRIError, "every voxel is NaN"),
    ("constant", lambda p: _nifti(p, np.full((48, 48, 24, 3), 7.0)), pio.NoSignalMRIError, "every voxel is 7"),
    (
        "blank-phase",
        lambda p: _nifti(p, np.concatenate([_signal()[..., :2], np.zeros((48, 48, 24, 1))], axis=3)),
        pio.NoSignalMRIError,
        "has no signal in phase 3",
    ),
    ("one-voxel", lambda p: _nifti(p, np.ones((1, 1, 1, 3))), pio.PhaseGeometryError, "is only 1 x 1 x 1 voxels"),
    ("one-slice", lambda p: _nifti(p, _signal((48, 48, 1, 3))), pio.PhaseGeometryError, "is only 48 x 48 x 1"),
    (
        "tiny-fov",
        lambda p: _nifti(p, _signal((48, 48, 24, 3)), spacing=(0.2, 0.2, 0.5)),
        pio.PhaseGeometryError,
        "covers only 10 x 10 x 12 mm",
    ),
    (
        "pixdim-0",
        lambda p: _zero_pixdim_without_affine(_nifti(p, _signal())),
        pio.PhaseGeometryError,
        "records a voxel size of 0, 0, 0 mm",
    ),
]


@pytest.mark.parametrize(("name", "make", "error", "expected"), MRI_CASES, ids=[c[0] for c in MRI_CASES])
def test_mri_without_signal_or_geometry_is_refused(tmp_path: Path, name: str, make, error, expected: str) -> None:
    path = make(tmp_path / f"{name}.nii")
    with pytest.raises(error) as info:
        pio.read_mri(path)
    assert expected in str(info.value)


def test_a_good_mri_still_reads(tmp_path: Path) -> None:
    study = pio.read_mri(_nifti(tmp_path / "ok.nii", _signal()))
    assert study.shape == (48, 48, 24) and study.n_phases == 3


# -- ultrasound too small, long upload names: one input refused, the others kept ------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 2), (3, 3)])
def test_tiny_ultrasound_is_refused_and_the_other_image_kept(tmp_path: Path, shape: tuple[int, int]) -> None:
    (tmp_path / "tiny.png").write_bytes(_png(shape))
    with pytest.raises(UltrasoundTooSmallError, match=rf"is only {shape[1]} x {shape[0]} pixels"):
        read_ultrasound(tmp_path / "tiny.png")
    case = _case(
        us_images=[UploadedFileData("tiny.png", _png(shape)), UploadedFileData("good.png", _png())],
        clinical_form={"age_years": 50},
    )
    assert len(case.us_images) == 1 and "1 of 2 images left out" in case.statuses["us_images"].notes[0]
    _others_survived(case)
    assert case.statuses["clinical"].state == "provided"


@pytest.mark.parametrize("name", ["é" * 300 + ".png", "x" * 5000 + ".png", "日本" * 200 + ".png", "a" * 300])
def test_long_upload_names_fit_the_file_system(name: str) -> None:
    safe = safe_filename(name)
    assert len(safe.encode()) <= 200 and (safe.endswith(".png") or "." not in name)
    case = _case(
        us_images=[UploadedFileData(name, _png()), UploadedFileData("good.png", _png())],
        clinical_file=UploadedFileData(name[:-4] + ".csv", b"age_years\n50\n"),
    )
    assert len(case.us_images) == 2 and case.statuses["clinical"].state == "provided"
    _others_survived(case)


def test_a_long_clinical_file_name_is_shortened_in_the_message() -> None:
    parsed = parse_clinical(None, UploadedFileData("n" * 10_000 + ".csv", b"foo\n1\n"))
    assert parsed.status.state == "invalid" and len(parsed.status.reason) < 400


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"age_years": ' + b"9" * 5000 + b"}", "is not a usable JSON file."),
        (b"[" * 100_000 + b"]" * 100_000, "is not a usable JSON file."),
        (b'{"age_years": 1e999}', "Age: 'inf' is not a number (in years)."),
    ],
)
def test_pcr_clinical_json_is_refused_in_one_sentence(tmp_path: Path, data: bytes, expected: str) -> None:
    from mrrp.pcr.clinical import read_clinical_json

    (tmp_path / "record.json").write_bytes(data)
    with pytest.raises(InvalidValueError) as info:
        read_clinical_json(tmp_path / "record.json")
    assert str(info.value).endswith(expected) and ".." not in str(info.value)


def test_signal_outside_the_working_box_is_refused(tmp_path: Path) -> None:
    data = np.zeros((200, 200, 40, 3), np.float32)
    data[:10, :10, :3] = 100.0 + np.arange(3)  # a corner far from the 128 x 128 x 96 mm box at the centre
    study = pio.read_mri(_nifti(tmp_path / "corner.nii", data, spacing=(1.0, 1.0, 3.0)))
    with pytest.raises(pio.NoSignalMRIError, match="no signal in the 128 x 128 x 96 mm box at its centre"):
        pio.to_working(study)
