"""DICOM series reading: slices parsed and de-identified, grouped into phases, assembled into RAS+ volumes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrrp.io.dicom_deid import BurnedInAnnotationError, deidentify, refuse_burned_in_annotation
from mrrp.io.dicom_modalities import IMAGE_MODALITY_NAMES
from mrrp.pcr.io.errors import (
    CorruptMRIError,
    MRIError,
    NotMRIError,
    PhaseGeometryError,
    UnsupportedMRIFormatError,
    too_few_phases,
)
from mrrp.pcr.io.files import describe
from mrrp.pcr.io.geometry import canonical, geometry_difference, voxel_count_check
from mrrp.pcr.io.limits import GEOMETRY_ATOL_MM, MIN_PHASES, ORIENTATION_ATOL
from mrrp.pcr.io.records import MRIStudy


class BurnedInMRIError(MRIError, BurnedInAnnotationError):
    """An MRI slice marked BurnedInAnnotation = YES: text (possibly the patient's name) is in its pixels."""


def _float_list(value: Any, n: int) -> list[float] | None:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


@dataclass
class _Slice:
    path: Path
    ds: Any
    position: np.ndarray  # (3,) LPS mm
    row_cos: np.ndarray  # (3,) direction of increasing column index
    col_cos: np.ndarray  # (3,) direction of increasing row index
    spacing: tuple[float, float]  # (between rows, between columns) mm
    shape: tuple[int, int]  # (rows, columns)
    removed: list[str]  # identifying attribute names stripped on read (never their values)


def _read_dicom_slice(f: Path) -> _Slice | None:
    """One parsed, de-identified slice; None for non-image objects that may sit beside a series (SR, KO, PR)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(f)
        removed = deidentify(ds)  # before anything else reads the dataset
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptMRIError(f"The DICOM file {describe(f)} is truncated or damaged and cannot be read.") from exc
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if "PixelData" not in ds:
        sop = ds.get("SOPClassUID")
        if sop is not None and "Image Storage" in str(getattr(sop, "name", "")):
            raise CorruptMRIError(f"The DICOM file {describe(f)} is truncated (it ends before its image data).")
        return None
    if modality != "MR":
        what = IMAGE_MODALITY_NAMES.get(modality, f"a '{modality or 'unknown'}' image")
        raise NotMRIError(
            f"The DICOM file {describe(f)} is {what} (modality {modality or 'not stated'}), not an MRI; "
            "please provide the breast DCE-MRI series."
        )
    # Identifiers burned into the pixels survive header de-identification: the series is refused.
    refuse_burned_in_annotation(ds, describe(f), BurnedInMRIError)
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise UnsupportedMRIFormatError(
            f"The DICOM file {describe(f)} is an enhanced multi-frame MR object, which mrrp does not read yet; "
            "please export the series as classic single-frame images or as NIfTI."
        )
    iop = _float_list(ds.get("ImageOrientationPatient"), 6)
    ipp = _float_list(ds.get("ImagePositionPatient"), 3)
    spacing = _float_list(ds.get("PixelSpacing"), 2)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if iop is None or ipp is None or spacing is None or rows <= 0 or cols <= 0:
        raise PhaseGeometryError(
            f"The DICOM file {describe(f)} does not record where its image lies (position, orientation or pixel "
            "spacing), so the slices cannot be assembled into a volume."
        )
    return _Slice(
        f, ds, np.array(ipp), np.array(iop[:3]), np.array(iop[3:]), (spacing[0], spacing[1]), (rows, cols), removed
    )


def _phase_key(ds: Any) -> tuple[float, float, float]:
    """Order of a phase: temporal position, trigger time, series number (times of day are removed on de-identification)."""

    def num(name: str) -> float:
        try:
            return float(ds.get(name) or 0)
        except (TypeError, ValueError):
            return 0.0

    return num("TemporalPositionIdentifier"), num("TriggerTime"), num("SeriesNumber")


def _assemble(slices: list[_Slice], label: str) -> tuple[np.ndarray, np.ndarray]:
    """One phase's slices → (I=columns, J=rows, K=slices) float32 volume and its RAS+ affine.

    Hand-written because nibabel's DICOM wrappers stop at one series; the geometry is DICOM PS3.3
    C.7.6.2.1.1: voxel (i, j, k) lies at IPP_0 + i·Δcol·row_cos + j·Δrow·col_cos + k·Δslice·normal (LPS).
    """
    from pydicom.pixels import apply_modality_lut

    first = slices[0]
    for s in slices[1:]:
        if (
            s.shape != first.shape
            or not np.allclose(s.row_cos, first.row_cos, atol=ORIENTATION_ATOL)
            or not np.allclose(s.col_cos, first.col_cos, atol=ORIENTATION_ATOL)
            or not np.allclose(s.spacing, first.spacing, atol=1e-3)
        ):
            raise PhaseGeometryError(
                f"The images of {label} differ in size, orientation or pixel spacing; it is not one volume."
            )
    normal = np.cross(first.row_cos, first.col_cos)
    pos = np.array([float(s.position @ normal) for s in slices])
    order = np.argsort(pos, kind="stable")
    slices = [slices[i] for i in order]
    pos = pos[order]
    if len(slices) < 2:
        raise PhaseGeometryError(f"{label.capitalize()} has a single slice; a volume needs several.")
    gaps = np.diff(pos)
    if np.any(gaps < 1e-3):
        raise PhaseGeometryError(
            f"{label.capitalize()} has two images at the same slice position; several phases may share one series "
            "without a TemporalPositionIdentifier."
        )
    step = float(np.median(gaps))
    if np.any(np.abs(gaps - step) > max(GEOMETRY_ATOL_MM, 0.02 * step)):
        raise PhaseGeometryError(
            f"{label.capitalize()} has missing or unevenly spaced slices (every {step:.2f} mm expected)."
        )
    voxel_count_check((first.shape[1], first.shape[0], len(slices)), 1, label.capitalize())
    try:
        planes = [apply_modality_lut(s.ds.pixel_array, s.ds).astype(np.float32) for s in slices]
    except (NotImplementedError, RuntimeError) as exc:
        syntax = getattr(getattr(first.ds, "file_meta", None), "TransferSyntaxUID", None)
        raise UnsupportedMRIFormatError(
            f"The DICOM files are compressed as '{getattr(syntax, 'name', 'an unknown compression')}', which this "
            "installation cannot decode; please export them uncompressed or as NIfTI."
        ) from exc
    except (ValueError, EOFError, OSError, KeyError, AttributeError, TypeError) as exc:
        raise CorruptMRIError(f"A DICOM file of {label} has damaged image data and cannot be decoded.") from exc
    volume = np.stack([p.T for p in planes], axis=2)  # (columns, rows, slices)
    d_row, d_col = first.spacing
    lps = np.eye(4)
    lps[:3, 0] = first.row_cos * d_col
    lps[:3, 1] = first.col_cos * d_row
    lps[:3, 2] = normal * step
    lps[:3, 3] = slices[0].position
    return volume, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS → RAS


def read_dicom_series(files: list[Path], name: str) -> MRIStudy:
    slices = [s for f in files if (s := _read_dicom_slice(f)) is not None]
    if not slices:
        raise UnsupportedMRIFormatError(f"The DICOM files in '{name}' contain no images.")
    voxel_count_check((slices[0].shape[0], slices[0].shape[1], len(slices)), 1, f"'{name}'")
    groups: dict[tuple[str, float], list[_Slice]] = {}
    for s in slices:
        ds = s.ds
        temporal = ds.get("TemporalPositionIdentifier")
        if temporal is None:
            temporal = ds.get("TriggerTime")
        try:
            t = float(temporal) if temporal not in (None, "") else 0.0
        except (TypeError, ValueError):
            t = 0.0
        groups.setdefault((str(ds.get("SeriesInstanceUID", "")), t), []).append(s)
    ordered = sorted(groups.values(), key=lambda g: _phase_key(g[0].ds))
    if len(ordered) < MIN_PHASES:
        raise too_few_phases(len(ordered), f"'{name}'")
    volumes = [_assemble(g, f"phase {k + 1}") for k, g in enumerate(ordered)]
    shape0, aff0 = volumes[0][0].shape, volumes[0][1]
    for k, (vol, aff) in enumerate(volumes[1:], start=2):
        diff = geometry_difference(shape0, aff0, vol.shape, aff)
        if diff is not None:
            raise PhaseGeometryError(
                f"In '{name}', phase {k} does not match phase 1: it {diff}. Provide only the DCE phases of one "
                "examination."
            )
    voxel_count_check(shape0, len(volumes), f"'{name}'")
    data, affine = canonical(np.stack([v for v, _ in volumes], axis=3), aff0)
    removed = sorted({name for s in slices for name in s.removed})
    return MRIStudy(np.ascontiguousarray(np.moveaxis(data, 3, 0)), affine, "dicom", name, removed)
