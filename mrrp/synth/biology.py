"""The generating model of the synthetic reference cohort: latent biology → every modality and the hazard.

Four latent traits per patient, standard normal and mildly correlated:

- ``proliferation`` (P): grade, Ki-67, nuclear density/size/pleomorphism, mitoses, necrosis;
- ``invasiveness`` (I): nodes, lymphovascular invasion, ultrasound margin and shadowing;
- ``immune`` (M): tumour-infiltrating lymphocytes, seen on the slide only (protective);
- ``burden`` (B): tumour size on ultrasound and pathology, tumour share of the slide.

The true log-hazard is ``ORACLE_WEIGHTS · (P, I, M, B)`` plus age and treatment effects. Each
modality sees a different noisy part of it: the slide sees P, M and B sharply (most signal, as
the MRRP paper found for pathology); ultrasound sees B and I; the reports see what the images
show in words; the clinical record sees P, I and B through coarse, noisy fields (weaker signal).
Because every modality misses something, fusion can beat any single modality, and the best
achievable C-index (the oracle: ranking by the true log-hazard) is computable.

Marginals follow published HR+/HER2− early breast cancer summaries and scikit-survival's GBSG2
(686 real patients: median age ~53, median size 25 mm, grade 2 in ~65%, nodes median 3 among
GBSG2's node-positive-heavy cohort; we use an early-disease mix with ~55% node-negative).
Times are in months.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

LATENTS = ("proliferation", "invasiveness", "immune", "burden")
# Log-hazard weights of the latents (per SD). Documented in docs/synthetic_cohort.md.
ORACLE_WEIGHTS = {"proliferation": 0.70, "invasiveness": 0.50, "immune": -0.50, "burden": 0.55}
AGE_YOUNG_EFFECT = 0.30  # age < 40
ENDOCRINE_EFFECT = -0.40
CHEMO_EFFECT = -0.25
LATENT_CORRELATION = np.array(
    [
        [1.0, 0.25, 0.0, 0.20],
        [0.25, 1.0, -0.10, 0.30],
        [0.0, -0.10, 1.0, 0.0],
        [0.20, 0.30, 0.0, 1.0],
    ]
)
# Weibull baseline hazard, months: S0(t) = exp(-(t / scale)^shape), tuned so that about a
# quarter of patients recur within follow-up (enough events to learn from at n = 800).
BASELINE_SHAPE = 1.15
BASELINE_SCALE_MONTHS = 250.0
FOLLOW_UP_MONTHS = (48.0, 144.0)  # administrative censoring: uniform accrual window
LOSS_TO_FOLLOW_UP_MEAN_MONTHS = 600.0  # random censoring, exponential

# The generator's five inputs, each drawn missing on its own (ultrasound images and report apart); the model's
# four modalities are mrrp.vocabulary.MODALITIES.
GENERATED_INPUTS = ("slide", "ultrasound", "us_report", "path_report", "clinical")
US_MARGINS = ("circumscribed", "indistinct", "angular", "microlobulated", "spiculated")
HISTOLOGICAL_TYPES = ("invasive carcinoma of no special type", "invasive lobular carcinoma", "mucinous carcinoma")


@dataclass(frozen=True)
class SiteProfile:
    """How a site differs: case mix, scanner, stain, ultrasound machine, report style."""

    name: str
    share: float  # fraction of the cohort
    slide_mpp: float
    stain_hue_shift: float  # -1..1, shifts haematoxylin/eosin hues
    stain_intensity: float  # multiplier of stain optical density
    us_gain: float  # multiplier of echo amplitude
    us_speckle: float  # speckle grain size multiplier
    report_style: str  # "internal" or "external" template families
    age_shift_years: float
    burden_shift: float  # case mix: later presentation shifts burden up
    missing_rate: float  # base probability that any one modality is missing


SITES = {
    "internal": SiteProfile("internal", 0.70, 0.25, 0.0, 1.0, 1.0, 1.0, "internal", 0.0, 0.0, 0.12),
    "external": SiteProfile("external", 0.30, 0.50, 0.35, 0.85, 1.25, 1.4, "external", 3.0, 0.25, 0.15),
}


@dataclass
class SyntheticPatient:
    patient_id: str
    site: str
    split: str  # train / test (internal) or external
    seed: int
    latent: dict[str, float]
    clinical: dict[str, object]  # field -> value, None = unknown
    us_findings: dict[str, object]
    slide_params: dict[str, float]
    present: dict[str, bool]
    log_hazard: float
    time_months: float
    event: int
    extras: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def clinical_from_latent(lat: dict[str, float], age: float, rng: np.random.Generator) -> dict[str, object]:
    """Clinical record of HR+/HER2− early breast cancer; coarse, noisy views of the latents."""
    p, i, b = lat["proliferation"], lat["invasiveness"], lat["burden"]
    size_mm = float(np.clip(np.exp(np.log(19.0) + 0.38 * b + rng.normal(0, 0.30)), 3, 120))
    grade_score = p + rng.normal(0, 0.9)
    grade = 1 if grade_score < -0.95 else (2 if grade_score < 0.75 else 3)
    # Node-negative ~55%; among positives, counts grow with invasiveness and burden.
    node_pos = rng.random() < _sigmoid(-0.3 + 0.9 * i + 0.5 * b + rng.normal(0, 0.5))
    nodes = int(1 + rng.poisson(np.exp(0.2 + 0.45 * i + 0.3 * b))) if node_pos else 0
    nodes = min(nodes, 35)
    ki67 = float(np.clip(np.exp(np.log(16.0) + 0.40 * p + rng.normal(0, 0.40)), 1, 90))
    er = float(np.clip(rng.normal(88 - 4 * p, 10), 10, 100))
    pr = float(np.clip(rng.normal(60 - 14 * p, 28), 0, 100))
    lvi = bool(rng.random() < _sigmoid(-1.3 + 1.0 * i + rng.normal(0, 0.4)))
    u = rng.random()
    htype = HISTOLOGICAL_TYPES[0] if u < 0.78 else (HISTOLOGICAL_TYPES[1] if u < 0.93 else HISTOLOGICAL_TYPES[2])
    menopausal = "post" if rng.random() < _sigmoid((age - 51.0) / 2.5) else "pre"
    chemo = bool(rng.random() < _sigmoid(-1.2 + 0.9 * (grade == 3) + 0.5 * min(nodes, 4) - 0.03 * (age - 55)))
    endocrine = bool(rng.random() < 0.94)
    radio = bool(rng.random() < (0.85 if size_mm < 50 else 0.6))
    record: dict[str, object] = {
        "age_years": round(age, 0),
        "menopausal_status": menopausal,
        "tumour_size_mm": round(size_mm, 0),
        "histological_grade": grade,
        "positive_lymph_nodes": nodes,
        "er_percent": round(er, 0),
        "pr_percent": round(pr, 0),
        "ki67_percent": round(ki67, 0),
        "lymphovascular_invasion": "yes" if lvi else "no",
        "histological_type": htype,
        "endocrine_therapy": "yes" if endocrine else "no",
        "chemotherapy": "yes" if chemo else "no",
        "radiotherapy": "yes" if radio else "no",
    }
    # Field-level unknowns, as in real records: Ki-67 and PR are the commonest gaps.
    for name, p_unknown in (("ki67_percent", 0.12), ("pr_percent", 0.05), ("lymphovascular_invasion", 0.08)):
        if rng.random() < p_unknown:
            record[name] = None
    return record


def us_findings_from_latent(lat: dict[str, float], size_mm: float, rng: np.random.Generator) -> dict[str, object]:
    """BI-RADS ultrasound descriptors and the continuous parameters the image is drawn from."""
    p, i = lat["proliferation"], lat["invasiveness"]
    us_size = float(np.clip(size_mm * np.exp(rng.normal(-0.08, 0.15)), 4, 100))  # US undersizes a little
    irregularity = float(_sigmoid(-0.3 + 1.1 * i + 0.3 * p + rng.normal(0, 0.5)))  # 0 smooth .. 1 irregular
    spiculation = float(_sigmoid(-1.2 + 1.3 * i + rng.normal(0, 0.6)))
    shadowing = float(_sigmoid(-0.8 + 1.1 * i + rng.normal(0, 0.6)))
    aspect = float(np.clip(0.65 + 0.18 * p + 0.12 * i + rng.normal(0, 0.12), 0.4, 1.5))  # depth / width
    if spiculation > 0.65:
        margin = "spiculated"
    elif irregularity > 0.7:
        margin = "angular"
    elif irregularity > 0.55:
        margin = "microlobulated"
    elif irregularity > 0.35:
        margin = "indistinct"
    else:
        margin = "circumscribed"
    shape = "oval" if irregularity < 0.35 else ("round" if irregularity < 0.45 and aspect > 0.85 else "irregular")
    orientation = "not parallel" if aspect > 1.0 else "parallel"
    posterior = "shadowing" if shadowing > 0.6 else ("enhancement" if shadowing < 0.2 else "no posterior features")
    echo = "hypoechoic" if rng.random() < 0.8 else "heterogeneous"
    suspicious = sum(
        [margin != "circumscribed", shape == "irregular", orientation == "not parallel", posterior == "shadowing"]
    )
    birads = {0: "4A", 1: "4B", 2: "4B", 3: "4C", 4: "5"}[suspicious]
    return {
        "size_mm": round(us_size, 1),
        "irregularity": irregularity,
        "spiculation": spiculation,
        "shadowing": shadowing,
        "aspect_ratio": aspect,
        "shape": shape,
        "orientation": orientation,
        "margin": margin,
        "echo_pattern": echo,
        "posterior": posterior,
        "birads": birads,
        "clock_position": int(rng.integers(1, 13)),
        "distance_from_nipple_cm": round(float(rng.uniform(1, 8)), 1),
        "laterality": "left" if rng.random() < 0.5 else "right",
    }


def slide_params_from_latent(lat: dict[str, float], site: SiteProfile, rng: np.random.Generator) -> dict[str, float]:
    """Tumour morphology on the slide: sharp views of P, M and B (pathology carries the most signal)."""
    p, m, b = lat["proliferation"], lat["immune"], lat["burden"]
    n = lambda s: rng.normal(0, s)  # noqa: E731
    return {
        "nuclear_density": float(np.clip(0.5 + 0.17 * p + n(0.05), 0.1, 1.0)),
        "nuclear_size": float(np.clip(0.5 + 0.17 * p + n(0.05), 0.1, 1.0)),
        "pleomorphism": float(np.clip(0.45 + 0.2 * p + n(0.06), 0.0, 1.0)),
        "mitotic_rate": float(np.clip(0.3 + 0.2 * p + n(0.06), 0.0, 1.0)),
        "lymphocyte_density": float(np.clip(0.35 + 0.22 * m + n(0.06), 0.0, 1.0)),
        "necrosis_fraction": float(np.clip(0.04 + 0.06 * max(p + b - 0.5, 0) + n(0.01), 0.0, 0.35)),
        "tumour_fraction": float(np.clip(0.3 + 0.12 * b + n(0.04), 0.08, 0.7)),
        "stain_hue_shift": site.stain_hue_shift + float(n(0.08)),
        "stain_intensity": site.stain_intensity * float(np.exp(n(0.06))),
    }


def log_hazard(lat: dict[str, float], clinical: dict[str, object], age: float) -> float:
    eta = sum(ORACLE_WEIGHTS[k] * lat[k] for k in LATENTS)
    eta += AGE_YOUNG_EFFECT * (age < 40)
    eta += ENDOCRINE_EFFECT * (clinical["endocrine_therapy"] == "yes")
    eta += CHEMO_EFFECT * (clinical["chemotherapy"] == "yes")
    return float(eta)


def sample_outcome(eta: float, rng: np.random.Generator) -> tuple[float, int]:
    """Recurrence time from a Weibull proportional-hazards model, with administrative and random censoring."""
    u = rng.random()
    # S(t) = exp(-(t/scale)^shape * e^eta)  →  t = scale * (-log u / e^eta)^(1/shape)
    t_event = BASELINE_SCALE_MONTHS * (-np.log(u) / np.exp(eta)) ** (1.0 / BASELINE_SHAPE)
    t_admin = rng.uniform(*FOLLOW_UP_MONTHS)
    t_loss = rng.exponential(LOSS_TO_FOLLOW_UP_MEAN_MONTHS)
    t = min(t_event, t_admin, t_loss)
    return round(float(max(t, 0.5)), 1), int(t_event <= min(t_admin, t_loss))


def missingness(
    clinical: dict[str, object], site: SiteProfile, rng: np.random.Generator, missing_rate: float | None
) -> dict[str, bool]:
    """Which modalities exist. Missing partly depends on the patient, as in real clinics:
    older women are more often imaged by mammography only (no ultrasound); small tumours more often
    lack a scanned slide; a report is usually missing with its images. ~3% have a single modality."""
    base = site.missing_rate if missing_rate is None else missing_rate
    age = float(clinical["age_years"])  # type: ignore[arg-type]
    size = float(clinical["tumour_size_mm"])  # type: ignore[arg-type]
    p_us = np.clip(base * (1.0 + 0.03 * (age - 55)), 0, 0.9)
    p_slide = np.clip(base * (1.5 if size < 12 else 0.9), 0, 0.9)
    present = {
        "slide": rng.random() >= p_slide,
        "ultrasound": rng.random() >= p_us,
        "path_report": rng.random() >= base,
        "clinical": rng.random() >= base * 0.7,
    }
    present["us_report"] = present["ultrasound"] if rng.random() > 0.5 * base else not present["ultrasound"]
    if rng.random() < 0.03:  # a single modality only
        keep = GENERATED_INPUTS[int(rng.integers(0, len(GENERATED_INPUTS)))]
        present = {m: m == keep for m in GENERATED_INPUTS}
    if not any(present.values()):
        present["clinical"] = True
    return {m: bool(present[m]) for m in GENERATED_INPUTS}


def draw_patient(
    rng: np.random.Generator,
    idx: int,
    site: SiteProfile,
    split: str,
    chol: np.ndarray | None = None,
    missing_rate: float | None = None,
    *,
    latent: dict[str, float] | None = None,
    present: dict[str, bool] | None = None,
    age_years: float | None = None,
    patient_id: str | None = None,
) -> SyntheticPatient:
    """One patient from the generating model. ``latent``, ``present`` and ``age_years`` override
    the random draws (used for the demo patients: clearly low or high risk, chosen gaps)."""
    if chol is None:
        chol = np.linalg.cholesky(LATENT_CORRELATION)
    z = chol @ rng.standard_normal(4)
    lat = {name: float(v) for name, v in zip(LATENTS, z, strict=True)}
    lat["burden"] += site.burden_shift
    if latent is not None:
        lat.update(latent)
    age = float(np.clip(rng.normal(56 + site.age_shift_years, 11), 26, 88))
    if age_years is not None:
        age = float(age_years)
    clinical = clinical_from_latent(lat, age, rng)
    us = us_findings_from_latent(lat, float(clinical["tumour_size_mm"]), rng)  # type: ignore[arg-type]
    slide = slide_params_from_latent(lat, site, rng)
    eta = log_hazard(lat, clinical, age)
    t, e = sample_outcome(eta, rng)
    drawn_present = missingness(clinical, site, rng, missing_rate)
    prefix = "INT" if site.name == "internal" else site.name[:3].upper()
    return SyntheticPatient(
        patient_id=patient_id or f"{prefix}-{idx:04d}",
        site=site.name,
        split=split,
        seed=int(rng.integers(0, 2**31 - 1)),
        latent=lat,
        clinical=clinical,
        us_findings=us,
        slide_params=slide,
        present=present if present is not None else drawn_present,
        log_hazard=eta,
        time_months=t,
        event=e,
    )


def generate_patients(
    n: int,
    seed: int,
    sites: tuple[str, ...] = ("internal", "external"),
    test_fraction: float = 0.25,
    missing_rate: float | None = None,
) -> list[SyntheticPatient]:
    """Draw ``n`` patients. Deterministic for ``seed``; each patient also gets its own seed for its files."""
    if n < 1:
        raise ValueError("n must be at least 1")
    unknown = [s for s in sites if s not in SITES]
    if unknown:
        raise ValueError(f"unknown site(s) {unknown}; known: {sorted(SITES)}")
    rng = np.random.default_rng(seed)
    shares = np.array([SITES[s].share for s in sites])
    counts = np.floor(shares / shares.sum() * n).astype(int)
    counts[0] += n - counts.sum()
    chol = np.linalg.cholesky(LATENT_CORRELATION)
    patients: list[SyntheticPatient] = []
    idx = 0
    for site_name, count in zip(sites, counts, strict=True):
        site = SITES[site_name]
        n_test = int(round(count * test_fraction)) if site_name == sites[0] else 0
        split_labels = ["test"] * n_test + ["train"] * (count - n_test)
        rng.shuffle(split_labels)
        for k in range(count):
            idx += 1
            split = split_labels[k] if site_name == sites[0] else site_name
            patients.append(draw_patient(rng, idx, site, split, chol, missing_rate))
    return patients


def oracle_cindex(patients: list[SyntheticPatient]) -> float:
    """Harrell's C of the true log-hazard: the best any model can do on these patients."""
    from sksurv.metrics import concordance_index_censored

    event = np.array([p.event == 1 for p in patients])
    time = np.array([p.time_months for p in patients])
    eta = np.array([p.log_hazard for p in patients])
    return float(concordance_index_censored(event, time, eta)[0])
