"""What the tumor-board page shows of each stored case: a few numbers in words, large enough to read
from the back of a room, and one chart of the cases' recurrence-free survival side by side.

Works from :class:`mrrp.dashboard.history.CaseRecord` alone (the stored prediction and explanation),
so no model or input file is needed to project past cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mrrp.model.predict import horizon_risks
from mrrp.vocabulary import (
    CASE_COLOURS,
    HEADLINE_HORIZON_MONTHS,
    HORIZONS_MONTHS,
    MODALITY_WORDS,
    horizon_label,
    sentence_start,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from mrrp.dashboard.history import CaseRecord


@dataclass(frozen=True)
class CaseCard:
    case_id: str
    title: str  # the patient's pseudonymous id, or the demo id
    created: str  # "2026-05-01 10:02 UTC"
    risk_group: str
    percentile: str  # "72nd percentile of the reference cohort"
    recurrence_title: str  # "Recurrence within 5 years" (the headline horizon)
    recurrence: str  # "18% (12–25%)" by the headline horizon
    recurrence_other: str  # "3 years 9% (5–14%) · 7 years 25% (18–33%)"
    compensated: str  # "All four modalities present" or "Compensated: H&E slide"
    top_contribution: str | None  # the modality with the largest Shapley value: "H&E slide, towards higher risk"
    model_version: str
    from_bundled_model: bool


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, …"""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _prob(risks: dict, months: int) -> str:
    """'18% (12–25%)', or '—' for a horizon the stored prediction lacks."""
    h = risks.get(months)
    return "—" if h is None else f"{100 * h.probability:.0f}% ({100 * h.lower:.0f}–{100 * h.upper:.0f}%)"


def is_bundled_version(model_version: str) -> bool:
    """True when a stored prediction came from a bundled (synthetic-data) model, whatever its checksum:
    a case saved before the demo model was retrained still carries the notice."""
    from mrrp.dashboard.models import BUNDLED_MODEL_DIR

    return model_version.startswith(f"{BUNDLED_MODEL_DIR.name}@")


def _top_contribution(explanation: dict | None) -> str | None:
    shapley = (explanation or {}).get("shapley") or {}
    if not shapley:
        return None
    modality, value = max(shapley.items(), key=lambda kv: abs(kv[1]))
    if abs(value) < 1e-9:
        return None
    direction = "towards higher risk" if value > 0 else "towards lower risk"
    return f"{sentence_start(MODALITY_WORDS.get(modality, modality))}, {direction}"


def case_card(record: CaseRecord) -> CaseCard:
    """The words and numbers one case shows on the board."""
    pred = record.prediction  # the stored wire form (a dict), possibly from an older version
    risks = horizon_risks(pred)
    compensated = [MODALITY_WORDS.get(m, m) for m in pred.get("compensated", [])]
    pct = pred.get("percentile")
    return CaseCard(
        case_id=record.case_id,
        title=str(pred.get("patient_id") or record.case_id),
        created=record.created_at[:16].replace("T", " ") + " UTC",
        risk_group=str(pred.get("risk_group", "?")),
        percentile="—" if pct is None else f"{ordinal(int(round(pct)))} percentile of the reference cohort",
        recurrence_title=f"Recurrence within {horizon_label(HEADLINE_HORIZON_MONTHS)}",
        recurrence=_prob(risks, HEADLINE_HORIZON_MONTHS),
        recurrence_other=" · ".join(
            f"{horizon_label(m)} {_prob(risks, m)}" for m in HORIZONS_MONTHS if m != HEADLINE_HORIZON_MONTHS
        ),
        compensated=("Compensated: " + ", ".join(compensated)) if compensated else "All modalities present",
        top_contribution=_top_contribution(record.explanation),
        model_version=record.model_version,
        from_bundled_model=is_bundled_version(record.model_version),
    )


def survival_figure(records: list[CaseRecord], font_size: int = 20) -> go.Figure:
    """Recurrence-free survival of the chosen cases with their uncertainty bands, in projector-sized type."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, rec in enumerate(records):
        pred = rec.prediction
        t = pred.get("time_months") or []
        if not t:
            continue
        years = [m / 12.0 for m in t]
        colour = CASE_COLOURS[i % len(CASE_COLOURS)]
        dash = ("solid", "dash", "dot")[(i // len(CASE_COLOURS)) % 3]  # more cases than colours: new line style
        name = f"{pred.get('patient_id') or rec.case_id} ({pred.get('risk_group', '?')})"
        if pred.get("survival_lower") and pred.get("survival_upper"):
            fig.add_scatter(
                x=years + years[::-1],
                y=list(pred["survival_upper"]) + list(pred["survival_lower"])[::-1],
                fill="toself",
                fillcolor=colour,
                opacity=0.15,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            )
        fig.add_scatter(
            x=years,
            y=pred["survival"],
            mode="lines",
            name=name,
            line={"color": colour, "width": 4, "dash": dash},
            hovertemplate="%{x:.1f} years: %{y:.0%} recurrence-free<extra>" + name + "</extra>",
        )
    fig.update_layout(
        template="plotly_white",
        height=480,
        font={"size": font_size},
        xaxis_title="Years from diagnosis",
        yaxis_title="Recurrence-free",
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 80, "r": 20, "t": 30, "b": 60},
    )
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return fig
