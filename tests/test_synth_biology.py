"""The generating model: marginals, signal per modality, oracle, missingness, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from mrrp.schema import parse_clinical_record
from mrrp.synth.biology import generate_patients, oracle_cindex


@pytest.fixture(scope="module")
def cohort():
    return generate_patients(1500, seed=11)


def _lat(ps, k):
    return np.array([p.latent[k] for p in ps])


def test_deterministic_for_a_seed() -> None:
    a = generate_patients(30, seed=3)
    b = generate_patients(30, seed=3)
    c = generate_patients(30, seed=4)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.log_hazard for p in a] != [p.log_hazard for p in c]


def test_clinical_marginals_are_realistic(cohort) -> None:
    ages = np.array([p.clinical["age_years"] for p in cohort])
    sizes = np.array([p.clinical["tumour_size_mm"] for p in cohort])
    grades = np.array([p.clinical["histological_grade"] for p in cohort])
    nodes = np.array([p.clinical["positive_lymph_nodes"] for p in cohort])
    er = np.array([p.clinical["er_percent"] for p in cohort])
    assert 52 <= np.median(ages) <= 62 and ages.min() >= 18 and ages.max() <= 100
    assert 15 <= np.median(sizes) <= 28  # GBSG2 median 25 mm; screening-era cohorts smaller
    assert 0.4 <= np.mean(grades == 2) <= 0.6 and np.mean(grades == 3) > 0.15 and np.mean(grades == 1) > 0.1
    assert 0.45 <= np.mean(nodes == 0) <= 0.7
    assert np.median(er) >= 75  # HR+
    for p in cohort[:200]:
        parse_clinical_record(p.clinical)  # every generated record passes the schema


def test_each_modality_carries_its_signal(cohort) -> None:
    P, Inv, M, B = (_lat(cohort, k) for k in ("proliferation", "invasiveness", "immune", "burden"))
    grade = np.array([p.clinical["histological_grade"] for p in cohort])
    slide_density = np.array([p.slide_params["nuclear_density"] for p in cohort])
    tils = np.array([p.slide_params["lymphocyte_density"] for p in cohort])
    us_size = np.array([p.us_findings["size_mm"] for p in cohort])
    spic = np.array([p.us_findings["spiculation"] for p in cohort])
    # the slide sees proliferation more sharply than the clinical grade does
    assert spearmanr(slide_density, P)[0] > 0.85
    assert 0.4 < spearmanr(grade, P)[0] < spearmanr(slide_density, P)[0]
    assert spearmanr(tils, M)[0] > 0.85  # immune only on the slide
    assert spearmanr(us_size, B)[0] > 0.5 and spearmanr(spic, Inv)[0] > 0.5


def test_hazard_and_oracle(cohort) -> None:
    events = np.mean([p.event for p in cohort])
    assert 0.18 <= events <= 0.35
    c = oracle_cindex([p for p in cohort if p.split == "test"])
    assert 0.70 <= c <= 0.90  # documented range in docs/synthetic_cohort.md
    # the latent weights are what drive outcome: the high-proliferation half recurs more
    P = _lat(cohort, "proliferation")
    ev = np.array([p.event for p in cohort])
    assert ev[P > 0].mean() > 1.5 * ev[P < 0].mean()


def test_sites_splits_and_missingness(cohort) -> None:
    splits = {s: sum(p.split == s for p in cohort) for s in ("train", "test", "external")}
    assert splits["external"] == pytest.approx(0.3 * len(cohort), abs=2)
    assert splits["test"] == pytest.approx(0.25 * 0.7 * len(cohort), abs=3)
    for m in ("slide", "ultrasound", "us_report", "path_report", "clinical"):
        missing = 1 - np.mean([p.present[m] for p in cohort])
        assert 0.05 <= missing <= 0.25, m
    assert 0.01 <= np.mean([sum(p.present.values()) == 1 for p in cohort]) <= 0.08
    # missingness depends on the patient: older women lack ultrasound more often
    age = np.array([p.clinical["age_years"] for p in cohort])
    us = np.array([p.present["ultrasound"] for p in cohort])
    assert (1 - us[age > 65].mean()) > (1 - us[age < 45].mean())
    none = generate_patients(300, seed=1, missing_rate=0.0)
    assert np.mean([all(p.present.values()) for p in none]) > 0.95
