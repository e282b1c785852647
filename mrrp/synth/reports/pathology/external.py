"""The external style of pathology report: terse, abbreviated, capitalised headers, "T3 P2 M2" grade shorthand."""

from __future__ import annotations

from mrrp.synth.reports.common import Section, cap, fmt_mm, pick
from mrrp.synth.reports.pathology.record import Draws


def external_sections(d: Draws) -> list[Section]:
    s_abbr = {"left": "L", "right": "R"}.get(d.rec.side or "", "")
    proc = "mastectomy" if d.mastectomy else "WLE"
    node_proc = "SLNB" if d.sentinel else "ANC"
    sections = [
        Section(None, "plain", [pick(d.rng, ("BREAST HISTOLOGY.", "HISTO REPORT - BREAST."))], typos=False),
        Section(
            pick(d.rng, ("SPECIMEN:", "SPEC:")),
            "inline",
            [cap(f"{s_abbr + ' ' if s_abbr else ''}{proc} + {node_proc}.")],
        ),
    ]
    hx = f"{d.age_txt}F, core bx proven carcinoma." if d.age_txt else "Core bx proven carcinoma."
    sections.append(Section("HX:", "inline", [hx]))
    dims = "x".join(fmt_mm(v) for v in d.spec_mm)
    size_txt = d.rec.size_txt
    macro = [
        s
        for s in (
            f"{cap(proc)} {dims} mm, {d.weight_g:.0f} g.",
            f"Tumour {size_txt} mm max, firm." if size_txt else "Tumour ill-defined.",
        )
        if d.kept()
    ]
    sections.append(Section("MACRO:", "inline", macro))
    sections.append(_external_microscopy(d))
    sections.append(_external_ihc(d))
    sections.append(_external_conclusion(d, s_abbr))
    return sections


def _external_microscopy(d: Draws) -> Section:
    rng = d.rng
    micro_list = [f"{cap(d.type_txt)}."]
    if d.grade and d.components:
        t, p, m = d.components
        micro_list.append(
            pick(
                rng,
                (
                    f"Nottingham {d.grade_txt} (T{t} P{p} M{m} = {t + p + m}).",
                    f"Grade {d.grade} (T{t}+P{p}+M{m}).",
                    f"G{d.grade}, score {t + p + m}/9 (tubules {t}, pleomorphism {p}, mitoses {m}).",
                ),
            )
        )
    else:
        micro_list.append("Grade: not assessed.")
    micro_list.append(
        {
            "yes": pick(rng, ("LVI: present.", "LVI seen.")),
            "no": pick(rng, ("LVI: absent.", "LVI not seen.")),
        }.get(str(d.rec.lvi), "LVI: not assessed.")
    )
    micro_list.append(
        f"DCIS: present, {d.dcis_grade} grade, approx. {d.dcis_pct}%."
        if d.dcis and not d.lobular
        else "DCIS: not seen."
    )
    micro_list.append(
        {
            "clear": f"Margins clear, closest {d.margin_txt} mm ({d.margin_side}).",
            "close": f"Margins close, {d.margin_txt} mm ({d.margin_side}).",
            "involved": f"Margins involved ({d.margin_side}), tumour at ink.",
        }[d.margin]
    )
    positive, examined = d.rec.positive, d.examined
    if positive is not None and examined is not None:
        kind = "SLN" if d.sentinel else "LN"
        micro_list.append(
            f"{kind}: {positive}/{examined} positive, largest deposit {d.deposit_mm:.0f} mm, ENE {'present' if d.ene else 'absent'}."
            if positive
            else f"{kind}: {positive}/{examined}, negative."
        )
    micro_list = [s for s in micro_list if d.kept()]
    return Section("MICRO:", pick(rng, ("lines", "inline")), micro_list)


def _external_ihc(d: Draws) -> Section:
    rng, er, pr, ki67 = d.rng, d.rec.er, d.rec.pr, d.rec.ki67
    ihc: list[str] = []
    if er is not None:
        ihc.append(pick(rng, (f"ER: POS, {er:.0f}%.", f"ER {er:.0f}% positive.")))
    if pr is not None:
        ihc.append(f"PR: {'POS' if pr >= 1 else 'NEG'}, {pr:.0f}%.")
    elif rng.random() < 0.5:
        ihc.append("PR: not assessed.")
    ihc.append(
        "HER2: NEGATIVE (IHC 2+, ISH not amplified)." if d.her2_ihc == "2+" else f"HER2: NEGATIVE (IHC {d.her2_ihc})."
    )
    if ki67 is not None:
        ihc.append(pick(rng, (f"Ki67: {ki67:.0f}%.", f"Ki67 {ki67:.0f}%.")))
    elif rng.random() < 0.5:
        ihc.append("Ki67: not done.")
    ihc = [s for s in ihc if d.kept()]
    return Section("IHC:", pick(rng, ("lines", "inline")), ihc)


def _external_conclusion(d: Draws, s_abbr: str) -> Section:
    rng, size_txt, positive, examined, pr_status = d.rng, d.rec.size_txt, d.rec.positive, d.examined, d.pr_status
    side_txt = f"{s_abbr} breast: " if s_abbr else ""
    conclusion = [
        cap(f"{side_txt}{d.type_txt}, {d.grade_txt or 'grade n/a'}, {size_txt + ' mm' if size_txt else 'size n/a'}."),
        f"Nodes {positive}/{examined} positive."
        if positive is not None and examined is not None
        else "Nodes: not assessed.",
        pick(
            rng,
            (
                f"ER+/PR{'+' if pr_status == 'positive' else '-'}/HER2 negative."
                if pr_status
                else "ER+/HER2 negative.",
                "ER POS, HER2 NEG.",
            ),
        )
        if d.rec.er is not None
        else "ER n/a, HER2 negative.",
        f"{d.pt} {d.pn}.",
    ]
    return Section(pick(rng, ("CONCLUSION:", "DX:")), pick(rng, ("bullets", "lines")), conclusion)
