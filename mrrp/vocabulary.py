"""The words and colours every screen, export and command shares, defined once.

Horizons, modality names and their display names, risk groups and the one colour palette, and how
per-tile scores are drawn on a slide. Pages, the PDF, the tumor board, the model card, the CLI and the
model itself read them from here, so a change is one edit. Pure Python: importing it costs nothing
(no numpy, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# -- horizons ---------------------------------------------------------------------------------------

HORIZONS_MONTHS: tuple[int, ...] = (36, 60, 84)
# The horizon a screen shows first or alone (the icon array, the what-if panel, the CLI line, the card).
HEADLINE_HORIZON_MONTHS = 60


def horizon_years(months: int) -> int:
    """36 -> 3: every horizon is a whole number of years."""
    return int(months) // 12


def horizon_label(months: int) -> str:
    """36 -> '3 years', as tables and axes name a horizon."""
    return f"{horizon_years(months)} years"


def horizon_key(months: int) -> str:
    """36 -> '36': how a horizon is keyed in JSON (exports, the case history, evaluation reports).

    Files keep string keys so that histories and reports written before horizons were typed still read.
    """
    return str(int(months))


HORIZON_LABELS: dict[int, str] = {m: horizon_label(m) for m in HORIZONS_MONTHS}

# -- modalities ---------------------------------------------------------------------------------------

# The model's order: the column order of the presence mask and of every per-modality tensor.
MODALITIES: tuple[str, ...] = ("slide", "ultrasound", "path_report", "clinical")


@dataclass(frozen=True)
class ModalityNames:
    """How one modality is named on screen."""

    label: str  # a heading, chart axis or table cell: "Ultrasound"
    words: str  # inside a sentence: "ultrasound"
    inputs: str  # inside a sentence, naming the inputs that feed it: "ultrasound (images and report)"


MODALITY_NAMES: dict[str, ModalityNames] = {
    "slide": ModalityNames("H&E slide", "H&E slide", "H&E slide"),
    "ultrasound": ModalityNames("Ultrasound", "ultrasound", "ultrasound (images and report)"),
    "path_report": ModalityNames("Pathology report", "pathology report", "pathology report"),
    "clinical": ModalityNames("Clinical record", "clinical record", "clinical record"),
}
MODALITY_LABELS: dict[str, str] = {m: MODALITY_NAMES[m].label for m in MODALITIES}
MODALITY_WORDS: dict[str, str] = {m: MODALITY_NAMES[m].words for m in MODALITIES}
MODALITY_INPUTS: dict[str, str] = {m: MODALITY_NAMES[m].inputs for m in MODALITIES}


def sentence_start(text: str) -> str:
    """'ultrasound (images and report)' -> 'Ultrasound (images and report)'; 'H&E slide' stays."""
    return text[:1].upper() + text[1:]


# -- risk groups and the palette ----------------------------------------------------------------------

RISK_GROUPS: tuple[str, ...] = ("low", "intermediate", "high")

# Okabe & Ito's colour-blind-safe palette (2008): every pair stays distinct with protanopia,
# deuteranopia and tritanopia, and on a greyscale print. The only colours the charts, the PDF and the
# tumor board use for meaning; chart chrome (grid lines, text) is grey.
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"

# The earlier copies disagreed (teal, blue, two ambers); the patient-review page, whose
# ":green[Low risk]" / ":red[High risk]" headings the app tests describe, set the hues kept here.
RISK_GROUP_COLOURS: dict[str, str] = {"low": BLUISH_GREEN, "intermediate": ORANGE, "high": VERMILLION}
# Streamlit's markdown takes colour names only (":green[...]"): the nearest names to the hues above.
RISK_GROUP_STREAMLIT_COLOURS: dict[str, str] = {"low": "green", "intermediate": "orange", "high": "red"}
RAISES_RISK_COLOUR = VERMILLION  # a contribution towards higher risk (the red end of the IG heatmap)
LOWERS_RISK_COLOUR = BLUE  # towards lower risk (the blue end)
PATIENT_COLOUR = BLACK  # this patient, drawn over the reference groups' colours
SITE_COLOURS: dict[str, str] = {"test": SKY_BLUE, "external": REDDISH_PURPLE}
# Cases side by side (tumor board): none is a risk-group colour, so a line never reads as a group.
CASE_COLOURS: tuple[str, ...] = (BLACK, BLUE, REDDISH_PURPLE, SKY_BLUE)


def rgba(colour: str, alpha: float) -> str:
    """'#0072B2', 0.2 -> 'rgba(0,114,178,0.2)' (a translucent fill of a palette colour)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def rgb(colour: str) -> tuple[int, int, int]:
    """'#0072B2' -> (0, 114, 178)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return r, g, b


# -- tile heatmaps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileScoreDisplay:
    """How one kind of per-tile score is drawn over a slide, on every screen and in every file.

    ``symmetric``: a diverging map centred on 0 from -max|score| to +max|score| of the slide's tiles, so
    the sign reads at a glance (red: towards higher risk). ``percentile``: each tile's rank within the
    slide, 0 to 1, on a sequential map (attention and other scores without a sign).
    """

    kind: str
    name: str  # what a menu offers: "Integrated Gradients (signed)"
    scale: Literal["symmetric", "percentile"]
    cmap: str  # a matplotlib colour map
    label: str  # the colour bar's label


# The three copies (the review page, `mrrp explain --heatmap`, the deep-zoom overlay) agreed on IG and
# on attention as percentiles; the deep-zoom overlay alone drew percentiles on coolwarm. Kept: viridis
# for every percentile map (sequential, colour-blind safe), coolwarm only where its white middle means 0.
IG_DISPLAY = TileScoreDisplay(
    "ig", "Integrated Gradients (signed)", "symmetric", "coolwarm", "Integrated Gradients (log-risk per tile)"
)
ATTENTION_DISPLAY = TileScoreDisplay(
    "attention", "Attention", "percentile", "viridis", "attention (percentile within this slide)"
)
# Scores of the slide pipeline before any model (tissue fraction, feature norm), on the slide viewer.
PIPELINE_DISPLAY = TileScoreDisplay(
    "pipeline", "Pipeline score", "percentile", "viridis", "percentile within this slide"
)
# The explanation's tile scores by kind, in menu order ("ig" first: the signed explanation is the headline).
EXPLANATION_TILE_DISPLAYS: dict[str, TileScoreDisplay] = {d.kind: d for d in (IG_DISPLAY, ATTENTION_DISPLAY)}
