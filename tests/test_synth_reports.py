"""Synthetic ultrasound and pathology reports: determinism, variety, truthfulness, noise, styles, splitting."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mrrp.io.reports import split_sentences
from mrrp.synth.biology import LATENTS, clinical_from_latent, us_findings_from_latent
from mrrp.synth.reports import (
    NOTTINGHAM_SCORE_RANGE,
    REPORT_LEXICON,
    STYLES,
    pathology_report,
    pn_stage,
    pt_stage,
    ultrasound_report,
)

US_FIELDS = ("laterality", "shape", "orientation", "margin", "echo_pattern", "posterior")
CLEAN = {"omission_rate": 0.0, "typo_rate": 0.0}
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _case(k: int) -> tuple[dict, dict]:
    """A patient's clinical record and ultrasound findings from the cohort's generating model."""
    rng = np.random.default_rng(1000 + k)
    lat = {name: float(rng.normal(0, 1.3)) for name in LATENTS}  # a little wider than N(0,1): more extremes
    clinical = clinical_from_latent(lat, float(np.clip(rng.normal(56, 11), 26, 88)), rng)
    findings = us_findings_from_latent(lat, float(clinical["tumour_size_mm"]), rng)
    return clinical, findings


CASES = [_case(k) for k in range(40)]


def _mentions(text: str, phrases: tuple[str, ...]) -> bool:
    """Whether any phrase occurs as whole words (case-insensitive): "round" must not match "surrounding"."""
    return any(re.search(rf"(?<![A-Za-z]){re.escape(p)}(?![A-Za-z])", text, re.IGNORECASE) for p in phrases)


def _us(k: int, seed: int, style: str, **kw) -> str:
    clinical, findings = CASES[k]
    return ultrasound_report(findings, seed=seed, style=style, age_years=clinical["age_years"], **kw)


def _path(k: int, seed: int, style: str, **kw) -> str:
    clinical, findings = CASES[k]
    return pathology_report(clinical, seed=seed, style=style, laterality=findings["laterality"], **kw)


# --- determinism and variety --------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_reports_are_deterministic_per_seed(style: str) -> None:
    for k in range(5):
        assert _us(k, 7, style) == _us(k, 7, style)
        assert _path(k, 7, style) == _path(k, 7, style)
        assert _us(k, 7, style) != _us(k, 8, style)


@pytest.mark.parametrize("style", STYLES)
def test_seeds_vary_the_phrasing_of_the_same_case(style: str) -> None:
    # Clean reports, so the variety comes from templates, synonyms and orders, not from noise.
    us = {_us(0, seed, style, **CLEAN) for seed in range(20)}
    path = {_path(0, seed, style, **CLEAN) for seed in range(20)}
    assert len(us) >= 5 and len(path) >= 5
    # ...and individual sentences vary too, not just their order.
    us_sentences = {s for t in us for s in split_sentences(t)}
    assert len(us_sentences) >= 2 * len(split_sentences(next(iter(us))))


# --- ultrasound truthfulness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_ultrasound_states_category_descriptors_and_size(style: str) -> None:
    for k, (_, f) in enumerate(CASES):
        text = _us(k, k, style, **CLEAN)
        birads = "BI-RADS" if style == "internal" else "BIRADS"
        assert re.search(rf"{birads}(?: category)?:? {f['birads']}\b", text), text
        for name in US_FIELDS:
            assert _mentions(text, REPORT_LEXICON[name][f[name]]), (name, f[name], text)
        numbers = NUMBER.findall(text)
        assert str(f["clock_position"]) in numbers and f"{f['distance_from_nipple_cm']:.1f}" in numbers
        if style == "internal":
            dims = [float(x) for x in re.findall(r"(\d+)(?= x | mm)", text)]
            assert f"{f['size_mm']:.0f}" in numbers and max(dims) == float(f"{f['size_mm']:.0f}"), text
            assert not re.search(r"\d(?:\.\d)? cm\b(?! from)", text), "internal sizes are in mm"
        else:
            assert f"{f['size_mm'] / 10:.1f}" in numbers, text
            assert not re.search(r"\d\s*mm\b", text), "external sizes are in cm"


@pytest.mark.parametrize("style", STYLES)
def test_every_descriptor_value_has_lexicon_phrasing(style: str) -> None:
    _, base = CASES[0]
    for name in US_FIELDS:
        for value, phrases in REPORT_LEXICON[name].items():
            for seed in range(12):  # enough seeds to hit every template of a value
                text = ultrasound_report({**base, name: value}, seed=seed, style=style, **CLEAN)
                assert _mentions(text, phrases), (name, value, text)


def test_ultrasound_dimensions_follow_aspect_ratio() -> None:
    _, base = CASES[0]
    for aspect, taller in ((0.6, False), (1.3, True)):
        f = {**base, "size_mm": 20.0, "aspect_ratio": aspect, "orientation": "not parallel" if taller else "parallel"}
        text = ultrasound_report(f, seed=3, style="internal", **CLEAN)
        width, depth = (float(x) for x in re.search(r"(\d+) x (\d+)", text).groups())  # transverse x AP
        assert max(width, depth) == 20.0 and (depth > width) == taller
        assert depth / width == pytest.approx(aspect, abs=0.06)


# --- pathology truthfulness ----------------------------------------------------------------------------------


def _grade_in(text: str) -> set[int]:
    roman = {"I": 1, "II": 2, "III": 3}
    found = {int(g) if g.isdigit() else roman[g] for g in re.findall(r"(?i:grade)\s*:?\s*(III|II|I|[123])\b", text)}
    return found | {int(g) for g in re.findall(r"\bG([123])\b", text)}


def _nottingham_in(text: str) -> tuple[int, int, int] | None:
    for pattern in (
        r"\b([123])\s*\+\s*([123])\s*\+\s*([123])\b",
        r"\bT([123])\W{1,3}P([123])\W{1,3}M([123])\b",
        r"(?i)tubul\D*?([123])\D*?pleomorph\D*?([123])\D*?mito\D*?([123])",
    ):
        m = re.search(pattern, text)
        if m:
            return tuple(int(x) for x in m.groups())  # type: ignore[return-value]
    return None


@pytest.mark.parametrize("style", STYLES)
def test_pathology_states_the_record_and_consistent_stage(style: str) -> None:
    for k, (c, _) in enumerate(CASES):
        text = _path(k, k, style, **CLEAN)
        sentences = split_sentences(text)
        assert _grade_in(text) == {c["histological_grade"]}, text
        components = _nottingham_in(text)
        assert components is not None, text
        lo, hi = NOTTINGHAM_SCORE_RANGE[c["histological_grade"]]
        assert lo <= sum(components) <= hi
        assert re.search(rf"\b{c['er_percent']:.0f}%", text)
        if c["ki67_percent"] is not None:
            assert any(re.search(rf"Ki-?67[^%]*?\b{c['ki67_percent']:.0f}%", s) for s in sentences), text
        assert _mentions(text, REPORT_LEXICON["histological_type"][c["histological_type"]])
        assert any("HER2" in s and re.search(r"negative|NEG\b", s, re.IGNORECASE) for s in sentences)
        assert not re.search(r"HER2\W+(?:positive|POS\b)|(?<!not )(?<!no )\bamplifi", text)

        # Nodes "positive/examined" in a sentence about nodes, examined >= positive.
        pairs = [
            (int(a), int(b))
            for s in sentences
            if re.search(r"node|LN\b|SLN\b", s, re.IGNORECASE)
            for a, b in re.findall(r"\b(\d+)/(\d+)\b", s)
        ]
        positive = c["positive_lymph_nodes"]
        assert pairs and all(a == positive and b >= a for a, b in pairs), text
        assert all(b <= 3 or 10 <= b for _, b in pairs)  # sentinel 1-3 or axillary 10-20 (or more)

        size = c["tumour_size_mm"]
        assert re.search(rf"\b{size:.0f} mm", text)
        expected_t = (
            "pT1a" if size <= 5 else "pT1b" if size <= 10 else "pT1c" if size <= 20 else "pT2" if size <= 50 else "pT3"
        )
        assert re.findall(r"\bpT\d[a-z]*", text) == [expected_t], text
        expected_n = "pN0" if positive == 0 else "pN1a" if positive <= 3 else "pN2a" if positive <= 9 else "pN3a"
        assert re.findall(r"\bpN\d[a-z]*", text) == [expected_n], text
        if "(sn)" in text:
            assert positive <= 3


def test_stage_functions_at_the_boundaries() -> None:
    assert [pt_stage(s) for s in (5, 6, 10, 11, 20, 21, 50, 51)] == [
        "pT1a",
        "pT1b",
        "pT1b",
        "pT1c",
        "pT1c",
        "pT2",
        "pT2",
        "pT3",
    ]
    assert [pn_stage(n) for n in (0, 1, 3, 4, 9, 10, 30)] == ["pN0", "pN1a", "pN1a", "pN2a", "pN2a", "pN3a", "pN3a"]
    assert pt_stage(None) == "pTX" and pn_stage(None) == "pNX"


@pytest.mark.parametrize("style", STYLES)
def test_margin_status_is_honoured(style: str) -> None:
    clinical, _ = CASES[1]
    for status in ("clear", "close", "involved"):
        for seed in range(4):
            text = pathology_report(clinical, seed=seed, style=style, margin_status=status, **CLEAN)
            sentence = next(s for s in split_sentences(text) if "margin" in s.lower() and "lumpectomy" not in s)
            assert _mentions(sentence, REPORT_LEXICON["margin_status"][status]), sentence
    with pytest.raises(ValueError):
        pathology_report(clinical, seed=0, margin_status="wide")


@pytest.mark.parametrize("style", STYLES)
def test_unknown_fields_are_not_fabricated(style: str) -> None:
    clinical, _ = CASES[2]
    unknown = {**clinical, "ki67_percent": None, "pr_percent": None, "lymphovascular_invasion": None}
    for seed in range(20):
        text = pathology_report(unknown, seed=seed, style=style, **CLEAN)
        for s in split_sentences(text):
            if re.search(r"Ki-?67|MIB-1|proliferation", s, re.IGNORECASE):
                assert not re.search(r"\d+\s*%", s), s
            if re.search(r"\bPR\b|progesterone", s, re.IGNORECASE):
                assert not re.search(r"\d+\s*%|PR[+-]|Allred|H-score", s), s
        for value in ("yes", "no"):
            assert not _mentions(text, REPORT_LEXICON["lymphovascular_invasion"][value]), text


# --- omissions and typos -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_omissions_drop_descriptors_but_keep_the_conclusion(style: str) -> None:
    for k, (c, f) in enumerate(CASES[:10]):
        full, sparse = _us(k, k, style, **CLEAN), _us(k, k, style, omission_rate=1.0, typo_rate=0.0)
        assert len(split_sentences(sparse)) < len(split_sentences(full))
        for name in ("shape", "margin", "echo_pattern", "posterior"):
            assert not _mentions(sparse, REPORT_LEXICON[name][f[name]]), (name, sparse)
        assert re.search(rf"BI-?RADS(?: category)?:? {f['birads']}\b", sparse)
        assert re.search(r"biopsy|\bCNB\b|core bx", sparse, re.IGNORECASE)
        # The content stream is independent of omissions: the impression is word for word the same.
        impression = [x for x in split_sentences(full) if "RADS" in x]
        assert impression == [x for x in split_sentences(sparse) if "RADS" in x]

        full, sparse = _path(k, k, style, **CLEAN), _path(k, k, style, omission_rate=1.0, typo_rate=0.0)
        assert len(split_sentences(sparse)) < len(split_sentences(full))
        assert re.search(r"\bpT1[abc]?|\bpT[23]", sparse) and re.search(r"\bpN[0-3]", sparse)
        assert _mentions(sparse, REPORT_LEXICON["her2"]["negative"])
        assert _mentions(sparse, REPORT_LEXICON["histological_type"][c["histological_type"]])
        assert not re.search(r"Ki-?67", sparse)  # biomarker details are omissible, the diagnosis is not


@pytest.mark.parametrize("style", STYLES)
def test_typos_never_touch_numbers(style: str) -> None:
    changed = 0
    for k in range(len(CASES)):
        for make in (_us, _path):
            clean = make(k, k, style, **CLEAN)
            noisy = make(k, k, style, omission_rate=0.0, typo_rate=1.0)
            assert NUMBER.findall(noisy) == NUMBER.findall(clean)
            assert len(split_sentences(noisy)) == len(split_sentences(clean))
            changed += noisy != clean
            # Typos are single-letter edits: the text length changes by at most one per sentence.
            assert abs(len(noisy) - len(clean)) <= len(split_sentences(clean))
    assert changed == 2 * len(CASES)


def test_rates_and_style_are_validated() -> None:
    clinical, findings = CASES[0]
    with pytest.raises(ValueError):
        ultrasound_report(findings, seed=0, style="hospital")
    with pytest.raises(ValueError):
        pathology_report(clinical, seed=0, typo_rate=1.5)


# --- styles --------------------------------------------------------------------------------------------------


def _headers(text: str) -> set[str]:
    return {m.lower() for m in re.findall(r"^(?:[-\d.\s]*)([A-Za-z][A-Za-z ]{1,30}):", text, re.MULTILINE)}


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]+", text)}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


@pytest.mark.parametrize("make", [_us, _path])
def test_styles_differ_in_headers_and_vocabulary(make) -> None:
    header_overlap, word_overlap = [], []
    for k in range(20):
        internal, external = make(k, k, "internal", **CLEAN), make(k, k, "external", **CLEAN)
        header_overlap.append(_jaccard(_headers(internal), _headers(external)))
        word_overlap.append(_jaccard(_words(internal), _words(external)))
        if make is _us:
            assert "BI-RADS" in internal and "BIRADS" not in internal
            assert "BIRADS" in external and "BI-RADS" not in external
    assert np.mean(header_overlap) < 0.1
    assert np.mean(word_overlap) < 0.35
    # Within a style, two cases share more words than the same case across styles.
    same_style = [
        _jaccard(_words(make(k, k, "internal", **CLEAN)), _words(make(k + 1, k, "internal", **CLEAN)))
        for k in range(10)
    ]
    assert np.mean(same_style) > np.mean(word_overlap)


# --- sentence splitting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_generated_reports_split_into_clean_sentences(style: str) -> None:
    for k in range(len(CASES)):
        for make in (_us, _path):
            for kw in ({}, {"omission_rate": 1.0}, {"typo_rate": 0.5}):
                text = make(k, k, style, **kw)
                sentences = split_sentences(text)
                assert len(sentences) >= 5, text
                for i, s in enumerate(sentences):
                    assert s and s == s.strip()
                    assert s.endswith(".") or (i == 0 and not s.endswith(":")), (s, text)
                    assert not re.match(r"[a-z]", s) or re.match(r"p[TN]", s), (s, text)  # no split mid-sentence
                # Every word of the report is in exactly one sentence (nothing lost, nothing invented).
                assert " ".join(sentences).split() == [
                    w for w in re.sub(r"^(?:\d+\.|-)\s", "", text, flags=re.MULTILINE).split()
                ]


@pytest.mark.parametrize("style", STYLES)
def test_missing_inputs_are_left_out_not_printed(style: str) -> None:
    clinical, findings = CASES[3]
    sparse_findings = {**findings, "shape": None, "aspect_ratio": None, "clock_position": None}
    sparse_clinical = {**clinical, "histological_grade": None, "positive_lymph_nodes": None, "tumour_size_mm": None}
    sparse_clinical.update(histological_type=None, age_years=None, er_percent=None)
    for seed in range(10):
        us = ultrasound_report(sparse_findings, seed=seed, style=style, **CLEAN)
        path = pathology_report(sparse_clinical, seed=seed, style=style, **CLEAN)
        assert "None" not in us + path and "o'clock" not in us and ":00" not in us
        assert re.search(r"\bpTX pNX\b", path) and not re.search(r"ER\+|ER POS|ER positive|Hormone", path)
        assert len(split_sentences(us)) >= 5 and len(split_sentences(path)) >= 5
