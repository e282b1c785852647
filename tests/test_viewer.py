"""Viewer helpers: finding and saving slides, drawing masks and grids, per-tile scores."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mrrp.errors import InputError
from mrrp.features.store import SlideFeatures
from mrrp.io.slides import read_slide_info
from mrrp.viewer import (
    UploadedFileData,
    draw_tile_grid,
    format_metadata,
    list_local_slides,
    overlay_mask,
    safe_filename,
    save_uploads,
    tile_scores,
)


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


def test_overlay_mask_tints_only_the_mask() -> None:
    thumb = np.full((20, 30, 3), 200, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:15] = True
    out = overlay_mask(thumb, mask)
    assert np.array_equal(out[:, 20:], thumb[:, 20:])
    assert out[10, 10, 1] > out[10, 10, 0]  # green tint inside


def test_draw_tile_grid_outlines_tiles() -> None:
    thumb = np.full((100, 100, 3), 255, np.uint8)
    out = draw_tile_grid(thumb, 10.0, np.array([[0, 0], [200, 200]]), 200)
    assert (out[0, 0:20] == (20, 90, 160)).all() and (out[19, 0:20] == (20, 90, 160)).all()
    assert (out[10, 10] == 255).all()  # inside a tile stays untouched
    assert (out[60:, :20] == 255).all()  # no tile there


def test_tile_scores_are_per_tile() -> None:
    feats = SlideFeatures(
        coords_l0=np.zeros((3, 2), np.int64),
        features=np.array([[3, 4], [0, 0], [1, 0]], np.float32),
        tissue_fraction=np.array([1.0, 0.5, 0.25], np.float32),
        tile_size_l0=448,
        tile_size_px=224,
        target_mpp=1.0,
        stride_l0=448,
        encoder="e",
        encoder_version="v",
        slide_fingerprint="f",
    )
    scores = tile_scores(feats)
    assert np.allclose(scores["Feature norm (encoder embedding L2)"], [5, 0, 1])
    assert np.allclose(scores["Tissue fraction"], [1.0, 0.5, 0.25])


def test_format_metadata_in_clinical_words(testdata: Path) -> None:
    rows = dict(format_metadata(read_slide_info(testdata / "small.svs")))
    assert rows["Resolution"] == "0.499 µm/pixel"
    assert rows["Objective"] == "20x"
    assert rows["Size"] == "16 × 16 pixels"
    rows = dict(format_metadata(read_slide_info(testdata / "boxes.tiff")))
    assert rows["Resolution"] == "not recorded"
