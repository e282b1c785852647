"""The two entry points: ``read_mri`` (any accepted MRI input) and ``read_mask`` (a tumour mask on its grid)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrrp.pcr.io.dicom import read_dicom_series
from mrrp.pcr.io.errors import (
    CorruptMRIError,
    EmptyMaskError,
    MaskError,
    MaskMismatchError,
    MRINotFoundError,
    NoSignalMRIError,
    PhaseGeometryError,
    UnsupportedMRIFormatError,
)
from mrrp.pcr.io.files import check_file, describe, sniff, unsupported
from mrrp.pcr.io.geometry import canonical, geometry_difference
from mrrp.pcr.io.limits import ACCEPTED, MIN_FIELD_OF_VIEW_MM, MIN_VOXELS_PER_AXIS
from mrrp.pcr.io.nifti import read_nifti_file, read_nifti_phases
from mrrp.pcr.io.records import MRIStudy
from mrrp.pcr.io.sources import expanded


def read_mri(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> MRIStudy:
    """Read one DCE examination from a DICOM folder/zip, one 4D NIfTI, or several 3D NIfTI files (phase order).

    Raises an :class:`MRIError` subclass for anything a user can get wrong (see the module docstring).
    """
    paths = [Path(sources)] if isinstance(sources, (str, os.PathLike)) else [Path(s) for s in sources]
    if not paths:
        raise MRINotFoundError("No MRI was given.")
    name = paths[0].name if len(paths) == 1 else f"{paths[0].name} and {len(paths) - 1} more"
    with expanded(paths) as files:
        kinds: dict[str, list[Path]] = {"dicom": [], "nifti": []}
        for f in files:
            check_file(f)
            kind = sniff(f)
            if kind == "gzip-damaged":
                raise CorruptMRIError(f"The compressed file {describe(f)} is damaged and cannot be unpacked.")
            if kind in kinds:
                kinds[kind].append(f)
            elif kind == "zip":
                raise UnsupportedMRIFormatError(
                    f"{describe(f)} is a zip archive found among the image files (or inside another zip); please "
                    "provide it on its own or unpack it."
                )
            elif len(files) == 1:
                raise unsupported(f)
            # other files inside a folder or zip (reports, thumbnails, .txt) are ignored
        if kinds["dicom"] and kinds["nifti"]:
            raise UnsupportedMRIFormatError(
                f"{describe(paths[0])} mixes DICOM and NIfTI files; please provide one examination in one format."
            )
        if kinds["dicom"]:
            study = read_dicom_series(kinds["dicom"], name)
        elif kinds["nifti"]:
            study = read_nifti_phases(kinds["nifti"], name)
        else:
            raise UnsupportedMRIFormatError(
                f"No DICOM or NIfTI image was found in {describe(paths[0])}; please provide {ACCEPTED}."
            )
    check_usable(study)
    return study


def check_usable(study: MRIStudy) -> None:
    """Refuse a study the model would score without seeing a breast: too few voxels, too small a field of
    view, or a phase without signal (blank, all NaN, one value everywhere). Both readers end here."""
    where = f"The MRI '{study.source_name}'"
    dims = " x ".join(str(s) for s in study.shape)
    if min(study.shape) < MIN_VOXELS_PER_AXIS:
        raise PhaseGeometryError(
            f"{where} is only {dims} voxels; a breast MRI has at least {MIN_VOXELS_PER_AXIS} voxels along each axis."
        )
    fov_mm = [n * d for n, d in zip(study.shape, study.spacing_mm, strict=True)]
    if min(fov_mm) < MIN_FIELD_OF_VIEW_MM:
        raise PhaseGeometryError(
            f"{where} covers only {' x '.join(f'{v:.0f}' for v in fov_mm)} mm; a breast MRI covers at least "
            f"{MIN_FIELD_OF_VIEW_MM:.0f} mm along each axis (check the voxel size in the file)."
        )
    for k, phase in enumerate(study.phases):
        finite = phase[np.isfinite(phase)]
        if finite.size == 0 or float(finite.max()) == float(finite.min()):
            value = "not a number" if finite.size == 0 else f"{float(finite.min()):g}"
            raise NoSignalMRIError(
                f"{where} has no signal in phase {k + 1} (every voxel is {value}); the image is blank or was "
                "exported without its pixel data."
            )


def read_mask(path: str | os.PathLike[str], study: MRIStudy) -> np.ndarray:
    """A tumour mask (NIfTI, non-zero = tumour) on ``study``'s grid → (I, J, K) bool in canonical order."""
    p = Path(path)
    check_file(p)
    kind = sniff(p)
    if kind == "gzip-damaged":
        raise CorruptMRIError(f"The compressed mask {describe(p)} is damaged and cannot be unpacked.")
    if kind != "nifti":
        raise UnsupportedMRIFormatError(f"The tumour mask {describe(p)} must be a NIfTI file (.nii or .nii.gz).")
    data, affine = read_nifti_file(p)
    if data.ndim == 4:
        if data.shape[3] != 1:
            raise MaskError(f"The tumour mask {describe(p)} has {data.shape[3]} volumes; a mask is one 3D volume.")
        data = data[..., 0]
    data, affine = canonical(data, affine)
    diff = geometry_difference(study.shape, study.affine, data.shape, affine)
    if diff is not None:
        raise MaskMismatchError(
            f"The tumour mask {describe(p)} does not match the MRI: it {diff}. Draw it on the MRI's own grid "
            "(same shape, voxel size, orientation and position)."
        )
    mask = data > 0.5
    if not mask.any():
        raise EmptyMaskError(
            f"The tumour mask {describe(p)} marks no voxel; leave the mask out rather than send an empty one."
        )
    return mask
