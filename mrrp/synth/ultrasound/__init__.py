"""Synthetic breast ultrasound (B-mode, linear probe) with a ground-truth lesion mask, plus PNG and DICOM writers.

:func:`render_ultrasound` draws what :func:`mrrp.synth.biology.us_findings_from_latent` describes: a
hypoechoic mass of the given size, aspect ratio, margin, echo pattern and posterior features, inside
layered breast anatomy (skin, subcutaneous fat lobules with Cooper's ligaments, fibroglandular tissue,
retromammary fat, pectoral muscle with striations, chest wall). The image model is the usual
envelope-detection one::

    iq        = PSF ⊛ (backscatter * posterior_column * scatterers) + noise_iq
    amplitude = |iq| * depth_gain * gain          (depth_gain: attenuation minus time-gain compensation)
    grey      = 255 * (amplitude / A_REF) ** GAMMA

``scatterers`` is circular complex white Gaussian noise, so where the tissue is uniform the envelope is
Rayleigh distributed (fully developed speckle), multiplicative and spatially correlated over the PSF
(grain size = PSF width * ``speckle_scale``); see :func:`speckle_iq`. A mild power-law compression
keeps the grey-level statistics Rayleigh-like (a homogeneous patch has a coefficient of variation of
about 0.35; 0.52 before compression) rather than log-flattened.

:func:`image_statistics` measures the drawn image the way a reader would (area, boundary irregularity,
posterior darkening, contrast, depth/width), so tests and model sanity checks can verify that the image
tracks the biology. :func:`save_dicom` writes a valid Ultrasound Image Storage file whose header carries
realistic *fake* identifiers (:func:`fake_identity`), so de-identification can be tested; nothing is
burned into the pixels.

Units are in the names: ``*_mm`` millimetres, ``*_px`` pixels, ``*_db`` decibels.

The package: :mod:`.physics` (constants, :class:`UltrasoundImage`, speckle and smooth random fields),
:mod:`.anatomy` (normal breast layers), :mod:`.lesion` (the lesion's shape and spicules),
:mod:`.render` (:func:`render_ultrasound`), :mod:`.measure` (:func:`image_statistics`),
:mod:`.identity` (:func:`fake_identity`), :mod:`.writers` (:func:`save_png`, :func:`save_dicom`).
"""

from mrrp.synth.ultrasound.identity import (
    FAMILY_NAMES,
    GIVEN_NAMES,
    INSTITUTIONS,
    STAFF_GIVEN_NAMES,
    FakeIdentity,
    age_on,
    fake_identity,
)
from mrrp.synth.ultrasound.measure import image_statistics
from mrrp.synth.ultrasound.physics import (
    A_REF,
    ATTENUATION_DB_PER_MM,
    CHEST_WALL_ECHO,
    FAT_ECHO,
    FIBROGLANDULAR_ECHO,
    GAMMA,
    LESION_BOTTOM_FRACTION,
    LESION_ECHO,
    MARGINS,
    MAX_LESION_DEPTH_FRACTION,
    MAX_LESION_WIDTH_FRACTION,
    MUSCLE_ECHO,
    NOISE_FLOOR,
    PSF_AXIAL_SIGMA_MM,
    PSF_LATERAL_SIGMA_MM,
    RETROMAMMARY_FAT_ECHO,
    TGC_COMPENSATION,
    VIEWS,
    UltrasoundImage,
    speckle_iq,
)
from mrrp.synth.ultrasound.render import render_ultrasound
from mrrp.synth.ultrasound.writers import save_dicom, save_png

__all__ = [
    "ATTENUATION_DB_PER_MM",
    "A_REF",
    "CHEST_WALL_ECHO",
    "FAMILY_NAMES",
    "FAT_ECHO",
    "FIBROGLANDULAR_ECHO",
    "GAMMA",
    "GIVEN_NAMES",
    "INSTITUTIONS",
    "LESION_BOTTOM_FRACTION",
    "LESION_ECHO",
    "MARGINS",
    "MAX_LESION_DEPTH_FRACTION",
    "MAX_LESION_WIDTH_FRACTION",
    "MUSCLE_ECHO",
    "NOISE_FLOOR",
    "PSF_AXIAL_SIGMA_MM",
    "PSF_LATERAL_SIGMA_MM",
    "RETROMAMMARY_FAT_ECHO",
    "STAFF_GIVEN_NAMES",
    "TGC_COMPENSATION",
    "VIEWS",
    "FakeIdentity",
    "UltrasoundImage",
    "age_on",
    "fake_identity",
    "image_statistics",
    "render_ultrasound",
    "save_dicom",
    "save_png",
    "speckle_iq",
]
