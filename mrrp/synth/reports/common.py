"""What both report generators share: independent random streams, sections and their layouts, typos, rendering."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mrrp.io.reports import ABBREVIATIONS
from mrrp.synth.reports.lexicon import STYLES

_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SURNAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Haddad", "Fischer", "Oliveira", "Kowalski")


@dataclass
class Section:
    """One report section. Layouts: "plain" (no header, a line per sentence), "inline" (header and sentences
    on one line), "block" (header line, then one paragraph), "lines", "numbered", "bullets"."""

    header: str | None
    layout: str
    sentences: list[str] = field(default_factory=list)
    typos: bool = True  # titles are boilerplate, kept clean


def streams(seed: int, kind: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    # Independent content / omission / typo streams: noise rates never change the content drawn.
    s = int(seed) % 2**63
    return (
        np.random.default_rng([s, kind, 0]),
        np.random.default_rng([s, kind, 1]),
        np.random.default_rng([s, kind, 2]),
    )


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def check_args(style: str, omission_rate: float, typo_rate: float) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown report style {style!r}; known: {STYLES}")
    for name, rate in (("omission_rate", omission_rate), ("typo_rate", typo_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")


def is_kept(om_rng: np.random.Generator, omission_rate: float) -> bool:
    return bool(om_rng.random() >= omission_rate)  # one draw per omissible sentence, whatever the rate


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def join_and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def count_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def fmt_mm(value_mm: float) -> str:
    return f"{value_mm:.0f}"


def fmt_cm(value_mm: float) -> str:
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


def apply_typos(sections: list[Section], rng: np.random.Generator, typo_rate: float) -> None:
    for sec in sections:
        for k, s in enumerate(sec.sentences):
            hit = rng.random() < typo_rate  # always drawn, so the stream stays aligned
            if hit and sec.typos:
                sec.sentences[k] = _typo(s, rng)


def render(sections: list[Section], style: str) -> str:
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


def sign_off(rng: np.random.Generator, style: str, role: str) -> str | None:
    # Most reports are signed; the initial after "Dr." exercises the splitter's abbreviation handling.
    if rng.random() >= 0.7:
        return None
    initial, surname = chr(ord("A") + int(rng.integers(26))), pick(rng, _SURNAMES)
    if style == "external":
        return f"Signed: Dr. {initial}. {surname}."
    return f"Reported by Dr. {initial}. {surname}, consultant {role}."
