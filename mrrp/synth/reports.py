"""Free-text breast ultrasound and surgical pathology reports for the synthetic cohort, and a sentence splitter.

The report encoder turns every sentence into one token (MiniLM), so the generator aims at the variability
that makes real reports hard to read by machine while keeping every stated value true to the record:

- two template families, one per site ``report_style``: ``"internal"`` writes full prose (BI-RADS,
  Nottingham grade, sizes in mm, Allred/H-scores); ``"external"`` is terse and abbreviated, with
  capitalised headers, "BIRADS", ultrasound sizes in cm and "T3 P2 M2" grade shorthand;
- synonyms for every descriptor (listed in :data:`REPORT_LEXICON`), several sentence orders and groupings;
- occasional omission of individual descriptor sentences (``omission_rate``, per sentence) and letter
  typos (``typo_rate``, per sentence: a swapped, dropped or doubled letter, never in a token with digits).

Each report draws from three independent random streams (content, omissions, typos), so changing
``omission_rate`` or ``typo_rate`` never changes which templates or numbers were chosen. Every sentence
ends with a period, and :func:`split_sentences` splits these reports (and similar real ones) back into
sentences.

Usage::

    from mrrp.synth.reports import pathology_report, split_sentences, ultrasound_report

    text = ultrasound_report(patient.us_findings, seed=patient.seed, style="external", age_years=61)
    sentences = split_sentences(text)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

STYLES = ("internal", "external")
MARGIN_STATUSES = ("clear", "close", "involved")

# Descriptor value -> the phrases the generator uses for it, grouped by field (field names and values as in
# mrrp.synth.biology). Every descriptor phrase in a report contains one of these (case-insensitive), so
# tests and docs can check coverage. Match on word boundaries: some phrases contain others
# ("not parallel to the skin" contains "parallel to the skin").
REPORT_LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    # ultrasound (us_findings_from_latent)
    "laterality": {
        "left": ("left", "L breast", "Lt breast"),
        "right": ("right", "R breast", "Rt breast"),
    },
    "shape": {
        "oval": ("oval", "ovoid", "elliptical"),
        "round": ("round", "rounded"),
        "irregular": ("irregular", "irregularly shaped"),
    },
    "orientation": {
        "parallel": (
            "parallel to the skin",
            "orientation parallel",
            "orientation: parallel",
            "wider-than-tall",
            "wider than tall",
            "horizontally oriented",
        ),
        "not parallel": (
            "not parallel to the skin",
            "non-parallel to the skin",
            "non-parallel",
            "orientation: not parallel",
            "taller-than-wide",
            "taller than wide",
            "vertically oriented",
        ),
    },
    "margin": {
        "circumscribed": ("circumscribed", "well-defined", "sharply defined"),
        "indistinct": ("indistinct", "ill-defined", "poorly defined"),
        "angular": ("angular", "angulated"),
        "microlobulated": ("microlobulated", "microlobulations"),
        "spiculated": ("spiculated", "spiculations"),
    },
    "echo_pattern": {
        "hypoechoic": ("hypoechoic",),
        "heterogeneous": ("heterogeneous", "inhomogeneous", "mixed echogenicity"),
    },
    "posterior": {
        "shadowing": ("posterior acoustic shadowing", "posterior shadowing", "shadowing"),
        "enhancement": (
            "posterior acoustic enhancement",
            "posterior enhancement",
            "posterior features: enhancement",
            "enhanced through-transmission",
        ),
        "no posterior features": (
            "no posterior acoustic features",
            "no posterior features",
            "posterior features: none",
            "without posterior acoustic features",
            "posterior acoustic features are absent",
        ),
    },
    "vascularity": {
        "internal": ("internal vascularity", "internal flow"),
        "peripheral": ("peripheral vascularity", "rim vascularity", "peripheral flow"),
        "absent": ("avascular", "no internal vascularity", "no flow"),
    },
    "axilla": {
        "normal": ("no suspicious", "no morphologically abnormal", "normal-appearing", "unremarkable"),
        "suspicious": ("abnormal axillary", "abnormal node", "cortical thickening"),
    },
    # pathology (clinical_from_latent)
    "histological_type": {
        "invasive carcinoma of no special type": ("no special type", "NST", "invasive ductal carcinoma"),
        "invasive lobular carcinoma": ("lobular", "ILC"),
        "mucinous carcinoma": ("mucinous", "colloid"),
    },
    "lymphovascular_invasion": {
        "yes": (
            "lymphovascular invasion is present",
            "lymphovascular invasion is identified",
            "definite lymphovascular invasion",
            "LVI: present",
            "LVI seen",
        ),
        "no": (
            "lymphovascular invasion is not identified",
            "no lymphovascular invasion",
            "LVI: absent",
            "LVI not seen",
        ),
    },
    "her2": {
        "negative": ("HER2 negative", "HER2-negative", "HER2: negative", "HER2 status: negative", "HER2 NEG"),
    },
    "margin_status": {
        "clear": ("clear",),
        "close": ("close",),
        "involved": ("involved", "at ink"),
    },
}

# Never split after these (lower case, without the final period); never typo them either.
ABBREVIATIONS = frozenset(
    {"approx", "appr", "e.g", "i.e", "eg", "ie", "dr", "prof", "mr", "mrs", "ms", "vs", "cf", "incl", "resp", "fig"}
)
BIRADS_SUSPICION = {
    "4A": "low suspicion for malignancy",
    "4B": "moderate suspicion for malignancy",
    "4C": "high suspicion for malignancy",
    "5": "highly suggestive of malignancy",
}
# Nottingham total score (tubules + pleomorphism + mitoses, each 1-3) per grade.
NOTTINGHAM_SCORE_RANGE = {1: (3, 5), 2: (6, 7), 3: (8, 9)}

_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SURNAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Haddad", "Fischer", "Oliveira", "Kowalski")
_ROMAN = {1: "I", 2: "II", 3: "III"}


# --- shared machinery -------------------------------------------------------------------------------------


@dataclass
class _Section:
    """One report section. Layouts: "plain" (no header, a line per sentence), "inline" (header and sentences
    on one line), "block" (header line, then one paragraph), "lines", "numbered", "bullets"."""

    header: str | None
    layout: str
    sentences: list[str] = field(default_factory=list)
    typos: bool = True  # titles are boilerplate, kept clean


def _streams(seed: int, kind: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    # Independent content / omission / typo streams: noise rates never change the content drawn.
    s = int(seed) % 2**63
    return (
        np.random.default_rng([s, kind, 0]),
        np.random.default_rng([s, kind, 1]),
        np.random.default_rng([s, kind, 2]),
    )


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _check_args(style: str, omission_rate: float, typo_rate: float) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown report style {style!r}; known: {STYLES}")
    for name, rate in (("omission_rate", omission_rate), ("typo_rate", typo_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")


def _kept(om_rng: np.random.Generator, omission_rate: float) -> bool:
    return bool(om_rng.random() >= omission_rate)  # one draw per omissible sentence, whatever the rate


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _count_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _fmt_mm(value_mm: float) -> str:
    return f"{value_mm:.0f}"


def _fmt_cm(value_mm: float) -> str:
    return f"{value_mm / 10:.1f}"


# A candidate word for a typo: letters only, not touching digits, hyphens, apostrophes or slashes.
_TYPO_WORD = re.compile(r"(?<![\w\-'/.])[A-Za-z]{4,}(?![\w\-'/])")


def _typo(sentence: str, rng: np.random.Generator) -> str:
    """One swapped, dropped or doubled letter in a lower- or title-case word (codes and numbers kept)."""
    # Plain words only: codes with inner capitals ("pTNM", "BIRADS") and abbreviations stay intact.
    words = [m for m in _TYPO_WORD.finditer(sentence) if m.group()[1:].islower()]
    words = [m for m in words if m.group().lower() not in ABBREVIATIONS]
    if not words:
        return sentence
    m = words[int(rng.integers(len(words)))]
    w = m.group()
    i = int(rng.integers(1, len(w) - 1))  # never the first letter: keeps capitalisation and sentence starts
    op = int(rng.integers(3))
    if op == 0 and w[i] != w[i + 1]:
        w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    elif op == 2:
        w = w[: i + 1] + w[i] + w[i + 1 :]
    else:
        w = w[:i] + w[i + 1 :]
    return sentence[: m.start()] + w + sentence[m.end() :]


def _apply_typos(sections: list[_Section], rng: np.random.Generator, typo_rate: float) -> None:
    for sec in sections:
        for k, s in enumerate(sec.sentences):
            hit = rng.random() < typo_rate  # always drawn, so the stream stays aligned
            if hit and sec.typos:
                sec.sentences[k] = _typo(s, rng)


def _render(sections: list[_Section], style: str) -> str:
    lines: list[str] = []
    prev_layout = ""
    for sec in (s for s in sections if s.sentences):
        spaced = sec.layout not in ("plain", "inline") or prev_layout not in ("plain", "inline", "")
        if style == "internal" and lines and spaced:
            lines.append("")  # internal reports separate blocks with blank lines; external ones are dense
        if sec.layout == "plain":
            lines.extend(sec.sentences)
        elif sec.layout == "inline":
            lines.append(f"{sec.header} {' '.join(sec.sentences)}" if sec.header else " ".join(sec.sentences))
        else:
            if sec.header:
                lines.append(sec.header)
            if sec.layout == "block":
                lines.append(" ".join(sec.sentences))
            elif sec.layout == "numbered":
                lines.extend(f"{k}. {s}" for k, s in enumerate(sec.sentences, start=1))
            elif sec.layout == "bullets":
                lines.extend(f"- {s}" for s in sec.sentences)
            else:
                lines.extend(sec.sentences)
        prev_layout = sec.layout
    return "\n".join(lines) + "\n"


def _sign_off(rng: np.random.Generator, style: str, role: str) -> str | None:
    # Most reports are signed; the initial after "Dr." exercises the splitter's abbreviation handling.
    if rng.random() >= 0.7:
        return None
    initial, surname = chr(ord("A") + int(rng.integers(26))), _pick(rng, _SURNAMES)
    if style == "external":
        return f"Signed: Dr. {initial}. {surname}."
    return f"Reported by Dr. {initial}. {surname}, consultant {role}."


# --- ultrasound ---------------------------------------------------------------------------------------------

# field -> value -> (whole sentences, fragments for a combined sentence). Fragments starting with "with"
# go after the adjectives ("The mass is irregular in shape and hypoechoic, with spiculated margins.").
_US_PHRASES: dict[str, dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "internal": {
        "shape": {
            "oval": (
                ("The mass is oval in shape.", "It has an ovoid shape.", "The lesion is elliptical in configuration."),
                ("oval", "ovoid"),
            ),
            "round": (
                ("The mass is round in shape.", "It has a round configuration.", "The lesion is rounded."),
                ("round",),
            ),
            "irregular": (
                ("The mass is irregular in shape.", "It has an irregular shape.", "The lesion is irregularly shaped."),
                ("irregular in shape", "irregularly shaped"),
            ),
        },
        "orientation": {
            "parallel": (
                (
                    "The mass is oriented parallel to the skin.",
                    "It is wider-than-tall.",
                    "Its long axis lies parallel to the skin surface.",
                    "The lesion is horizontally oriented.",
                ),
                ("parallel to the skin", "wider-than-tall", "horizontally oriented"),
            ),
            "not parallel": (
                (
                    "The mass is not parallel to the skin.",
                    "It is taller-than-wide.",
                    "The lesion is oriented non-parallel to the skin.",
                    "Its long axis is vertically oriented.",
                ),
                ("taller-than-wide", "non-parallel to the skin", "vertically oriented"),
            ),
        },
        "margin": {
            "circumscribed": (
                (
                    "The margins are circumscribed.",
                    "The mass is well circumscribed.",
                    "It has sharply defined margins.",
                ),
                ("with circumscribed margins", "with sharply defined margins"),
            ),
            "indistinct": (
                ("The margins are indistinct.", "The margins are ill-defined.", "It has poorly defined margins."),
                ("with indistinct margins", "with ill-defined margins"),
            ),
            "angular": (
                ("The margins are angular.", "It has angular margins.", "The margins are angulated."),
                ("with angular margins",),
            ),
            "microlobulated": (
                (
                    "The margins are microlobulated.",
                    "It has microlobulated margins.",
                    "Small microlobulations are seen along the margin.",
                ),
                ("with microlobulated margins",),
            ),
            "spiculated": (
                (
                    "The margins are spiculated.",
                    "It has spiculated margins.",
                    "The mass is seen with spiculations radiating into the surrounding tissue.",
                ),
                ("with spiculated margins", "with spiculations"),
            ),
        },
        "echo_pattern": {
            "hypoechoic": (
                (
                    "It is hypoechoic relative to the subcutaneous fat.",
                    "The mass is hypoechoic.",
                    "The echo pattern is hypoechoic.",
                ),
                ("hypoechoic",),
            ),
            "heterogeneous": (
                (
                    "The internal echo pattern is heterogeneous.",
                    "It shows an inhomogeneous echotexture.",
                    "The mass is of mixed echogenicity.",
                ),
                ("heterogeneous", "of mixed echogenicity"),
            ),
        },
        "posterior": {
            "shadowing": (
                (
                    "There is posterior acoustic shadowing.",
                    "Posterior acoustic shadowing is present.",
                    "The mass shows posterior shadowing.",
                ),
                ("with posterior acoustic shadowing", "with posterior shadowing"),
            ),
            "enhancement": (
                (
                    "There is posterior acoustic enhancement.",
                    "Posterior enhancement is noted.",
                    "There is enhanced through-transmission.",
                ),
                ("with posterior acoustic enhancement",),
            ),
            "no posterior features": (
                (
                    "There are no posterior acoustic features.",
                    "No posterior features are seen.",
                    "Posterior acoustic features are absent.",
                ),
                ("without posterior acoustic features",),
            ),
        },
    },
    "external": {
        "shape": {
            v: ((f"Shape {v}.", f"{_cap(v)} shape.", f"Shape: {v}."), (f"{v} shape",))
            for v in ("oval", "round", "irregular")
        },
        "orientation": {
            "parallel": (
                ("Orientation parallel.", "Orientation: parallel.", "Wider than tall."),
                ("orientation parallel", "wider than tall"),
            ),
            "not parallel": (
                ("Orientation non-parallel.", "Orientation: not parallel.", "Taller than wide."),
                ("non-parallel", "taller than wide"),
            ),
        },
        "margin": {
            "circumscribed": (("Margins circumscribed.", "Margin: well-defined."), ("circumscribed margins",)),
            "indistinct": (("Margins indistinct.", "Margin: ill-defined."), ("ill-defined margins",)),
            "angular": (("Margins angular.", "Margin: angular."), ("angular margins",)),
            "microlobulated": (("Margins microlobulated.", "Margin: microlobulated."), ("microlobulated margins",)),
            "spiculated": (
                ("Margins spiculated.", "Margin: spiculated.", "With spiculations."),
                ("spiculated margins",),
            ),
        },
        "echo_pattern": {
            "hypoechoic": (("Hypoechoic.", "Echo pattern: hypoechoic.", "Hypoechoic lesion."), ("hypoechoic",)),
            "heterogeneous": (
                ("Heterogeneous echotexture.", "Echo pattern: heterogeneous.", "Inhomogeneous echotexture."),
                ("heterogeneous",),
            ),
        },
        "posterior": {
            "shadowing": (
                ("Posterior shadowing.", "Posterior acoustic shadowing.", "Posterior features: shadowing."),
                ("posterior shadowing",),
            ),
            "enhancement": (
                ("Posterior enhancement.", "Posterior features: enhancement."),
                ("posterior enhancement",),
            ),
            "no posterior features": (
                ("No posterior features.", "Posterior features: none."),
                ("no posterior features",),
            ),
        },
    },
}
# Adjectives that fit "a ... mass" (the "inline" grouping of the internal style).
_US_ADJECTIVES = {
    "shape": {"oval": ("oval", "ovoid"), "round": ("round",), "irregular": ("irregular",)},
    "echo_pattern": {"hypoechoic": ("hypoechoic",), "heterogeneous": ("heterogeneous",)},
}
_DESCRIPTOR_ORDERS = (
    ("shape", "orientation", "margin", "echo_pattern", "posterior"),
    ("shape", "margin", "orientation", "echo_pattern", "posterior"),
    ("margin", "shape", "echo_pattern", "orientation", "posterior"),
    ("echo_pattern", "shape", "margin", "posterior", "orientation"),
)
_VASCULARITY_TEXT = {
    "internal": {
        "internal": (
            "Colour Doppler shows internal vascularity.",
            "Internal vascularity is present on Doppler imaging.",
        ),
        "peripheral": ("Colour Doppler shows peripheral vascularity only.", "There is rim vascularity on Doppler."),
        "absent": ("No internal vascularity is seen on colour Doppler.", "The mass is avascular on Doppler imaging."),
    },
    "external": {
        "internal": ("Doppler: internal flow.", "Internal vascularity on Doppler."),
        "peripheral": ("Doppler: peripheral flow.", "Rim vascularity."),
        "absent": ("Doppler: no flow.", "Avascular."),
    },
}
_AXILLA_TEXT = {
    "internal": {
        "normal": (
            "The {side} axilla shows no morphologically abnormal lymph nodes.",
            "There is no suspicious axillary lymphadenopathy.",
            "Axillary lymph nodes are normal-appearing with preserved fatty hila.",
        ),
        "suspicious": (
            "A {side} axillary lymph node shows cortical thickening and is considered suspicious.",
            "There is an abnormal axillary lymph node with effacement of the fatty hilum.",
        ),
    },
    "external": {
        "normal": ("Axilla: no suspicious nodes.", "Axilla unremarkable."),
        "suspicious": ("Axilla: abnormal node, cortical thickening.", "Abnormal axillary node, cortex thickened."),
    },
}


def _us_descriptor_sentences(
    findings: Mapping[str, object],
    style: str,
    rng: np.random.Generator,
    om_rng: np.random.Generator,
    omission_rate: float,
) -> tuple[list[str], list[str]]:
    """Descriptor sentences in one of several orders and groupings, and adjectives for the mass sentence."""
    table = _US_PHRASES[style]
    order = _DESCRIPTOR_ORDERS[int(rng.integers(len(_DESCRIPTOR_ORDERS)))]
    # Internal: separate / all-in-one / shape+echo as adjectives; external: separate lines or one list.
    grouping = _pick(
        rng, ("separate", "combined", "inline") if style == "internal" else ("separate", "separate", "combined")
    )
    chosen: dict[str, tuple[str, str, str | None]] = {}  # field -> (sentence, fragment, adjective)
    for name in order:  # every choice is drawn before omission, so omissions never shift the content stream
        value = findings.get(name)
        sentences, fragments = table[name].get(str(value), ((), ())) if value is not None else ((), ())
        if not sentences:
            continue
        adjectives = _US_ADJECTIVES.get(name, {}).get(str(value))
        chosen[name] = (_pick(rng, sentences), _pick(rng, fragments), _pick(rng, adjectives) if adjectives else None)
    kept = {name: c for name, c in chosen.items() if _kept(om_rng, omission_rate)}

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
            head = f"The mass is {_join(adj)}" if adj else "The mass is seen"
            tail = ([f"with {_join(with_)}"] if with_ else []) + without
            out.append(head + "".join(f", {w}" for w in tail) + ".")
        else:
            out.append(_cap(", ".join(frags)) + ".")
    else:
        out.extend(kept[name][0] for name in order if name in kept)
    return out, adjectives


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
    _check_args(style, omission_rate, typo_rate)
    rng, om_rng, typo_rng = _streams(seed, 1)
    ext = style == "external"
    side = str(findings.get("laterality") or "")
    side_abbr = {"left": "L", "right": "R"}.get(side, "")
    breast = f"{side} breast" if side else "breast"
    birads = str(findings.get("birads") or "4B")
    clock = findings.get("clock_position")
    dist_cm = findings.get("distance_from_nipple_cm")

    # Dimensions: width x depth (AP) [x length]; the largest equals size_mm, depth/width = aspect ratio.
    size_mm = float(findings["size_mm"])  # type: ignore[arg-type]
    aspect_raw = findings.get("aspect_ratio")
    if aspect_raw is None:  # no measured aspect: a typical one for the stated orientation
        aspect_raw = 1.15 if findings.get("orientation") == "not parallel" else 0.7
    aspect = float(aspect_raw)  # type: ignore[arg-type]
    width_mm, depth_mm = (size_mm, size_mm * aspect) if aspect <= 1.0 else (size_mm / aspect, size_mm)
    length_mm = size_mm * float(rng.uniform(0.6, 0.95))
    dims_mm = [width_mm, depth_mm, length_mm] if rng.random() < 0.7 else [width_mm, depth_mm]
    if ext:
        dims = _pick(rng, (" x ", "x")).join(_fmt_cm(d) for d in dims_mm) + " cm"
        size_txt = f"{_fmt_cm(size_mm)} cm"
    else:
        dims = " x ".join(_fmt_mm(d) for d in dims_mm) + " mm"
        size_txt = f"{_fmt_mm(size_mm)} mm"
    dim_labels = "(transverse x AP x longitudinal)" if len(dims_mm) == 3 else "(transverse x AP)"

    descriptors, adjectives = _us_descriptor_sentences(findings, style, rng, om_rng, omission_rate)
    p_internal_flow = {"4A": 0.3, "4B": 0.45, "4C": 0.6, "5": 0.7}.get(birads, 0.5)
    u = rng.random()
    vascularity = "internal" if u < p_internal_flow else ("peripheral" if u < p_internal_flow + 0.15 else "absent")
    vascular_txt = _pick(rng, _VASCULARITY_TEXT[style][vascularity])
    axilla = "suspicious" if axillary_nodes_suspicious else "normal"
    axilla_txt = _pick(rng, _AXILLA_TEXT[style][axilla]).format(side=side or "ipsilateral")
    age_txt = f"{float(age_years):.0f}" if age_years is not None else None
    mhz = _pick(rng, ("12", "15", "18"))
    reason = int(rng.integers(3))
    sign = _sign_off(rng, style, "radiologist")

    sections: list[_Section] = []
    if not ext:
        exam = _pick(
            rng,
            (
                f"Targeted ultrasound of the {breast}.",
                f"Ultrasound of the {breast} and axilla.",
                f"{_cap(breast)} ultrasound, targeted examination.",
            ),
        )
        why = (
            f"a palpable lump in the {breast}",
            f"an abnormality in the {breast} recalled from screening mammography",
            f"a new focal thickening in the {breast}",
        )[reason]
        who = f"{age_txt}-year-old woman" if age_txt else _pick(rng, ("Woman", "Patient"))
        indication = f"{_cap(who)} with {why}."
        technique = _pick(
            rng,
            (
                f"High-resolution ultrasound was performed with a linear-array transducer at {mhz} MHz.",
                f"Real-time greyscale and colour Doppler imaging was performed with a linear probe at {mhz} MHz.",
                f"Greyscale and Doppler images of the {breast} and axilla were obtained.",
            ),
        )
        head = [
            _Section(_pick(rng, ("Examination:", "Exam:")), "inline", [exam]),
            _Section(_pick(rng, ("Indication:", "Clinical indication:", "Clinical history:")), "inline", [indication]),
            _Section("Technique:", "inline", [technique]),
        ]
        if rng.random() < 0.3:  # some sites state the indication first
            head[0], head[1] = head[1], head[0]
        sections.extend(head)

        adj = " ".join(adjectives) if adjectives else "solid"
        a_adj = f"{_article(adj)} {adj}"
        # Location parts; a finding without clock position or nipple distance simply leaves them out.
        at_where = f"at {clock} o'clock" if clock is not None else "at the site of concern"
        at_position = f"at the {clock} o'clock position" if clock is not None else "at the site of concern"
        nipple = f", {dist_cm} cm from the nipple" if dist_cm is not None else ""
        form = int(rng.integers(3))
        if form == 0:
            mass = [f"In the {breast} {at_where}{nipple}, there is {a_adj} mass measuring {dims}."]
        elif form == 1:
            mass = [
                f"There is {a_adj} mass in the {breast} {at_position}{nipple}.",
                f"It measures {dims} {dim_labels}.",
            ]
        else:
            mass = [f"{_cap(a_adj)} mass is identified {at_where} in the {breast}{nipple}, measuring {dims}."]
        extras = [vascular_txt, axilla_txt]
        if rng.random() < 0.5:
            extras.reverse()
        remainder = _pick(
            rng,
            (
                "The remainder of the breast is unremarkable.",
                "No other focal lesion is identified.",
                "The overlying skin is normal.",
            ),
        )
        findings_sents = mass + descriptors + [s for s in extras if _kept(om_rng, omission_rate)]
        if rng.random() < 0.6 and _kept(om_rng, omission_rate):
            findings_sents.append(remainder)
        sections.append(
            _Section(_pick(rng, ("Findings:", "Ultrasound findings:")), _pick(rng, ("block", "lines")), findings_sents)
        )

        suspicion = BIRADS_SUSPICION.get(birads, "suspicious for malignancy")
        bi = _pick(rng, (f"BI-RADS {birads}", f"BI-RADS category {birads}"))
        impression = _pick(
            rng,
            (
                f"{_cap(breast)} mass {at_where}, {bi}: {suspicion}.",
                f"Suspicious {size_txt} solid mass in the {breast}, {bi} ({suspicion}).",
                f"{bi}: {size_txt} mass in the {breast} {at_where}, {suspicion}.",
            ),
        )
        recommendation = [
            _pick(
                rng,
                (
                    "Ultrasound-guided core needle biopsy is recommended.",
                    "We recommend ultrasound-guided core biopsy for histological diagnosis.",
                    "Tissue diagnosis by ultrasound-guided 14-gauge core biopsy is advised.",
                ),
            )
        ]
        if birads == "5" and rng.random() < 0.5:
            recommendation.append("Discussion at the multidisciplinary breast meeting is suggested.")
        sections.append(_Section(_pick(rng, ("Impression:", "Opinion:")), "block", [impression]))
        sections.append(_Section(_pick(rng, ("Recommendation:", "Recommendations:")), "inline", recommendation))
        if sign:
            sections.append(_Section(None, "plain", [sign]))
    else:
        side_up = side.upper() or "BREAST"
        title = _pick(
            rng, (f"US BREAST {side_up}.", f"BREAST US - {side_abbr or side_up}.", f"ULTRASOUND {side_abbr} BREAST.")
        )
        side_short = _pick(rng, (f"{side_abbr} breast", f"{side_abbr.capitalize()}t breast")) if side_abbr else "breast"
        why = ("palpable lump", "screen-detected abnormality", "focal thickening")[reason]
        hx = f"{age_txt}F, {why} {side_short}." if age_txt else f"{_cap(why)} {side_short}."
        tech = _pick(rng, (f"Targeted US, {mhz} MHz linear probe.", "B-mode and Doppler, linear probe."))
        sections.append(_Section(None, "plain", [title], typos=False))
        sections.append(_Section(_pick(rng, ("HX:", "CLIN:")), "inline", [hx]))
        sections.append(_Section("TECH:", "inline", [tech]))

        where = _pick(rng, (f" {clock}:00", f" {clock} o'clock")) if clock is not None else ""
        fn = f", {dist_cm} cm FN" if dist_cm is not None else ""
        adj = " ".join(adjectives) if adjectives else "solid"
        mass = _pick(
            rng,
            (
                f"{_cap(side_short)}{where}{fn}: {adj} mass {dims}.",
                f"Mass {side_short}{' at' + where if where else ''}{fn.replace('FN', 'from nipple')}, {dims}.",
            ),
        )
        extras = [vascular_txt, axilla_txt]
        findings_sents = [mass] + descriptors + [s for s in extras if _kept(om_rng, omission_rate)]
        sections.append(
            _Section(_pick(rng, ("RESULT:", "FINDINGS US:")), _pick(rng, ("lines", "inline")), findings_sents)
        )

        suspicion = {"4A": "low suspicion", "4B": "moderate suspicion", "4C": "high suspicion"}.get(
            birads, "highly suggestive of malignancy"
        )
        bi = _pick(rng, (f"BIRADS {birads}", f"BIRADS: {birads}"))
        conclusion = _pick(
            rng,
            (
                f"{bi}, {suspicion}.",
                f"{_cap(side_short)}{where} mass {size_txt}, {bi}.",
                f"Solid mass {side_short}, {bi} ({suspicion}).",
            ),
        )
        plan = _pick(rng, ("US-guided core biopsy.", "US-guided CNB recommended.", "Core bx under US, 14G."))
        sections.append(_Section(_pick(rng, ("CONCLUSION:", "SUMMARY:")), "inline", [conclusion]))
        sections.append(_Section(_pick(rng, ("PLAN:", "REC:")), "inline", [plan]))
        if sign:
            sections.append(_Section(None, "plain", [sign]))

    _apply_typos(sections, typo_rng, typo_rate)
    return _render(sections, style)


# --- pathology ----------------------------------------------------------------------------------------------


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


def _nottingham_components(
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


def _allred(percent: float, intensity: int) -> int:
    if percent <= 0:
        return 0
    proportion = 1 if percent < 1 else 2 if percent <= 10 else 3 if percent <= 33 else 4 if percent <= 66 else 5
    return proportion + intensity


def _intensity(rng: np.random.Generator, percent: float) -> int:
    """Staining intensity 1 weak, 2 moderate, 3 strong; diffuse staining is usually strong."""
    p_strong = 0.75 if percent >= 67 else 0.35
    u = rng.random()
    return 3 if u < p_strong else (2 if u < p_strong + 0.5 * (1 - p_strong) + 0.15 else 1)


def _h_score(rng: np.random.Generator, percent: float, intensity: int) -> int:
    # H-score = sum(intensity x % cells at that intensity): between 1x and 3x the positive percentage.
    mean_intensity = {1: (1.0, 1.4), 2: (1.7, 2.3), 3: (2.5, 3.0)}[intensity]
    return int(min(300, round(percent * float(rng.uniform(*mean_intensity)))))


_TYPE_TEXT = {
    "internal": {
        "invasive carcinoma of no special type": (
            "invasive carcinoma of no special type",
            "invasive breast carcinoma of no special type (NST)",
            "invasive ductal carcinoma (no special type)",
        ),
        "invasive lobular carcinoma": ("invasive lobular carcinoma", "invasive lobular carcinoma, classic type"),
        "mucinous carcinoma": ("mucinous carcinoma", "invasive mucinous (colloid) carcinoma"),
    },
    "external": {
        "invasive carcinoma of no special type": (
            "IDC NST",
            "invasive ductal carcinoma, NST",
            "invasive carcinoma NST",
        ),
        "invasive lobular carcinoma": ("ILC", "invasive lobular carcinoma", "ILC, classic"),
        "mucinous carcinoma": ("mucinous carcinoma", "colloid carcinoma"),
    },
}
_GROSS_TUMOUR = {
    "invasive carcinoma of no special type": "a firm, grey-white, stellate tumour",
    "invasive lobular carcinoma": "a poorly circumscribed firm area",
    "mucinous carcinoma": "a well-circumscribed, gelatinous tumour",
}
_MICRO_TYPE = {
    "invasive carcinoma of no special type": "Sections show an invasive carcinoma forming tubules, nests and cords.",
    "invasive lobular carcinoma": "Sections show discohesive tumour cells infiltrating in single files.",
    "mucinous carcinoma": "Sections show clusters of tumour cells floating in pools of extracellular mucin.",
}


def _grade_text(grade: int, rng: np.random.Generator, style: str) -> str:
    if style == "external":
        return _pick(rng, (f"G{grade}", f"grade {grade}"))
    return _pick(rng, (f"Nottingham grade {grade}", f"grade {_ROMAN[grade]}", f"grade {grade} of 3"))


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
    _check_args(style, omission_rate, typo_rate)
    if margin_status is not None and margin_status not in MARGIN_STATUSES:
        raise ValueError(f"unknown margin_status {margin_status!r}; known: {MARGIN_STATUSES}")
    rng, om_rng, typo_rng = _streams(seed, 2)
    ext = style == "external"

    def kept() -> bool:
        return _kept(om_rng, omission_rate)

    # --- the record, with unknowns kept as None
    size_raw = clinical.get("tumour_size_mm")
    size_txt = _fmt_mm(float(size_raw)) if size_raw is not None else None  # type: ignore[arg-type]
    size_mm = float(size_txt) if size_txt is not None else None  # stage on the size as written
    grade = int(clinical["histological_grade"]) if clinical.get("histological_grade") is not None else None  # type: ignore[arg-type]
    nodes_raw = clinical.get("positive_lymph_nodes")
    positive = int(nodes_raw) if nodes_raw is not None else None  # type: ignore[arg-type]
    er = float(clinical["er_percent"]) if clinical.get("er_percent") is not None else None  # type: ignore[arg-type]
    pr = float(clinical["pr_percent"]) if clinical.get("pr_percent") is not None else None  # type: ignore[arg-type]
    ki67 = float(clinical["ki67_percent"]) if clinical.get("ki67_percent") is not None else None  # type: ignore[arg-type]
    lvi = clinical.get("lymphovascular_invasion")
    htype = str(clinical.get("histological_type") or "invasive carcinoma of no special type")
    if htype not in _TYPE_TEXT["internal"]:
        htype = "invasive carcinoma of no special type"
    side = laterality or clinical.get("laterality")
    side = str(side) if side else None
    age = clinical.get("age_years")
    meno = clinical.get("menopausal_status")

    # --- everything random is drawn here, before any omission
    mastectomy = rng.random() < (0.7 if (size_mm or 0) > 40 else 0.15)
    if positive is None:
        sentinel, examined = bool(rng.random() < 0.7), None
    else:
        sentinel = bool(rng.random() < (0.9 if positive == 0 else 0.6 if positive <= 2 else 0.0))
        if sentinel:
            examined = max(positive, int(rng.integers(1, 4)))  # 1-3 sentinel nodes
        else:
            examined = max(int(rng.integers(10, 21)), positive + int(rng.integers(0, 6)))
    pt, pn = pt_stage(size_mm), pn_stage(positive) + ("(sn)" if sentinel and positive is not None else "")
    lobular = htype == "invasive lobular carcinoma"
    components = _nottingham_components(grade, rng, ki67, lobular) if grade in NOTTINGHAM_SCORE_RANGE else None
    if grade not in NOTTINGHAM_SCORE_RANGE:
        grade = None
    margin = margin_status or str(rng.choice(MARGIN_STATUSES, p=[0.85, 0.10, 0.05]))
    margin_side = _pick(rng, ("superior", "inferior", "medial", "lateral", "anterior", "deep"))
    margin_dist_mm = {"clear": float(rng.integers(2, 16)), "close": float(_pick(rng, ("0.5", "1", "1.5")))}.get(margin)
    margin_txt = f"{margin_dist_mm:g}" if margin_dist_mm is not None else ""  # involved: no distance
    her2_ihc = str(rng.choice(("0", "1+", "2+"), p=[0.35, 0.40, 0.25]))
    ish_ratio, ish_copies = float(rng.uniform(1.0, 1.8)), float(rng.uniform(2.0, 3.8))
    er_int = _intensity(rng, er or 0)
    pr_int = _intensity(rng, pr or 0)
    er_h, pr_h = _h_score(rng, er or 0, er_int), _h_score(rng, pr or 0, pr_int)
    receptor_score = _pick(rng, ("allred", "allred", "hscore"))  # internal style only
    dcis = rng.random() < 0.6
    dcis_grade = _pick(rng, ("low", "intermediate", "high"))
    dcis_pct = int(rng.integers(1, 7)) * 5
    deposit_mm = float(rng.uniform(2.5, 14.0))
    ene = rng.random() < min(0.6, 0.1 + 0.05 * (positive or 0))
    spec_a, spec_b, spec_c = (
        (float(rng.uniform(180, 260)), float(rng.uniform(140, 200)), float(rng.uniform(30, 60)))
        if mastectomy
        else tuple((size_mm or 20) + float(rng.uniform(lo, hi)) for lo, hi in ((25, 50), (15, 35), (8, 25)))
    )
    weight_g = spec_a * spec_b * spec_c / 1000 * float(rng.uniform(0.45, 0.6))
    age_txt = f"{float(age):.0f}" if age is not None else None  # type: ignore[arg-type]
    sign = _sign_off(rng, style, "histopathologist")
    type_txt = _pick(rng, _TYPE_TEXT[style][htype])
    grade_txt = _grade_text(grade, rng, style) if grade else None
    pr_status = None if pr is None else ("positive" if pr >= 1 else "negative")

    if not ext:
        procedure = (
            "mastectomy" if mastectomy else _pick(rng, ("wide local excision", "wide local excision (lumpectomy)"))
        )
        node_proc = _pick(
            rng,
            ("sentinel lymph node biopsy", "sentinel lymph nodes")
            if sentinel
            else ("axillary lymph node dissection", "axillary clearance"),
        )
        node_kind = "sentinel" if sentinel else "axillary"
        breast = f"{side.capitalize()} breast" if side else "Breast"
        specimen = f"{breast}, {procedure} and {node_proc}."
        who = f"{age_txt}-year-old" if age_txt else ""
        meno_txt = f"{meno}menopausal" if meno in ("pre", "post") else ""
        person = " ".join(w for w in (who, meno_txt, "woman") if w)
        clinical_txt = _pick(
            rng,
            (
                f"{_cap(person)} with a core biopsy-proven invasive carcinoma.",
                f"{_cap(person)}; screen-detected carcinoma on core biopsy.",
            ),
        )
        sections = [
            _Section(None, "plain", [_pick(rng, ("Surgical pathology report", "Histopathology report"))], typos=False),
            _Section("Specimen:", "inline", [specimen]),
            _Section(_pick(rng, ("Clinical details:", "Clinical history:")), "inline", [clinical_txt]),
        ]

        # Macroscopy
        macro: list[str] = []
        dims = f"{_fmt_mm(spec_a)} x {_fmt_mm(spec_b)} x {_fmt_mm(spec_c)} mm"
        spec_sent = _pick(
            rng,
            (
                f"The specimen is an orientated {procedure} measuring {dims} and weighing {weight_g:.0f} g.",
                f"Received fresh: {procedure}, {dims}, {weight_g:.0f} g.",
            ),
        )
        slicing = _pick(rng, ("Serial slicing reveals", "On sectioning there is", "Slicing shows"))
        gross = (
            f"{slicing} {_GROSS_TUMOUR[htype]} measuring {size_txt} mm in maximum dimension."
            if size_txt
            else f"{slicing} {_GROSS_TUMOUR[htype]}."
        )
        if examined is not None:
            nodes_gross = (
                f"{_cap(_count_word(examined))} sentinel lymph node{'s are' if examined != 1 else ' is'} received separately."
                if sentinel
                else f"The axillary contents yield {examined} lymph nodes."
            )
        else:
            nodes_gross = "Lymph nodes are received separately."
        for s in (spec_sent, gross, nodes_gross):
            if kept():
                macro.append(s)
        sections.append(_Section(_pick(rng, ("Macroscopic description:", "Gross description:")), "block", macro))

        # Microscopy
        micro: dict[str, str] = {"type": _MICRO_TYPE[htype]}
        if grade and components:
            t, p, m = components
            micro["grade"] = _pick(
                rng,
                (
                    f"Nottingham grading: tubule formation {t}, nuclear pleomorphism {p}, mitotic count {m} "
                    f"(total score {t + p + m}/9), grade {grade}.",
                    f"The tumour is grade {_ROMAN[grade]} (Nottingham score {t}+{p}+{m} = {t + p + m}).",
                    f"Elston-Ellis grade {grade}: tubules {t}, pleomorphism {p}, mitoses {m} (total {t + p + m}).",
                ),
            )
        else:
            micro["grade"] = "Histological grade: not assessed."
        lvi_text = {
            "yes": ("Lymphovascular invasion is present.", "Definite lymphovascular invasion is identified."),
            "no": ("Lymphovascular invasion is not identified.", "No lymphovascular invasion is seen."),
        }.get(str(lvi), ("Lymphovascular invasion: not assessed.",))
        micro["lvi"] = _pick(rng, lvi_text)
        if dcis:
            micro["dcis"] = (
                "Associated lobular carcinoma in situ is present."
                if lobular
                else f"Associated ductal carcinoma in situ of {dcis_grade} nuclear grade is present, "
                f"comprising approx. {dcis_pct}% of the tumour."
            )
        else:
            micro["dcis"] = "No in situ component is identified."
        micro["margin"] = _pick(
            rng,
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
            }[margin],
        )

        def count(n: int) -> str:  # "four of 10" reads oddly: words only when both counts are small
            return _count_word(n) if (examined or 0) < 10 else str(n)

        if positive is not None and examined is not None:
            if positive == 0:
                micro["nodes"] = _pick(
                    rng,
                    (
                        f"No metastatic carcinoma is identified in the {_count_word(examined)} {node_kind} lymph "
                        f"node{'s' if examined != 1 else ''}.",
                        f"All {examined} {node_kind} lymph nodes are free of metastatic carcinoma."
                        if examined > 1
                        else f"The {node_kind} lymph node is free of metastatic carcinoma.",
                    ),
                )
            else:
                micro["nodes"] = (
                    f"Metastatic carcinoma is present in {count(positive)} of {count(examined)} "
                    f"{node_kind} lymph node{'s' if examined != 1 else ''}, the largest deposit measuring {deposit_mm:.0f} mm, "
                    f"{'with' if ene else 'without'} extranodal extension."
                )
        else:
            micro["nodes"] = "Lymph node status: not assessed."
        micro_order = _pick(
            rng,
            (
                ("type", "grade", "lvi", "dcis", "margin", "nodes"),
                ("type", "grade", "dcis", "lvi", "nodes", "margin"),
                ("grade", "type", "lvi", "margin", "dcis", "nodes"),
            ),
        )
        micro_sents = [micro[k] for k in micro_order]
        micro_sents = [s for s in micro_sents if kept()]
        sections.append(
            _Section(_pick(rng, ("Microscopic description:", "Microscopy:", "Histology:")), "block", micro_sents)
        )

        # Biomarkers
        intensity_word = {1: "weak", 2: "moderate", 3: "strong"}
        bio: list[str] = []
        if er is not None:
            score = f"Allred score {_allred(er, er_int)}/8" if receptor_score == "allred" else f"H-score {er_h}"
            er_sent = _pick(
                rng,
                (
                    f"Oestrogen receptor (ER): positive, {er:.0f}% of tumour cells with {intensity_word[er_int]} "
                    f"staining ({score}).",
                    f"ER is positive in {er:.0f}% of invasive tumour cells, {intensity_word[er_int]} intensity, {score}.",
                ),
            )
            bio.append(er_sent)
        if pr is not None:
            score = (
                f"Allred score {_allred(pr, pr_int)}/8"
                if receptor_score == "allred"
                else f"H-score {pr_h if pr >= 1 else 0}"
            )
            pr_sent = (
                f"Progesterone receptor (PR): positive, {pr:.0f}% of tumour cells ({score})."
                if pr >= 1
                else f"Progesterone receptor (PR): negative ({pr:.0f}%, {score})."
            )
            bio.append(pr_sent)
        elif rng.random() < 0.5:
            bio.append("Progesterone receptor (PR): not assessed.")
        if her2_ihc == "2+":
            her2 = (
                f"HER2 immunohistochemistry 2+ (equivocal); in situ hybridisation shows no amplification "
                f"(HER2/CEP17 ratio {ish_ratio:.1f}, mean HER2 copy number {ish_copies:.1f} per cell), HER2 negative."
            )
        else:
            low = " (HER2-low)" if her2_ihc == "1+" else ""
            her2 = _pick(
                rng,
                (
                    f"HER2: negative (IHC score {her2_ihc}){low}.",
                    f"HER2 immunohistochemistry score {her2_ihc}, HER2 negative.",
                ),
            )
        bio.append(her2)
        if ki67 is not None:
            bio.append(
                _pick(
                    rng,
                    (
                        f"Ki-67 proliferation index: {ki67:.0f}%.",
                        f"The Ki-67 labelling index is {ki67:.0f}%.",
                        f"Ki-67 (MIB-1) is expressed in {ki67:.0f}% of tumour nuclei.",
                    ),
                )
            )
        elif rng.random() < 0.5:
            bio.append(_pick(rng, ("Ki-67: not assessed.", "Ki-67 was not performed.")))
        bio = [s for s in bio if kept()]
        sections.append(_Section(_pick(rng, ("Immunohistochemistry:", "Biomarkers:")), "block", bio))

        # Diagnosis: never omitted.
        size_part = f"invasive size {size_txt} mm" if size_txt else "invasive size not assessed"
        grade_part = grade_txt or "grade not assessed"
        diag_type = _pick(
            rng,
            (
                f"{breast}, {procedure}: {type_txt}, {grade_part}, {size_part}.",
                f"{_cap(type_txt)}, {grade_part}, {size_part}.",
            ),
        )
        if positive is not None and examined is not None:
            diag_nodes = _pick(
                rng,
                (
                    f"Lymph nodes: {positive}/{examined} {node_kind} node{'s' if examined != 1 else ''} involved by metastatic carcinoma.",
                    f"Metastatic carcinoma in {positive}/{examined} {node_kind} lymph nodes.",
                ),
            )
        else:
            diag_nodes = "Lymph nodes: not assessed."
        pr_part = f", PR {pr_status}" if pr_status else ""
        er_status = "positive" if er is not None else "not assessed"
        er_part = f"ER {er_status}"
        diag_receptors = _pick(
            rng,
            (
                f"{er_part}{pr_part}, HER2 negative.",
                "Hormone receptor positive, HER2-negative carcinoma." if er is not None else "HER2-negative carcinoma.",
                f"Oestrogen receptor {er_status}{pr_part}, HER2 status: negative.",
            ),
        )
        diag_stage = _pick(rng, (f"pTNM (AJCC 8th edition): {pt} {pn}.", f"Pathological stage: {pt} {pn}."))
        diag = [diag_type, diag_nodes, diag_receptors, diag_stage]
        if rng.random() < 0.4:
            diag[1], diag[2] = diag[2], diag[1]
        diag_section = _Section(
            _pick(rng, ("Diagnosis:", "Final diagnosis:", "Summary:")), _pick(rng, ("numbered", "block", "lines")), diag
        )
        if rng.random() < 0.3:  # some departments put the diagnosis first
            sections.insert(3, diag_section)
        else:
            sections.append(diag_section)
        if sign:
            sections.append(_Section(None, "plain", [sign]))
    else:
        s_abbr = {"left": "L", "right": "R"}.get(side or "", "")
        proc = "mastectomy" if mastectomy else "WLE"
        node_proc = "SLNB" if sentinel else "ANC"
        sections = [
            _Section(None, "plain", [_pick(rng, ("BREAST HISTOLOGY.", "HISTO REPORT - BREAST."))], typos=False),
            _Section(
                _pick(rng, ("SPECIMEN:", "SPEC:")),
                "inline",
                [_cap(f"{s_abbr + ' ' if s_abbr else ''}{proc} + {node_proc}.")],
            ),
        ]
        hx = f"{age_txt}F, core bx proven carcinoma." if age_txt else "Core bx proven carcinoma."
        sections.append(_Section("HX:", "inline", [hx]))

        macro = []
        dims = "x".join(_fmt_mm(d) for d in (spec_a, spec_b, spec_c))
        for s in (
            f"{_cap(proc)} {dims} mm, {weight_g:.0f} g.",
            f"Tumour {size_txt} mm max, firm." if size_txt else "Tumour ill-defined.",
        ):
            if kept():
                macro.append(s)
        sections.append(_Section("MACRO:", "inline", macro))

        micro_list: list[str] = []
        micro_list.append(f"{_cap(type_txt)}.")
        if grade and components:
            t, p, m = components
            micro_list.append(
                _pick(
                    rng,
                    (
                        f"Nottingham {grade_txt} (T{t} P{p} M{m} = {t + p + m}).",
                        f"Grade {grade} (T{t}+P{p}+M{m}).",
                        f"G{grade}, score {t + p + m}/9 (tubules {t}, pleomorphism {p}, mitoses {m}).",
                    ),
                )
            )
        else:
            micro_list.append("Grade: not assessed.")
        micro_list.append(
            {
                "yes": _pick(rng, ("LVI: present.", "LVI seen.")),
                "no": _pick(rng, ("LVI: absent.", "LVI not seen.")),
            }.get(str(lvi), "LVI: not assessed.")
        )
        micro_list.append(
            f"DCIS: present, {dcis_grade} grade, approx. {dcis_pct}%." if dcis and not lobular else "DCIS: not seen."
        )
        micro_list.append(
            {
                "clear": f"Margins clear, closest {margin_txt} mm ({margin_side}).",
                "close": f"Margins close, {margin_txt} mm ({margin_side}).",
                "involved": f"Margins involved ({margin_side}), tumour at ink.",
            }[margin]
        )
        if positive is not None and examined is not None:
            kind = "SLN" if sentinel else "LN"
            micro_list.append(
                f"{kind}: {positive}/{examined} positive, largest deposit {deposit_mm:.0f} mm, ENE {'present' if ene else 'absent'}."
                if positive
                else f"{kind}: {positive}/{examined}, negative."
            )
        micro_list = [s for s in micro_list if kept()]
        sections.append(_Section("MICRO:", _pick(rng, ("lines", "inline")), micro_list))

        ihc: list[str] = []
        if er is not None:
            ihc.append(_pick(rng, (f"ER: POS, {er:.0f}%.", f"ER {er:.0f}% positive.")))
        if pr is not None:
            ihc.append(f"PR: {'POS' if pr >= 1 else 'NEG'}, {pr:.0f}%.")
        elif rng.random() < 0.5:
            ihc.append("PR: not assessed.")
        ihc.append(
            "HER2: NEGATIVE (IHC 2+, ISH not amplified)." if her2_ihc == "2+" else f"HER2: NEGATIVE (IHC {her2_ihc})."
        )
        if ki67 is not None:
            ihc.append(_pick(rng, (f"Ki67: {ki67:.0f}%.", f"Ki67 {ki67:.0f}%.")))
        elif rng.random() < 0.5:
            ihc.append("Ki67: not done.")
        ihc = [s for s in ihc if kept()]
        sections.append(_Section("IHC:", _pick(rng, ("lines", "inline")), ihc))

        side_txt = f"{s_abbr} breast: " if s_abbr else ""
        conclusion = [
            _cap(f"{side_txt}{type_txt}, {grade_txt or 'grade n/a'}, {size_txt + ' mm' if size_txt else 'size n/a'}."),
            f"Nodes {positive}/{examined} positive."
            if positive is not None and examined is not None
            else "Nodes: not assessed.",
            _pick(
                rng,
                (
                    f"ER+/PR{'+' if pr_status == 'positive' else '-'}/HER2 negative."
                    if pr_status
                    else "ER+/HER2 negative.",
                    "ER POS, HER2 NEG.",
                ),
            )
            if er is not None
            else "ER n/a, HER2 negative.",
            f"{pt} {pn}.",
        ]
        sections.append(_Section(_pick(rng, ("CONCLUSION:", "DX:")), _pick(rng, ("bullets", "lines")), conclusion))
        if sign:
            sections.append(_Section(None, "plain", [sign]))

    _apply_typos(sections, typo_rng, typo_rate)
    return _render(sections, style)


# --- sentence splitting -------------------------------------------------------------------------------------

# A list marker at the start of a line: "- ", "* ", "• ", "1. ", "2) ", "(a) ", "a) ". Not "1.5 cm".
_LIST_MARKER = re.compile(r"^(?:[-*•·]|\(?\d{1,2}[.)]|\(?[a-zA-Z]\))\s+")
# Sentence-final punctuation (with closing quotes/brackets) followed by whitespace or the end.
_TERMINAL = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
_INITIALISM = re.compile(r"(?:[a-z]\.)+[a-z]")  # "e.g", "i.e", "u.s" (the final period is the candidate)
_TITLES = frozenset({"dr", "prof", "mr", "mrs", "ms"})


def _is_header(line: str) -> bool:
    """A section header alone on its line ("FINDINGS:", "Macroscopic description:")."""
    return line.endswith(":") and len(line.split()) <= 6 and not re.search(r"[.!?]\s", line)


def _line_closed(line: str) -> bool:
    letters = re.sub(r"[^A-Za-z]", "", line)
    return bool(re.search(r"[.!?:;][\"')\]]*$", line)) or (letters.isupper() and len(letters) > 1)


def _is_boundary(text: str, start: int, end: int) -> bool:
    """Whether the punctuation text[start:end] ends a sentence."""
    before = text[:start].split()
    prev = before[-1].lstrip("([\"'").lower() if before else ""
    after = text[end:].split(maxsplit=1)
    nxt = after[0] if after else ""
    if not nxt:
        return True
    if text[start] == "." and (prev in ABBREVIATIONS or _INITIALISM.fullmatch(prev)):
        return False
    word = nxt.strip(".,;:()\"'")
    if word.isalpha() and word.islower():
        return False  # "approx. twelve": a lower-case word after a period continues; "pTNM", "pT1c" start one
    if text[start] == "." and len(prev) == 1 and prev.isalpha() and nxt[0].isupper():
        # An initial ("Dr. A. Smith") when preceded by a title or another initial.
        earlier = before[-2].rstrip(".").lower() if len(before) >= 2 else ""
        if earlier in _TITLES or (len(earlier) == 1 and earlier.isalpha()):
            return False
    return True


def _split_block(block: str) -> list[str]:
    out: list[str] = []
    last = 0
    for m in _TERMINAL.finditer(block):
        if _is_boundary(block, m.start(), m.end()):
            piece = block[last : m.end()].strip()
            if piece:
                out.append(piece)
            last = m.end()
    tail = block[last:].strip()
    if tail:
        out.append(tail)
    return out


def split_sentences(text: str) -> list[str]:
    """Split a report into non-empty, stripped sentences.

    Handles decimals ("1.5 cm"), abbreviations ("approx.", "e.g.", "Dr. A. Smith"), list markers
    ("1. ", "- "), headers alone on a line ("FINDINGS:", joined to the first sentence of their section, as
    if written inline), titles without a period, and line breaks: a line that ends without punctuation
    continues on the next line when that starts in lower case or with a digit (wrapped text).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[str] = []
    current = ""
    header = ""
    for raw in lines:
        line = " ".join(raw.split())
        if not line:
            if current:
                blocks.append(current)
            current = ""
            continue
        marker = _LIST_MARKER.match(line)
        if marker:
            line = line[marker.end() :].strip()
            if not line:
                continue
        if _is_header(line):
            if current:
                blocks.append(current)
            if header:
                blocks.append(header)  # a header whose section is empty
            current, header = "", line
            continue
        wrapped = current and not marker and not _line_closed(current) and (line[0].islower() or line[0].isdigit())
        if wrapped:
            current = f"{current} {line}"
        else:
            if current:
                blocks.append(current)
            current = f"{header} {line}" if header else line
            header = ""
    if current:
        blocks.append(current)
    if header:
        blocks.append(header)
    return [s for block in blocks for s in _split_block(block)]
