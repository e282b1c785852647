"""Drawing a synthetic cohort's patients: sites (scanners and hospitals), biology, record, tumour, and the known pCR model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mrrp.pcr.clinical import PCR_CLINICAL_FIELDS, SUBTYPES, ClinicalRecord

FOV_MM = (128.0, 128.0, 96.0)  # (x: right, y: anterior, z: superior)
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
