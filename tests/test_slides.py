"""Slide reading: real OpenSlide fixtures, and every kind of bad input a user can give."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tissue_image, write_tiff_slide
from PIL import Image

from mrrp.errors import (
    CorruptSlideError,
    EmptyFileError,
    ImageTooLargeError,
    InputError,
    InvalidValueError,
    MissingMppError,
    SlideError,
    SlideNotFoundError,
    UnsupportedFormatError,
)
from mrrp.io.slides import open_slide, read_slide_info, slide_fingerprint, validate_mpp


def test_aperio_svs_metadata(testdata: Path) -> None:
    info = read_slide_info(testdata / "small.svs")
    assert info.vendor == "aperio"
    assert (info.width_px, info.height_px) == (16, 16)
    assert info.level_count == 1
    assert info.mpp == pytest.approx(0.499)
    assert info.mpp_source == "slide"
    assert info.objective_power == 20
    assert info.file_size_bytes == (testdata / "small.svs").stat().st_size


def test_generic_tiff_pyramid_without_microscope_resolution(testdata: Path) -> None:
    with open_slide(testdata / "boxes.tiff") as slide:
        info = slide.info
        assert info.vendor == "generic-tiff"
        assert (info.width_px, info.height_px) == (300, 250)
        assert info.level_count == 4
        assert info.level_downsamples[1] == pytest.approx(2.0)
        # The file carries a 72-dpi TIFF resolution (352.8 µm/px): not a microscope scan.
        assert info.mpp is None and info.mpp_source == "missing"
        with pytest.raises(MissingMppError, match="microns per pixel"):
            _ = slide.mpp
    with open_slide(testdata / "boxes.tiff", mpp=0.5) as slide:
        assert slide.mpp == 0.5 and slide.info.mpp_source == "user"


def test_dicom_wsi(testdata: Path) -> None:
    info = read_slide_info(testdata / "boxes_0.dcm")
    assert info.vendor == "dicom"
    assert info.mpp == pytest.approx(0.499)
    assert info.objective_power == 20
    # Either file of the series opens the same slide.
    other = read_slide_info(testdata / "boxes_1.dcm")
    assert (other.width_px, other.height_px) == (info.width_px, info.height_px)


def test_plain_png_through_imageslide(testdata: Path) -> None:
    with open_slide(testdata / "boxes.png", mpp=1.0) as slide:
        assert slide.info.vendor == "image/png"
        assert slide.dimensions == (300, 250)
        region = slide.read_region((0, 0), 0, (300, 250))
        assert region.shape == (250, 300, 3) and region.dtype == np.uint8
        expected = np.asarray(Image.open(testdata / "boxes.png").convert("RGB"))
        assert np.array_equal(region, expected)


def test_read_region_outside_the_scan_is_white(testdata: Path) -> None:
    with open_slide(testdata / "boxes.tiff", mpp=0.5) as slide:
        region = slide.read_region((290, 240), 0, (20, 20))
        assert region.shape == (20, 20, 3)
        assert (region[15:, 15:] == 255).all()  # beyond 300 x 250: glass


def test_thumbnail_size_and_downsample(tmp_path: Path) -> None:
    path = write_tiff_slide(tmp_path / "t.tiff", tissue_image(2000, 1000, [(100, 100, 900, 900)]), mpp=0.5)
    with open_slide(path) as slide:
        thumb, ds = slide.thumbnail(500)
        assert thumb.shape == (250, 500, 3)
        assert ds == pytest.approx(4.0)
        # tissue pink at the block's centre, glass at the right
        assert thumb[125, 125, 0] > thumb[125, 125, 1] + 40
        assert thumb[125, 450].min() > 230


# --- bad input: one typed error, a clinician-readable message ---------------------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _bomb_png(path: Path) -> Path:
    Image.new("1", (30_000, 30_000)).save(path)  # 900 Mpx, a few hundred KB on disk
    return path


BAD_INPUTS = {
    "unreadable.svs": (lambda d, t: d / "unreadable.svs", CorruptSlideError),
    "unopenable.tiff": (lambda d, t: d / "unopenable.tiff", CorruptSlideError),
    "zero-byte": (lambda d, t: _write(t / "empty.svs", b""), EmptyFileError),
    "text renamed .svs": (
        lambda d, t: _write(t / "notes.svs", b"Patient notes, not a slide\n" * 50),
        UnsupportedFormatError,
    ),
    "non-image": (lambda d, t: d / "COPYING.LESSER", UnsupportedFormatError),
    "png bomb": (lambda d, t: _bomb_png(t / "bomb.png"), ImageTooLargeError),
    "missing path": (lambda d, t: t / "does-not-exist.svs", SlideNotFoundError),
    "a folder": (lambda d, t: t, SlideNotFoundError),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_typed_error(case: str, testdata: Path, tmp_path: Path) -> None:
    make, error_class = BAD_INPUTS[case]
    path = make(testdata, tmp_path)
    with pytest.raises(SlideError) as info:
        with open_slide(path) as slide:
            slide.read_region((0, 0), 0, (8, 8))
    assert type(info.value) is error_class
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert 20 < len(message) < 300
    assert isinstance(info.value, InputError)


def test_truncated_svs_is_corrupt(tmp_path: Path) -> None:
    from mrrp.features.slide import read_tile_batches

    full = write_tiff_slide(tmp_path / "full.tiff", tissue_image(2048, 2048, [(0, 0, 2048, 2048)]), mpp=0.5)
    data = full.read_bytes()
    cut = tmp_path / "truncated.svs"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    with pytest.raises(CorruptSlideError):
        with open_slide(cut) as slide:
            coords = np.array([[x, y] for y in range(0, 2048, 256) for x in range(0, 2048, 256)])
            for _ in read_tile_batches(slide, coords, 256, 256):
                pass


def test_unicode_file_name(testdata: Path, tmp_path: Path) -> None:
    target = tmp_path / "Präparat_乳腺 ß 1.svs"
    shutil.copy(testdata / "small.svs", target)
    info = read_slide_info(target)
    assert info.name == "Präparat_乳腺 ß 1.svs"
    assert (info.width_px, info.height_px) == (16, 16)


@pytest.mark.parametrize("value", ["abc", -1, 0, 0.01, 500, float("nan")])
def test_invalid_mpp_rejected(value: object) -> None:
    with pytest.raises(InvalidValueError):
        validate_mpp(value)  # type: ignore[arg-type]


def test_valid_mpp_accepted() -> None:
    assert validate_mpp("0.25") == 0.25


def test_fingerprint_tracks_content(tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    rng = np.random.default_rng(0)
    payload = rng.integers(0, 255, 40 << 20, dtype=np.uint8).tobytes()  # 40 MB: sampled path
    a.write_bytes(payload)
    b = tmp_path / "b.bin"
    b.write_bytes(payload)
    assert slide_fingerprint(a) == slide_fingerprint(b)
    b.write_bytes(payload[:-1] + b"\x00" if payload[-1] else payload[:-1] + b"\x01")
    assert slide_fingerprint(a) != slide_fingerprint(b)  # last MiB is sampled
    small = tmp_path / "s.bin"
    small.write_bytes(payload[:1000])
    small2 = tmp_path / "s2.bin"
    small2.write_bytes(payload[:999] + b"x")
    assert slide_fingerprint(small) != slide_fingerprint(small2)  # small files hashed whole


def test_thumbnail_of_a_flat_slide_reads_in_strips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No pyramid level near the thumbnail size: the level is read strip by strip, never whole."""
    import mrrp.io.slides as slides

    path = write_tiff_slide(tmp_path / "flat.tiff", tissue_image(3000, 2000, [(300, 300, 2500, 1700)]), levels=1)
    with open_slide(path) as slide:
        whole, ds_whole = slide.thumbnail(300)
        reads: list[tuple[int, int]] = []
        original = slide.read_region

        def spy(loc, level, size):
            reads.append(size)
            return original(loc, level, size)

        monkeypatch.setattr(slides, "THUMBNAIL_STRIP_PIXELS", 400_000)
        monkeypatch.setattr(slide, "read_region", spy)
        strips, ds_strips = slide.thumbnail(300)
    assert strips.shape == whole.shape == (200, 300, 3) and ds_strips == pytest.approx(ds_whole)
    assert len(reads) > 10 and max(w * h for w, h in reads) <= 400_000 // 4 + 3000
    assert np.abs(strips.astype(int) - whole.astype(int)).mean() < 3  # the same picture
