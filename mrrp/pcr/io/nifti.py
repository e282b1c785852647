"""NIfTI reading: one 4D file or one 3D file per phase, voxel limits checked before any data is decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrrp.pcr.io.errors import (
    CorruptMRIError,
    NoSignalMRIError,
    PhaseGeometryError,
    UnsupportedMRIFormatError,
    too_few_phases,
)
from mrrp.pcr.io.files import describe
from mrrp.pcr.io.geometry import canonical, geometry_difference, spacing_check, voxel_count_check
from mrrp.pcr.io.limits import MIN_PHASES
from mrrp.pcr.io.records import MRIStudy


def read_nifti_file(f: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (I, J, K[, T]) float32, affine) with the voxel limits checked before any data is decoded."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img = nib.load(str(f))
        shape = img.shape
    except (ImageFileError, OSError, EOFError, ValueError) as exc:
        raise CorruptMRIError(f"The NIfTI file {describe(f)} has a damaged header and cannot be read.") from exc
    if len(shape) == 5 and shape[3] == 1:
        shape = (*shape[:3], shape[4])  # (I, J, K, 1, T): the 5th axis is sometimes used for time
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise UnsupportedMRIFormatError(
            f"The NIfTI file {describe(f)} has {len(shape)} dimensions; an MRI phase is 3D and a dynamic series 4D."
        )
    voxel_count_check(shape, shape[3] if len(shape) == 4 else 1, f"The NIfTI file {describe(f)}")
    pixdim = _stored_pixdim_mm(f, img)
    if pixdim is not None and not np.all(np.isfinite(pixdim) & (pixdim > 0)):
        raise PhaseGeometryError(
            f"The NIfTI file {describe(f)} records a voxel size of {', '.join(f'{v:g}' for v in pixdim)} mm "
            "(pixdim); a voxel size must be positive, so the image cannot be placed in space."
        )
    affine = np.asarray(img.affine, dtype=np.float64)
    spacing_check(affine, f"The NIfTI file {describe(f)}")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except (OSError, EOFError, ValueError, Exception) as exc:  # zlib.error is not an OSError subclass
        raise CorruptMRIError(
            f"The NIfTI file {describe(f)} is truncated or damaged (its image data cannot be decoded); please export it again."
        ) from exc
    if not np.isfinite(data).any():
        raise NoSignalMRIError(f"The NIfTI file {describe(f)} holds no numbers (every voxel is NaN or infinite).")
    return np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0), affine


def _stored_pixdim_mm(f: Path, img) -> np.ndarray | None:
    """pixdim[1:4] as written in the file. nibabel replaces a 0 by 1 while loading, which would silently
    make a voxel of unknown size 1 mm; this reads the header again without that fix (None if not NIfTI)."""
    from nibabel.openers import ImageOpener

    header_class = type(img.header)
    if not hasattr(header_class, "from_fileobj") or "pixdim" not in img.header:
        return None
    try:
        with ImageOpener(str(f)) as fh:
            raw = header_class.from_fileobj(fh, check=False)
    except Exception:  # the header already loaded once; a second read that fails changes nothing
        return None
    return np.asarray(raw["pixdim"][1:4], dtype=np.float64)


def read_nifti_phases(files: list[Path], name: str) -> MRIStudy:
    volumes = [read_nifti_file(f) for f in files]
    four_d = [f for f, (d, _) in zip(files, volumes, strict=True) if d.ndim == 4 and d.shape[3] > 1]
    if four_d and len(files) > 1:
        raise UnsupportedMRIFormatError(
            f"{describe(four_d[0])} is a 4D series but other NIfTI files were given with it; provide one 4D file or "
            "one 3D file per phase."
        )
    if four_d:
        data, affine = volumes[0]
        phases = np.moveaxis(data, 3, 0)  # (T, I, J, K)
        fmt = "nifti-4d"
    else:
        first_shape, first_aff = volumes[0][0].shape[:3], volumes[0][1]
        for k, (f, (d, aff)) in enumerate(zip(files, volumes, strict=True)):
            diff = geometry_difference(first_shape, first_aff, d.shape[:3], aff)
            if diff is not None:
                raise PhaseGeometryError(
                    f"Phase {k + 1} ({describe(f)}) does not match phase 1 ({describe(files[0])}): it {diff}; all "
                    "phases must share one grid."
                )
        phases = np.stack([d.reshape(d.shape[:3]) for d, _ in volumes])
        affine = first_aff
        fmt = "nifti-3d"
    if phases.shape[0] < MIN_PHASES:
        raise too_few_phases(phases.shape[0], f"'{name}'")
    voxel_count_check(phases.shape[1:], phases.shape[0], f"'{name}'")
    data, affine = canonical(np.moveaxis(phases, 0, 3), affine)
    return MRIStudy(np.ascontiguousarray(np.moveaxis(data, 3, 0)), affine, fmt, name)
