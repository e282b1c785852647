"""Every failure a user can cause while giving an MRI or a mask: one sentence for a clinician each."""

from __future__ import annotations

from mrrp.errors import InputError
from mrrp.pcr.io.limits import MIN_PHASES


class MRIError(InputError):
    """An MRI input or its mask cannot be used."""


class MRINotFoundError(MRIError):
    """The path does not exist."""


class EmptyMRIFileError(MRIError):
    """A file has zero bytes."""


class UnsupportedMRIFormatError(MRIError):
    """Not DICOM, NIfTI or a zip of them (or an encoding this installation cannot decode)."""


class CorruptMRIError(MRIError):
    """The file looks like DICOM/NIfTI/zip but cannot be decoded (truncated or damaged)."""


class NotMRIError(MRIError):
    """A DICOM image of another modality (CT, mammography, ultrasound, ...)."""


class TooFewPhasesError(MRIError):
    """Fewer than the pre-contrast plus two post-contrast phases."""


class PhaseGeometryError(MRIError):
    """The phases do not share one grid, or a series' slices are missing, duplicated or unevenly spaced."""


class NoSignalMRIError(MRIError):
    """A phase has no signal: every voxel blank, NaN or the same value."""


class MRITooLargeError(MRIError):
    """A file, a zip (e.g. a zip bomb) or a volume is beyond the safe limits."""


class MaskError(MRIError):
    """The tumour mask cannot be used."""


class MaskMismatchError(MaskError):
    """The mask's shape, voxel size, orientation or position differs from the MRI's."""


class EmptyMaskError(MaskError):
    """The mask marks no voxel."""


def too_few_phases(n: int, where: str) -> TooFewPhasesError:
    """The error for a study with only ``n`` phases (``where`` names the input, never a patient)."""
    found = "Only one contrast phase was" if n == 1 else f"Only {n} contrast phases were"
    return TooFewPhasesError(
        f"{found} found in {where}; pCR prediction needs the pre-contrast phase and at least two "
        f"post-contrast phases ({MIN_PHASES} in all)."
    )
