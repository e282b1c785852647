"""The manifest: round trip, schema, and one message listing every bad row."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CLINICAL_RECORD

from mrrp.errors import InvalidValueError
from mrrp.io.manifest import REQUIRED_COLUMNS, ManifestError, read_manifest, write_manifest
from mrrp.schema import CLINICAL_FIELD_NAMES, FIELDS_BY_NAME, parse_clinical_record


def _row(pid: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "patient_id": pid,
        "site": "internal",
        "split": "train",
        **CLINICAL_RECORD,
        "time_months": 61.5,
        "event": 0,
    }
    row.update(kw)
    return row


def test_round_trip_with_missing_modalities(tmp_path: Path) -> None:
    (tmp_path / "p1").mkdir()
    (tmp_path / "p1" / "slide.svs").write_bytes(b"x")
    (tmp_path / "p1" / "us_1.png").write_bytes(b"x")
    (tmp_path / "p1" / "us_2.dcm").write_bytes(b"x")
    rows = [
        _row("A", slide_path="p1/slide.svs", us_image_paths="p1/us_1.png;p1/us_2.dcm"),
        {**{k: None for k in CLINICAL_FIELD_NAMES}, **_row("B", ki67_percent=None)},
        {k: v for k, v in _row("C").items() if k not in CLINICAL_FIELD_NAMES},
    ]
    path = write_manifest(rows, tmp_path / "manifest.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header == list(REQUIRED_COLUMNS)
    parsed = read_manifest(path)
    a, b, c = parsed
    assert a.slide_path == tmp_path / "p1" / "slide.svs"
    assert [p.name for p in a.us_image_paths] == ["us_1.png", "us_2.dcm"]
    assert a.present == {"slide": True, "ultrasound": True, "us_report": False, "path_report": False, "clinical": True}
    assert a.clinical["histological_grade"] == 2 and a.clinical["er_percent"] == 95.0
    assert b.clinical is not None and b.clinical["ki67_percent"] is None
    assert c.clinical is None and c.present["clinical"] is False
    assert (a.time_months, a.event) == (61.5, 0)
    assert not list(tmp_path.glob("*.part"))


def test_every_bad_row_is_listed_before_any_work(tmp_path: Path) -> None:
    rows = [
        _row("A"),
        _row("A"),  # duplicate id
        _row("B", time_months=-3),
        _row("C", time_months="soon"),
        _row("D", event=2),
        _row("E", slide_path="nowhere/slide.svs"),
        _row("F", histological_grade=4, er_percent=120),
        _row("G", split="validation"),
    ]
    path = write_manifest(rows, tmp_path / "m.csv")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    msg = str(info.value)
    assert "7 bad row(s)" in msg
    for expected in (
        "line 3 (A): patient_id A duplicates line 2",
        "line 4 (B): time_months -3",
        "line 5 (C)",
        "line 6 (D): event '2'",
        "line 7 (E): slide_path 'nowhere/slide.svs' not found",
        "Histological grade: 4",
        "ER: 120",
        "split 'validation'",
    ):
        assert expected in msg, expected


def test_missing_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("patient_id,site,split\nA,internal,train\n")
    with pytest.raises(ManifestError, match="lacks column\\(s\\): slide_path, us_image_paths"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.csv")


def test_predict_manifest_needs_no_outcomes(tmp_path: Path) -> None:
    row = {k: v for k, v in _row("A", split="predict").items() if k not in ("time_months", "event")}
    path = write_manifest([row], tmp_path / "m.csv")
    (r,) = read_manifest(path, require_outcomes=False)
    assert r.time_months is None and r.event is None


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("age_years", "54", 54.0),
        ("ki67_percent", "18%", 18.0),
        ("ki67_percent", "unknown", None),
        ("menopausal_status", "POST", "post"),
        ("positive_lymph_nodes", "", None),
        ("er_percent", None, None),
    ],
)
def test_clinical_field_parsing(field: str, value: object, expected: object) -> None:
    assert FIELDS_BY_NAME[field].parse(value) == expected


def test_bad_clinical_values_name_field_and_unit() -> None:
    with pytest.raises(InvalidValueError, match=r"Invasive tumour size: 500 mm is outside 0.5–200 mm"):
        FIELDS_BY_NAME["tumour_size_mm"].parse("500")
    with pytest.raises(InvalidValueError, match="whole number"):
        FIELDS_BY_NAME["positive_lymph_nodes"].parse("1.5")
    with pytest.raises(InvalidValueError) as info:
        parse_clinical_record({"age_years": "old", "menopausal_status": "peri"})
    assert "Age: 'old' is not a number (in years)" in str(info.value) and "Menopausal status" in str(info.value)
