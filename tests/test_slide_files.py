"""Which files are slides: local folder listing and the file to open among several uploaded together."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mrrp._uploads import choose_main_file
from mrrp.io.slide_files import SLIDE_EXTENSIONS, SLIDE_UPLOAD_TYPES, list_local_slides


def test_list_local_slides_finds_slides_once_per_dicom_series(testdata: Path, tmp_path: Path) -> None:
    (tmp_path / "case1").mkdir()
    (tmp_path / "dicom").mkdir()
    shutil.copy(testdata / "small.svs", tmp_path / "case1" / "a.svs")
    shutil.copy(testdata / "boxes.tiff", tmp_path / "b.tiff")
    shutil.copy(testdata / "boxes_0.dcm", tmp_path / "dicom")
    shutil.copy(testdata / "boxes_1.dcm", tmp_path / "dicom")
    (tmp_path / "notes.txt").write_text("not a slide")
    (tmp_path / ".hidden.svs").write_bytes(b"x")
    found = [str(p.relative_to(tmp_path)) for p in list_local_slides(tmp_path)]
    assert found == ["b.tiff", os.path.join("case1", "a.svs"), os.path.join("dicom", "boxes_0.dcm")]
    assert list_local_slides(tmp_path / "missing") == []


def test_list_local_slides_stops_at_max_depth(testdata: Path, tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    shutil.copy(testdata / "small.svs", deep / "deep.svs")
    shutil.copy(testdata / "small.svs", tmp_path / "a" / "shallow.svs")
    assert [p.name for p in list_local_slides(tmp_path, max_depth=1)] == ["shallow.svs"]
    assert [p.name for p in list_local_slides(tmp_path, max_depth=2)] == ["deep.svs", "shallow.svs"]


def test_main_file_of_a_multi_file_slide() -> None:
    mirax = [Path("s/Index.dat"), Path("s/Data0000.dat"), Path("s.mrxs"), Path("s/Slidedat.ini")]
    assert choose_main_file(mirax) == Path("s.mrxs")
    assert choose_main_file([Path("b_1.DCM"), Path("b_0.dcm")]) == Path("b_1.DCM")  # any file opens the series
    assert choose_main_file([Path("x.tiff"), Path("y.svs")]) == Path("y.svs")
    assert choose_main_file([Path("photo.png")]) == Path("photo.png")


def test_upload_types_add_the_companion_files_without_dots() -> None:
    assert SLIDE_UPLOAD_TYPES[: len(SLIDE_EXTENSIONS)] == tuple(e[1:] for e in SLIDE_EXTENSIONS)
    assert {"svs", "mrxs", "dcm", "dat", "ini", "xml"} <= set(SLIDE_UPLOAD_TYPES)
    assert not any(t.startswith(".") for t in SLIDE_UPLOAD_TYPES)
