"""One pathology report's facts: the clinical record as stated (unknowns kept as None) and everything random
both styles use, drawn from the content stream before any omission."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mrrp.synth.reports.common import fmt_mm, is_kept, pick, sign_off
from mrrp.synth.reports.lexicon import MARGIN_STATUSES, NOTTINGHAM_SCORE_RANGE, TYPE_TEXT
from mrrp.synth.reports.pathology.staging import (
    draw_h_score,
    draw_intensity,
    grade_text,
    nottingham_components,
    pn_stage,
    pt_stage,
)


@dataclass
class Record:
    """The clinical record as the report states it; None where unknown (omitted or "not assessed")."""

    size_txt: str | None
    size_mm: float | None  # staged on the size as written
    grade: int | None
    positive: int | None
    er: float | None
    pr: float | None
    ki67: float | None
    lvi: object
    htype: str
    side: str | None
    age: object
    meno: object


def read_record(clinical: Mapping[str, object], laterality: str | None) -> Record:
    def number(name: str) -> float | None:
        value = clinical.get(name)
        return float(value) if value is not None else None  # type: ignore[arg-type]

    size_raw = clinical.get("tumour_size_mm")
    size_txt = fmt_mm(float(size_raw)) if size_raw is not None else None  # type: ignore[arg-type]
    grade_raw, nodes_raw = clinical.get("histological_grade"), clinical.get("positive_lymph_nodes")
    htype = str(clinical.get("histological_type") or "invasive carcinoma of no special type")
    if htype not in TYPE_TEXT["internal"]:
        htype = "invasive carcinoma of no special type"
    side = laterality or clinical.get("laterality")
    return Record(
        size_txt=size_txt,
        size_mm=float(size_txt) if size_txt is not None else None,
        grade=int(grade_raw) if grade_raw is not None else None,  # type: ignore[call-overload]
        positive=int(nodes_raw) if nodes_raw is not None else None,  # type: ignore[call-overload]
        er=number("er_percent"),
        pr=number("pr_percent"),
        ki67=number("ki67_percent"),
        lvi=clinical.get("lymphovascular_invasion"),
        htype=htype,
        side=str(side) if side else None,
        age=clinical.get("age_years"),
        meno=clinical.get("menopausal_status"),
    )


@dataclass
class Draws:
    """Everything random both styles use, drawn before any omission; and the streams the sections draw on."""

    rec: Record
    style: str
    rng: np.random.Generator
    om_rng: np.random.Generator
    omission_rate: float
    mastectomy: bool
    sentinel: bool
    examined: int | None
    pt: str
    pn: str
    lobular: bool
    components: tuple[int, int, int] | None
    grade: int | None  # None too when the record's grade is outside 1-3
    margin: str
    margin_side: str
    margin_txt: str
    her2_ihc: str
    ish_ratio: float
    ish_copies: float
    er_int: int
    pr_int: int
    er_h: int
    pr_h: int
    receptor_score: str
    dcis: bool
    dcis_grade: str
    dcis_pct: int
    deposit_mm: float
    ene: bool
    spec_mm: tuple[float, float, float]
    weight_g: float
    age_txt: str | None
    sign: str | None
    type_txt: str
    grade_txt: str | None
    pr_status: str | None

    def kept(self) -> bool:
        return is_kept(self.om_rng, self.omission_rate)


def _draw_nodes(positive: int | None, rng: np.random.Generator) -> tuple[bool, int | None]:
    """(sentinel biopsy?, nodes examined): 1-3 sentinel nodes, or 10-20 from a dissection."""
    if positive is None:
        return bool(rng.random() < 0.7), None
    sentinel = bool(rng.random() < (0.9 if positive == 0 else 0.6 if positive <= 2 else 0.0))
    if sentinel:
        return sentinel, max(positive, int(rng.integers(1, 4)))
    return sentinel, max(int(rng.integers(10, 21)), positive + int(rng.integers(0, 6)))


def _draw_margin(margin_status: str | None, rng: np.random.Generator) -> tuple[str, str, str]:
    """(status, nearest margin, distance in mm as written; "" when involved)."""
    margin = margin_status or str(rng.choice(MARGIN_STATUSES, p=[0.85, 0.10, 0.05]))
    margin_side = pick(rng, ("superior", "inferior", "medial", "lateral", "anterior", "deep"))
    margin_dist_mm = {"clear": float(rng.integers(2, 16)), "close": float(pick(rng, ("0.5", "1", "1.5")))}.get(margin)
    return margin, margin_side, f"{margin_dist_mm:g}" if margin_dist_mm is not None else ""


def _draw_specimen(
    mastectomy: bool, size_mm: float | None, rng: np.random.Generator
) -> tuple[tuple[float, float, float], float]:
    """((three specimen dimensions in mm), weight in g)."""
    spec = (
        (float(rng.uniform(180, 260)), float(rng.uniform(140, 200)), float(rng.uniform(30, 60)))
        if mastectomy
        else tuple((size_mm or 20) + float(rng.uniform(lo, hi)) for lo, hi in ((25, 50), (15, 35), (8, 25)))
    )
    return spec, spec[0] * spec[1] * spec[2] / 1000 * float(rng.uniform(0.45, 0.6))  # type: ignore[return-value]


def draw(
    rec: Record,
    style: str,
    margin_status: str | None,
    rng: np.random.Generator,
    om_rng: np.random.Generator,
    omission_rate: float,
) -> Draws:
    mastectomy = rng.random() < (0.7 if (rec.size_mm or 0) > 40 else 0.15)
    sentinel, examined = _draw_nodes(rec.positive, rng)
    pn = pn_stage(rec.positive) + ("(sn)" if sentinel and rec.positive is not None else "")
    lobular = rec.htype == "invasive lobular carcinoma"
    in_range = rec.grade in NOTTINGHAM_SCORE_RANGE
    components = nottingham_components(rec.grade, rng, rec.ki67, lobular) if in_range else None  # type: ignore[arg-type]
    grade = rec.grade if in_range else None
    margin, margin_side, margin_txt = _draw_margin(margin_status, rng)
    her2_ihc = str(rng.choice(("0", "1+", "2+"), p=[0.35, 0.40, 0.25]))
    ish_ratio, ish_copies = float(rng.uniform(1.0, 1.8)), float(rng.uniform(2.0, 3.8))
    er_int = draw_intensity(rng, rec.er or 0)
    pr_int = draw_intensity(rng, rec.pr or 0)
    er_h, pr_h = draw_h_score(rng, rec.er or 0, er_int), draw_h_score(rng, rec.pr or 0, pr_int)
    receptor_score = pick(rng, ("allred", "allred", "hscore"))  # internal style only
    dcis = rng.random() < 0.6
    dcis_grade = pick(rng, ("low", "intermediate", "high"))
    dcis_pct = int(rng.integers(1, 7)) * 5
    deposit_mm = float(rng.uniform(2.5, 14.0))
    ene = rng.random() < min(0.6, 0.1 + 0.05 * (rec.positive or 0))
    spec_mm, weight_g = _draw_specimen(mastectomy, rec.size_mm, rng)
    sign = sign_off(rng, style, "histopathologist")
    type_txt = pick(rng, TYPE_TEXT[style][rec.htype])
    return Draws(
        rec=rec,
        style=style,
        rng=rng,
        om_rng=om_rng,
        omission_rate=omission_rate,
        mastectomy=mastectomy,
        sentinel=sentinel,
        examined=examined,
        pt=pt_stage(rec.size_mm),
        pn=pn,
        lobular=lobular,
        components=components,
        grade=grade,
        margin=margin,
        margin_side=margin_side,
        margin_txt=margin_txt,
        her2_ihc=her2_ihc,
        ish_ratio=ish_ratio,
        ish_copies=ish_copies,
        er_int=er_int,
        pr_int=pr_int,
        er_h=er_h,
        pr_h=pr_h,
        receptor_score=receptor_score,
        dcis=dcis,
        dcis_grade=dcis_grade,
        dcis_pct=dcis_pct,
        deposit_mm=deposit_mm,
        ene=ene,
        spec_mm=spec_mm,
        weight_g=weight_g,
        age_txt=f"{float(rec.age):.0f}" if rec.age is not None else None,  # type: ignore[arg-type]
        sign=sign,
        type_txt=type_txt,
        grade_txt=grade_text(grade, rng, style) if grade else None,
        pr_status=None if rec.pr is None else ("positive" if rec.pr >= 1 else "negative"),
    )
