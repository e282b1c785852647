"""What a single prediction is compared against: the model's own evaluation and reference curves.

- :func:`evaluation_for` finds the evaluation of the active bundle: ``<bundle>/evaluation.json`` (what
  ``mrrp evaluate`` writes for a site's bundle, when saved there), else ``docs/model_report.json`` when its
  checksum is this bundle's (the bundled model). A report for another checksum is never used: its numbers
  describe a different model.
- :func:`missing_pattern_cindex` is the validated C-index for the modalities this patient lacks.
- :func:`reference_curves` are the survival curves of the reference risk groups drawn behind the
  patient's curve: the Kaplan–Meier curves of the training patients by risk group that the bundle
  carries (``reference_km.json``); for an older bundle without them, Kaplan–Meier of the held-out internal
  test patients from its evaluation; else the model's mean predicted survival of the training patients in
  each group (from the bundle's reference log-risks and baseline hazard), labelled as model-based
  rather than observed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp import resources
from mrrp.model.bundle import LoadedBundle
from mrrp.vocabulary import MODALITIES, RISK_GROUPS

MODEL_REPORT = resources.bundled_path(resources.MODEL_REPORT)  # the bundled model's report; ships with the package
SPLIT_LABELS = {"test": "internal test", "external": "external site"}


def evaluation_for(bundle: LoadedBundle, report_path: Path | None = None) -> dict | None:
    """The evaluation dict (``{"test": {...}, "external": {...}}``) of this bundle, or None if none is known."""
    candidates = [bundle.path / "evaluation.json", report_path or MODEL_REPORT]
    for path in candidates:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        evaluation = data.get("evaluation", data) if isinstance(data, dict) else None
        if not isinstance(evaluation, dict):
            continue
        checksum = evaluation.get("checksum") or data.get("checksum")
        if checksum == bundle.checksum:
            return evaluation
    return None


@dataclass(frozen=True)
class PatternPerformance:
    """The validated C-index for one missing pattern, per evaluation split."""

    missing: tuple[str, ...]  # model modalities absent, in model order
    cindex: dict[str, float]  # split label → Harrell's C under this pattern
    full_cindex: dict[str, float]  # split label → Harrell's C with every modality present
    validated: bool  # False: no evaluation covers this pattern (e.g. two modalities missing)

    def sentence(self) -> str:
        """One line for the banner."""
        if not self.missing:
            parts = [f"{v:.2f} ({k})" for k, v in self.full_cindex.items()]
            return "Validated C-index with every input present: " + ", ".join(parts) + "." if parts else ""
        if self.validated:
            parts = [
                f"{v:.2f} ({k}; {self.full_cindex.get(k, float('nan')):.2f} with all inputs)"
                for k, v in self.cindex.items()
            ]
            return "Validated C-index when this input is missing: " + ", ".join(parts) + "."
        return (
            "This combination of missing inputs was not part of the validation (only one missing input at a time "
            "was); the estimate leans more on the compensation and is less certain."
        )


def missing_pattern_cindex(evaluation: dict | None, missing: list[str] | tuple[str, ...]) -> PatternPerformance:
    """The C-index validated for ``missing`` (model modality names), from :func:`evaluation_for`'s dict."""
    order = tuple(m for m in MODALITIES if m in set(missing))
    full: dict[str, float] = {}
    by_pattern: dict[str, float] = {}
    for split, label in SPLIT_LABELS.items():
        block = (evaluation or {}).get(split)
        if not isinstance(block, dict):
            continue
        if "harrell_c" in block:
            full[label] = float(block["harrell_c"])
        if len(order) == 1:
            value = (block.get("cindex_by_missing_pattern") or {}).get(f"without_{order[0]}")
            if value is not None:
                by_pattern[label] = float(value)
    validated = (not order and bool(full)) or bool(by_pattern)
    return PatternPerformance(missing=order, cindex=by_pattern, full_cindex=full, validated=validated)


@dataclass(frozen=True)
class ReferenceCurve:
    group: str
    time_months: np.ndarray  # (T,)
    survival: np.ndarray  # (T,)
    n: int


@dataclass(frozen=True)
class ReferenceCurves:
    curves: list[ReferenceCurve]
    kind: str  # "kaplan-meier" or "model"
    description: str  # one sentence for the figure caption


def _km_curves(km: dict) -> list[ReferenceCurve]:
    curves = []
    for g in RISK_GROUPS:
        c = km.get(g)
        if not c:
            continue
        # KM steps start at (0, 1): prepend it so the step plot begins at the origin.
        t = np.concatenate([[0.0], np.asarray(c["time_months"], float)])
        s = np.concatenate([[1.0], np.asarray(c["survival"], float)])
        curves.append(ReferenceCurve(g, t, s, int(c.get("n", 0))))
    return curves


def reference_curves(bundle: LoadedBundle, evaluation: dict | None) -> ReferenceCurves:
    """Survival of the reference risk groups (see the module docstring for which and why)."""
    training = (getattr(bundle, "reference_km", None) or {}).get("curves")
    if training:
        curves = _km_curves(training)
        n = sum(c.n for c in curves)
        return ReferenceCurves(
            curves, "kaplan-meier", f"Kaplan–Meier curves of the {n} training patients by risk group."
        )
    km = ((evaluation or {}).get("test") or {}).get("km_by_group", {}).get("curves")
    if km:
        curves = _km_curves(km)
        n = sum(c.n for c in curves)
        return ReferenceCurves(
            curves, "kaplan-meier", f"Kaplan–Meier curves of the {n} held-out internal test patients by risk group."
        )
    lp = np.asarray(bundle.reference_risk, float)  # (N,) training log-risks
    grid = np.arange(0.0, 121.0, 1.0)  # (T,) months
    groups = bundle.cutoffs.group(lp)
    curves = []
    for g in RISK_GROUPS:
        sel = lp[groups == g]
        if sel.size == 0:
            continue
        surv = bundle.ensemble_baseline.survival(sel, grid).mean(axis=0)  # (T,)
        curves.append(ReferenceCurve(g, grid, surv, int(sel.size)))
    return ReferenceCurves(
        curves,
        "model",
        "Model-estimated mean survival of the training patients in each risk group (no evaluation with "
        "observed outcomes is stored with this model).",
    )


def group_description(bundle: LoadedBundle) -> str:
    """How the risk groups are defined, for the caption under the risk bar."""
    c = bundle.cutoffs
    q1, q2 = c.quantiles
    return (
        f"Risk groups use cut-offs fixed on the training patients ({c.method}: the {q1:.0%} and {q2:.0%} points of "
        f"their log-risk): low ≤ {c.low_upper:.2f} < intermediate ≤ {c.high_lower:.2f} < high."
    )
