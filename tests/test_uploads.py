"""Saving uploaded slides: safe names, content-addressed folders, multi-file slides opened by their main file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrrp._uploads import UploadedFileData, safe_filename, save_uploads
from mrrp.errors import InputError
from mrrp.io.slides import read_slide_info


@pytest.mark.parametrize(
    "name,expected",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\slides\\a.svs", "a.svs"),
        ("Präparat 乳腺.svs", "Präparat 乳腺.svs"),
        ("a\x00b.svs", "a_b.svs"),
        ("...", "slide"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_save_uploads_is_content_addressed_and_atomic(testdata: Path, tmp_path: Path) -> None:
    data = (testdata / "small.svs").read_bytes()
    p1 = save_uploads([UploadedFileData("Präparat.svs", data)], tmp_path)
    p2 = save_uploads([UploadedFileData("Präparat.svs", data)], tmp_path)
    assert p1 == p2 and p1.read_bytes() == data and p1.name == "Präparat.svs"
    assert read_slide_info(p1).vendor == "aperio"
    assert not list(tmp_path.rglob("*.part"))
    dcm = save_uploads(
        [
            UploadedFileData("boxes_1.dcm", (testdata / "boxes_1.dcm").read_bytes()),
            UploadedFileData("boxes_0.dcm", (testdata / "boxes_0.dcm").read_bytes()),
        ],
        tmp_path,
    )
    assert dcm.suffix == ".dcm" and len(list(dcm.parent.iterdir())) == 2
    assert read_slide_info(dcm).vendor == "dicom"
    with pytest.raises(InputError):
        save_uploads([], tmp_path)
