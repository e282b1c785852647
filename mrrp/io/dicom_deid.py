"""De-identification of a DICOM dataset: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Used by every reader that parses DICOM (ultrasound frames here, MRI series in :mod:`mrrp.pcr`), always
the moment the file is parsed, before any other code looks at the dataset. The actions come from the
standard's Table E.1-1 (:mod:`mrrp.io.dicom_basic_profile`, about 650 attributes, edition named there),
applied at every depth of nested sequences; on top of the table, stricter than the profile: every person
name and every date and time is removed (no "retain longitudinal temporal information" option), every
instance UID not in the table is replaced too, and private tags, overlays and curves go. It returns the
*names* of what it removed, never their values, and logs nothing.

Images whose pixels carry burned-in text (``BurnedInAnnotation = YES``) cannot be cleaned by editing the
header: :func:`refuse_burned_in_annotation` refuses them (the readers call it straight after
:func:`deidentify`); there is no masking option, because where a scanner burns its text varies.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from mrrp.errors import InputError
from mrrp.io.dicom_basic_profile import basic_profile

# Beyond Table E.1-1: issuers of identifiers, private information and the AE titles of the sending systems
# (they name the hospital's machines), removed too.
_ALSO_REMOVED = frozenset(
    {
        "IssuerOfAccessionNumberSequence",
        "IssuerOfPatientIDQualifiersSequence",
        "PatientBirthDateInAlternativeCalendar",
        "PrivateInformation",
        "PrivateInformationCreatorUID",
        "ReceivingApplicationEntityTitle",
        "SendingApplicationEntityTitle",
        "SourceApplicationEntityTitle",
    }
)
# Stricter than the profile: names, dates and times anywhere, whatever the table says about them.
_REMOVE_VRS = frozenset({"PN", "DA", "DT", "TM"})
# Overlay (60xx) and curve (50xx) groups may hold burned-in text or graphics (the table removes their
# data and comments; the whole groups go).
_REMOVE_GROUP_RANGES = ((0x5000, 0x50FF), (0x6000, 0x60FF))
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})

# Dummy values ("D") by VR, each valid for its VR; UIDs get a new UID instead.
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, Any] = {
    "AE": _DUMMY_TEXT,
    "AS": "000Y",
    "CS": _DUMMY_TEXT,
    "DS": "0",
    "IS": "0",
    "LO": _DUMMY_TEXT,
    "LT": _DUMMY_TEXT,
    "SH": _DUMMY_TEXT,
    "ST": _DUMMY_TEXT,
    "UC": _DUMMY_TEXT,
    "UT": _DUMMY_TEXT,
    "UR": "",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "AT": 0,
    "OB": b"\0\0",
    "OD": b"\0" * 8,
    "OF": b"\0" * 4,
    "OL": b"\0" * 4,
    "OV": b"\0" * 8,
    "OW": b"\0\0",
    "UN": b"\0\0",
}

# A fresh salt per process: UIDs map consistently within one run (images of one study stay linked)
# but cannot be recomputed from the originals by anyone else.
_UID_SALT = secrets.token_hex(16)
_UID_ROOT = "2.25."  # UUID-derived UIDs need no registered root

# CID 7050 "De-identification Method": the basic profile, as the standard codes it.
_BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")


def _new_uid(value: str) -> str:
    # 2.25.<decimal of 128 bits>: the standard form for UIDs that are not under an org root.
    digest = hashlib.sha256(f"{_UID_SALT}:{value}".encode()).digest()[:16]
    return _UID_ROOT + str(int.from_bytes(digest, "big"))


def _keeps_uid(keyword: str) -> bool:
    """Class and syntax UIDs say *what* an object is and must survive; instance UIDs say *which* one."""
    return keyword.endswith("ClassUID") or keyword in {
        "TransferSyntaxUID",
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
    }


class BurnedInAnnotationError(InputError):
    """A DICOM image whose pixels carry burned-in text (BurnedInAnnotation = YES): it may show identifiers."""


def burned_in_annotation(ds: Any) -> bool | None:
    """The dataset's BurnedInAnnotation: True (YES), False (NO) or None (not stated)."""
    value = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    return {"YES": True, "NO": False}.get(value)


def refuse_burned_in_annotation(ds: Any, file_label: str, error: type[InputError] = BurnedInAnnotationError) -> None:
    """Raise ``error`` (a :class:`BurnedInAnnotationError`, usually a reader's subclass of it) when the
    image is marked as having text burned into its pixels. ``file_label`` names the file, never a patient."""
    if burned_in_annotation(ds):
        raise error(
            f"The DICOM file {file_label} is marked as having text burned into the image (BurnedInAnnotation "
            "= YES), which may show the patient's name or other identifiers, so it is not used; please export "
            "the image without annotations."
        )


def _dummy(elem: Any) -> Any:
    if elem.VR == "UI":
        return [_new_uid(str(v)) for v in elem.value] if elem.VM > 1 else _new_uid(str(elem.value or ""))
    return _DUMMY_BY_VR.get(elem.VR, None)


def deidentify(ds: Any) -> list[str]:
    """Strip identifying attributes from a pydicom Dataset in place, by DICOM PS3.15 Table E.1-1; returns the
    names of those removed or replaced (never their values), sorted.

    Actions, at any depth of nested sequences: X (and every combination starting with X, and C) removes;
    Z and Z/D leave the attribute empty; D puts a dummy value of the attribute's VR (a sequence is emptied);
    U, and every instance UID the table does not list, becomes a salted hash (consistent within the
    process, so one study's images stay linked). Beyond the table: every PN, DA, DT and TM element, private
    tags, the overlay/curve groups and a few issuer and AE-title attributes are removed, and the 128-byte
    preamble is blanked. What the readers need (pixels, calibration, geometry) is not in the table and is
    kept. Records PatientIdentityRemoved, DeidentificationMethod and its code (113100, basic profile).
    Pixel data is not read, so this is cheap even for large files.
    """
    profile = basic_profile()
    removed: set[str] = set()

    def visit(dataset: Any) -> None:
        for tag in list(dataset.keys()):
            if int(tag) in _PIXEL_TAGS:
                continue  # never identifying, and reading it here would pull the whole image into memory
            if tag.is_private:
                del dataset[tag]
                removed.add(f"private {tag}")
                continue
            if any(lo <= tag.group <= hi for lo, hi in _REMOVE_GROUP_RANGES):
                del dataset[tag]
                removed.add(f"overlay/curve {tag}")
                continue
            elem = dataset[tag]
            name = elem.keyword or str(tag)
            action = profile.action(tag)
            if action is None and (elem.VR in _REMOVE_VRS or elem.keyword in _ALSO_REMOVED):
                action = "X"
            if action is None and elem.VR == "UI" and not _keeps_uid(elem.keyword):
                action = "U"
            if action is None or action == "K":
                if elem.VR == "SQ" and elem.value is not None:
                    for item in elem.value:
                        visit(item)
                continue
            if action[0] in "XC" or elem.VR in _REMOVE_VRS:
                del dataset[tag]
            elif elem.VR == "SQ":
                elem.value = []  # Z or D on a sequence: no items left to carry identifiers
            elif action == "U" or (action == "D" and elem.VR == "UI"):
                if elem.VR != "UI" or elem.value in (None, ""):
                    continue
                elem.value = _dummy(elem)
            elif action == "D":
                elem.value = _dummy(elem)
            else:  # Z, Z/D: zero length
                elem.value = None
            removed.add(name)

    visit(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        visit(meta)
    if getattr(ds, "preamble", None):
        ds.preamble = b"\0" * 128  # the preamble is free for applications and can smuggle data (TIFF hybrids)
    _record_method(ds, profile.edition)
    return sorted(removed)


def _record_method(ds: Any, edition: str) -> None:
    """PS3.15 E.1.1: say that and how the dataset was de-identified."""
    from pydicom.dataset import Dataset

    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "REMOVED"  # every date and time is gone
    ds.DeidentificationMethod = f"DICOM PS3.15 {edition} Basic Profile (mrrp)"  # LO: at most 64 characters
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = [code]


def is_dicom_file(data: bytes) -> bool:
    """True for the bytes of a DICOM file (PS3.10: a 128-byte preamble, then "DICM")."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def deidentified_dicom_bytes(data: bytes) -> bytes:
    """A DICOM file's bytes after :func:`deidentify`, written back as a DICOM file (pixels byte for byte).

    For keeping an upload on disk: what is stored is what a reader would see. Raises ValueError when the
    bytes are not a DICOM file pydicom can read and write again.
    """
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        deidentify(ds)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError("not a readable DICOM file") from exc
    return out.getvalue()
