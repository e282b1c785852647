"""The model card of the active bundle, in the order a reader needs it: what the model is for, what it
was trained on, how well it does, where it fails, and exactly which files it is.

Everything comes from the bundle itself (``model_card.json``, ``config.json``, ``training_summary.json``,
``checksums.json``, the verified bundle checksum) plus the bundle's evaluation report when one matches
its checksum (:mod:`mrrp.dashboard.performance`). Nothing is typed in here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mrrp.dashboard.performance import SPLIT_LABELS, Evaluation, cindex_text, format_ci
from mrrp.vocabulary import HEADLINE_HORIZON_MONTHS, MODALITY_WORDS, horizon_key, horizon_label

if TYPE_CHECKING:
    from mrrp.model.bundle import LoadedBundle

ENCODER_ROLES = {"tile": "Slide tiles", "ultrasound_image": "Ultrasound images", "text": "Report sentences"}


@dataclass
class ModelCardView:
    name: str
    version: str  # name@checksum[:12], as every prediction carries it
    checksum: str
    bundle_format: str
    mrrp_version: str
    intended_use: str
    not_intended_for: str
    training_data: str
    missing_data: str
    risk_groups: str
    training: list[tuple[str, str]]  # (label, value)
    metrics: list[tuple[str, str]]  # (label, value)
    metrics_source: str | None
    limitations: list[str]
    encoders: list[dict[str, str]]  # role, name, sha256
    weights: list[dict[str, str]]  # file, sha256
    notice: str | None
    extra: dict[str, str] = field(default_factory=dict)  # any other text field of the card


_KNOWN_CARD_KEYS = {
    "name",
    "notice",
    "intended_use",
    "not_intended_for",
    "training_data",
    "missing_data",
    "risk_groups",
    "training_summary",
    "metrics",
    "encoders",
    "limitations",
}


def _training_rows(summary: dict) -> list[tuple[str, str]]:
    rows = []
    if "n_train" in summary:
        rows.append(("Training patients", f"{summary['n_train']:,}"))
    if "events_train" in summary:
        rows.append(("Recurrences among them", f"{summary['events_train']:,}"))
    if "folds" in summary:
        rows.append(("Ensemble", f"{summary['folds']} cross-validation fold models"))
    if "oof_harrell_c" in summary:
        rows.append(("Out-of-fold C-index (training)", f"{summary['oof_harrell_c']:.3f}"))
    missing = summary.get("missing_fraction_train") or {}
    if missing:
        text = ", ".join(f"{MODALITY_WORDS.get(m, m)} {v:.0%}" for m, v in missing.items())
        rows.append(("Missing in training", text))
    return rows


def _metric_rows(card_metrics: dict, evaluation: Evaluation | None) -> tuple[list[tuple[str, str]], str | None]:
    """Metrics from the matching evaluation report; else whatever numbers the card itself lists."""
    if evaluation is not None:
        rows = []
        for split, r in evaluation.splits.items():
            where = SPLIT_LABELS[split]
            rows.append((f"{where}: patients (recurrences)", f"{r['n']} ({r['events']})"))
            rows.append((f"{where}: Harrell's C (95% CI)", cindex_text(evaluation, split)))
            key = horizon_key(HEADLINE_HORIZON_MONTHS)  # the report's key, "60"
            auc = r.get("td_auc", {}).get(key)
            if auc is not None:
                rows.append(
                    (
                        f"{where}: AUC at {horizon_label(HEADLINE_HORIZON_MONTHS)} (95% CI)",
                        format_ci(auc, r.get("ci95", {}).get(f"td_auc.{key}")),
                    )
                )
        return rows, evaluation.source
    rows = [(str(k), f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in (card_metrics or {}).items()]
    return rows, ("model card" if rows else None)


def _cutoff_text(bundle: LoadedBundle, card_text: str) -> str:
    c = bundle.cutoffs
    fixed = f"low: log-risk ≤ {c.low_upper:.3f}; high: log-risk > {c.high_lower:.3f}; intermediate between."
    return f"{card_text} Cut-offs: {fixed}" if card_text else f"Cut-offs ({c.method}): {fixed}"


def model_card_view(bundle: LoadedBundle, evaluation: Evaluation | None, notice: str | None) -> ModelCardView:
    """Everything the model-card page shows, from the loaded (checksum-verified) bundle."""
    card, config = bundle.model_card or {}, bundle.config or {}
    sums = json.loads((Path(bundle.path) / "checksums.json").read_text())
    encoders = [
        {
            "Input": ENCODER_ROLES.get(role, role),
            "Encoder": str(e.get("name", "")),
            "Weights sha256": str(e.get("sha256", "")),
        }
        for role, e in (config.get("encoders") or card.get("encoders") or {}).items()
    ]
    weights = [{"File": name, "sha256": digest} for name, digest in sorted(sums.items())]
    metrics, source = _metric_rows(card.get("metrics") or {}, evaluation)
    name = str(config.get("name") or card.get("name") or Path(bundle.path).name)
    return ModelCardView(
        name=name,
        version=f"{name}@{bundle.checksum[:12]}",
        checksum=bundle.checksum,
        bundle_format=str(config.get("format", "")),
        mrrp_version=str(config.get("mrrp_version", "")),
        intended_use=str(card.get("intended_use", "Not stated in the model card.")),
        not_intended_for=str(card.get("not_intended_for", "Not stated in the model card.")),
        training_data=str(card.get("training_data", "Not stated in the model card.")),
        missing_data=str(card.get("missing_data", "")),
        risk_groups=_cutoff_text(bundle, str(card.get("risk_groups", ""))),
        training=_training_rows(bundle.training_summary or card.get("training_summary") or {}),
        metrics=metrics,
        metrics_source=source,
        limitations=[str(x) for x in card.get("limitations", [])],
        encoders=encoders,
        weights=weights,
        notice=notice or card.get("notice"),
        extra={k: str(v) for k, v in card.items() if k not in _KNOWN_CARD_KEYS and isinstance(v, str)},
    )


def model_card_markdown(view: ModelCardView) -> str:
    """The card as a Markdown document (the page's download), same content as the screen."""
    lines = [f"# Model card: {view.name}", ""]
    if view.notice:
        lines += [f"> {view.notice}", ""]
    lines += [
        f"- Version: `{view.version}`",
        f"- Bundle checksum (sha256 of checksums.json): `{view.checksum}`",
        f"- Bundle format: {view.bundle_format}; written by mrrp {view.mrrp_version}",
        "",
        "## Intended use",
        view.intended_use,
        "",
        f"**Not intended for:** {view.not_intended_for}",
        "",
        "## Training data",
        view.training_data,
        "",
        *(f"- {label}: {value}" for label, value in view.training),
        "",
        "## Missing data",
        view.missing_data or "—",
        "",
        "## Risk groups",
        view.risk_groups,
        "",
        "## Metrics",
    ]
    if view.metrics:
        lines += [*(f"- {label}: {value}" for label, value in view.metrics), "", f"Source: {view.metrics_source}"]
    else:
        lines.append("No evaluation of this bundle was found.")
    lines += ["", "## Limitations", *(f"- {x}" for x in view.limitations), "", "## Encoders", ""]
    lines += [f"- {e['Input']}: {e['Encoder']} (sha256 `{e['Weights sha256']}`)" for e in view.encoders]
    lines += ["", "## Files", ""]
    lines += [f"- {w['File']}: `{w['sha256']}`" for w in view.weights]
    for key, value in view.extra.items():
        lines += ["", f"## {key.replace('_', ' ').capitalize()}", value]
    return "\n".join(lines) + "\n"
