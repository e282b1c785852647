"""The active model's validated performance, as the cohort page shows it: tables and plotly figures.

The numbers are never computed here. They come from the evaluation report written with the model
(``docs/model_report.json`` for the bundled model, written by ``make model``), from an evaluation
saved next to a site's bundle, or from :func:`mrrp.train.evaluate.evaluate_bundle` run on a manifest
the user names (saved in the cache so the page shows it next time). A report is used only if its
checksum is the bundle's: numbers of another model are never shown as this one's.

Splits of an evaluation are sites: ``test`` is the held-out part of the training site, ``external``
a site the model never saw.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrrp._fs import atomic_write_json
from mrrp.errors import InputError
from mrrp.resources import MODEL_REPORT, bundled_path, bundled_root
from mrrp.vocabulary import (
    HORIZONS_MONTHS,
    MODALITIES,
    MODALITY_INPUTS,
    RISK_GROUP_COLOURS,
    RISK_GROUPS,
    SITE_COLOURS,
    horizon_key,
    horizon_label,
    sentence_start,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from mrrp.model.bundle import LoadedBundle

BUNDLED_REPORT = bundled_path(MODEL_REPORT)  # the bundled model's report; ships with the package
# Files a site may keep inside its bundle folder (not part of the bundle's checksums).
REPORT_NAMES = ("model_report.json", "evaluation.json")
SPLIT_LABELS = {"test": "Internal test set", "external": "External site"}


class EvaluationError(InputError):
    """An evaluation report cannot be read or does not belong to the model."""


@dataclass
class Evaluation:
    """One model's evaluation, by site."""

    checksum: str
    source: str  # where the numbers come from, in words
    splits: dict[str, dict]  # "test" / "external" → the dict mrrp.train.evaluate.evaluate_split returns
    oracle_cindex: dict[str, float] = field(default_factory=dict)  # split → C-index of the true hazard (synthetic)
    created_at: str | None = None


def parse_report(data: dict[str, Any], source: str) -> Evaluation:
    """An Evaluation from a ``make model`` report (with an ``evaluation`` section) or raw ``mrrp evaluate`` JSON."""
    ev = data.get("evaluation", data)
    if not isinstance(ev, dict):
        raise EvaluationError(f"The evaluation report {source} has no evaluation section.")
    splits = {k: ev[k] for k in SPLIT_LABELS if isinstance(ev.get(k), dict) and "harrell_c" in ev[k]}
    checksum = str(ev.get("checksum") or data.get("checksum") or "")
    if not splits or not checksum:
        raise EvaluationError(f"The evaluation report {source} has no per-site results or no model checksum.")
    oracle = {
        split: float(data[key])
        for split, key in (("test", "oracle_cindex_internal"), ("external", "oracle_cindex_external"))
        if isinstance(data.get(key), int | float)
    }
    return Evaluation(checksum, source, splits, oracle, data.get("created_at"))


def _cached_path(cache_dir: Path, checksum: str) -> Path:
    return cache_dir / "evaluations" / f"{checksum}.json"


def report_candidates(bundle_path: Path, checksum: str, cache_dir: Path) -> list[Path]:
    """Where an evaluation of this bundle may be, most specific first."""
    return [*(bundle_path / n for n in REPORT_NAMES), _cached_path(cache_dir, checksum), BUNDLED_REPORT]


def find_evaluation(bundle: LoadedBundle, cache_dir: str | os.PathLike[str]) -> tuple[Evaluation | None, str | None]:
    """The evaluation of ``bundle`` and, when none fits, why (e.g. a report of another model was found).

    Returns ``(evaluation, None)`` or ``(None, reason or None)``.
    """
    reason = None
    for path in report_candidates(Path(bundle.path), bundle.checksum, Path(cache_dir)):
        if not path.is_file():
            continue
        try:
            ev = parse_report(json.loads(path.read_text(encoding="utf-8")), _describe(path))
        except (OSError, ValueError, EvaluationError):
            if path != BUNDLED_REPORT:
                reason = f"The evaluation report {_describe(path)} cannot be read."
            continue
        if ev.checksum == bundle.checksum:
            return ev, None
        if path != BUNDLED_REPORT:
            reason = (
                f"The evaluation report {_describe(path)} belongs to another version of this model "
                f"(checksum {ev.checksum[:12]}, this model {bundle.checksum[:12]}); evaluate it again."
            )
    return None, reason


def _describe(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(bundled_root()))
    except ValueError:
        return str(path)


def evaluate_on_manifest(
    bundle: LoadedBundle,
    manifest: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    n_boot: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate ``bundle`` on the test and external rows of ``manifest`` and keep the result.

    ``evaluate_bundle`` needs the manifest's training rows too (for the censoring distribution). A site's
    bundle gets it as ``<bundle>/evaluation.json``, where the patient-review page's missing-pattern banner
    reads it too; the bundled model's folder is never written (the result goes to the cache), nor is a
    read-only one. :func:`find_evaluation` finds either through the bundle's checksum.
    """
    from mrrp.dashboard.models import is_bundled
    from mrrp.train.evaluate import evaluate_bundle

    if not 0 <= int(n_boot) <= 5000:
        raise InputError("The number of bootstrap samples must be between 0 and 5000.")
    result = evaluate_bundle(bundle.path, manifest, cache_dir=cache_dir, n_boot=int(n_boot), progress=progress)
    result["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["manifest"] = str(manifest)
    cached = _cached_path(Path(cache_dir), str(result["checksum"]))
    if is_bundled(bundle.path):
        atomic_write_json(cached, result, indent=2, default=float)
    else:
        try:
            atomic_write_json(Path(bundle.path) / "evaluation.json", result, indent=2, default=float)
        except OSError:
            atomic_write_json(cached, result, indent=2, default=float)
    return parse_report(result, f"evaluation on {Path(manifest).name}")


# -- numbers as text -------------------------------------------------------------------------------


def format_ci(value: float | None, ci: list | tuple | None, digits: int = 3) -> str:
    """'0.733 (0.629–0.824)'; '—' when the value is missing; no interval when it was not bootstrapped."""
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    if ci is not None and len(ci) == 2:
        text += f" ({ci[0]:.{digits}f}–{ci[1]:.{digits}f})"
    return text


def cindex_text(ev: Evaluation, split: str) -> str:
    """Harrell's C with its 95% interval on one site, as the headline shows it."""
    r = ev.splits[split]
    return format_ci(r.get("harrell_c"), r.get("ci95", {}).get("harrell_c"))


def site_table(ev: Evaluation) -> list[dict[str, object]]:
    """One row per site: patients, recurrences, C-indices, td-AUC at 3/5/7 years, Brier, log-rank p."""
    rows = []
    for split, r in ev.splits.items():
        ci = r.get("ci95", {})
        row: dict[str, object] = {
            "Site": SPLIT_LABELS[split],
            "Patients": r.get("n"),
            "Recurrences": r.get("events"),
            "Harrell's C (95% CI)": format_ci(r.get("harrell_c"), ci.get("harrell_c")),
            "Uno's C (95% CI)": format_ci(r.get("uno_c"), ci.get("uno_c")),
        }
        for m in HORIZONS_MONTHS:  # reports key horizons as strings: "60", "td_auc.60"
            key = horizon_key(m)
            row[f"AUC at {horizon_label(m)}"] = format_ci(r.get("td_auc", {}).get(key), ci.get(f"td_auc.{key}"))
        row["Integrated Brier score"] = format_ci(r.get("integrated_brier"), ci.get("integrated_brier"))
        p = r.get("km_by_group", {}).get("logrank_p")
        row["Log-rank p (risk groups)"] = "—" if p is None else (f"{p:.2g}" if p >= 1e-4 else "< 0.0001")
        if split in ev.oracle_cindex:
            row["Best achievable C (true hazard)"] = f"{ev.oracle_cindex[split]:.3f}"
        rows.append(row)
    return rows


def missing_pattern_table(ev: Evaluation) -> list[dict[str, object]]:
    """C-index with every patient's data, then with one modality hidden from everyone (compensated)."""
    rows: list[dict[str, object]] = [
        {
            "Data available": "All modalities each patient has",
            **{SPLIT_LABELS[s]: round(float(r["harrell_c"]), 3) for s, r in ev.splits.items()},
        }
    ]
    for modality in MODALITIES:
        row: dict[str, object] = {"Data available": f"Without {MODALITY_INPUTS[modality].lower()} (compensated)"}
        for s, r in ev.splits.items():
            value = r.get("cindex_by_missing_pattern", {}).get(f"without_{modality}")
            row[SPLIT_LABELS[s]] = None if value is None else round(float(value), 3)
        rows.append(row)
    return rows


# -- figures ---------------------------------------------------------------------------------------


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        height=380,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def td_auc_figure(ev: Evaluation) -> go.Figure:
    """Time-dependent AUC at 3, 5 and 7 years by site, with bootstrap 95% intervals."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for split, r in ev.splits.items():
        auc, ci = r.get("td_auc", {}), r.get("ci95", {})
        months = [m for m in HORIZONS_MONTHS if horizon_key(m) in auc]
        hs = [horizon_key(m) for m in months]  # the report's keys
        lows = [auc[h] - ci.get(f"td_auc.{h}", (auc[h], auc[h]))[0] for h in hs]
        highs = [ci.get(f"td_auc.{h}", (auc[h], auc[h]))[1] - auc[h] for h in hs]
        fig.add_bar(
            name=SPLIT_LABELS[split],
            x=[horizon_label(m) for m in months],
            y=[auc[h] for h in hs],
            marker_color=SITE_COLOURS[split],
            error_y={"type": "data", "array": highs, "arrayminus": lows},
            hovertemplate="%{x}: AUC %{y:.3f}<extra>" + SPLIT_LABELS[split] + "</extra>",
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey", annotation_text="chance")
    fig.update_yaxes(range=[0.4, 1.0])
    return _layout(fig, "Time-dependent AUC", "Horizon", "AUC")


def calibration_figure(ev: Evaluation) -> go.Figure:
    """Predicted vs Kaplan–Meier observed 5-year recurrence by fifth of predicted risk, per site."""
    import plotly.graph_objects as go

    fig = go.Figure()
    top = 0.05
    for split, r in ev.splits.items():
        cal = r.get("calibration_60", [])
        xs, ys = [c["predicted"] for c in cal], [c["observed"] for c in cal]
        top = max([top, *xs, *ys])
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            name=SPLIT_LABELS[split],
            marker_color=SITE_COLOURS[split],
            text=[f"{c['n']} patients" for c in cal],
            hovertemplate="predicted %{x:.1%}, observed %{y:.1%} (%{text})<extra></extra>",
        )
    top = min(1.0, top * 1.1)
    fig.add_scatter(
        x=[0, top], y=[0, top], mode="lines", name="perfect calibration", line={"dash": "dot", "color": "grey"}
    )
    fig.update_xaxes(tickformat=".0%", range=[0, top])
    fig.update_yaxes(tickformat=".0%", range=[0, top])
    return _layout(fig, "Calibration of 5-year recurrence", "Predicted", "Observed (Kaplan–Meier)")


def km_figure(ev: Evaluation, split: str) -> go.Figure:
    """Kaplan–Meier recurrence-free survival of each risk group on one site, with the log-rank p."""
    import plotly.graph_objects as go

    km = ev.splits[split].get("km_by_group", {})
    fig = go.Figure()
    for g in RISK_GROUPS:
        c = km.get("curves", {}).get(g)
        if not c:
            continue
        # A KM curve starts at S(0) = 1 and drops at each event time: a step plot ("hv").
        years = [0.0] + [t / 12.0 for t in c["time_months"]]
        fig.add_scatter(
            x=years,
            y=[1.0, *c["survival"]],
            mode="lines",
            line_shape="hv",
            line_color=RISK_GROUP_COLOURS[g],
            name=f"{g} risk (n={c['n']}, {c['events']} recurrences)",
            hovertemplate="%{x:.1f} years: %{y:.1%} recurrence-free<extra></extra>",
        )
    p = km.get("logrank_p")
    title = f"Recurrence-free survival by risk group — {SPLIT_LABELS[split]}"
    if p is not None:
        title += f" (log-rank p {'< 0.0001' if p < 1e-4 else f'= {p:.2g}'})"
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return _layout(fig, title, "Years since diagnosis", "Recurrence-free")


def missing_pattern_figure(ev: Evaluation) -> go.Figure:
    """C-index by site when one modality is hidden from every patient, against all data (dotted)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = [sentence_start(MODALITY_INPUTS[m]) for m in MODALITIES]
    for split, r in ev.splits.items():
        pats = r.get("cindex_by_missing_pattern", {})
        fig.add_bar(
            name=f"{SPLIT_LABELS[split]} without…",
            x=labels,
            y=[pats.get(f"without_{m}") for m in MODALITIES],
            marker_color=SITE_COLOURS[split],
            hovertemplate="without %{x}: C %{y:.3f}<extra></extra>",
        )
        fig.add_hline(
            y=r["harrell_c"],
            line_dash="dot",
            line_color=SITE_COLOURS[split],
            annotation_text=f"{SPLIT_LABELS[split]}, all data {r['harrell_c']:.3f}",
            annotation_position="top left",
        )
    fig.update_yaxes(range=[0.5, 1.0])
    return _layout(fig, "C-index when one modality is missing for everyone", "Modality missing", "Harrell's C")
