"""Surgical pathology reports (specimen, macroscopy, microscopy, biomarkers, diagnosis), internal or external style.

:func:`pathology_report` reads the record (unknowns kept as None), draws everything random that both styles
use (:mod:`.record`), before any omission, then builds the sections of one style in the order they are
written, each builder drawing its own wording from the same content stream.
"""

from __future__ import annotations

from collections.abc import Mapping

from mrrp.synth.reports.common import Section, apply_typos, check_args, render, streams
from mrrp.synth.reports.lexicon import MARGIN_STATUSES
from mrrp.synth.reports.pathology.external import external_sections
from mrrp.synth.reports.pathology.internal import internal_sections
from mrrp.synth.reports.pathology.record import draw, read_record
from mrrp.synth.reports.pathology.staging import pn_stage, pt_stage

__all__ = ["pathology_report", "pn_stage", "pt_stage"]


def pathology_report(
    clinical: Mapping[str, object],
    *,
    seed: int,
    style: str = "internal",
    margin_status: str | None = None,
    omission_rate: float = 0.08,
    typo_rate: float = 0.02,
    laterality: str | None = None,
) -> str:
    """A surgical pathology report (specimen, macroscopy, microscopy, biomarkers, diagnosis) for ``clinical``.

    ``clinical`` is a record as returned by :func:`mrrp.synth.biology.clinical_from_latent`. Nottingham
    component scores sum into the grade's range, nodes are written "positive/examined", pT and pN follow
    the invasive size and the positive node count (AJCC 8th; "(sn)" after sentinel biopsy only), HER2 is
    always negative (IHC 0, 1+, or 2+ without ISH amplification). Unknown fields (None) are omitted or
    "not assessed", never invented. ``margin_status`` ("clear", "close", "involved") is random if None;
    ``laterality`` (else ``clinical["laterality"]`` if present) names the side. Microscopy, macroscopy and
    biomarker sentences are omitted with probability ``omission_rate`` each; the diagnosis never is.
    """
    check_args(style, omission_rate, typo_rate)
    if margin_status is not None and margin_status not in MARGIN_STATUSES:
        raise ValueError(f"unknown margin_status {margin_status!r}; known: {MARGIN_STATUSES}")
    rng, om_rng, typo_rng = streams(seed, 2)
    d = draw(read_record(clinical, laterality), style, margin_status, rng, om_rng, omission_rate)
    sections = external_sections(d) if style == "external" else internal_sections(d)
    if d.sign:
        sections.append(Section(None, "plain", [d.sign]))
    apply_typos(sections, typo_rng, typo_rate)
    return render(sections, style)
