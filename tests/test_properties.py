"""Property tests of the clinical record reader and the manifest reader: whatever text or bytes arrive, the
answer is a parsed record (or rows) or one InputError sentence, never another exception; and a record
that is read is complete (every column given is used or deliberately recognised) and inside the schema."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrrp._uploads import UploadedFileData
from mrrp.case import parse_clinical
from mrrp.errors import InputError, InvalidValueError
from mrrp.io.clinical import NON_CLINICAL_COLUMNS, ClinicalFileError, read_clinical_file
from mrrp.io.manifest import REQUIRED_COLUMNS, ManifestError, read_manifest
from mrrp.schema import CLINICAL_FIELDS, FIELDS_BY_NAME, parse_clinical_record

# No deadline: a loaded CI box must not turn a slow example into a failure.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPELLINGS = sorted({s for f in CLINICAL_FIELDS for s in (f.name, f.label, *f.aliases)})
NOTATIONS = [
    "54",
    "54 years",
    "2.2 cm",
    "22mm",
    "95%",
    "0.95",
    "0.5%",
    "II",
    "G2",
    "grade 3",
    "2/3",
    "3/12",
    "13/12",
    "yes",
    "no",
    "present",
    "absent",
    "positive",
    "negative",
    "post",
    "premenopausal",
    "IDC",
    "lobular",
    "unknown",
    "",
    "NA",
    "-1",
    "1e999",
    "nan",
    "20-30%",
    "<1%",
    "IV",
    "x" * 300,
]
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _check_record(record: dict[str, float | str | None]) -> None:
    """A parsed record holds every field, each unknown or inside its range / categories."""
    assert set(record) == set(FIELDS_BY_NAME)
    for name, value in record.items():
        f = FIELDS_BY_NAME[name]
        if value is None:
            continue
        if f.kind == "numeric":
            assert isinstance(value, (int, float)) and math.isfinite(value)
            assert f.minimum <= value <= f.maximum
        else:
            assert value in f.categories


def _read_and_parse(upload: UploadedFileData) -> None:
    try:
        raw = read_clinical_file(upload)
    except ClinicalFileError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    try:
        _check_record(parse_clinical_record(raw.values, raw.units))
    except InvalidValueError as exc:
        assert str(exc)
    status = parse_clinical(None, upload).status  # the Case's own route: never raises
    assert status.state in ("provided", "missing", "invalid")


@PROPERTY
@given(st.binary(max_size=2000), st.sampled_from(["r.csv", "r.json", "r.txt", ""]))
def test_any_bytes_read_or_refused(data: bytes, name: str) -> None:
    _read_and_parse(UploadedFileData(name, data))


@PROPERTY
@given(st.text(max_size=2000), st.sampled_from(["r.csv", "r.json"]))
def test_any_text_read_or_refused(text: str, name: str) -> None:
    _read_and_parse(UploadedFileData(name, text.encode("utf-8", "surrogatepass")))


@PROPERTY
@given(JSON_VALUES)
def test_any_json_read_or_refused(value: object) -> None:
    _read_and_parse(UploadedFileData("r.json", json.dumps(value).encode()))


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(SPELLINGS), st.sampled_from(sorted(NON_CLINICAL_COLUMNS)), st.text(max_size=15)),
            st.one_of(st.sampled_from(NOTATIONS), st.text(max_size=15)),
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_a_read_record_used_every_column(cells: list[tuple[str, str]], as_json: bool) -> None:
    """A record taken as provided has one field per column that is not an identifier: nothing dropped."""
    if as_json:
        data = json.dumps(dict(cells)).encode()
        columns = list(dict(cells))
    else:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([c for c, _ in cells])
        writer.writerow([v for _, v in cells])
        data, columns = buf.getvalue().encode(), [c for c, _ in cells]
    upload = UploadedFileData("r.json" if as_json else "r.csv", data)
    try:
        raw = read_clinical_file(upload)
    except ClinicalFileError:
        return
    clinical_columns = [c for c in columns if c.strip().lower() not in NON_CLINICAL_COLUMNS]
    assert len(raw.values) == len(clinical_columns)
    _read_and_parse(upload)


@PROPERTY
@given(JSON_VALUES, st.sampled_from([f.name for f in CLINICAL_FIELDS]))
def test_any_value_of_any_field_parses_or_is_refused(value: object, name: str) -> None:
    f = FIELDS_BY_NAME[name]
    try:
        parsed = f.parse(value)
    except InvalidValueError as exc:
        assert str(exc).startswith(f.label) and len(str(exc)) < 400
        return
    if parsed is not None:
        _check_record({**dict.fromkeys(FIELDS_BY_NAME), name: parsed})


def _manifest_text(cells: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(REQUIRED_COLUMNS)
    writer.writerow(cells)
    return buf.getvalue()


def _read_manifest_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            rows = read_manifest(path, check_files=False)
        except ManifestError as exc:
            assert str(exc)
            return
        for row in rows:
            if row.clinical is not None:
                _check_record(row.clinical)


@PROPERTY
@given(st.text(max_size=3000))
def test_any_manifest_text_reads_or_is_refused(text: str) -> None:
    _read_manifest_text(text)


@PROPERTY
@given(st.lists(st.one_of(st.sampled_from(NOTATIONS), st.text(max_size=20)), min_size=0, max_size=60))
def test_any_manifest_row_reads_or_is_refused(cells: list[str]) -> None:
    _read_manifest_text(_manifest_text(cells))


@PROPERTY
@given(st.binary(max_size=3000))
def test_any_manifest_bytes_read_or_are_refused(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.csv"
        path.write_bytes(data)
        try:
            read_manifest(path, check_files=False, require_outcomes=False)
        except InputError as exc:
            assert str(exc)
