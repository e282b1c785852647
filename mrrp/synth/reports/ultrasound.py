"""Free-text breast ultrasound reports (BI-RADS lexicon), internal prose or external terse style.

:func:`ultrasound_report` draws everything that two styles share (dimensions, descriptors, Doppler, axilla,
sign-off) in :func:`_draw`, then builds the sections of one style in order. Every builder draws from the
content stream in the order the sections are written, so a seed gives the same report whatever changes
around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mrrp.synth.reports.common import (
    Section,
    apply_typos,
    article,
    cap,
    check_args,
    fmt_cm,
    fmt_mm,
    is_kept,
    join_and,
    pick,
    render,
    sign_off,
    streams,
)
from mrrp.synth.reports.lexicon import (
    AXILLA_TEXT,
    BIRADS_SUSPICION,
    DESCRIPTOR_ORDERS,
    US_ADJECTIVES,
    US_PHRASES,
    VASCULARITY_TEXT,
)


def _us_descriptor_sentences(
    findings: Mapping[str, object],
    style: str,
    rng: np.random.Generator,
    om_rng: np.random.Generator,
    omission_rate: float,
) -> tuple[list[str], list[str]]:
    """Descriptor sentences in one of several orders and groupings, and adjectives for the mass sentence."""
    table = US_PHRASES[style]
    order = DESCRIPTOR_ORDERS[int(rng.integers(len(DESCRIPTOR_ORDERS)))]
    # Internal: separate / all-in-one / shape+echo as adjectives; external: separate lines or one list.
    grouping = pick(
        rng, ("separate", "combined", "inline") if style == "internal" else ("separate", "separate", "combined")
    )
    chosen: dict[str, tuple[str, str, str | None]] = {}  # field -> (sentence, fragment, adjective)
    for name in order:  # every choice is drawn before omission, so omissions never shift the content stream
        value = findings.get(name)
        sentences, fragments = table[name].get(str(value), ((), ())) if value is not None else ((), ())
        if not sentences:
            continue
        adjectives = US_ADJECTIVES.get(name, {}).get(str(value))
        chosen[name] = (pick(rng, sentences), pick(rng, fragments), pick(rng, adjectives) if adjectives else None)
    kept = {name: c for name, c in chosen.items() if is_kept(om_rng, omission_rate)}

    adjectives: list[str] = []
    out: list[str] = []
    if grouping == "inline":
        for name in ("shape", "echo_pattern"):
            if name in kept and kept[name][2]:
                adjectives.append(kept[name][2])  # type: ignore[arg-type]
                del kept[name]
        grouping = "separate"
    if grouping == "combined" and len(kept) >= 2:
        frags = [kept[name][1] for name in order if name in kept]
        if style == "internal":
            adj = [f for f in frags if not f.startswith("with")]
            with_ = [f.removeprefix("with ") for f in frags if f.startswith("with ")]
            without = [f for f in frags if f.startswith("without")]
            head = f"The mass is {join_and(adj)}" if adj else "The mass is seen"
            tail = ([f"with {join_and(with_)}"] if with_ else []) + without
            out.append(head + "".join(f", {w}" for w in tail) + ".")
        else:
            out.append(cap(", ".join(frags)) + ".")
    else:
        out.extend(kept[name][0] for name in order if name in kept)
    return out, adjectives


@dataclass
class _Draws:
    """One report's shared content, drawn before any section, and the streams the sections go on drawing from."""

    rng: np.random.Generator
    om_rng: np.random.Generator
    omission_rate: float
    side: str
    side_abbr: str
    breast: str
    birads: str
    clock: object
    dist_cm: object
    dims: str
    size_txt: str
    dim_labels: str
    descriptors: list[str]
    adjectives: list[str]
    vascular_txt: str
    axilla_txt: str
    age_txt: str | None
    mhz: str
    reason: int
    sign: str | None

    def kept(self) -> bool:
        return is_kept(self.om_rng, self.omission_rate)


def _dimensions(findings: Mapping[str, object], rng: np.random.Generator, ext: bool) -> tuple[str, str, str]:
    """(dimensions, largest size, dimension labels) as written: width x depth (AP) [x length]; the largest
    equals size_mm, depth/width = the aspect ratio; mm in the internal style, cm in the external one."""
    size_mm = float(findings["size_mm"])  # type: ignore[arg-type]
    aspect_raw = findings.get("aspect_ratio")
    if aspect_raw is None:  # no measured aspect: a typical one for the stated orientation
        aspect_raw = 1.15 if findings.get("orientation") == "not parallel" else 0.7
    aspect = float(aspect_raw)  # type: ignore[arg-type]
    width_mm, depth_mm = (size_mm, size_mm * aspect) if aspect <= 1.0 else (size_mm / aspect, size_mm)
    length_mm = size_mm * float(rng.uniform(0.6, 0.95))
    dims_mm = [width_mm, depth_mm, length_mm] if rng.random() < 0.7 else [width_mm, depth_mm]
    if ext:
        dims = pick(rng, (" x ", "x")).join(fmt_cm(d) for d in dims_mm) + " cm"
        size_txt = f"{fmt_cm(size_mm)} cm"
    else:
        dims = " x ".join(fmt_mm(d) for d in dims_mm) + " mm"
        size_txt = f"{fmt_mm(size_mm)} mm"
    dim_labels = "(transverse x AP x longitudinal)" if len(dims_mm) == 3 else "(transverse x AP)"
    return dims, size_txt, dim_labels


def _draw(
    findings: Mapping[str, object],
    style: str,
    age_years: float | None,
    axillary_nodes_suspicious: bool | None,
    rng: np.random.Generator,
    om_rng: np.random.Generator,
    omission_rate: float,
) -> _Draws:
    side = str(findings.get("laterality") or "")
    birads = str(findings.get("birads") or "4B")
    dims, size_txt, dim_labels = _dimensions(findings, rng, style == "external")
    descriptors, adjectives = _us_descriptor_sentences(findings, style, rng, om_rng, omission_rate)
    p_internal_flow = {"4A": 0.3, "4B": 0.45, "4C": 0.6, "5": 0.7}.get(birads, 0.5)
    u = rng.random()
    vascularity = "internal" if u < p_internal_flow else ("peripheral" if u < p_internal_flow + 0.15 else "absent")
    vascular_txt = pick(rng, VASCULARITY_TEXT[style][vascularity])
    axilla = "suspicious" if axillary_nodes_suspicious else "normal"
    axilla_txt = pick(rng, AXILLA_TEXT[style][axilla]).format(side=side or "ipsilateral")
    return _Draws(
        rng=rng,
        om_rng=om_rng,
        omission_rate=omission_rate,
        side=side,
        side_abbr={"left": "L", "right": "R"}.get(side, ""),
        breast=f"{side} breast" if side else "breast",
        birads=birads,
        clock=findings.get("clock_position"),
        dist_cm=findings.get("distance_from_nipple_cm"),
        dims=dims,
        size_txt=size_txt,
        dim_labels=dim_labels,
        descriptors=descriptors,
        adjectives=adjectives,
        vascular_txt=vascular_txt,
        axilla_txt=axilla_txt,
        age_txt=f"{float(age_years):.0f}" if age_years is not None else None,
        mhz=pick(rng, ("12", "15", "18")),
        reason=int(rng.integers(3)),
        sign=sign_off(rng, style, "radiologist"),
    )


def ultrasound_report(
    findings: Mapping[str, object],
    *,
    seed: int,
    style: str = "internal",
    age_years: float | None = None,
    omission_rate: float = 0.08,
    typo_rate: float = 0.02,
    axillary_nodes_suspicious: bool | None = None,
) -> str:
    """A free-text breast ultrasound report (BI-RADS lexicon) describing ``findings``.

    ``findings`` is a dict as returned by :func:`mrrp.synth.biology.us_findings_from_latent`. The mass is
    measured in 2 or 3 dimensions whose largest equals ``size_mm`` and whose depth/width ratio is the
    finding's ``aspect_ratio`` (mm in the internal style, cm with one decimal in the external style).
    Descriptor sentences are omitted with probability ``omission_rate`` each; the mass location/size,
    impression (BI-RADS category) and recommendation are never omitted. ``axillary_nodes_suspicious``
    (unknown by default) chooses the axilla comment. Deterministic for ``seed``.
    """
    check_args(style, omission_rate, typo_rate)
    rng, om_rng, typo_rng = streams(seed, 1)
    d = _draw(findings, style, age_years, axillary_nodes_suspicious, rng, om_rng, omission_rate)
    sections = _external_sections(d) if style == "external" else _internal_sections(d)
    if d.sign:
        sections.append(Section(None, "plain", [d.sign]))
    apply_typos(sections, typo_rng, typo_rate)
    return render(sections, style)


# -- internal style: full prose ------------------------------------------------------------------------------


def _internal_sections(d: _Draws) -> list[Section]:
    return [*_internal_head(d), _internal_findings(d), *_internal_impression(d)]  # drawn in this order


def _internal_head(d: _Draws) -> list[Section]:
    """Examination, indication and technique (some sites state the indication first)."""
    rng, breast = d.rng, d.breast
    exam = pick(
        rng,
        (
            f"Targeted ultrasound of the {breast}.",
            f"Ultrasound of the {breast} and axilla.",
            f"{cap(breast)} ultrasound, targeted examination.",
        ),
    )
    why = (
        f"a palpable lump in the {breast}",
        f"an abnormality in the {breast} recalled from screening mammography",
        f"a new focal thickening in the {breast}",
    )[d.reason]
    who = f"{d.age_txt}-year-old woman" if d.age_txt else pick(rng, ("Woman", "Patient"))
    indication = f"{cap(who)} with {why}."
    technique = pick(
        rng,
        (
            f"High-resolution ultrasound was performed with a linear-array transducer at {d.mhz} MHz.",
            f"Real-time greyscale and colour Doppler imaging was performed with a linear probe at {d.mhz} MHz.",
            f"Greyscale and Doppler images of the {breast} and axilla were obtained.",
        ),
    )
    head = [
        Section(pick(rng, ("Examination:", "Exam:")), "inline", [exam]),
        Section(pick(rng, ("Indication:", "Clinical indication:", "Clinical history:")), "inline", [indication]),
        Section("Technique:", "inline", [technique]),
    ]
    if rng.random() < 0.3:
        head[0], head[1] = head[1], head[0]
    return head


def _at_where(d: _Draws) -> str:
    # A finding without a clock position is "at the site of concern".
    return f"at {d.clock} o'clock" if d.clock is not None else "at the site of concern"


def _internal_findings(d: _Draws) -> Section:
    """The mass (location, size) in one of three forms, its descriptors, Doppler, axilla and the remainder."""
    rng, breast, dims = d.rng, d.breast, d.dims
    adj = " ".join(d.adjectives) if d.adjectives else "solid"
    a_adj = f"{article(adj)} {adj}"
    at_where = _at_where(d)
    at_position = f"at the {d.clock} o'clock position" if d.clock is not None else "at the site of concern"
    nipple = f", {d.dist_cm} cm from the nipple" if d.dist_cm is not None else ""
    form = int(rng.integers(3))
    if form == 0:
        mass = [f"In the {breast} {at_where}{nipple}, there is {a_adj} mass measuring {dims}."]
    elif form == 1:
        mass = [
            f"There is {a_adj} mass in the {breast} {at_position}{nipple}.",
            f"It measures {dims} {d.dim_labels}.",
        ]
    else:
        mass = [f"{cap(a_adj)} mass is identified {at_where} in the {breast}{nipple}, measuring {dims}."]
    extras = [d.vascular_txt, d.axilla_txt]
    if rng.random() < 0.5:
        extras.reverse()
    remainder = pick(
        rng,
        (
            "The remainder of the breast is unremarkable.",
            "No other focal lesion is identified.",
            "The overlying skin is normal.",
        ),
    )
    findings_sents = mass + d.descriptors + [s for s in extras if d.kept()]
    if rng.random() < 0.6 and d.kept():
        findings_sents.append(remainder)
    return Section(pick(rng, ("Findings:", "Ultrasound findings:")), pick(rng, ("block", "lines")), findings_sents)


def _internal_impression(d: _Draws) -> list[Section]:
    """Impression (BI-RADS category and its suspicion wording) and the recommendation."""
    rng, breast, size_txt = d.rng, d.breast, d.size_txt
    at_where = _at_where(d)
    suspicion = BIRADS_SUSPICION.get(d.birads, "suspicious for malignancy")
    bi = pick(rng, (f"BI-RADS {d.birads}", f"BI-RADS category {d.birads}"))
    impression = pick(
        rng,
        (
            f"{cap(breast)} mass {at_where}, {bi}: {suspicion}.",
            f"Suspicious {size_txt} solid mass in the {breast}, {bi} ({suspicion}).",
            f"{bi}: {size_txt} mass in the {breast} {at_where}, {suspicion}.",
        ),
    )
    recommendation = [
        pick(
            rng,
            (
                "Ultrasound-guided core needle biopsy is recommended.",
                "We recommend ultrasound-guided core biopsy for histological diagnosis.",
                "Tissue diagnosis by ultrasound-guided 14-gauge core biopsy is advised.",
            ),
        )
    ]
    if d.birads == "5" and rng.random() < 0.5:
        recommendation.append("Discussion at the multidisciplinary breast meeting is suggested.")
    return [
        Section(pick(rng, ("Impression:", "Opinion:")), "block", [impression]),
        Section(pick(rng, ("Recommendation:", "Recommendations:")), "inline", recommendation),
    ]


# -- external style: terse, abbreviated, capitalised headers -----------------------------------------------


def _side_short(d: _Draws) -> str:
    """ "L breast" / "Lt breast" (drawn), or "breast" when the side is unknown (nothing drawn)."""
    if not d.side_abbr:
        return "breast"
    return pick(d.rng, (f"{d.side_abbr} breast", f"{d.side_abbr.capitalize()}t breast"))


def _external_sections(d: _Draws) -> list[Section]:
    head, side_short = _external_head(d)
    findings, where = _external_findings(d, side_short)
    return [*head, findings, *_external_conclusion(d, side_short, where)]


def _external_head(d: _Draws) -> tuple[list[Section], str]:
    """Title, history and technique; and the breast as these reports write it ("Lt breast")."""
    rng, side_abbr = d.rng, d.side_abbr
    side_up = d.side.upper() or "BREAST"
    title = pick(
        rng, (f"US BREAST {side_up}.", f"BREAST US - {side_abbr or side_up}.", f"ULTRASOUND {side_abbr} BREAST.")
    )
    side_short = _side_short(d)
    why = ("palpable lump", "screen-detected abnormality", "focal thickening")[d.reason]
    hx = f"{d.age_txt}F, {why} {side_short}." if d.age_txt else f"{cap(why)} {side_short}."
    tech = pick(rng, (f"Targeted US, {d.mhz} MHz linear probe.", "B-mode and Doppler, linear probe."))
    head = [
        Section(None, "plain", [title], typos=False),
        Section(pick(rng, ("HX:", "CLIN:")), "inline", [hx]),
        Section("TECH:", "inline", [tech]),
    ]
    return head, side_short


def _external_findings(d: _Draws, side_short: str) -> tuple[Section, str]:
    """The mass line, descriptors, Doppler and axilla; and the clock position as written (" 10:00")."""
    rng = d.rng
    where = pick(rng, (f" {d.clock}:00", f" {d.clock} o'clock")) if d.clock is not None else ""
    fn = f", {d.dist_cm} cm FN" if d.dist_cm is not None else ""
    adj = " ".join(d.adjectives) if d.adjectives else "solid"
    mass = pick(
        rng,
        (
            f"{cap(side_short)}{where}{fn}: {adj} mass {d.dims}.",
            f"Mass {side_short}{' at' + where if where else ''}{fn.replace('FN', 'from nipple')}, {d.dims}.",
        ),
    )
    extras = [d.vascular_txt, d.axilla_txt]
    findings_sents = [mass] + d.descriptors + [s for s in extras if d.kept()]
    section = Section(pick(rng, ("RESULT:", "FINDINGS US:")), pick(rng, ("lines", "inline")), findings_sents)
    return section, where


def _external_conclusion(d: _Draws, side_short: str, where: str) -> list[Section]:
    rng, birads = d.rng, d.birads
    suspicion = {"4A": "low suspicion", "4B": "moderate suspicion", "4C": "high suspicion"}.get(
        birads, "highly suggestive of malignancy"
    )
    bi = pick(rng, (f"BIRADS {birads}", f"BIRADS: {birads}"))
    conclusion = pick(
        rng,
        (
            f"{bi}, {suspicion}.",
            f"{cap(side_short)}{where} mass {d.size_txt}, {bi}.",
            f"Solid mass {side_short}, {bi} ({suspicion}).",
        ),
    )
    plan = pick(rng, ("US-guided core biopsy.", "US-guided CNB recommended.", "Core bx under US, 14G."))
    return [
        Section(pick(rng, ("CONCLUSION:", "SUMMARY:")), "inline", [conclusion]),
        Section(pick(rng, ("PLAN:", "REC:")), "inline", [plan]),
    ]
