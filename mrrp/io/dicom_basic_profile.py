"""DICOM PS3.15 Table E.1-1 (Basic Application Level Confidentiality Profile) as a table of actions.

The table is not typed in here: it comes from ``dicom-anonymizer`` (Kitware's maintained package, which
transcribes Table E.1-1 from the standard's XML for each edition), newest edition shipped first
(:data:`PREFERRED_EDITIONS`). This module only turns its per-action lists into one lookup,
tag → action code, plus the masked entries (overlay and curve groups ``50xx``/``60xx``).

Action codes are the standard's: ``D`` dummy value, ``Z`` zero-length (or dummy), ``X`` remove, ``K`` keep,
``C`` clean, ``U`` replace UID, and the combinations ``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``.
:mod:`mrrp.io.dicom_deid` applies them. The readers' pixel and geometry attributes (pixel data,
spacing, orientation, position, ultrasound regions) are not in Table E.1-1, so the profile keeps them;
:data:`READER_NEEDS` names them and a test checks that the table never touches one.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

# dicom-anonymizer's modules, one per edition of the standard; the first that is installed is used.
PREFERRED_EDITIONS = ("dicomfields_2026c", "dicomfields_2024b", "dicomfields_2023")

# The package's list names → the standard's action codes (Table E.1-1's column "Basic Prof.").
_LIST_ACTIONS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}

# What the readers need and the basic profile keeps (not listed in Table E.1-1, so retained): pixels,
# their encoding, calibration, geometry, and what orders and groups the phases of an MRI series.
READER_NEEDS = (
    "PixelData",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SequenceOfUltrasoundRegions",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "Modality",
    "SOPClassUID",
    "TemporalPositionIdentifier",
    "TriggerTime",
    "SeriesNumber",
    "BurnedInAnnotation",
)


@dataclass(frozen=True)
class BasicProfile:
    """Table E.1-1 as lookups: exact tags, and (group, element, group mask, element mask) ranges."""

    edition: str  # e.g. "2026c"
    actions: dict[int, str]  # tag as int (group << 16 | element) → action code
    masked: tuple[tuple[int, int, int, int, str], ...]  # (group, element, group mask, element mask, code)

    def action(self, tag: int) -> str | None:
        """The action for ``tag`` (an int or pydicom Tag), or None when the profile keeps it."""
        code = self.actions.get(int(tag))
        if code is not None:
            return code
        group, element = int(tag) >> 16, int(tag) & 0xFFFF
        for g, e, g_mask, e_mask, masked_code in self.masked:
            if group & g_mask == g & g_mask and element & e_mask == e & e_mask:
                return masked_code
        return None


@functools.cache
def basic_profile() -> BasicProfile:
    """The table of the newest edition dicom-anonymizer ships (loaded once; about 650 attributes)."""
    for name in PREFERRED_EDITIONS:
        try:
            module = importlib.import_module(f"dicomanonymizer.dicom_anonymization_databases.{name}")
        except ModuleNotFoundError:
            continue
        actions: dict[int, str] = {}
        masked: list[tuple[int, int, int, int, str]] = []
        for list_name, code in _LIST_ACTIONS.items():
            for entry in getattr(module, list_name):
                if len(entry) == 2:
                    # An attribute under two actions takes the stricter: removal wins.
                    tag = entry[0] << 16 | entry[1]
                    actions[tag] = _stricter(actions.get(tag), code)
                else:
                    masked.append((entry[0], entry[1], entry[2], entry[3], code))
        return BasicProfile(name.removeprefix("dicomfields_"), actions, tuple(masked))
    raise RuntimeError(
        "The DICOM de-identification table is missing; install the package 'dicom-anonymizer' "
        "(pip install dicom-anonymizer)."
    )


def _stricter(a: str | None, b: str) -> str:
    if a is None:
        return b
    return a if a.startswith("X") or not b.startswith("X") else b
