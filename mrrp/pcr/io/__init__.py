"""Read breast DCE-MRI (DICOM series or NIfTI) and a tumour mask, check their geometry, resample to the working grid.

Accepted inputs (``read_mri``):
- a DICOM series as a folder or a zip: the pre-contrast and at least two post-contrast phases, either as
  one series with TemporalPositionIdentifier per phase or as one series per phase;
- NIfTI: one 4D file (phases along the 4th axis) or several 3D files, one per phase, in phase order
  (a folder or zip of 3D files is read in natural name order: ``phase_0``, ``phase_1``, ... ``phase_10``).

Everything is converted to nibabel's closest-canonical RAS+ orientation, so a DICOM series (LPS) and
a NIfTI file stored in any axis order describe the same voxels the same way. A mask is accepted only
when, after that conversion, it has the MRI's shape, voxel size, orientation and position.

DICOM headers are de-identified (``mrrp.io.ultrasound.deidentify``) the moment each file is parsed;
nothing here logs, and messages name files, never patients. Every failure a user can cause is an
:class:`MRIError` subclass with one sentence for a clinician. Units are in the names (``*_mm``).

The package, one module per step: ``limits`` (what is accepted, the working grid), ``errors``, ``records``
(MRIStudy, WorkingVolume), ``files`` (sniffing and size checks), ``archive`` (safe zip unpacking), ``sources``
(files behind folders and zips), ``geometry`` (grid checks, RAS+ order), ``nifti``, ``dicom``, ``read``
(``read_mri``, ``read_mask``) and ``working`` (``to_working``). Callers import from ``mrrp.pcr.io``.
"""

from __future__ import annotations

from mrrp.pcr.io.errors import (
    CorruptMRIError,
    EmptyMaskError,
    EmptyMRIFileError,
    MaskError,
    MaskMismatchError,
    MRIError,
    MRINotFoundError,
    MRITooLargeError,
    NoSignalMRIError,
    NotMRIError,
    PhaseGeometryError,
    TooFewPhasesError,
    UnsupportedMRIFormatError,
)
from mrrp.pcr.io.limits import (
    ACCEPTED,
    GEOMETRY_ATOL_MM,
    MAX_FILE_BYTES,
    MAX_PLAUSIBLE_VOXEL_MM,
    MAX_VOXELS_PER_PHASE,
    MAX_VOXELS_TOTAL,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_RATIO,
    MAX_ZIP_TOTAL_BYTES,
    MIN_FIELD_OF_VIEW_MM,
    MIN_PHASES,
    MIN_PLAUSIBLE_VOXEL_MM,
    MIN_VOXELS_PER_AXIS,
    ORIENTATION_ATOL,
    WORKING_SHAPE,
    WORKING_SPACING_MM,
)
from mrrp.pcr.io.read import read_mask, read_mri
from mrrp.pcr.io.records import MRIStudy, WorkingVolume
from mrrp.pcr.io.working import to_working

__all__ = [
    "ACCEPTED",
    "GEOMETRY_ATOL_MM",
    "MAX_FILE_BYTES",
    "MAX_PLAUSIBLE_VOXEL_MM",
    "MAX_VOXELS_PER_PHASE",
    "MAX_VOXELS_TOTAL",
    "MAX_ZIP_MEMBERS",
    "MAX_ZIP_RATIO",
    "MAX_ZIP_TOTAL_BYTES",
    "MIN_FIELD_OF_VIEW_MM",
    "MIN_PHASES",
    "MIN_PLAUSIBLE_VOXEL_MM",
    "MIN_VOXELS_PER_AXIS",
    "ORIENTATION_ATOL",
    "WORKING_SHAPE",
    "WORKING_SPACING_MM",
    "CorruptMRIError",
    "EmptyMRIFileError",
    "EmptyMaskError",
    "MRIError",
    "MRINotFoundError",
    "MRIStudy",
    "MRITooLargeError",
    "MaskError",
    "MaskMismatchError",
    "NoSignalMRIError",
    "NotMRIError",
    "PhaseGeometryError",
    "TooFewPhasesError",
    "UnsupportedMRIFormatError",
    "WorkingVolume",
    "read_mask",
    "read_mri",
    "to_working",
]
