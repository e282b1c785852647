"""PNG and DICOM (Ultrasound Image Storage) writers for synthetic frames, both atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrrp._fs import atomic_path
from mrrp.synth.ultrasound.identity import FakeIdentity, _parse_date, age_on
from mrrp.synth.ultrasound.physics import _STREAM_UID, UltrasoundImage

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def save_png(img: UltrasoundImage, path: str | os.PathLike[str]) -> Path:
    """8-bit grayscale PNG, written atomically (a reader never sees a half-written file)."""
    from PIL import Image

    out = Path(path)
    with atomic_path(out) as tmp:
        Image.fromarray(np.ascontiguousarray(img.image, dtype=np.uint8), mode="L").save(tmp, format="PNG")
    return out


def _dicom_side(laterality: str) -> str:
    side = {"left": "L", "l": "L", "right": "R", "r": "R"}.get(laterality.strip().lower())
    if side is None:
        raise ValueError(f"laterality must be left/right/L/R, got {laterality!r}")
    return side


def _set_patient_and_study(ds: Dataset, patient: FakeIdentity, study_date: str, study_time: str) -> None:
    """Patient and encounter: realistic fake identifiers for de-identification to find."""
    ds.PatientName = patient.dicom_name
    ds.PatientID = patient.mrn
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{age_on(patient.birth_date, study_date):03d}Y"
    ds.AccessionNumber = patient.accession_number
    ds.ReferringPhysicianName = patient.referring_physician
    ds.OperatorsName = patient.operator_name
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study_time
    ds.StudyID = patient.accession_number[-6:]
    ds.StudyDescription = "US BREAST"


def _set_pixels(ds: Dataset, pixels: np.ndarray, pixel_mm: float) -> None:
    """Image pixel module for (H, W) uint8 ``pixels``, and the ultrasound region that calibrates them."""
    from pydicom.dataset import Dataset

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{pixel_mm:.6g}", f"{pixel_mm:.6g}"]  # mm, row then column
    # The standard way to calibrate US pixels: one 2-D tissue region, physical deltas in cm.
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2-D
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = ds.Columns - 1
    region.RegionLocationMaxY1 = ds.Rows - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = pixel_mm / 10.0
    region.PhysicalDeltaY = pixel_mm / 10.0
    ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = pixels.tobytes()


def save_dicom(
    img: UltrasoundImage,
    path: str | os.PathLike[str],
    *,
    patient: FakeIdentity,
    study_date: str,
    laterality: str,
    manufacturer: str,
    seed: int,
) -> Path:
    """DICOM Ultrasound Image Storage (explicit VR little endian, MONOCHROME2, 8 bit), written atomically.

    The header carries ``patient``'s fake identifiers (name, ID, birth date, accession, institution,
    physicians) as a real scanner would; the pixels carry no text (BurnedInAnnotation = NO). UIDs are
    derived from ``seed``, so the same call writes the same file.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    side = _dicom_side(laterality)
    _parse_date(study_date)
    pixels = np.ascontiguousarray(img.image, dtype=np.uint8)  # (H, W)
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {pixels.shape}")

    rng = np.random.default_rng([int(seed), _STREAM_UID])
    study_time = f"{int(rng.integers(7, 18)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}"
    station = f"US{int(rng.integers(1, 9))}"

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=[f"mrrp-synth-us:{seed}:{kind}"])

    study_uid, series_uid, sop_uid = uid("study"), uid("series"), uid("sop")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality = "US"
    ds.Manufacturer = manufacturer
    ds.InstitutionName = patient.institution_name
    ds.StationName = station
    _set_patient_and_study(ds, patient, study_date, study_time)
    ds.SeriesDescription = f"BREAST {side} {img.view.upper()}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1 if img.view == "radial" else 2
    ds.Laterality = side
    ds.BodyPartExamined = "BREAST"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    _set_pixels(ds, pixels, img.pixel_mm)

    out = Path(path)
    with atomic_path(out) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return out
