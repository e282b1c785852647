"""Figures of one prediction: plotly builders for the page and the PDF, and two image helpers.

Pure functions of their inputs (a Prediction, an Explanation, reference curves); no Streamlit here, so
the page, the tumor board and the PDF export draw the same figures. Colours, horizons and modality
names come from :mod:`mrrp.vocabulary`. Times are shown in years on screen; inputs are in months, as
everywhere in mrrp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrrp.dashboard.reference import ReferenceCurves
from mrrp.ui import html_escape
from mrrp.vocabulary import (
    HEADLINE_HORIZON_MONTHS,
    LOWERS_RISK_COLOUR,
    MODALITIES,
    MODALITY_LABELS,
    PATIENT_COLOUR,
    RAISES_RISK_COLOUR,
    RISK_GROUP_COLOURS,
    horizon_label,
    horizon_years,
    rgb,
    rgba,
)

if TYPE_CHECKING:
    from mrrp.dashboard.review import WhatIfRow
    from mrrp.model.predict import Prediction

NEUTRAL = "#c9d1d9"
FONT = {"family": "DejaVu Sans, Arial, sans-serif", "size": 13, "color": "#1f2a33"}


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    kw.setdefault("margin", {"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_layout(
        height=height,
        font=FONT,
        paper_bgcolor="white",
        plot_bgcolor="white",
        **kw,
    )
    return fig


# -- risk group ---------------------------------------------------------------------------------


def risk_position_figure(
    reference_risk: np.ndarray, low_upper: float, high_lower: float, prediction: Prediction
) -> go.Figure:
    """Where the patient's log-risk (with its interval) falls among the training patients, with the cut-offs."""
    ref = np.asarray(reference_risk, float)  # (N,)
    lo_i, hi_i = prediction.log_risk_interval
    lr = float(prediction.log_risk)
    x_min = float(min(ref.min(), lo_i, lr)) - 0.3
    x_max = float(max(ref.max(), hi_i, lr)) + 0.3
    fig = go.Figure()
    for group, a, b in (
        ("low", x_min, low_upper),
        ("intermediate", low_upper, high_lower),
        ("high", high_lower, x_max),
    ):
        fig.add_vrect(x0=a, x1=b, fillcolor=RISK_GROUP_COLOURS[group], opacity=0.15, line_width=0, layer="below")
        fig.add_annotation(x=(a + b) / 2, y=1.0, yref="paper", text=group, showarrow=False, yanchor="bottom")
    fig.add_trace(
        go.Histogram(
            x=ref,
            nbinsx=40,
            marker_color="#8a99a6",
            opacity=0.6,
            name="training patients",
            hovertemplate="log-risk %{x}<br>%{y} patients<extra></extra>",
        )
    )
    for cut in (low_upper, high_lower):
        fig.add_vline(x=cut, line_dash="dash", line_color="#45525e", line_width=1)
    counts, _ = np.histogram(ref, bins=40)
    y_mark = float(counts.max()) * 1.08 if counts.size else 1.0
    fig.add_trace(
        go.Scatter(
            x=[lr],
            y=[y_mark],
            mode="markers",
            marker={"size": 14, "color": PATIENT_COLOUR, "symbol": "diamond"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [hi_i - lr],
                "arrayminus": [lr - lo_i],
                "color": PATIENT_COLOUR,
                "thickness": 2,
                "width": 6,
            },
            name="this patient",
            hovertemplate="log-risk %{x:.2f}<extra>this patient</extra>",
        )
    )
    fig.update_xaxes(title="log-risk (centred; higher = more likely to recur)", range=[x_min, x_max], showgrid=False)
    fig.update_yaxes(title="patients", showgrid=True, gridcolor="#eef2f5")
    return _layout(fig, 260, showlegend=False, bargap=0.02)


# -- survival -------------------------------------------------------------------------------------


def survival_figure(
    prediction: Prediction, reference: ReferenceCurves | None = None, max_years: float = 10.0
) -> go.Figure:
    """The patient's recurrence-free survival with its band, over the reference groups' curves."""
    p = prediction
    t_years = np.asarray(p.time_months, float) / 12.0  # (T,)
    keep = t_years <= max_years
    fig = go.Figure()
    if reference is not None:
        dash = "solid" if reference.kind == "kaplan-meier" else "dot"
        for c in reference.curves:
            ty = c.time_months / 12.0
            k = ty <= max_years
            fig.add_trace(
                go.Scatter(
                    x=ty[k],
                    y=c.survival[k],
                    mode="lines",
                    line={"shape": "hv", "color": RISK_GROUP_COLOURS[c.group], "width": 1.5, "dash": dash},
                    opacity=0.8,
                    name=f"{c.group} risk group (n={c.n})",
                    hovertemplate="%{x:.1f} y: %{y:.0%}<extra>" + c.group + "</extra>",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([t_years[keep], t_years[keep][::-1]]),
            y=np.concatenate([np.asarray(p.survival_upper)[keep], np.asarray(p.survival_lower)[keep][::-1]]),
            fill="toself",
            fillcolor=rgba(PATIENT_COLOUR, 0.18),
            line={"width": 0},
            hoverinfo="skip",
            name="uncertainty band (95%)",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=t_years[keep],
            y=np.asarray(p.survival)[keep],
            mode="lines",
            line={"color": PATIENT_COLOUR, "width": 3},
            name="this patient",
            hovertemplate="%{x:.1f} y: %{y:.1%} recurrence-free<extra>this patient</extra>",
        )
    )
    for h in p.horizons:
        s = 1.0 - h.probability
        fig.add_trace(
            go.Scatter(
                x=[h.years],
                y=[s],
                mode="markers+text",
                marker={"color": PATIENT_COLOUR, "size": 8},
                text=[f"{s:.0%}"],
                textposition="bottom center",
                showlegend=False,
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title="years after diagnosis", range=[0, max_years], dtick=1, showgrid=True, gridcolor="#eef2f5")
    fig.update_yaxes(title="recurrence-free survival", range=[0, 1.02], tickformat=".0%", gridcolor="#eef2f5")
    return _layout(fig, 380, legend={"orientation": "h", "y": -0.22, "x": 0})


def percent_text(percentile: float) -> str:
    """'91%', or one decimal at the ends so 99.5 does not read as 100% (nor 0.4 as 0%)."""
    return f"{percentile:.0f}%" if 1.0 <= percentile <= 99.0 else f"{percentile:.1f}%"


def recurrence_rows(prediction: Prediction) -> list[dict[str, str]]:
    """Table rows: horizon, probability and 95% interval, formatted as on screen and in the PDF."""
    return [
        {
            "Horizon": horizon_label(h.months),
            "Recurrence probability": f"{100 * h.probability:.1f}%",
            "95% interval": f"{100 * h.lower:.1f}–{100 * h.upper:.1f}%",
        }
        for h in prediction.horizons
    ]


# -- icon array ----------------------------------------------------------------------------------


def icon_counts(probability: float, n: int = 100) -> tuple[int, int]:
    """(with recurrence, without) out of ``n`` people, rounded half up so the two always add to ``n``."""
    if not (0.0 <= probability <= 1.0) or math.isnan(probability):
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    k = int(math.floor(probability * n + 0.5))
    return k, n - k


def _person_path(x: float, y: float, s: float) -> tuple[dict, dict]:
    """A head (circle) and shoulders (path) of one icon centred at (x, y) in a cell of side ``s``."""
    r = 0.16 * s
    head = {"type": "circle", "x0": x - r, "x1": x + r, "y0": y + 0.12 * s, "y1": y + 0.12 * s + 2 * r}
    w, top, bottom = 0.34 * s, y + 0.06 * s, y - 0.4 * s
    body = {
        "type": "path",
        "path": f"M {x - w},{bottom} L {x - w},{top - 0.1 * s} Q {x - w},{top} {x - w + 0.1 * s},{top} "
        f"L {x + w - 0.1 * s},{top} Q {x + w},{top} {x + w},{top - 0.1 * s} L {x + w},{bottom} Z",
    }
    return head, body


def icon_array_figure(
    probability: float, horizon_months: int = HEADLINE_HORIZON_MONTHS, n: int = 100, columns: int = 10
) -> go.Figure:
    """100 people like her: the first k (filled, red) have a recurrence within ``horizon_months``."""
    years = horizon_years(horizon_months)
    k, rest = icon_counts(probability, n)
    rows = math.ceil(n / columns)
    fig = go.Figure()
    shapes = []
    for i in range(n):
        row, col = divmod(i, columns)
        x, y = col + 0.5, rows - row - 0.5
        colour = RAISES_RISK_COLOUR if i < k else NEUTRAL
        for shape in _person_path(x, y, 1.0):
            shapes.append({**shape, "fillcolor": colour, "line": {"width": 0}, "layer": "above"})
    fig.update_layout(shapes=shapes)
    # Invisible points give the axes their extent and a legend.
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker={"color": RAISES_RISK_COLOUR, "size": 12},
            name=f"{k} with a recurrence within {years} years",
        )
    )
    fig.add_trace(
        go.Scatter(x=[None], y=[None], mode="markers", marker={"color": NEUTRAL, "size": 12}, name=f"{rest} without")
    )
    fig.update_xaxes(range=[0, columns], visible=False, fixedrange=True)
    fig.update_yaxes(range=[0, rows], visible=False, scaleanchor="x", fixedrange=True)
    return _layout(
        fig,
        380,
        legend={"orientation": "h", "y": -0.02, "x": 0},
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        title={
            "text": f"Of 100 patients like her, about {k} would have<br>a recurrence within {years} years",
            "font": {"size": 14},
        },
    )


# -- explanations -------------------------------------------------------------------------------


def contributions_figure(explanation) -> go.Figure:
    """Per-modality Shapley contribution (signed, log-risk) beside the inter-modality attention share."""
    e = explanation
    names = [MODALITY_LABELS[m] + ("" if e.present.get(m, False) else " (compensated)") for m in MODALITIES]
    phi = [float(e.shapley.get(m, 0.0)) for m in MODALITIES]
    att = [100 * float(e.attention_share.get(m, 0.0)) for m in MODALITIES]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("Shapley contribution (log-risk)", "Attention share (%)"),
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=phi,
            orientation="h",
            marker_color=[RAISES_RISK_COLOUR if v > 0 else LOWERS_RISK_COLOUR for v in phi],
            text=[f"{v:+.2f}" for v in phi],
            textposition="outside",
            cliponaxis=False,
            name="Shapley",
            hovertemplate="%{y}: %{x:+.3f}<extra>Shapley</extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=att,
            orientation="h",
            marker_color=PATIENT_COLOUR,
            text=[f"{v:.0f}%" for v in att],
            textposition="outside",
            cliponaxis=False,
            name="attention",
            hovertemplate="%{y}: %{x:.1f}%<extra>attention</extra>",
        ),
        row=1,
        col=2,
    )
    span = max(0.1, max(abs(v) for v in phi)) * 1.35
    fig.update_xaxes(range=[-span, span], zeroline=True, zerolinecolor="#45525e", row=1, col=1)
    fig.update_xaxes(range=[0, max(100.0, max(att)) * 1.15], row=1, col=2)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, 260, showlegend=False)


def clinical_label(field: str, record: Mapping | None) -> str:
    """'Ki-67 = 35 %' (the patient's value) or 'Ki-67 (unknown)'."""
    from mrrp.schema import FIELDS_BY_NAME

    f = FIELDS_BY_NAME.get(field)
    label = f.label if f else field
    value = None if record is None else record.get(field)
    if value is None:
        return f"{label} (unknown)"
    unit = f" {f.unit}" if f and f.unit and f.unit != "nodes" else (" nodes" if f and f.unit == "nodes" else "")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{label} = {shown}{unit}"


def clinical_figure(attributions: Mapping[str, float], record: Mapping | None = None, top: int = 13) -> go.Figure:
    """Signed attribution per clinical field (integrated gradients), largest magnitude on top."""
    items = sorted(attributions.items(), key=lambda kv: -abs(kv[1]))[:top]
    labels = [clinical_label(k, record) for k, _ in items]
    values = [float(v) for _, v in items]
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=values,
            orientation="h",
            marker_color=[RAISES_RISK_COLOUR if v > 0 else LOWERS_RISK_COLOUR for v in values],
            text=[f"{v:+.3f}" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:+.3f}<extra></extra>",
        )
    )
    span = max([0.05] + [abs(v) for v in values]) * 1.35
    fig.update_xaxes(
        title="← lowers risk · raises risk → (log-risk)", range=[-span, span], zeroline=True, zerolinecolor="#45525e"
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, 60 + 28 * max(len(items), 1), showlegend=False)


def what_if_figure(rows: Sequence[WhatIfRow]) -> go.Figure:
    """5-year recurrence with every input, and with each present modality left out (dots with intervals)."""
    labels = [r.label for r in rows]
    p = [100 * r.recurrence for r in rows]
    lo = [100 * (r.recurrence_interval or (r.recurrence, r.recurrence))[0] for r in rows]
    hi = [100 * (r.recurrence_interval or (r.recurrence, r.recurrence))[1] for r in rows]
    colours = [RISK_GROUP_COLOURS.get(r.risk_group, PATIENT_COLOUR) for r in rows]
    fig = go.Figure(
        go.Scatter(
            x=p,
            y=labels,
            mode="markers+text",
            marker={"size": 13, "color": colours},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [h - v for h, v in zip(hi, p, strict=True)],
                "arrayminus": [v - lo_ for v, lo_ in zip(p, lo, strict=True)],
                "color": "#45525e",
            },
            text=[f"{v:.1f}% ({r.risk_group})" for v, r in zip(p, rows, strict=True)],
            textposition="top center",
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
        )
    )
    fig.update_xaxes(title="5-year recurrence probability (%)", range=[0, max(hi + [10.0]) * 1.1])
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, 90 + 55 * len(rows), showlegend=False)


# -- images and text ------------------------------------------------------------------------------


def ultrasound_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = "inferno") -> np.ndarray:
    """Blend a [0, 1] map (H, W) over a grayscale ultrasound image (H, W) uint8; returns (H, W, 3) uint8."""
    from matplotlib import colormaps

    img = np.asarray(image)
    h = np.asarray(heat, float)
    if img.shape[:2] != h.shape:
        raise ValueError(f"image {img.shape[:2]} and map {h.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    gray = np.repeat(img[..., None].astype(np.float32), 3, axis=-1)  # (H, W, 3)
    colour = colormaps[cmap](np.clip(np.nan_to_num(h), 0.0, 1.0))[..., :3] * 255.0  # (H, W, 3)
    # Weight the colour by the map itself, so low-attribution areas keep the plain image.
    w = alpha * np.clip(np.nan_to_num(h), 0.0, 1.0)[..., None]
    return np.clip((1.0 - w) * gray + w * colour, 0, 255).astype(np.uint8)


def sentence_colour(attribution: float, scale: float) -> str:
    """Background colour of a sentence: red up, blue down, alpha by |attribution| / scale."""
    a = 0.0 if scale <= 0 else min(1.0, abs(attribution) / scale)
    r, g, b = rgb(RAISES_RISK_COLOUR if attribution > 0 else LOWERS_RISK_COLOUR)
    return f"rgba({r},{g},{b},{0.08 + 0.5 * a:.2f})"


def highlighted_sentences_html(sentences: Sequence) -> str:
    """Report sentences as HTML spans shaded by their attribution (text escaped; safe to render)."""
    items = [
        (
            getattr(s, "sentence", None) or s.get("sentence"),
            float(getattr(s, "attribution", None) if hasattr(s, "attribution") else s.get("attribution")),
        )
        for s in sentences
    ]
    items = [(t, a) for t, a in items if t]
    if not items:
        return ""
    scale = max(abs(a) for _, a in items) or 1.0
    spans = [
        f'<span title="{a:+.3f} log-risk" style="background:{sentence_colour(a, scale)};'
        f'border-radius:3px;padding:1px 2px;line-height:1.8">{html_escape(t)}</span>'
        for t, a in items
    ]
    return '<div style="font-size:0.95rem">' + " ".join(spans) + "</div>"


def top_sentences(sentences: Sequence, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` sentences with the largest |attribution|, as (text, attribution)."""
    items = [(s.sentence, float(s.attribution)) for s in sentences if getattr(s, "sentence", None)]
    return sorted(items, key=lambda kv: -abs(kv[1]))[:k]
