"""DICOM Modality codes in the words a clinician would use, shared by the ultrasound and MRI readers.

Each reader refuses the images that are not its own with these names ("... is a mammogram (modality MG),
not an ultrasound").
"""

from __future__ import annotations

IMAGE_MODALITY_NAMES: dict[str, str] = {
    "CT": "a CT image",
    "MR": "an MRI image",
    "MG": "a mammogram",
    "US": "an ultrasound image",
    "SM": "a whole-slide microscopy image",
    "CR": "an X-ray (CR) image",
    "DX": "an X-ray (DX) image",
    "PT": "a PET image",
    "NM": "a nuclear medicine image",
    "XA": "an X-ray angiography image",
    "RF": "a fluoroscopy image",
    "OP": "an ophthalmic photograph",
    "IO": "an intra-oral X-ray",
    "PX": "a panoramic dental X-ray",
    "ECG": "an ECG",
    "OT": "an 'other modality' image",
    "SC": "a secondary capture (screenshot)",
    "RTIMAGE": "a radiotherapy image",
}

# Objects that carry no pixels at all.
NO_IMAGE_MODALITY_NAMES: dict[str, str] = {
    "SR": "a structured report",
    "DOC": "an encapsulated document",
    "KO": "a key object selection",
    "PR": "a presentation state",
    "SEG": "a segmentation",
    "RTSTRUCT": "a radiotherapy structure set",
    "REG": "a registration",
}
