"""Bad inputs: the smaller silently-wrong cases. A phone JPEG stored sideways with an EXIF Orientation tag is
read upright, as every viewer shows it; a multi-frame ultrasound DICOM says which frame was used; bidi
overrides and other invisible characters in a file name never reach the disk or the screen; binary and
mixed-encoding files named .txt are refused as reports; and a refused upload or a killed write leaves
nothing in the upload folder or the feature cache."""

from __future__ import annotations

import io
import os
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import mrrp._uploads as uploads_module
from mrrp._fs import STALE_TEMP_AGE_S, remove_stale_temp_files
from mrrp._uploads import UploadedFileData, safe_filename, save_uploads, shown_name
from mrrp.case import Case, CaseInputs
from mrrp.errors import InputError
from mrrp.features.store import FeatureCache, SlideFeatures
from mrrp.io.reports import ReportError, UnsupportedReportFormatError, read_report
from mrrp.io.ultrasound import UnsupportedUltrasoundFormatError, read_ultrasound

US_REPORT = "Hypoechoic irregular mass at 10 o'clock, 18 mm. BI-RADS 5."
PATH_REPORT = "Invasive ductal carcinoma, grade 2, 21 mm. ER positive, HER2 negative."
INVISIBLE = ("Cf", "Cc", "Zl", "Zp", "Cs")


def _png(shape: tuple[int, int] = (48, 64), seed: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _case(**kw: object) -> Case:
    """A patient with two pasted reports, a good ultrasound image and a clinical form beside the input under test."""
    fields: dict[str, object] = {
        "patient_id": "P1",
        "us_report": US_REPORT,
        "path_report": PATH_REPORT,
        "us_images": [UploadedFileData("good.png", _png())],
        "clinical_form": {"age_years": 55},
    }
    fields.update(kw)
    return Case.from_inputs(CaseInputs(**fields))  # type: ignore[arg-type]


def _survived(case: Case, *keys: str) -> None:
    for key in keys:
        assert case.statuses[key].state == "provided", (key, case.statuses[key])


def _no_invisible(text: str) -> None:
    assert not [hex(ord(ch)) for ch in text if unicodedata.category(ch) in INVISIBLE and ch not in "\n"], text


# -- EXIF orientation ----------------------------------------------------------------------------------


def _asymmetric_frame() -> np.ndarray:
    """(40, 60) uint8: dark, with a bright block in the top-left corner and a mid-grey bar along the bottom."""
    a = np.full((40, 60), 30, dtype=np.uint8)
    a[:12, :18] = 230
    a[-6:, :] = 130
    return a


def _with_orientation(pixels: np.ndarray, orientation: int, fmt: str) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation
    buf = io.BytesIO()
    kw = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buf, format=fmt, exif=exif.tobytes(), **kw)
    return buf.getvalue()


# EXIF orientation → what a viewer shows, from the pixels as stored (np.rot90 turns counter-clockwise).
ORIENTATIONS = [
    (1, lambda a: a),
    (2, lambda a: a[:, ::-1]),
    (3, lambda a: np.rot90(a, 2)),
    (4, lambda a: a[::-1, :]),
    (6, lambda a: np.rot90(a, -1)),  # the camera was turned: the viewer rotates 90° clockwise
    (8, lambda a: np.rot90(a, 1)),
]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize(("orientation", "as_shown"), ORIENTATIONS)
def test_exif_orientation_is_honoured(tmp_path: Path, fmt: str, orientation: int, as_shown) -> None:
    stored = _asymmetric_frame()
    path = tmp_path / f"phone.{fmt.lower()}"
    path.write_bytes(_with_orientation(stored, orientation, fmt))
    us = read_ultrasound(path)
    expected = as_shown(stored)
    assert us.shape_px == expected.shape
    # JPEG is lossy: the bright corner and the grey bar must be where the viewer shows them, within a few levels.
    assert np.abs(us.image.astype(int) - expected.astype(int)).mean() < 4.0


def test_an_uploaded_sideways_jpeg_is_encoded_upright() -> None:
    stored = _asymmetric_frame()
    case = _case(us_images=[UploadedFileData("sideways.jpg", _with_orientation(stored, 6, "JPEG"))])
    _survived(case, "us_images", "us_report", "path_report", "clinical")
    image = case.us_arrays[0]
    assert image.shape == (60, 40)
    # The bright corner is now top right, the grey bar (the stored bottom row) runs down the left side.
    assert image[:12, -12:].mean() > 200 and image[:12, 8:20].mean() < 60
    assert abs(image[:, :6].mean() - 130) < 5


# -- multi-frame ultrasound DICOM ----------------------------------------------------------------------


def _us_dicom(path: Path, frames: int, rows: int = 32, cols: int = 40) -> np.ndarray:
    """An uncompressed 8-bit ultrasound DICOM with ``frames`` frames (each a different constant plus a
    gradient); returns the (frames, rows, cols) pixels written."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.3.1" if frames > 1 else "1.2.840.10008.5.1.4.1.1.6.1"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns = rows, cols
    gradient = np.add.outer(np.arange(rows), np.arange(cols)).astype(np.uint8)
    pixels = np.stack([(gradient + 20 * k).astype(np.uint8) for k in range(frames)])
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return pixels


def test_a_multi_frame_dicom_says_which_frame_was_used(tmp_path: Path) -> None:
    pixels = _us_dicom(tmp_path / "cine.dcm", frames=12)
    us = read_ultrasound(tmp_path / "cine.dcm")
    assert us.frame_count == 12
    np.testing.assert_array_equal(us.image, pixels[0])
    assert "frame 1 of 12 was used" in us.frame_note and "'cine.dcm'" in us.frame_note


def test_a_single_frame_dicom_reads_as_before_without_a_note(tmp_path: Path) -> None:
    pixels = _us_dicom(tmp_path / "still.dcm", frames=1)
    us = read_ultrasound(tmp_path / "still.dcm")
    assert us.frame_count == 1 and us.frame_note == ""
    np.testing.assert_array_equal(us.image, pixels[0])


@pytest.mark.parametrize("frames", [2, 12])
def test_the_frame_note_reaches_the_case_status(tmp_path: Path, frames: int) -> None:
    _us_dicom(tmp_path / "cine.dcm", frames=frames)
    _us_dicom(tmp_path / "still.dcm", frames=1)
    case = _case(
        us_images=[
            UploadedFileData("cine.dcm", (tmp_path / "cine.dcm").read_bytes()),
            UploadedFileData("still.dcm", (tmp_path / "still.dcm").read_bytes()),
        ]
    )
    _survived(case, "us_images", "us_report", "path_report", "clinical")
    notes = case.statuses["us_images"].notes
    assert len(case.us_images) == 2
    assert [n for n in notes if "frame" in n] == [
        f"The ultrasound file 'cine.dcm' holds {frames} frames: frame 1 of {frames} was used; "
        "to use another, export that frame on its own."
    ]
    assert case.statuses_dict()["us_images"]["notes"] == list(notes)  # what the history and the export keep


def test_single_frame_images_add_no_note() -> None:
    case = _case(us_images=[UploadedFileData("a.png", _png()), UploadedFileData("b.png", _png(seed=1))])
    assert case.statuses["us_images"].notes == ()


# -- invisible characters in file names ------------------------------------------------------------------

BIDI_NAMES = [
    ("invoice\u202efdp.exe", "invoicefdp.exe"),  # right-to-left override: shown as "invoiceexe.pdf"
    ("scan\u202egnp.dcm", "scangnp.dcm"),
    ("\u202dleft\u202c.png", "left.png"),  # left-to-right override and pop
    ("a\u2066b\u2069.png", "ab.png"),  # isolates
    ("a\u200bb\u200d.png", "ab.png"),  # zero-width space and joiner
    ("\ufeffbom.png", "bom.png"),
    ("a\u2028b.png", "ab.png"),  # line separator
    ("a\x85b.png", "a_b.png"),  # C1 control (next line)
    ("a\x1b[31mred.png", "a_[31mred.png"),  # terminal escape
    ("a\udcffb.png", "ab.png"),  # lone surrogate of an undecodable name
]


@pytest.mark.parametrize(("name", "expected"), BIDI_NAMES)
def test_invisible_characters_are_removed_from_saved_names(name: str, expected: str) -> None:
    assert safe_filename(name) == expected
    _no_invisible(shown_name(name))


def test_a_saved_upload_has_no_bidi_override_in_its_path(tmp_path: Path) -> None:
    path = save_uploads([UploadedFileData("slide\u202esvs.exe", b"not really a slide")], tmp_path)
    assert path.name == "slidesvs.exe"
    _no_invisible(str(path.relative_to(tmp_path)))


@pytest.mark.parametrize("name", ["report\u202etxt.png", "\u2067report\u2069.txt", "r\u200bep.txt"])
def test_a_refused_report_upload_names_the_file_without_bidi_characters(name: str) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    case = _case(us_report=UploadedFileData(name, buf.getvalue()))
    status = case.statuses["us_report"]
    assert status.state == "invalid" and "not plain text" in status.reason
    _no_invisible(status.reason)
    _survived(case, "us_images", "path_report", "clinical")


def test_ultrasound_names_and_messages_are_shown_without_bidi_characters(tmp_path: Path) -> None:
    case = _case(
        us_images=[
            UploadedFileData("scan\u202egnp.exe", _png()),  # a real PNG under a disguised name: read, name cleaned
            UploadedFileData("empty\u202egnp.exe", b""),
            UploadedFileData("note\u202etxt.png", b"just some text, not an image"),
        ]
    )
    _survived(case, "us_images", "us_report", "path_report", "clinical")
    assert case.us_names == ["scangnp.exe"]
    for text in (*case.statuses["us_images"].notes, *case.us_names):
        _no_invisible(text)
    local = tmp_path / "local\u202egnp.txt"
    local.write_bytes(b"plain text")
    with pytest.raises(UnsupportedUltrasoundFormatError) as err:
        read_ultrasound(local)
    assert "'localgnp.txt'" in str(err.value)
    _no_invisible(str(err.value))


def test_a_report_file_name_with_a_bidi_override_is_shown_plainly(tmp_path: Path) -> None:
    path = tmp_path / "path\u202etxt.fdp"
    path.write_bytes(b"%PDF-1.7 binary")
    with pytest.raises(UnsupportedReportFormatError) as err:
        read_report(path)
    assert "'pathtxt.fdp'" in str(err.value)
    _no_invisible(str(err.value))


# -- binary and mixed-encoding files named .txt ----------------------------------------------------------

UTF8_HEAD = "Befund: Läsion rechts, 12 mm, unscharf begrenzt. Größe stabil.\n".encode()
LATIN1_TAIL = "Nachtrag: Größe 1,5 cm, Verdacht auf Malignität.\n".encode("latin-1")

BAD_REPORT_BYTES = [
    ("png", _png((8, 8)), "a PNG image"),
    ("nul", b"Findings: mass\x00\x00\x00 of 12 mm.", "binary"),
    ("controls", bytes(range(1, 9)) * 20 + b" some letters", "binary"),
    ("random", bytes(np.random.default_rng(1).integers(1, 256, 400, dtype=np.uint8)), ""),
    ("utf8 then latin-1", UTF8_HEAD + LATIN1_TAIL, "mixes two text encodings"),
    ("latin-1 then utf8", LATIN1_TAIL + UTF8_HEAD, "mixes two text encodings"),
    ("one stray byte", UTF8_HEAD + b"\xff" + UTF8_HEAD, "mixes two text encodings"),
]


@pytest.mark.parametrize(("label", "data", "expected"), BAD_REPORT_BYTES, ids=[c[0] for c in BAD_REPORT_BYTES])
def test_binary_and_mixed_encoding_files_are_refused(tmp_path: Path, label: str, data: bytes, expected: str) -> None:
    path = tmp_path / "report.txt"
    path.write_bytes(data)
    with pytest.raises(ReportError) as err:
        read_report(path)
    assert isinstance(err.value, UnsupportedReportFormatError) and isinstance(err.value, InputError)
    message = str(err.value)
    assert expected in message and "'report.txt'" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


@pytest.mark.parametrize(("label", "data", "expected"), BAD_REPORT_BYTES[:1] + BAD_REPORT_BYTES[4:5])
def test_a_refused_report_upload_costs_no_other_input(label: str, data: bytes, expected: str) -> None:
    case = _case(path_report=UploadedFileData("report.txt", data))
    status = case.statuses["path_report"]
    assert status.state == "invalid" and expected in status.reason
    _survived(case, "us_images", "us_report", "clinical")
    assert case.path_report is None


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (UTF8_HEAD, UTF8_HEAD.decode().strip()),
        (LATIN1_TAIL, LATIN1_TAIL.decode("latin-1").strip()),
        ("Läsion 12 mm \u2013 “suspekt”.".encode("cp1252"), "Läsion 12 mm \u2013 “suspekt”."),
    ],
)
def test_files_in_one_encoding_still_read(tmp_path: Path, data: bytes, text: str) -> None:
    path = tmp_path / "report.txt"
    path.write_bytes(data)
    assert read_report(path) == text


# -- refused uploads and stale temporary files -----------------------------------------------------------


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if not p.is_dir())


def test_several_slides_uploaded_together_leave_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="2 slides were uploaded together"):
        save_uploads([UploadedFileData("a.svs", b"one"), UploadedFileData("b.svs", b"two")], tmp_path)
    assert _files_under(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_a_write_that_fails_half_way_removes_the_whole_upload(tmp_path: Path, monkeypatch) -> None:
    written: list[Path] = []
    real_write = uploads_module.atomic_write_bytes

    def write_then_fill_the_disk(path, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(real_write(path, data))
        return written[-1]

    monkeypatch.setattr(uploads_module, "atomic_write_bytes", write_then_fill_the_disk)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "earlier.svs").write_bytes(b"an earlier upload")
    files = [UploadedFileData("set/slide.mrxs", b"index"), UploadedFileData("set/slide/Data0000.dat", b"tiles")]
    with pytest.raises(OSError):
        save_uploads(files, tmp_path)
    assert written  # the first file was written, then removed again
    assert _files_under(tmp_path) == [tmp_path / "kept" / "earlier.svs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_stale_part_files_and_private_copies_are_swept_from_the_upload_folder(tmp_path: Path) -> None:
    folder = tmp_path / "0123456789abcdef01234567"
    folder.mkdir()
    stale = folder / ".slide.svs.0badcafe.part"
    fresh = folder / ".slide.svs.1badcafe.part"
    look_alike = folder / "notes.part"  # a user's own files: not our temporary names
    user_folder = folder / "mrrp-upload-study"
    user_folder.mkdir()
    (user_folder / "IM0001.dcm").write_bytes(b"kept")
    for p in (stale, fresh, look_alike):
        p.write_bytes(b"half")
    stale_copy = tmp_path / "mrrp-upload-x1y2z3"
    stale_copy.mkdir()
    (stale_copy / "report.txt").write_text("a private copy of a killed session")
    _age(stale_copy / "report.txt", 2 * STALE_TEMP_AGE_S)
    for p in (stale, look_alike, stale_copy, user_folder, user_folder / "IM0001.dcm"):
        _age(p, 2 * STALE_TEMP_AGE_S)
    _age(fresh, 60)  # a write in progress in another session
    saved = save_uploads([UploadedFileData("new.svs", b"new slide")], tmp_path)
    assert saved.read_bytes() == b"new slide"
    assert not stale.exists() and not stale_copy.exists()
    assert fresh.exists() and look_alike.exists() and (user_folder / "IM0001.dcm").read_bytes() == b"kept"


def test_the_same_upload_again_writes_and_sweeps_nothing(tmp_path: Path) -> None:
    files = [UploadedFileData("a.svs", b"slide")]
    save_uploads(files, tmp_path)
    stale = tmp_path / ".x.svs.0badcafe.part"
    stale.write_bytes(b"half")
    _age(stale, 2 * STALE_TEMP_AGE_S)
    save_uploads(files, tmp_path)  # every rerun of a page: no walk of the folder
    assert stale.exists()
    save_uploads([UploadedFileData("b.svs", b"another")], tmp_path)
    assert not stale.exists()


def _features(n: int = 3) -> SlideFeatures:
    return SlideFeatures(
        coords_l0=np.arange(2 * n, dtype=np.int64).reshape(n, 2),
        features=np.ones((n, 4), np.float32),
        tissue_fraction=np.ones(n, np.float32),
        tile_size_l0=256,
        tile_size_px=224,
        target_mpp=0.5,
        stride_l0=256,
        encoder="test",
        encoder_version="1",
        slide_fingerprint="f" * 64,
    )


def test_the_feature_cache_sweeps_killed_writes_when_next_used(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = FeatureCache.key("f" * 64, "test", "1", {"tile": 256})
    shard = cache.path(key).parent
    shard.mkdir(parents=True)
    other = tmp_path / "features" / "zz"
    other.mkdir()
    stale = [shard / f".{key}.h5.0badcafe.part", other / ".dead.h5.12345678.part"]
    fresh = other / ".live.h5.87654321.part"
    for p in (*stale, fresh):
        p.write_bytes(b"half an hdf5 file")
    for p in stale:
        _age(p, 2 * STALE_TEMP_AGE_S)
    cache.put(key, _features())
    assert cache.get(key) is not None and len(cache.get(key)) == 3
    assert not any(p.exists() for p in stale) and fresh.exists()


@pytest.mark.parametrize("age_s", [0.0, STALE_TEMP_AGE_S / 2])
def test_recent_temporary_files_are_never_swept(tmp_path: Path, age_s: float) -> None:
    p = tmp_path / ".a.bin.0badcafe.part"
    p.write_bytes(b"x")
    _age(p, age_s)
    assert remove_stale_temp_files(tmp_path) == 0 and p.exists()


def test_sweeping_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / ".keep.bin.0badcafe.part"
    victim.write_bytes(b"not ours")
    _age(victim, 2 * STALE_TEMP_AGE_S)
    root = tmp_path / "cache"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert remove_stale_temp_files(root) == 0 and victim.exists()
