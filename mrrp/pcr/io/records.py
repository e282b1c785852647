"""What the reader returns: the examination as read (MRIStudy) and the patient on the working grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MRIStudy:
    """One DCE examination in closest-canonical RAS+ voxel order."""

    phases: np.ndarray  # (P, I, J, K) float32, P >= MIN_PHASES, phase 0 = pre-contrast
    affine: np.ndarray  # (4, 4) voxel index → RAS+ millimetres
    source_format: str  # "dicom", "nifti-4d" or "nifti-3d"
    source_name: str  # file or folder name only, never a path or a patient identifier
    removed_identifiers: list[str] = field(default_factory=list)  # DICOM attribute names stripped, not values

    @property
    def n_phases(self) -> int:
        return int(self.phases.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.phases.shape[1:])  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))


@dataclass
class WorkingVolume:
    """One patient on the working grid, ready for the model."""

    channels: np.ndarray  # (3, X, Y, Z) float32: pre-contrast, early enhancement, late change (÷ pre-contrast scale)
    phases: np.ndarray  # (P, X, Y, Z) float32, every phase ÷ the same scale (for display)
    mask: np.ndarray | None  # (X, Y, Z) bool tumour mask on the working grid, or None
    scale: float  # robust pre-contrast intensity (99th percentile inside the body) used to normalise
    native_spacing_mm: tuple[float, float, float]
    native_shape: tuple[int, int, int]
    n_phases: int
    source_format: str
    affine: np.ndarray  # (4, 4) working voxel index → RAS+ mm (axis-aligned, centred on the native volume)
