"""One patient's review, from an intake to everything the page draws: prediction, explanation,
what-if predictions, the validated performance for her missing pattern and the reference curves.

:func:`review_case` is the call sequence the patient-review page runs (and the dashboard benchmark
times). :func:`review_from_record` rebuilds the same object from a case-history row, so a reopened
case draws the same screen without recomputing (the slide heatmap needs the slide file, which is
looked up again and is optional).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrrp.dashboard.history import CaseRecord
from mrrp.dashboard.intake import InputStatus, IntakeResult
from mrrp.dashboard.reference import (
    PatternPerformance,
    ReferenceCurves,
    evaluation_for,
    missing_pattern_cindex,
    reference_curves,
)
from mrrp.explain.types import Explanation, SentenceAttribution, TileAttribution
from mrrp.features.case import CaseFeatures
from mrrp.model.bundle import LoadedBundle
from mrrp.model.fusion import MODALITIES
from mrrp.model.predict import Prediction, predict_cases

ProgressFn = Callable[[float, str], None]
TILE_SCORE_KINDS = {"Integrated Gradients (signed)": "ig", "Attention": "attention"}


@dataclass
class Review:
    prediction: Prediction | dict
    explanation: Explanation
    pattern: PatternPerformance
    reference: ReferenceCurves
    statuses: dict[str, InputStatus]
    input_hashes: dict[str, str]
    intake: IntakeResult | None = None  # None for a case reopened from the history
    case_id: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    # identifies this review in the session (e.g. which drawn heatmap belongs to which case)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def pred(self) -> dict:
        p = self.prediction
        return p.to_dict() if hasattr(p, "to_dict") else dict(p)

    @property
    def compensated(self) -> list[str]:
        return [m for m in MODALITIES if not self.explanation.present.get(m, False)]


def what_if(bundle: LoadedBundle, case: CaseFeatures, drop: Iterable[str]) -> Prediction:
    """The prediction with the modalities in ``drop`` left out (the model compensates for them)."""
    import torch

    present = torch.from_numpy(case.present.copy())[None, :]  # (1, M) bool
    for m in drop:
        present[0, MODALITIES.index(m)] = False
    return predict_cases(bundle, [case], present=present)[0]


def what_if_rows(bundle: LoadedBundle, case: CaseFeatures, prediction: Prediction) -> list[dict]:
    """Rows for the what-if chart: every input, then each present modality left out on its own."""
    import torch

    present = case.present
    drops = [m for i, m in enumerate(MODALITIES) if present[i]]
    rows = [_row("All available inputs", prediction)]
    if len(drops) < 2:  # leaving out the only input would leave nothing of the patient
        return rows
    mask = torch.from_numpy(np.repeat(present[None, :], len(drops), axis=0))  # (K, M)
    for k, m in enumerate(drops):
        mask[k, MODALITIES.index(m)] = False
    preds = predict_cases(bundle, [case] * len(drops), present=mask)
    from mrrp.dashboard.charts import MODALITY_NAMES

    rows += [_row(f"without {MODALITY_NAMES[m].lower()}", p) for m, p in zip(drops, preds, strict=True)]
    return rows


def _row(label: str, p: Prediction) -> dict:
    return {
        "label": label,
        "risk_group": p.risk_group,
        "log_risk": p.log_risk,
        "percentile": p.percentile,
        "recurrence_60": p.recurrence["60"],
        "recurrence_60_interval": p.recurrence_interval["60"],
    }


def review_case(
    bundle: LoadedBundle, intake: IntakeResult, *, ig_steps: int = 32, progress: ProgressFn | None = None
) -> Review:
    """Predict, explain and put the result in context. Ultrasound images go to the explainer for Grad-CAM."""
    from mrrp.explain.explain import explain_case

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if progress:
        progress(0.0, "Predicting…")
    prediction = predict_cases(bundle, [intake.case])[0]
    timings["predict"] = time.perf_counter() - t0
    if progress:
        progress(0.2, "Explaining: modality contributions, slide tiles, clinical fields, report sentences…")
    t0 = time.perf_counter()
    explanation = explain_case(bundle, intake.case, us_images=intake.us_images or None, ig_steps=ig_steps)
    timings["explain"] = time.perf_counter() - t0
    if progress:
        progress(0.9, "Comparing with the validation results…")
    evaluation = evaluation_for(bundle)
    review = Review(
        prediction=prediction,
        explanation=explanation,
        pattern=missing_pattern_cindex(evaluation, prediction.compensated),
        reference=reference_curves(bundle, evaluation),
        statuses=intake.statuses,
        input_hashes=intake.input_hashes,
        intake=intake,
        timings_s=timings,
    )
    if progress:
        progress(1.0, "Done.")
    return review


def explanation_from_dict(d: dict) -> Explanation:
    """Rebuild an Explanation from ``Explanation.to_dict()`` (as stored in the case history).

    Ultrasound overlays are not stored (only their shapes), so they come back empty; report sentences
    stored without their text (the user did not opt in) come back as empty lists.
    """
    tiles = None
    if d.get("tiles"):
        t = d["tiles"]
        tiles = TileAttribution(
            coords_l0=np.asarray(t["coords_l0"], np.int64).reshape(-1, 2),
            tile_size_l0=int(t["tile_size_l0"]),
            attention=np.asarray(t["attention"], float),
            integrated_gradients=np.asarray(t["integrated_gradients"], float),
        )

    def sentences(items) -> list[SentenceAttribution]:
        return [SentenceAttribution(s["sentence"], float(s["attribution"])) for s in items or [] if s.get("sentence")]

    return Explanation(
        patient_id=d.get("patient_id", ""),
        present={k: bool(v) for k, v in d["present"].items()},
        full_log_risk=float(d["full_log_risk"]),
        reference_log_risk=float(d["reference_log_risk"]),
        shapley=dict(d["shapley"]),
        shapley_share=dict(d.get("shapley_share", {})),
        attention_share=dict(d.get("attention_share", {})),
        counterfactual=dict(d.get("counterfactual", {})),
        clinical=dict(d.get("clinical", {})),
        clinical_baseline=str(d.get("clinical_baseline", "")),
        tiles=tiles,
        us_report=sentences(d.get("us_report")),
        path_report=sentences(d.get("path_report")),
        timings_s=dict(d.get("timings_s", {})),
        attention_to_compensation=float(d.get("attention_to_compensation", 0.0)),
        methods=dict(d.get("methods", {})),
        completeness_error=dict(d.get("completeness_error", {})),
    )


def review_from_record(bundle: LoadedBundle, record: CaseRecord) -> Review:
    """A stored case as a Review (no recomputation). Statuses are rebuilt from what was stored."""
    explanation = explanation_from_dict(record.explanation) if record.explanation else None
    if explanation is None:
        from mrrp.errors import InputError

        raise InputError(f"Case {record.case_id} was saved without its explanation and cannot be redrawn.")
    evaluation = evaluation_for(bundle) if record.model_version.endswith(bundle.checksum[:12]) else None
    statuses = {}
    for key, modality in (
        ("slide", "slide"),
        ("us_images", "ultrasound"),
        ("us_report", "ultrasound"),
        ("path_report", "path_report"),
        ("clinical", "clinical"),
    ):
        if key in record.input_hashes:
            statuses[key] = InputStatus(key, "provided")
        elif key in ("us_images", "us_report") and explanation.present.get(modality):
            statuses[key] = InputStatus(key, "missing")  # the other ultrasound input carried the modality
        else:
            statuses[key] = InputStatus(key, "missing")
    compensated = [m for m in MODALITIES if not explanation.present.get(m, False)]
    return Review(
        prediction=record.prediction,
        explanation=explanation,
        pattern=missing_pattern_cindex(evaluation, compensated),
        reference=reference_curves(bundle, evaluation),
        statuses=statuses,
        input_hashes=record.input_hashes,
        case_id=record.case_id,
    )


# -- slide heatmap ------------------------------------------------------------------------------


@dataclass
class Thumbnail:
    image: np.ndarray  # (H, W, 3) uint8
    downsample: float  # level-0 px per thumbnail px


def slide_thumbnail(path: Path, mpp: float | None, max_size_px: int = 1024) -> Thumbnail:
    from mrrp.io.slides import open_slide

    with open_slide(path, mpp=mpp) as slide:
        image, ds = slide.thumbnail(max_size_px)
    return Thumbnail(image, float(ds))


def heatmap_overlay(
    thumb: Thumbnail,
    explanation: Explanation,
    kind: str,
    alpha: float,
    tissue_mask: np.ndarray | None = None,
    mask_downsample: float | None = None,
):
    """HeatmapResult of the tile scores over the thumbnail, as ``mrrp explain --heatmap`` draws them.

    Signed IG on a diverging map centred on 0 (red: towards higher risk); attention as percentiles.
    """
    from mrrp.explain.heatmap import render_heatmap
    from mrrp.explain.render import tile_scores

    scores = tile_scores(explanation, kind)
    t = explanation.tiles
    assert t is not None  # tile_scores raised otherwise
    if kind == "ig":
        bound = float(np.max(np.abs(scores))) if scores.size and np.max(np.abs(scores)) > 0 else 1.0
        return render_heatmap(
            thumb.image,
            thumb.downsample,
            t.coords_l0,
            t.tile_size_l0,
            scores,
            tissue_mask,
            mask_downsample,
            cmap="coolwarm",
            alpha=alpha,
            use_percentiles=False,
            vmin=-bound,
            vmax=bound,
            label="Integrated Gradients (log-risk per tile)",
        )
    return render_heatmap(
        thumb.image,
        thumb.downsample,
        t.coords_l0,
        t.tile_size_l0,
        scores,
        tissue_mask,
        mask_downsample,
        cmap="viridis",
        alpha=alpha,
        use_percentiles=True,
        label="attention (percentile within this slide)",
    )


def top_tiles(path: Path, mpp: float | None, explanation: Explanation, kind: str, k: int = 6):
    """The ``k`` tiles that pushed the risk up most (IG) or drew most attention, at full resolution."""
    from mrrp.explain.heatmap import top_k_tiles
    from mrrp.explain.render import tile_scores
    from mrrp.io.slides import open_slide

    t = explanation.tiles
    if t is None:
        return []
    with open_slide(path, mpp=mpp) as slide:
        return top_k_tiles(slide, t.coords_l0, t.tile_size_l0, tile_scores(explanation, kind), k=k)


# -- what if --------------------------------------------------------------------------------------


def what_if_summary(bundle: LoadedBundle, review: Review, drop: Iterable[str]) -> dict:
    """The result with the modalities in ``drop`` left out, beside the full result.

    A live case is re-predicted (full prediction with its interval); a case reopened from the history
    has no features, so a single left-out modality is read from the stored counterfactual log-risk
    (``Explanation.counterfactual``), turned into a group and a 5-year probability with the bundle's
    cut-offs and ensemble baseline. Returns None-valued fields when that cannot be answered.
    """
    from mrrp.model.survival import percentile

    drop = [m for m in MODALITIES if m in set(drop)]
    base = review.pred
    out = {
        "dropped": drop,
        "risk_group": base["risk_group"],
        "recurrence_60": base["recurrence"]["60"],
        "recurrence_60_interval": tuple(base["recurrence_interval"]["60"]),
        "log_risk": base["log_risk"],
        "percentile": base["percentile"],
        "available": True,
    }
    if not drop:
        return out
    if review.intake is not None:
        remaining = [m for m in MODALITIES if review.explanation.present.get(m) and m not in drop]
        if not remaining:
            return {**out, "available": False, "reason": "Leaving out every input leaves nothing of the patient."}
        p = what_if(bundle, review.intake.case, drop)
        return {
            **out,
            "risk_group": p.risk_group,
            "recurrence_60": p.recurrence["60"],
            "recurrence_60_interval": tuple(p.recurrence_interval["60"]),
            "log_risk": p.log_risk,
            "percentile": p.percentile,
        }
    if len(drop) == 1 and drop[0] in review.explanation.counterfactual:
        lr = float(review.explanation.counterfactual[drop[0]])
        return {
            **out,
            "risk_group": str(bundle.cutoffs.group(lr)[0]),
            "recurrence_60": float(bundle.ensemble_baseline.recurrence_probability(lr, 60.0)[0]),
            "recurrence_60_interval": None,
            "log_risk": lr,
            "percentile": percentile(lr, bundle.reference_risk),
        }
    return {**out, "available": False, "reason": "A case reopened from the history can leave out one input at a time."}


# -- finding a reopened case's slide ----------------------------------------------------------------


def find_slide(fingerprint: str, folders: Iterable[Path], max_files: int = 500) -> Path | None:
    """The slide file under ``folders`` whose :func:`mrrp.io.slides.slide_fingerprint` is ``fingerprint``.

    The history stores only the fingerprint (never a path, which may carry a name), so a reopened case
    finds its slide again by content: the demo folder, saved uploads and the local slide folder.
    """
    from mrrp.errors import InputError
    from mrrp.io.slides import slide_fingerprint
    from mrrp.viewer import list_local_slides

    seen = 0
    for folder in folders:
        for path in list_local_slides(folder, max_depth=3):
            seen += 1
            if seen > max_files:
                return None
            try:
                if slide_fingerprint(path) == fingerprint:
                    return path
            except (InputError, OSError):
                continue
    return None
