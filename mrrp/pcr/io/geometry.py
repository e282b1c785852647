"""Grid checks shared by the DICOM and NIfTI readers: voxel limits, voxel size, RAS+ order, same-grid tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrrp.pcr.io.errors import MRITooLargeError, PhaseGeometryError
from mrrp.pcr.io.limits import (
    GEOMETRY_ATOL_MM,
    MAX_PLAUSIBLE_VOXEL_MM,
    MAX_VOXELS_PER_PHASE,
    MAX_VOXELS_TOTAL,
    MIN_PLAUSIBLE_VOXEL_MM,
    ORIENTATION_ATOL,
)


def voxel_count_check(shape: Sequence[int], n_phases: int, what: str) -> None:
    per_phase = int(np.prod([int(s) for s in shape[:3]]))
    if per_phase > MAX_VOXELS_PER_PHASE or per_phase * n_phases > MAX_VOXELS_TOTAL:
        dims = " x ".join(str(int(s)) for s in shape[:3])
        raise MRITooLargeError(
            f"{what} is {dims} voxels x {n_phases} phases, beyond the safe limit of "
            f"{MAX_VOXELS_PER_PHASE / 1e6:g} million voxels per phase; please provide a cropped or downsampled series."
        )


def spacing_check(affine: np.ndarray, what: str) -> None:
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    if (
        not np.all(np.isfinite(affine))
        or np.any(zooms < MIN_PLAUSIBLE_VOXEL_MM)
        or np.any(zooms > MAX_PLAUSIBLE_VOXEL_MM)
    ):
        raise PhaseGeometryError(
            f"{what} does not record a plausible voxel size ({', '.join(f'{z:.3g}' for z in zooms)} mm); "
            "it cannot be placed in space."
        )


def canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(I, J, K[, P]) data and affine → closest-canonical RAS+ voxel order (axis permutations and flips only)."""
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    ornt = io_orientation(affine)
    out = apply_orientation(data, ornt)
    new_affine = affine @ inv_ornt_aff(ornt, data.shape[:3])
    return np.ascontiguousarray(out), new_affine


def geometry_difference(shape_a, aff_a, shape_b, aff_b) -> str | None:
    """A clinician-readable description of how grid b differs from grid a, or None if they are the same grid."""
    import nibabel as nib

    if tuple(shape_a) != tuple(shape_b):
        return f"is {' x '.join(map(str, shape_b))} voxels instead of {' x '.join(map(str, shape_a))}"
    za, zb = np.linalg.norm(aff_a[:3, :3], axis=0), np.linalg.norm(aff_b[:3, :3], axis=0)
    if not np.allclose(za, zb, atol=GEOMETRY_ATOL_MM, rtol=1e-3):
        return (
            f"has voxels of {' x '.join(f'{z:.3g}' for z in zb)} mm instead of {' x '.join(f'{z:.3g}' for z in za)} mm"
        )
    if not np.allclose(aff_a[:3, :3] / za, aff_b[:3, :3] / zb, atol=ORIENTATION_ATOL):
        ca, cb = "".join(nib.aff2axcodes(aff_a)), "".join(nib.aff2axcodes(aff_b))
        return f"is oriented differently ({cb} instead of {ca})" if ca != cb else "is tilted differently"
    shift = float(np.linalg.norm(aff_a[:3, 3] - aff_b[:3, 3]))
    if shift > max(GEOMETRY_ATOL_MM, 0.01 * float(za.min())):
        return f"is shifted by {shift:.1f} mm"
    return None
