"""The internal style of pathology report: full prose, Nottingham grade, Allred or H-scores, the diagnosis
last or (in some departments) first."""

from __future__ import annotations

from dataclasses import dataclass

from mrrp.synth.reports.common import Section, cap, count_word, fmt_mm, pick
from mrrp.synth.reports.lexicon import GROSS_TUMOUR, MICRO_TYPE
from mrrp.synth.reports.pathology.record import Draws
from mrrp.synth.reports.pathology.staging import ROMAN, allred


@dataclass(frozen=True)
class _Specimen:
    """How the internal style names the operation, the nodes and the breast in several sections."""

    procedure: str  # "mastectomy", "wide local excision", ...
    node_kind: str  # "sentinel" or "axillary"
    breast: str  # "Left breast", or "Breast" when the side is unknown


def internal_sections(d: Draws) -> list[Section]:
    """Title, specimen, clinical details, macroscopy, microscopy, biomarkers; the diagnosis last or fourth."""
    procedure = (
        "mastectomy" if d.mastectomy else pick(d.rng, ("wide local excision", "wide local excision (lumpectomy)"))
    )
    side = d.rec.side
    spec = _Specimen(
        procedure, "sentinel" if d.sentinel else "axillary", f"{side.capitalize()} breast" if side else "Breast"
    )
    sections = _internal_head(d, spec)
    sections.append(_internal_macroscopy(d, spec))
    sections.append(_internal_microscopy(d, spec))
    sections.append(_internal_biomarkers(d))
    diag_section = _internal_diagnosis(d, spec)
    if d.rng.random() < 0.3:  # some departments put the diagnosis first
        sections.insert(3, diag_section)
    else:
        sections.append(diag_section)
    return sections


def _internal_head(d: Draws, spec: _Specimen) -> list[Section]:
    rng = d.rng
    node_proc = pick(
        rng,
        ("sentinel lymph node biopsy", "sentinel lymph nodes")
        if d.sentinel
        else ("axillary lymph node dissection", "axillary clearance"),
    )
    specimen = f"{spec.breast}, {spec.procedure} and {node_proc}."
    who = f"{d.age_txt}-year-old" if d.age_txt else ""
    meno_txt = f"{d.rec.meno}menopausal" if d.rec.meno in ("pre", "post") else ""
    person = " ".join(w for w in (who, meno_txt, "woman") if w)
    clinical_txt = pick(
        rng,
        (
            f"{cap(person)} with a core biopsy-proven invasive carcinoma.",
            f"{cap(person)}; screen-detected carcinoma on core biopsy.",
        ),
    )
    return [
        Section(None, "plain", [pick(rng, ("Surgical pathology report", "Histopathology report"))], typos=False),
        Section("Specimen:", "inline", [specimen]),
        Section(pick(rng, ("Clinical details:", "Clinical history:")), "inline", [clinical_txt]),
    ]


def _internal_macroscopy(d: Draws, spec: _Specimen) -> Section:
    rng, size_txt, examined = d.rng, d.rec.size_txt, d.examined
    spec_a, spec_b, spec_c = d.spec_mm
    dims = f"{fmt_mm(spec_a)} x {fmt_mm(spec_b)} x {fmt_mm(spec_c)} mm"
    spec_sent = pick(
        rng,
        (
            f"The specimen is an orientated {spec.procedure} measuring {dims} and weighing {d.weight_g:.0f} g.",
            f"Received fresh: {spec.procedure}, {dims}, {d.weight_g:.0f} g.",
        ),
    )
    slicing = pick(rng, ("Serial slicing reveals", "On sectioning there is", "Slicing shows"))
    gross = (
        f"{slicing} {GROSS_TUMOUR[d.rec.htype]} measuring {size_txt} mm in maximum dimension."
        if size_txt
        else f"{slicing} {GROSS_TUMOUR[d.rec.htype]}."
    )
    if examined is not None:
        nodes_gross = (
            f"{cap(count_word(examined))} sentinel lymph node{'s are' if examined != 1 else ' is'} received separately."
            if d.sentinel
            else f"The axillary contents yield {examined} lymph nodes."
        )
    else:
        nodes_gross = "Lymph nodes are received separately."
    macro = [s for s in (spec_sent, gross, nodes_gross) if d.kept()]
    return Section(pick(rng, ("Macroscopic description:", "Gross description:")), "block", macro)


def _internal_microscopy(d: Draws, spec: _Specimen) -> Section:
    """Type, grade, LVI, in situ component, margins and nodes, in one of three orders."""
    rng = d.rng
    micro: dict[str, str] = {"type": MICRO_TYPE[d.rec.htype], "grade": _internal_grade_sentence(d)}
    lvi_text = {
        "yes": ("Lymphovascular invasion is present.", "Definite lymphovascular invasion is identified."),
        "no": ("Lymphovascular invasion is not identified.", "No lymphovascular invasion is seen."),
    }.get(str(d.rec.lvi), ("Lymphovascular invasion: not assessed.",))
    micro["lvi"] = pick(rng, lvi_text)
    if d.dcis:
        micro["dcis"] = (
            "Associated lobular carcinoma in situ is present."
            if d.lobular
            else f"Associated ductal carcinoma in situ of {d.dcis_grade} nuclear grade is present, "
            f"comprising approx. {d.dcis_pct}% of the tumour."
        )
    else:
        micro["dcis"] = "No in situ component is identified."
    micro["margin"] = _internal_margin_sentence(d)
    micro["nodes"] = _internal_nodes_sentence(d, spec.node_kind)
    micro_order = pick(
        rng,
        (
            ("type", "grade", "lvi", "dcis", "margin", "nodes"),
            ("type", "grade", "dcis", "lvi", "nodes", "margin"),
            ("grade", "type", "lvi", "margin", "dcis", "nodes"),
        ),
    )
    micro_sents = [s for s in (micro[k] for k in micro_order) if d.kept()]
    return Section(pick(rng, ("Microscopic description:", "Microscopy:", "Histology:")), "block", micro_sents)


def _internal_grade_sentence(d: Draws) -> str:
    if not (d.grade and d.components):
        return "Histological grade: not assessed."
    t, p, m = d.components
    grade = d.grade
    return pick(
        d.rng,
        (
            f"Nottingham grading: tubule formation {t}, nuclear pleomorphism {p}, mitotic count {m} "
            f"(total score {t + p + m}/9), grade {grade}.",
            f"The tumour is grade {ROMAN[grade]} (Nottingham score {t}+{p}+{m} = {t + p + m}).",
            f"Elston-Ellis grade {grade}: tubules {t}, pleomorphism {p}, mitoses {m} (total {t + p + m}).",
        ),
    )


def _internal_margin_sentence(d: Draws) -> str:
    margin_side, margin_txt = d.margin_side, d.margin_txt
    return pick(
        d.rng,
        {
            "clear": (
                f"All margins are clear; the nearest is the {margin_side} margin at {margin_txt} mm.",
                f"The invasive tumour is clear of all margins, closest {margin_side} margin {margin_txt} mm.",
            ),
            "close": (
                f"The invasive carcinoma lies {margin_txt} mm from the {margin_side} margin (close margin).",
                f"Margins are close: invasive tumour {margin_txt} mm from the {margin_side} margin.",
            ),
            "involved": (
                f"Invasive carcinoma extends to the inked {margin_side} margin (margin involved).",
                f"The {margin_side} margin is involved by invasive carcinoma.",
            ),
        }[d.margin],
    )


def _internal_nodes_sentence(d: Draws, node_kind: str) -> str:
    positive, examined = d.rec.positive, d.examined
    if positive is None or examined is None:
        return "Lymph node status: not assessed."

    def count(n: int) -> str:  # "four of 10" reads oddly: words only when both counts are small
        return count_word(n) if (examined or 0) < 10 else str(n)

    if positive == 0:
        return pick(
            d.rng,
            (
                f"No metastatic carcinoma is identified in the {count_word(examined)} {node_kind} lymph "
                f"node{'s' if examined != 1 else ''}.",
                f"All {examined} {node_kind} lymph nodes are free of metastatic carcinoma."
                if examined > 1
                else f"The {node_kind} lymph node is free of metastatic carcinoma.",
            ),
        )
    return (
        f"Metastatic carcinoma is present in {count(positive)} of {count(examined)} "
        f"{node_kind} lymph node{'s' if examined != 1 else ''}, the largest deposit measuring {d.deposit_mm:.0f} mm, "
        f"{'with' if d.ene else 'without'} extranodal extension."
    )


_INTENSITY_WORD = {1: "weak", 2: "moderate", 3: "strong"}


def _internal_biomarkers(d: Draws) -> Section:
    """ER and PR (Allred or H-score), HER2 and Ki-67; unknown ones left out or "not assessed"."""
    rng, er, pr, ki67 = d.rng, d.rec.er, d.rec.pr, d.rec.ki67
    bio: list[str] = []
    if er is not None:
        score = f"Allred score {allred(er, d.er_int)}/8" if d.receptor_score == "allred" else f"H-score {d.er_h}"
        er_sent = pick(
            rng,
            (
                f"Oestrogen receptor (ER): positive, {er:.0f}% of tumour cells with {_INTENSITY_WORD[d.er_int]} "
                f"staining ({score}).",
                f"ER is positive in {er:.0f}% of invasive tumour cells, {_INTENSITY_WORD[d.er_int]} intensity, {score}.",
            ),
        )
        bio.append(er_sent)
    if pr is not None:
        score = (
            f"Allred score {allred(pr, d.pr_int)}/8"
            if d.receptor_score == "allred"
            else f"H-score {d.pr_h if pr >= 1 else 0}"
        )
        pr_sent = (
            f"Progesterone receptor (PR): positive, {pr:.0f}% of tumour cells ({score})."
            if pr >= 1
            else f"Progesterone receptor (PR): negative ({pr:.0f}%, {score})."
        )
        bio.append(pr_sent)
    elif rng.random() < 0.5:
        bio.append("Progesterone receptor (PR): not assessed.")
    bio.append(_internal_her2_sentence(d))
    if ki67 is not None:
        bio.append(
            pick(
                rng,
                (
                    f"Ki-67 proliferation index: {ki67:.0f}%.",
                    f"The Ki-67 labelling index is {ki67:.0f}%.",
                    f"Ki-67 (MIB-1) is expressed in {ki67:.0f}% of tumour nuclei.",
                ),
            )
        )
    elif rng.random() < 0.5:
        bio.append(pick(rng, ("Ki-67: not assessed.", "Ki-67 was not performed.")))
    bio = [s for s in bio if d.kept()]
    return Section(pick(rng, ("Immunohistochemistry:", "Biomarkers:")), "block", bio)


def _internal_her2_sentence(d: Draws) -> str:
    if d.her2_ihc == "2+":
        return (
            f"HER2 immunohistochemistry 2+ (equivocal); in situ hybridisation shows no amplification "
            f"(HER2/CEP17 ratio {d.ish_ratio:.1f}, mean HER2 copy number {d.ish_copies:.1f} per cell), HER2 negative."
        )
    low = " (HER2-low)" if d.her2_ihc == "1+" else ""
    return pick(
        d.rng,
        (
            f"HER2: negative (IHC score {d.her2_ihc}){low}.",
            f"HER2 immunohistochemistry score {d.her2_ihc}, HER2 negative.",
        ),
    )


def _internal_diagnosis(d: Draws, spec: _Specimen) -> Section:
    """Type, grade and size; nodes; receptors; pTNM. Never omitted."""
    rng, size_txt, positive, examined, er = d.rng, d.rec.size_txt, d.rec.positive, d.examined, d.rec.er
    size_part = f"invasive size {size_txt} mm" if size_txt else "invasive size not assessed"
    grade_part = d.grade_txt or "grade not assessed"
    diag_type = pick(
        rng,
        (
            f"{spec.breast}, {spec.procedure}: {d.type_txt}, {grade_part}, {size_part}.",
            f"{cap(d.type_txt)}, {grade_part}, {size_part}.",
        ),
    )
    if positive is not None and examined is not None:
        diag_nodes = pick(
            rng,
            (
                f"Lymph nodes: {positive}/{examined} {spec.node_kind} node{'s' if examined != 1 else ''} involved by metastatic carcinoma.",
                f"Metastatic carcinoma in {positive}/{examined} {spec.node_kind} lymph nodes.",
            ),
        )
    else:
        diag_nodes = "Lymph nodes: not assessed."
    pr_part = f", PR {d.pr_status}" if d.pr_status else ""
    er_status = "positive" if er is not None else "not assessed"
    er_part = f"ER {er_status}"
    diag_receptors = pick(
        rng,
        (
            f"{er_part}{pr_part}, HER2 negative.",
            "Hormone receptor positive, HER2-negative carcinoma." if er is not None else "HER2-negative carcinoma.",
            f"Oestrogen receptor {er_status}{pr_part}, HER2 status: negative.",
        ),
    )
    diag_stage = pick(rng, (f"pTNM (AJCC 8th edition): {d.pt} {d.pn}.", f"Pathological stage: {d.pt} {d.pn}."))
    diag = [diag_type, diag_nodes, diag_receptors, diag_stage]
    if rng.random() < 0.4:
        diag[1], diag[2] = diag[2], diag[1]
    return Section(
        pick(rng, ("Diagnosis:", "Final diagnosis:", "Summary:")), pick(rng, ("numbered", "block", "lines")), diag
    )
