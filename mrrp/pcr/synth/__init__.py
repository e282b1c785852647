"""``mrrp pcr-synth``: a synthetic multi-site breast DCE-MRI cohort whose pCR model is known.

Each patient is drawn in three steps:

1. **Biology and clinical record.** Molecular subtype (site-specific case mix) → ER, PR, HER2, Ki-67,
   grade, age, menopausal status; tumour diameter → T stage; N stage; and one latent *resistance*
   factor ``r ~ N(0, 1)`` that the record does not show.
2. **Image.** A one-breast field of view (128 x 128 x 96 mm, RAS+): fat, fibroglandular tissue whose
   amount and background enhancement follow age and menopausal status, skin, pectoral muscle, a dark
   thorax with a strongly enhancing heart (blood pool: the classic distractor on breast MRI), and a
   lobulated tumour with wash-in/wash-out kinetics, internal heterogeneity (texture and a necrotic core)
   and peritumoral oedema. Heterogeneity and oedema rise with ``r``: the image shows what the record cannot.
3. **Outcome.** ``logit P(pCR) = b0 + subtype + Ki-67 - r - size`` (see :func:`pcr_logit`); the label is a
   Bernoulli draw from it, so the oracle AUC of every split is known (``cohort.json``).

Sites differ as scanners do: voxel size and slice thickness, noise, bias field, T1 contrast (a gamma
on signal), gain, contrast dose/timing and the number of post-contrast phases; and as hospitals do:
case mix (a referral centre sees more HER2+ and triple-negative disease, so a higher pCR rate). One site
is held out entirely as external validation. Files are written as a hospital would send them: DICOM
series (folders or zips, some as one series per phase) for some patients, 4D or per-phase 3D NIfTI for
others, in RAS or LPS voxel order; tumour masks as NIfTI. Every patient depends only on the cohort seed
and its index, so the cohort is identical for any number of worker processes.

Layout of ``DIR``::

    manifest.csv     one row per patient (mrrp.pcr.manifest); paths relative to DIR
    truth.csv        latent resistance, tumour parameters, true pCR probability
    cohort.json      parameters, seed, counts, pCR rates and oracle AUC per split and site
    patients/<id>/   dicom/ or dicom.zip or dce.nii.gz or phase_<k>.nii.gz, and mask.nii.gz

Modules: ``specs`` (sites, patients, the pCR model), ``phantom`` (``render_mri``), ``files`` (DICOM and NIfTI
as a hospital sends them) and ``cohort`` (``write_pcr_cohort``). Callers import from ``mrrp.pcr.synth``.
"""

from __future__ import annotations

from mrrp.pcr.synth.cohort import write_pcr_cohort
from mrrp.pcr.synth.files import dicom_series_files, to_voxel_order, write_patient
from mrrp.pcr.synth.phantom import RenderedMRI, native_shape, render_mri
from mrrp.pcr.synth.specs import (
    DEFAULT_SITES,
    FORMATS,
    FOV_MM,
    PCR_INTERCEPT,
    SITE_SHARES,
    SITES,
    SPLIT_FRACTIONS,
    UNKNOWN_RATE,
    PatientSpec,
    Site,
    draw_spec,
    generate_specs,
    pcr_logit,
)

__all__ = [
    "DEFAULT_SITES",
    "FORMATS",
    "FOV_MM",
    "PCR_INTERCEPT",
    "SITE_SHARES",
    "SITES",
    "SPLIT_FRACTIONS",
    "UNKNOWN_RATE",
    "PatientSpec",
    "Site",
    "draw_spec",
    "generate_specs",
    "pcr_logit",
    "RenderedMRI",
    "native_shape",
    "render_mri",
    "dicom_series_files",
    "to_voxel_order",
    "write_patient",
    "write_pcr_cohort",
]
