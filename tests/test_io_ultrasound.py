"""Ultrasound reader: PNG/JPEG/DICOM pixels, de-identification on read, and clinician-readable errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrrp.errors import InputError
from mrrp.io.ultrasound import (
    CorruptUltrasoundError,
    EmptyUltrasoundFileError,
    NoPixelDataError,
    NotUltrasoundError,
    UltrasoundError,
    UltrasoundNotFoundError,
    UltrasoundTooLargeError,
    UnsupportedUltrasoundFormatError,
    deidentify,
    read_ultrasound,
)
from mrrp.synth.ultrasound import fake_identity, render_ultrasound, save_dicom

STUDY_DATE = "20240315"


def _one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.endswith(".") and ". " not in msg and "Traceback" not in msg


def _gradient(h_px: int = 40, w_px: int = 56) -> np.ndarray:
    y, x = np.mgrid[0:h_px, 0:w_px]
    return ((x * 4 + y * 2) % 256).astype(np.uint8)  # (H, W)


@pytest.fixture(scope="module")
def synth_dicom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, object]:
    img = render_ultrasound({"size_mm": 8.0}, seed=5, size_px=(96, 128), pixel_mm=0.2)
    patient = fake_identity(5, age_years=61, reference_date=STUDY_DATE)
    path = save_dicom(
        img,
        tmp_path_factory.mktemp("us") / "scan.dcm",
        patient=patient,
        study_date=STUDY_DATE,
        laterality="left",
        manufacturer="Acme",
        seed=5,
    )
    return path, img.image, patient


def _write_dicom(path: Path, pixels: np.ndarray, **attrs: object) -> Path:
    """A minimal explicit-VR little-endian DICOM image; ``attrs`` override/extend the header."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = attrs.pop("SOPClassUID", UltrasoundImageStorage)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "DOE^JANE"
    rgb = pixels.ndim == 3 and pixels.shape[-1] == 3
    frames = pixels.shape[0] if pixels.ndim == 3 and not rgb else 1
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if rgb else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    if "PixelData" not in attrs:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------------------------------
# Plain images
# --------------------------------------------------------------------------------------------------


def test_png_grayscale_roundtrip(tmp_path: Path) -> None:
    pixels = _gradient()
    Image.fromarray(pixels, mode="L").save(tmp_path / "us.png")
    us = read_ultrasound(tmp_path / "us.png")
    assert us.format == "png" and us.source_name == "us.png"
    assert us.image.dtype == np.uint8 and us.image.shape == pixels.shape
    assert np.array_equal(us.image, pixels)
    assert us.pixel_mm is None and us.removed_identifiers == [] and us.burned_in_annotation is None


def test_jpeg_is_read_by_content_not_extension(tmp_path: Path) -> None:
    pixels = np.full((48, 64), 100, dtype=np.uint8)
    pixels[10:30, 20:40] = 30
    Image.fromarray(pixels, mode="L").save(tmp_path / "us.dat", format="JPEG", quality=95)
    us = read_ultrasound(tmp_path / "us.dat")
    assert us.format == "jpeg" and us.image.shape == pixels.shape
    assert np.abs(us.image.astype(int) - pixels).mean() < 2.0


def test_rgb_png_becomes_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[:, :10] = (255, 0, 0)
    rgb[:, 10:20] = (0, 255, 0)
    rgb[:, 20:] = (120, 120, 120)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "screenshot.png")
    us = read_ultrasound(tmp_path / "screenshot.png")
    assert us.image.shape == (20, 30)
    assert np.array_equal(us.image, np.asarray(Image.fromarray(rgb).convert("L")))
    assert abs(int(us.image[0, 0]) - 76) <= 1 and abs(int(us.image[0, 15]) - 150) <= 1 and us.image[0, 25] == 120


def test_16bit_png_is_stretched(tmp_path: Path) -> None:
    pixels = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 7 + 1000).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")  # mode I;16
    us = read_ultrasound(tmp_path / "deep.png")
    assert us.image.min() == 0 and us.image.max() == 255
    assert np.all(np.diff(us.image.ravel().astype(int)) >= 0)  # monotone ramp preserved


# --------------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------------


def test_synthetic_dicom_pixels_spacing_and_identifiers(synth_dicom: tuple[Path, np.ndarray, object]) -> None:
    path, pixels, patient = synth_dicom
    us = read_ultrasound(path)
    assert us.format == "dicom" and us.source_name == "scan.dcm"
    assert np.array_equal(us.image, pixels)
    assert us.pixel_mm == pytest.approx(0.2)
    assert us.burned_in_annotation is False and us.frame_count == 1
    for name in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName"):
        assert name in us.removed_identifiers
    for name in ("ReferringPhysicianName", "OperatorsName", "StudyID", "StationName", "StudyDate", "StudyTime"):
        assert name in us.removed_identifiers
    # Names only, never values: nothing identifying anywhere in the returned object.
    text = repr(us.removed_identifiers) + us.source_name + us.format
    for secret in (patient.family_name, patient.mrn, patient.birth_date, patient.accession_number):
        assert secret not in text


def test_deidentified_dataset_has_no_identifier_bytes(synth_dicom: tuple[Path, np.ndarray, object]) -> None:
    import pydicom

    path, pixels, patient = synth_dicom
    raw = path.read_bytes()
    secrets = [
        patient.family_name,
        patient.given_name,
        patient.mrn,
        patient.birth_date,
        patient.accession_number,
        patient.accession_number[-6:],  # StudyID
        patient.institution_name,
        patient.referring_physician.split("^")[0],
        patient.operator_name.split("^")[0],
        STUDY_DATE,
    ]
    assert all(s.encode() in raw for s in secrets)  # the fixture really carries them
    ds = pydicom.dcmread(path)
    original_uid = str(ds.SOPInstanceUID)
    removed = deidentify(ds)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    clean = buf.getvalue()
    assert [s for s in secrets if s.encode() in clean] == []
    assert original_uid.encode() not in clean
    assert "SOPInstanceUID" in removed and "MediaStorageSOPInstanceUID" in removed
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID  # replaced consistently
    assert ds.PatientIdentityRemoved == "YES"
    assert np.array_equal(ds.pixel_array, pixels)  # pixels untouched
    assert ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX == pytest.approx(0.02)  # calibration kept


def test_deidentify_private_nested_and_other_identifiers() -> None:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.PatientName = "SMITH^ALICE"
    ds.OtherPatientIDs = "OPID-77123"
    ds.InstitutionAddress = "Hauptstrasse 7, Seewald"
    ds.PerformingPhysicianName = "JONES^BOB"
    ds.DeviceSerialNumber = "SN-99812"
    ds.AcquisitionDateTime = "20240315101010"
    ds.Laterality = "L"
    ds.add_new(0x00091010, "LO", "PRIVATE-MRN-55")
    ds.add_new(0x60003000, "OB", b"\x01\x02")  # overlay data
    item = Dataset()
    item.ScheduledPerformingPhysicianName = "NESTED^NAME"
    item.ScheduledProcedureStepStartDate = "20240301"
    ds.ScheduledProcedureStepSequence = [item]
    removed = deidentify(ds)
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=False, little_endian=True)
    blob = buf.getvalue()
    for value in ("SMITH", "OPID-77123", "Hauptstrasse", "JONES", "SN-99812", "20240315", "PRIVATE-MRN", "NESTED"):
        assert value.encode() not in blob, value
    assert b"20240301" not in blob
    assert ds.Laterality == "L"  # clinically needed, not identifying
    for name in ("OtherPatientIDs", "InstitutionAddress", "PerformingPhysicianName", "DeviceSerialNumber"):
        assert name in removed
    assert "ScheduledPerformingPhysicianName" in removed and "private (0009,1010)" in removed


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    pixels = _gradient()
    path = _write_dicom(tmp_path / "m1.dcm", pixels, PhotometricInterpretation="MONOCHROME1")
    us = read_ultrasound(path)
    assert np.array_equal(us.image, 255 - pixels)


def test_16bit_dicom_uses_window(tmp_path: Path) -> None:
    pixels = np.array([[0, 1000, 1500, 2000, 4000]], dtype=np.uint16).repeat(4, axis=0)
    path = _write_dicom(tmp_path / "w.dcm", pixels, WindowCenter=1500, WindowWidth=1001)
    us = read_ultrasound(path)
    assert us.image.dtype == np.uint8
    assert list(us.image[0]) == [0, 0, 128, 255, 255]
    path2 = _write_dicom(tmp_path / "nw.dcm", pixels)  # no window: min/max
    assert list(read_ultrasound(path2).image[0]) == [0, 64, 96, 128, 255]


def test_rgb_multiframe_and_spacing(tmp_path: Path) -> None:
    rgb = np.zeros((16, 24, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = 50
    us = read_ultrasound(_write_dicom(tmp_path / "rgb.dcm", rgb, BurnedInAnnotation="NO", PixelSpacing=[0.08, 0.12]))
    assert us.image.shape == (16, 24) and int(us.image[0, 0]) == round(0.299 * 200 + 0.114 * 50)
    assert us.burned_in_annotation is False  # BurnedInAnnotation = YES is refused: tests/bad_inputs/test_privacy.py
    assert us.pixel_mm == pytest.approx(0.10)
    frames = np.stack([_gradient(), 255 - _gradient(), _gradient() // 2])  # (3, H, W) cine loop
    cine = read_ultrasound(_write_dicom(tmp_path / "cine.dcm", frames))
    assert cine.frame_count == 3 and np.array_equal(cine.image, frames[0])


# --------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------


def _png_header_only(width_px: int, height_px: int) -> bytes:
    """A PNG whose header claims a huge grayscale image but whose data is tiny (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width_px, height_px, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _raises(path: Path, cls: type[Exception], fragment: str, **kwargs: object) -> str:
    with pytest.raises(cls) as info:
        read_ultrasound(path, **kwargs)  # type: ignore[arg-type]
    msg = str(info.value)
    assert isinstance(info.value, UltrasoundError) and isinstance(info.value, InputError)
    assert _one_sentence(msg), msg
    assert fragment in msg, msg
    return msg


def test_missing_folder_and_empty(tmp_path: Path) -> None:
    _raises(tmp_path / "nope.png", UltrasoundNotFoundError, "was not found")
    _raises(tmp_path, UltrasoundNotFoundError, "is a folder")
    (tmp_path / "empty.dcm").write_bytes(b"")
    _raises(tmp_path / "empty.dcm", EmptyUltrasoundFileError, "is empty")


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("Ultrasound: 12 mm hypoechoic mass at 2 o'clock.\n")
    _raises(tmp_path / "notes.png", UnsupportedUltrasoundFormatError, "PNG, JPEG or DICOM")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7\n" + b"\0" * 200)
    _raises(tmp_path / "report.pdf", UnsupportedUltrasoundFormatError, "PDF document")
    (tmp_path / "x.gif").write_bytes(b"GIF89a" + b"\0" * 50)
    _raises(tmp_path / "x.gif", UnsupportedUltrasoundFormatError, "GIF image")


def test_dicom_without_pixels_is_rejected(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.PatientName = "DOE^JANE"
    ds.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    msg = _raises(tmp_path / "sr.dcm", NoPixelDataError, "structured report")
    assert "DOE" not in msg


@pytest.mark.parametrize(
    ("modality", "words"), [("CT", "CT image"), ("MR", "MRI"), ("SM", "whole-slide"), ("MG", "mammogram")]
)
def test_other_modalities_are_rejected(tmp_path: Path, modality: str, words: str) -> None:
    path = _write_dicom(tmp_path / "x.dcm", _gradient(), Modality=modality)
    _raises(path, NotUltrasoundError, words)


def test_decompression_bombs_rejected_before_decoding(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(_png_header_only(8000, 8000))  # 64 Mpx claimed, ~100 bytes on disk
    _raises(tmp_path / "bomb.png", UltrasoundTooLargeError, "8000 x 8000")
    (tmp_path / "huge.png").write_bytes(_png_header_only(30000, 30000))  # beyond PIL's own guard too
    _raises(tmp_path / "huge.png", UltrasoundTooLargeError, "safe limit")
    Image.fromarray(_gradient(), mode="L").save(tmp_path / "small.png")
    _raises(tmp_path / "small.png", UltrasoundTooLargeError, "safe limit", max_pixels=1000)
    path = _write_dicom(tmp_path / "bomb.dcm", _gradient(), Rows=10000, Columns=10000, PixelData=b"\0" * 64)
    _raises(path, UltrasoundTooLargeError, "10000 x 10000")


def test_truncated_and_corrupt_files(tmp_path: Path, synth_dicom: tuple[Path, np.ndarray, object]) -> None:
    Image.fromarray(_gradient(120, 160), mode="L").save(tmp_path / "ok.png")
    raw = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    _raises(tmp_path / "cut.png", CorruptUltrasoundError, "truncated or damaged")
    noise = np.random.default_rng(0).integers(0, 256, (120, 160), dtype=np.uint8)
    Image.fromarray(noise, mode="L").save(tmp_path / "ok.jpg", quality=90)
    raw = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(raw[: len(raw) // 2])
    _raises(tmp_path / "cut.jpg", CorruptUltrasoundError, "truncated or damaged")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    _raises(tmp_path / "junk.png", CorruptUltrasoundError, "damaged")

    raw = synth_dicom[0].read_bytes()
    (tmp_path / "half.dcm").write_bytes(raw[: len(raw) // 2])  # cut inside the pixel data
    _raises(tmp_path / "half.dcm", CorruptUltrasoundError, "incomplete image data")
    (tmp_path / "head.dcm").write_bytes(raw[:600])  # cut inside the header
    _raises(tmp_path / "head.dcm", CorruptUltrasoundError, "truncated")
