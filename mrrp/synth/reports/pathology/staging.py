"""Staging and scoring rules the pathology report follows: AJCC 8th pT and pN, Nottingham components that sum
into the grade's range, Allred scores, staining intensities and H-scores."""

from __future__ import annotations

import numpy as np

from mrrp.synth.reports.common import pick
from mrrp.synth.reports.lexicon import NOTTINGHAM_SCORE_RANGE

ROMAN = {1: "I", 2: "II", 3: "III"}


def pt_stage(size_mm: float | None) -> str:
    """AJCC 8th pT from the invasive size (no skin or chest-wall involvement modelled, so no pT4)."""
    if size_mm is None:
        return "pTX"
    if size_mm <= 1:
        return "pT1mi"
    if size_mm <= 5:
        return "pT1a"
    if size_mm <= 10:
        return "pT1b"
    if size_mm <= 20:
        return "pT1c"
    return "pT2" if size_mm <= 50 else "pT3"


def pn_stage(positive_nodes: int | None) -> str:
    """AJCC 8th pN from the number of nodes with macrometastases (micrometastases are not modelled)."""
    if positive_nodes is None:
        return "pNX"
    if positive_nodes == 0:
        return "pN0"
    if positive_nodes <= 3:
        return "pN1a"
    return "pN2a" if positive_nodes <= 9 else "pN3a"


def nottingham_components(
    grade: int, rng: np.random.Generator, ki67_percent: float | None, lobular: bool
) -> tuple[int, int, int]:
    """(tubules, pleomorphism, mitoses), each 1-3, summing into the grade's range; mitoses follow Ki-67."""
    lo, hi = NOTTINGHAM_SCORE_RANGE[grade]
    triples = [(t, p, m) for t in (1, 2, 3) for p in (1, 2, 3) for m in (1, 2, 3) if lo <= t + p + m <= hi]
    weights = np.ones(len(triples))
    for k, (t, _, m) in enumerate(triples):
        if lobular and t == 3:
            weights[k] *= 4.0  # lobular carcinoma hardly forms tubules
        if ki67_percent is not None:
            expected_m = 1 if ki67_percent < 15 else (2 if ki67_percent < 30 else 3)
            weights[k] *= 3.0 if m == expected_m else 1.0
    return triples[int(rng.choice(len(triples), p=weights / weights.sum()))]


def allred(percent: float, intensity: int) -> int:
    if percent <= 0:
        return 0
    proportion = 1 if percent < 1 else 2 if percent <= 10 else 3 if percent <= 33 else 4 if percent <= 66 else 5
    return proportion + intensity


def draw_intensity(rng: np.random.Generator, percent: float) -> int:
    """Staining intensity 1 weak, 2 moderate, 3 strong; diffuse staining is usually strong."""
    p_strong = 0.75 if percent >= 67 else 0.35
    u = rng.random()
    return 3 if u < p_strong else (2 if u < p_strong + 0.5 * (1 - p_strong) + 0.15 else 1)


def draw_h_score(rng: np.random.Generator, percent: float, intensity: int) -> int:
    # H-score = sum(intensity x % cells at that intensity): between 1x and 3x the positive percentage.
    mean_intensity = {1: (1.0, 1.4), 2: (1.7, 2.3), 3: (2.5, 3.0)}[intensity]
    return int(min(300, round(percent * float(rng.uniform(*mean_intensity)))))


def grade_text(grade: int, rng: np.random.Generator, style: str) -> str:
    if style == "external":
        return pick(rng, (f"G{grade}", f"grade {grade}"))
    return pick(rng, (f"Nottingham grade {grade}", f"grade {ROMAN[grade]}", f"grade {grade} of 3"))
