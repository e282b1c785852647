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
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mrrp._fs import replace_dir_atomically
from mrrp._parallel import default_workers, parallel_map
from mrrp.errors import InputError
from mrrp.pcr.clinical import PCR_CLINICAL_FIELDS, SUBTYPES, ClinicalRecord
from mrrp.pcr.manifest import write_pcr_manifest

FOV_MM = (128.0, 128.0, 96.0)  # (x: right, y: anterior, z: superior)
FAT, FGT_PRE, TUMOUR_PRE, MUSCLE_PRE, SKIN_PRE, OEDEMA_PRE, HEART_PRE, THORAX_PRE = (
    1.0,
    0.45,
    0.42,
    0.35,
    0.6,
    0.3,
    0.4,
    0.05,
)  # (T1-weighted pre-contrast signal relative to fat)
UNKNOWN_RATE = 0.04  # each clinical field unknown with this probability (subtype: twice as often)


@dataclass(frozen=True)
class Site:
    """A scanner and a hospital."""

    name: str
    role: str  # "train" (split into train/val/test) or "external"
    spacing_mm: tuple[float, float, float]
    post_times_min: tuple[float, ...]  # acquisition times of the post-contrast phases after injection
    noise: float  # SD of complex Gaussian noise, relative to fat signal (magnitude → Rician)
    bias: float  # strength of the smooth multiplicative bias field
    bias_direction: tuple[float, float, float]
    gamma: float  # T1 contrast: signal ** gamma
    gain: float  # scanner units per unit of fat signal
    enhancement: float  # contrast dose / field strength scaling of every enhancement curve
    subtype_mix: tuple[float, float, float, float]  # P(luminal A, luminal B, HER2-enriched, triple-negative)
    orientation: str = "RAS"  # voxel order of NIfTI files written for this site


# One scanner per row, so the columns line up with Site's fields.
# fmt: off
SITES: dict[str, Site] = {
    s.name: s
    for s in (
        Site("site-a", "train", (2.0, 2.0, 3.0), (1.5, 6.0), 0.020, 0.10, (1.0, 0.3, 0.0), 1.00, 900.0, 1.00,
             (0.45, 0.30, 0.12, 0.13)),
        Site("site-b", "train", (1.6, 1.6, 2.4), (1.2, 4.0, 7.0), 0.030, 0.35, (0.2, 1.0, 0.4), 0.85, 2400.0, 1.10,
             (0.20, 0.25, 0.25, 0.30), orientation="LPS"),
        Site("site-c", "train", (2.5, 2.5, 4.0), (2.0, 6.5), 0.045, 0.20, (-0.6, 0.4, 1.0), 1.15, 600.0, 0.85,
             (0.50, 0.28, 0.10, 0.12)),
        Site("site-d", "external", (1.8, 1.8, 3.2), (1.0, 3.5, 6.5), 0.040, 0.25, (-1.0, -0.5, 0.3), 0.90, 1500.0,
             1.20, (0.35, 0.28, 0.17, 0.20), orientation="LPS"),
    )
}
# fmt: on
DEFAULT_SITES = tuple(SITES)
SITE_SHARES = {"site-a": 0.24, "site-b": 0.24, "site-c": 0.22, "site-d": 0.30}
SPLIT_FRACTIONS = (("train", 0.68), ("val", 0.16), ("test", 0.16))  # within each training site
FORMATS = ("dicom", "nifti-4d", "dicom-zip", "nifti-3d")  # cycled by patient index


@dataclass
class PatientSpec:
    """Everything that defines one synthetic patient (drawn by :func:`draw_spec`, rendered by :func:`render_mri`)."""

    patient_id: str
    site: str
    split: str
    seed: int
    subtype: str
    clinical: ClinicalRecord  # complete (no unknowns); the manifest hides some values
    resistance: float  # latent r ~ N(0, 1): heterogeneity, oedema, lower pCR
    diameter_mm: float
    heterogeneity: float  # 0..1
    oedema: float  # 0..1
    wash_in: float  # peak enhancement amplitude relative to fat
    washout_per_min: float  # > 0 wash-out, < 0 persistent enhancement
    bpe: float  # background parenchymal enhancement amplitude
    fgt_fraction: float  # share of the breast that is fibroglandular tissue
    pcr_probability: float = 0.0
    pcr: int = 0
    hidden_fields: tuple[str, ...] = ()
    file_format: str = "nifti-4d"
    extras: dict[str, float] = field(default_factory=dict)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


PCR_INTERCEPT = -1.95


def pcr_logit(spec: PatientSpec) -> float:
    """The known pCR model: subtype, HER2, Ki-67, tumour size and the image-visible resistance factor."""
    c = spec.clinical
    subtype_effect = {"luminal A": -1.0, "luminal B": 0.0, "HER2-enriched": 1.6, "triple-negative": 1.3}[spec.subtype]
    her2_in_luminal = 0.9 if (spec.subtype == "luminal B" and c["her2_status"] == "positive") else 0.0
    ki67 = 0.5 * (float(c["ki67_percent"]) - 30.0) / 20.0
    size = -0.35 * (spec.diameter_mm - 28.0) / 12.0
    return PCR_INTERCEPT + subtype_effect + her2_in_luminal + ki67 + size - 1.6 * spec.resistance


def draw_spec(rng: np.random.Generator, index: int, site: Site, split: str, seed: int) -> PatientSpec:
    """Draw one patient's biology, record and tumour from the generating model."""
    subtype = str(rng.choice(SUBTYPES, p=np.array(site.subtype_mix) / sum(site.subtype_mix)))
    tnbc, her2_enriched, lum_a = subtype == "triple-negative", subtype == "HER2-enriched", subtype == "luminal A"
    her2_pos = her2_enriched or (subtype == "luminal B" and rng.random() < 0.4)
    age = float(np.clip(rng.normal(53.0 - 6.0 * tnbc, 11.0), 25, 82))
    post = age + rng.normal(0, 3.0) > 50.5
    if subtype in ("luminal A", "luminal B"):
        er = float(np.round(np.clip(rng.beta(5, 1.3) * 100, 10, 100)))
        pr = float(np.round(np.clip(rng.beta(2.5, 1.2) * 100 if lum_a else rng.beta(1.2, 2.0) * 100, 0, 100)))
    else:
        er, pr = 0.0, 0.0
    ki67_ranges = {"luminal A": (5, 19), "luminal B": (20, 60), "HER2-enriched": (20, 70), "triple-negative": (30, 90)}
    lo, hi = ki67_ranges[subtype]
    ki67 = float(np.round(rng.uniform(lo, hi)))
    p_g3 = _sigmoid((ki67 - 35.0) / 10.0)
    grade = 3 if rng.random() < p_g3 else int(rng.choice([1, 2], p=[0.3 if lum_a else 0.1, 0.7 if lum_a else 0.9]))
    diameter = float(np.clip(rng.lognormal(math.log(28.0), 0.35), 10.0, 58.0))
    t_stage = "T4" if rng.random() < 0.04 else ("T1" if diameter <= 20 else "T2" if diameter <= 50 else "T3")
    n_idx = int(np.clip(rng.poisson(0.5 + 0.02 * (diameter - 20)), 0, 3))
    r = float(rng.normal())
    heterogeneity = _sigmoid(1.1 * r + rng.normal(0, 0.45))
    oedema = _sigmoid(-0.8 + 0.9 * tnbc + 0.8 * r + rng.normal(0, 0.5))
    wash_in = float(np.clip(1.15 + 0.2 * (her2_pos or tnbc) - 0.12 * r + rng.normal(0, 0.12), 0.6, 1.8))
    washout = float(0.04 + 0.03 * (ki67 - 35.0) / 20.0 + rng.normal(0, 0.03))
    bpe = float(np.clip((0.25 if not post else 0.1) + rng.normal(0, 0.05), 0.02, 0.45))
    fgt = float(np.clip((0.35 if not post else 0.2) + rng.normal(0, 0.08), 0.08, 0.55))
    clinical: ClinicalRecord = {
        "age_years": round(age),
        "menopausal_status": "post" if post else "pre",
        "er_percent": er,
        "pr_percent": pr,
        "her2_status": "positive" if her2_pos else "negative",
        "ki67_percent": ki67,
        "histological_grade": grade,
        "t_stage": t_stage,
        "n_stage": f"N{n_idx}",
        "molecular_subtype": subtype,
    }
    hidden = tuple(
        f.name for f in PCR_CLINICAL_FIELDS if rng.random() < UNKNOWN_RATE * (2 if f.name == "molecular_subtype" else 1)
    )
    spec = PatientSpec(
        patient_id=f"{site.name[-1].upper()}{index:04d}",
        site=site.name,
        split=split,
        seed=seed,
        subtype=subtype,
        clinical=clinical,
        resistance=r,
        diameter_mm=diameter,
        heterogeneity=heterogeneity,
        oedema=oedema,
        wash_in=wash_in,
        washout_per_min=washout,
        bpe=bpe,
        fgt_fraction=fgt,
        hidden_fields=hidden,
        file_format=FORMATS[index % len(FORMATS)],
    )
    spec.pcr_probability = _sigmoid(pcr_logit(spec))
    spec.pcr = int(rng.random() < spec.pcr_probability)
    return spec


def generate_specs(n: int, seed: int, sites: tuple[str, ...] = DEFAULT_SITES) -> list[PatientSpec]:
    """All patients of a cohort: sizes by SITE_SHARES, training sites split train/val/test, others external."""
    shares = np.array([SITE_SHARES[s] for s in sites], float)
    counts = np.floor(shares / shares.sum() * n).astype(int)
    counts[: n - counts.sum()] += 1
    specs: list[PatientSpec] = []
    index = 0
    for site_name, count in zip(sites, counts, strict=True):
        site = SITES[site_name]
        split_rng = np.random.default_rng([seed, 99, list(SITES).index(site_name)])
        if site.role == "external":
            splits = ["external"] * count
        else:
            bounds = np.cumsum([f for _, f in SPLIT_FRACTIONS]) * count
            splits = [
                next(s for (s, _), b in zip(SPLIT_FRACTIONS, bounds, strict=True) if k < round(b)) for k in range(count)
            ]
            split_rng.shuffle(splits)
        for k in range(count):
            index += 1
            pseed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
            specs.append(draw_spec(np.random.default_rng(pseed), index, site, splits[k], pseed))
    return specs


# --------------------------------------------------------------------------------------------------
# Rendering the MRI
# --------------------------------------------------------------------------------------------------


def native_shape(site: Site) -> tuple[int, int, int]:
    return tuple(int(round(f / s)) for f, s in zip(FOV_MM, site.spacing_mm, strict=True))  # type: ignore[return-value]


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_mm: float, spacing: tuple[float, ...]
) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``sigma_mm``."""
    from scipy import ndimage

    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), [sigma_mm / s for s in spacing])
    return (f - f.mean()) / (f.std() + 1e-6)


def _enhancement(t: np.ndarray | float, amplitude: float, tau_min: float, washout: float) -> np.ndarray | float:
    """Wash-in (1 - exp(-t/tau)) times wash-out exp(-k t): the classic DCE kinetic curve shapes."""
    return amplitude * (1.0 - np.exp(-np.asarray(t) / tau_min)) * np.exp(-washout * np.asarray(t))


@dataclass
class RenderedMRI:
    phases: np.ndarray  # (P, X, Y, Z) float32 scanner units, RAS+ voxel order (x = right, y = anterior, z = superior)
    mask: np.ndarray  # (X, Y, Z) bool tumour
    affine: np.ndarray  # (4, 4) RAS+ of the RAS-ordered arrays
    times_min: tuple[float, ...]  # 0 for the pre-contrast phase


def render_mri(spec: PatientSpec) -> RenderedMRI:
    """Draw the patient's DCE phases on her site's native grid."""
    from scipy import ndimage

    site = SITES[spec.site]
    rng = np.random.default_rng([spec.seed, 1])
    shape = native_shape(site)
    sp = site.spacing_mm
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, sp, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")  # mm, RAS, centred

    # Anatomy: chest wall across the posterior FOV, the breast a half-ellipsoid in front of it.
    y_cw = -34.0 + rng.normal(0, 3)
    rx, ry, rz = rng.uniform(48, 60), rng.uniform(55, 78), rng.uniform(38, 45)
    x0, z0 = rng.normal(0, 4), rng.normal(0, 3)
    rho = np.sqrt(((x - x0) / rx) ** 2 + ((y - y_cw) / ry) ** 2 + ((z - z0) / rz) ** 2)
    breast = (rho <= 1.0) & (y >= y_cw)
    skin = breast & (rho > 1.0 - 2.0 / ry)
    muscle = (y < y_cw) & (y >= y_cw - 9.0) & (np.abs(z - z0) < 46)
    thorax = y < y_cw - 9.0
    heart_c = (-38.0 + rng.normal(0, 4), y_cw - 40.0, z0 - 12.0)
    heart = ((x - heart_c[0]) / 34) ** 2 + ((y - heart_c[1]) / 26) ** 2 + ((z - heart_c[2]) / 30) ** 2 <= 1.0

    # Fibroglandular tissue: smooth texture, denser centrally, its share of the breast set by fgt_fraction.
    central = np.exp(-(((x - x0) ** 2 + (z - z0) ** 2) / (2 * (0.55 * rx) ** 2)))
    texture = _smooth_noise(rng, shape, 4.0, sp) + 1.6 * central
    inner = breast & ~skin
    threshold = np.quantile(texture[inner], 1.0 - spec.fgt_fraction) if inner.any() else np.inf
    fgt = inner & (texture > threshold)

    # Tumour: lobulated ellipsoid well inside the breast, centred where glandular tissue is.
    radius = spec.diameter_mm / 2.0
    axes_ratio = rng.uniform(0.8, 1.2, 3)
    depth = rng.uniform(0.25, 0.55) * ry
    centre = np.array([x0 + rng.normal(0, 0.2 * rx), y_cw + max(depth, radius + 8), z0 + rng.normal(0, 0.15 * rz)])
    lobes = _smooth_noise(rng, shape, max(3.0, 0.45 * radius), sp)
    dist = np.sqrt(
        ((x - centre[0]) / axes_ratio[0]) ** 2
        + ((y - centre[1]) / axes_ratio[1]) ** 2
        + ((z - centre[2]) / axes_ratio[2]) ** 2
    ) / (radius * (1.0 + 0.18 * lobes))  # < 1 inside
    tumour = (dist <= 1.0) & breast
    if not tumour.any():  # a tumour smaller than a voxel: keep the voxel nearest its centre
        tumour.flat[int(np.argmin(dist))] = True
    oedema_shell = breast & ~tumour & (dist <= 1.0 + 0.7 * spec.oedema) & (spec.oedema > 0.15)

    # Internal heterogeneity: texture plus a non-enhancing necrotic core that grows with heterogeneity.
    h = spec.heterogeneity
    inner_texture = 1.0 + 0.55 * h * _smooth_noise(rng, shape, 2.5, sp)
    necrosis = tumour & (dist < 0.75 * max(h - 0.35, 0.0) / 0.65)
    rim = 0.75 + 0.25 * np.clip(dist, 0, 1)  # peripheral (rim) enhancement, stronger when heterogeneous
    tumour_gain = np.clip(inner_texture * (1.0 - h * (1.0 - rim)), 0.2, None)
    tumour_gain[necrosis] = 0.12

    pre = np.zeros(shape, np.float32)
    pre[thorax] = THORAX_PRE
    pre[heart] = HEART_PRE
    pre[muscle] = MUSCLE_PRE
    pre[breast] = FAT
    pre[fgt] = FGT_PRE
    pre[skin] = SKIN_PRE
    pre[oedema_shell] = OEDEMA_PRE + 0.15 * (1 - spec.oedema)
    pre[tumour] = TUMOUR_PRE * (1.0 + 0.1 * h * _smooth_noise(rng, shape, 2.0, sp)[tumour])

    times = (0.0, *site.post_times_min)
    k = site.enhancement
    bias = np.exp(
        site.bias * (np.array(site.bias_direction) @ np.stack([x, y, z]).reshape(3, -1)).reshape(shape) / 64.0
        + 0.1 * site.bias * rng.normal() * (x / 64.0) ** 2
    )
    phases = []
    for t in times:
        s = pre.copy()
        if t > 0:
            s[fgt] += k * float(_enhancement(t, spec.bpe, 3.0, -0.02))
            s[muscle] += k * float(_enhancement(t, 0.12, 2.0, 0.0))
            s[skin] += k * float(_enhancement(t, 0.08, 2.0, 0.0))
            s[heart] += k * float(_enhancement(t, 2.2, 0.3, 0.12))
            s[oedema_shell] += k * float(_enhancement(t, 0.12 + 0.1 * spec.oedema, 2.5, 0.0))
            s[tumour] += k * tumour_gain[tumour] * float(_enhancement(t, spec.wash_in, 0.6, spec.washout_per_min))
        s = np.clip(s, 0, None) ** site.gamma
        s = ndimage.gaussian_filter(s, 0.5)  # partial volume over one native voxel
        s = s * bias
        noise_a = rng.normal(0, site.noise, shape)
        noise_b = rng.normal(0, site.noise, shape)
        s = np.sqrt((s + noise_a) ** 2 + noise_b**2)  # magnitude image: Rician noise
        phases.append((s * site.gain).astype(np.float32))
    affine = np.diag([*sp, 1.0])
    affine[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape, sp, strict=True)]
    spec.extras = {
        "tumour_voxels": float(tumour.sum()),
        "tumour_fraction": float(tumour.mean()),
        "necrosis_fraction": float(necrosis.sum() / max(tumour.sum(), 1)),
    }
    return RenderedMRI(np.stack(phases), tumour, affine, times)


# --------------------------------------------------------------------------------------------------
# Writing files as a hospital would send them
# --------------------------------------------------------------------------------------------------


def to_voxel_order(volume: np.ndarray, affine: np.ndarray, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """RAS-ordered (X, Y, Z[, P]) data → LPS voxel order (x and y reversed) with the matching affine, or unchanged."""
    if orientation == "RAS":
        return volume, affine
    flipped = volume[::-1, ::-1]
    aff = affine.copy()
    nx, ny = volume.shape[:2]
    aff[:3, 3] = (affine @ np.array([nx - 1, ny - 1, 0, 1.0]))[:3]
    aff[:3, 0], aff[:3, 1] = -affine[:3, 0], -affine[:3, 1]
    return np.ascontiguousarray(flipped), aff


def _save_nifti(data: np.ndarray, affine: np.ndarray, path: Path, dtype: type) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data.astype(dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def dicom_series_files(rendered: RenderedMRI, spec: PatientSpec, series_per_phase: bool) -> list[tuple[str, bytes]]:
    """Classic single-frame MR images, axial (rows → posterior, columns → left), with fake identifiers."""
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    def uid(*parts: object) -> str:
        return generate_uid(entropy_srcs=[str(spec.seed), *map(str, parts)])

    site = SITES[spec.site]
    sx, sy, sz = site.spacing_mm
    _, nx, ny, nz = rendered.phases.shape
    x_max = rendered.affine[0, 3] + (nx - 1) * sx
    y_max = rendered.affine[1, 3] + (ny - 1) * sy
    study_uid = uid("study")
    out = []
    for p, t in enumerate(rendered.times_min):
        series_uid = uid("series", p if series_per_phase else 0)
        volume = np.clip(np.round(rendered.phases[p]), 0, 65535).astype(np.uint16)
        for k in range(nz):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = uid("sop", p, k)
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
            ds.Modality = "MR"
            ds.PatientName = f"SYNTHETIC^{spec.patient_id}"  # fake identifiers: the reader must strip them
            ds.PatientID = f"SYN-{spec.seed % 10**8:08d}"
            ds.PatientBirthDate = "19700101"
            ds.StudyDate = "20250101"
            ds.AcquisitionTime = f"1200{p:02d}.000000"
            ds.InstitutionName = f"Synthetic hospital {spec.site}"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.SeriesNumber = 100 + (p if series_per_phase else 0)
            ds.InstanceNumber = k + 1 + (0 if series_per_phase else p * nz)
            ds.TemporalPositionIdentifier = p + 1
            ds.NumberOfTemporalPositions = len(rendered.times_min)
            ds.TriggerTime = float(t * 60_000.0)  # ms after injection
            ds.SeriesDescription = "DCE pre" if p == 0 else f"DCE post {p}"
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            z_mm = rendered.affine[2, 3] + k * sz
            ds.ImagePositionPatient = [float(-x_max), float(-y_max), float(z_mm)]  # RAS → LPS
            ds.PixelSpacing = [sy, sx]  # between rows (y), between columns (x)
            ds.SliceThickness = sz
            ds.Rows, ds.Columns = ny, nx
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.ascontiguousarray(volume[::-1, ::-1, k].T).tobytes()  # (rows = -y, columns = -x)
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            out.append((f"p{p}_s{k:03d}.dcm", buf.getvalue()))
    return out


def write_patient(spec: PatientSpec, root: Path) -> dict[str, object]:
    """Write one patient's MRI and mask under ``root/patients/<id>``; return the manifest row."""
    rendered = render_mri(spec)
    site = SITES[spec.site]
    folder = root / "patients" / spec.patient_id
    folder.mkdir(parents=True, exist_ok=True)
    rel = Path("patients") / spec.patient_id
    fmt = spec.file_format
    if fmt in ("dicom", "dicom-zip"):
        files = dicom_series_files(rendered, spec, series_per_phase=spec.seed % 2 == 0)
        if fmt == "dicom":
            (folder / "dicom").mkdir(exist_ok=True)
            for name, data in files:
                (folder / "dicom" / name).write_bytes(data)
            mri = str(rel / "dicom")
        else:
            with zipfile.ZipFile(folder / "dicom.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for name, data in files:
                    # A fixed timestamp: the same patient gives the same zip bytes on every run.
                    info = zipfile.ZipInfo(f"DCE/{name}", date_time=(2025, 1, 1, 0, 0, 0))
                    zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
            mri = str(rel / "dicom.zip")
        mask_orientation = "LPS"
    else:
        data = np.moveaxis(rendered.phases, 0, 3)  # (X, Y, Z, P)
        data, affine = to_voxel_order(data, rendered.affine, site.orientation)
        values = np.clip(np.round(data), 0, 32767)
        if fmt == "nifti-4d":
            _save_nifti(values, affine, folder / "dce.nii.gz", np.int16)
            mri = str(rel / "dce.nii.gz")
        else:
            names = []
            for p in range(values.shape[3]):
                _save_nifti(values[..., p], affine, folder / f"phase_{p}.nii.gz", np.int16)
                names.append(str(rel / f"phase_{p}.nii.gz"))
            mri = ";".join(names)
        mask_orientation = site.orientation
    mask, mask_affine = to_voxel_order(rendered.mask, rendered.affine, mask_orientation)
    _save_nifti(mask, mask_affine, folder / "mask.nii.gz", np.uint8)
    shown = {k: (None if k in spec.hidden_fields else v) for k, v in spec.clinical.items()}
    return {
        "patient_id": spec.patient_id,
        "site": spec.site,
        "split": spec.split,
        "mri_path": mri,
        "mask_path": str(rel / "mask.nii.gz"),
        **shown,
        "pcr": spec.pcr,
        "_extras": dict(spec.extras),
    }


def _write_job(args: tuple[PatientSpec, str]) -> dict[str, object]:
    spec, root = args
    return write_patient(spec, Path(root))


def _auc(score: np.ndarray, label: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, score)) if 0 < label.sum() < len(label) else None


def write_pcr_cohort(
    out: str | os.PathLike[str],
    n: int,
    seed: int,
    *,
    sites: tuple[str, ...] = DEFAULT_SITES,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Generate and write the cohort into ``out`` (new or empty); returns the summary written to cohort.json."""
    import pandas as pd

    final = Path(out)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise InputError(f"The output folder '{final}' is not empty; choose a new folder.")
    if not any(SITES[s].role == "external" for s in sites) or not any(SITES[s].role == "train" for s in sites):
        raise InputError("The cohort needs at least one training site and one external site.")
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        specs = generate_specs(n, seed, sites)
        workers = default_workers(len(specs), workers)
        jobs = [(s, str(partial)) for s in specs]
        rows = parallel_map(_write_job, jobs, workers=workers, progress=progress, chunksize=4)
        write_pcr_manifest(rows, partial / "manifest.csv")
        truth = []
        for s, r in zip(specs, rows, strict=True):
            t = {k: v for k, v in asdict(s).items() if k not in ("clinical", "extras", "hidden_fields")}
            t.update(r["_extras"])  # type: ignore[arg-type]
            t["hidden_fields"] = ";".join(s.hidden_fields)
            truth.append(t)
        df = pd.DataFrame(truth)
        df.to_csv(partial / "truth.csv", index=False)

        def summary_of(sel: pd.DataFrame) -> dict[str, object]:
            auc = _auc(sel["pcr_probability"].to_numpy(), sel["pcr"].to_numpy())
            return {
                "n": len(sel),
                "pcr": int(sel["pcr"].sum()),
                "pcr_rate": round(float(sel["pcr"].mean()), 4),
                "oracle_auc": None if auc is None else round(auc, 4),
            }

        summary = {
            "n": len(specs),
            "seed": seed,
            "sites": {s: asdict(SITES[s]) for s in sites},
            "fov_mm": FOV_MM,
            "pcr_rate": round(float(df["pcr"].mean()), 4),
            "pcr_model": "logit = -1.95 + subtype (luminal A -1.0, luminal B 0, HER2-enriched +1.6, triple-negative "
            "+1.3) + 0.9 HER2+ in luminal B + 0.5 (Ki-67 - 30)/20 - 0.35 (diameter - 28 mm)/12 mm "
            "- 1.6 resistance; resistance raises heterogeneity and oedema",
            "splits": {sp: summary_of(df[df["split"] == sp]) for sp in sorted(df["split"].unique())},
            "by_site": {st: summary_of(df[df["site"] == st]) for st in sorted(df["site"].unique())},
            "formats": {f: int((df["file_format"] == f).sum()) for f in FORMATS},
            "workers": workers,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        (partial / "cohort.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_dir_atomically(partial, final)  # final is absent or empty, checked above
    return summary
