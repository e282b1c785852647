"""De-identification of a DICOM dataset (DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile).

Used by every reader that parses DICOM (ultrasound frames here, MRI series in :mod:`mrrp.pcr`), always
the moment the file is parsed, before any other code looks at the dataset. It returns the *names* of
what it removed, never their values, and logs nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

# Attributes the basic profile removes or blanks that are not caught by the VR rules below (every PN,
# DA, DT and TM element anywhere is removed; so are private tags, overlays and curves). We remove rather
# than blank: the dataset is never written back as a conformant file, so type-2 presence is moot.
_REMOVE_KEYWORDS = frozenset(
    {
        # Patient
        "PatientID",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientBirthName",
        "PatientMotherBirthName",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientTelecomInformation",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "MedicalRecordLocator",
        "PatientAge",
        "PatientSex",
        "PatientSize",
        "PatientWeight",
        "EthnicGroup",
        "Occupation",
        "AdditionalPatientHistory",
        "PatientComments",
        "MilitaryRank",
        "BranchOfService",
        "MedicalAlerts",
        "Allergies",
        "CountryOfResidence",
        "RegionOfResidence",
        "PatientReligiousPreference",
        "PatientInsurancePlanCodeSequence",
        "PatientPrimaryLanguageCodeSequence",
        "PatientState",
        "PregnancyStatus",
        "SmokingStatus",
        "LastMenstrualDate",
        "PatientSexNeutered",
        "ReferencedPatientSequence",
        "ReferencedPatientPhotoSequence",
        "ResponsibleOrganization",
        "PatientBirthTime",
        "PatientBirthDateInAlternativeCalendar",
        # Visit / order
        "AccessionNumber",
        "IssuerOfAccessionNumberSequence",
        "StudyID",
        "AdmissionID",
        "IssuerOfAdmissionIDSequence",
        "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence",
        "CurrentPatientLocation",
        "PatientInstitutionResidence",
        "ServiceEpisodeID",
        "ServiceEpisodeDescription",
        "VisitComments",
        "ReasonForStudy",
        "ReasonForTheRequestedProcedure",
        "RequestingService",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "RequestedProcedureComments",
        "RequestAttributesSequence",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepDescription",
        "PerformedProcedureStepID",
        "PerformedProcedureStepDescription",
        "PerformedLocation",
        "PerformedStationName",
        "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest",
        "OrderEnteredBy",
        "OrderEntererLocation",
        "OrderCallbackPhoneNumber",
        "ImagingServiceRequestComments",
        "InterpretationID",
        "ReferencedStudySequence",
        "ReferencedPerformedProcedureStepSequence",
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
        # Institution / staff / device
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "InstitutionalDepartmentTypeCodeSequence",
        "InstitutionCodeSequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "ReferringPhysicianIdentificationSequence",
        "ConsultingPhysicianIdentificationSequence",
        "PhysiciansOfRecordIdentificationSequence",
        "PerformingPhysicianIdentificationSequence",
        "PhysiciansReadingStudyIdentificationSequence",
        "OperatorIdentificationSequence",
        "StationName",
        "DeviceSerialNumber",
        "DeviceUID",
        "PlateID",
        "DetectorID",
        "GantryID",
        "CassetteID",
        "ScheduledStationName",
        "ScheduledProcedureStepLocation",
        "SourceApplicationEntityTitle",
        "SendingApplicationEntityTitle",
        "ReceivingApplicationEntityTitle",
        "PrivateInformation",
        "PrivateInformationCreatorUID",
        # Free text that often carries names or dates
        "ImageComments",
        "FrameComments",
        "AcquisitionComments",
        "TextComments",
        "TextString",
        "DerivationDescription",
        "ContentSequence",
        "OriginalAttributesSequence",
        "ModifiedAttributesSequence",
        "DigitalSignaturesSequence",
        "AcquisitionContextSequence",
        "IconImageSequence",
        "GraphicAnnotationSequence",
        "ClinicalTrialSponsorName",
        "ClinicalTrialSubjectID",
        "ClinicalTrialSubjectReadingID",
        "ClinicalTrialSiteID",
        "ClinicalTrialSiteName",
        "ClinicalTrialProtocolID",
        "ClinicalTrialProtocolName",
        "ClinicalTrialTimePointID",
        "ClinicalTrialTimePointDescription",
        "ClinicalTrialCoordinatingCenterName",
    }
)
# Date/time attributes (as well as names) can turn up under odd VRs in old files; the VR rule covers the rest.
_REMOVE_VRS = frozenset({"PN", "DA", "DT", "TM"})
# Overlay (60xx) and curve (50xx) groups may hold burned-in text or graphics.
_REMOVE_GROUP_RANGES = ((0x5000, 0x50FF), (0x6000, 0x60FF))

# A fresh salt per process: UIDs map consistently within one run (images of one study stay linked)
# but cannot be recomputed from the originals by anyone else.
_UID_SALT = secrets.token_hex(16)
_UID_ROOT = "2.25."  # UUID-derived UIDs need no registered root

_DEIDENTIFICATION_METHOD = "PS3.15 Basic Profile (mrrp)"  # LO: at most 64 characters


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


def deidentify(ds: Any) -> list[str]:
    """Strip identifying attributes from a pydicom Dataset in place; returns the names of those removed or
    replaced (never their values), sorted.

    Removes every person name (PN), date and time (DA/DT/TM) at any depth, the basic-profile identifiers
    (patient ID, accession number, institution, station, device serial number, study ID, descriptions, ...),
    private tags, overlays and curves; replaces instance UIDs (including the file meta's) with salted
    hashes; blanks the 128-byte preamble; and records PatientIdentityRemoved/DeidentificationMethod.
    Pixel data is not read, so this is cheap even for large files.
    """
    from pydicom.tag import Tag

    pixel_tags = {Tag(0x7FE0, 0x0010), Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009)}
    removed: set[str] = set()

    def visit(dataset: Any) -> None:
        for tag in list(dataset.keys()):
            if tag in pixel_tags:
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
            if elem.keyword in _REMOVE_KEYWORDS or elem.VR in _REMOVE_VRS:
                del dataset[tag]
                removed.add(name)
            elif elem.VR == "UI" and not _keeps_uid(elem.keyword):
                if elem.VM > 1:
                    elem.value = [_new_uid(str(v)) for v in elem.value]
                elif elem.value:
                    elem.value = _new_uid(str(elem.value))
                else:
                    continue
                removed.add(name)
            elif elem.VR == "SQ" and elem.value is not None:
                for item in elem.value:
                    visit(item)

    visit(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        visit(meta)
    if getattr(ds, "preamble", None):
        ds.preamble = b"\0" * 128  # the preamble is free for applications and can smuggle data (TIFF hybrids)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = _DEIDENTIFICATION_METHOD
    return sorted(removed)
