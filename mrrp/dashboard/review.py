"""One patient's review, from an intake to everything the page draws: prediction, explanation,
what-if predictions, the validated performance for her missing pattern and the reference curves.

:func:`review_case` is the call sequence the patient-review page runs (and the dashboard benchmark
times). :func:`review_from_record` rebuilds the same object from a case-history row, so a reopened
case draws the same screen without recomputing (the slide heatmap needs the slide file, which is
looked up again and is optional).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrrp._threads import BUSY_QUEUED, torch_turn
from mrrp.dashboard.history import CaseRecord
from mrrp.dashboard.intake import INPUTS, CaseInputs, InputStatus, IntakeResult, build_case
from mrrp.dashboard.reference import (
    PatternPerformance,
    ReferenceCurves,
    evaluation_for,
    missing_pattern_cindex,
    reference_curves,
)
from mrrp.dashboard.slideanalysis import Thumbnail
from mrrp.errors import InputError
from mrrp.explain.types import Explanation, SentenceAttribution, TileAttribution
from mrrp.features.case import CaseFeatures
from mrrp.model.bundle import LoadedBundle
from mrrp.model.predict import Prediction, predict_cases
from mrrp.ui import UNEXPECTED, md_escape
from mrrp.vocabulary import EXPLANATION_TILE_DISPLAYS, HEADLINE_HORIZON_MONTHS, MODALITIES, MODALITY_LABELS

ProgressFn = Callable[[float, str], None]
CHIP_COLOURS = {"provided": "green", "missing": "gray", "invalid": "red"}
CHIP_ICONS = {"provided": ":material/check:", "missing": ":material/remove:", "invalid": ":material/error:"}
_LOG = logging.getLogger(__name__)
TILE_SCORE_KINDS = {d.name: d.kind for d in EXPLANATION_TILE_DISPLAYS.values()}  # menu label → kind


@dataclass
class Review:
    prediction: Prediction
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
    def compensated(self) -> list[str]:
        return [m for m in MODALITIES if not self.explanation.present.get(m, False)]


def what_if(bundle: LoadedBundle, case: CaseFeatures, drop: Iterable[str]) -> Prediction:
    """The prediction with the modalities in ``drop`` left out (the model compensates for them)."""
    import torch

    present = torch.from_numpy(case.present.copy())[None, :]  # (1, M) bool
    for m in drop:
        present[0, MODALITIES.index(m)] = False
    return predict_cases(bundle, [case], present=present)[0]


def what_if_rows(bundle: LoadedBundle, case: CaseFeatures, prediction: Prediction) -> list[WhatIfRow]:
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
    rows += [_row(f"without {MODALITY_LABELS[m].lower()}", p) for m, p in zip(drops, preds, strict=True)]
    return rows


@dataclass(frozen=True)
class WhatIfRow:
    """One what-if result: the group and the headline-horizon recurrence with some inputs left out."""

    label: str
    risk_group: str
    log_risk: float
    percentile: float
    recurrence: float  # probability of recurrence by HEADLINE_HORIZON_MONTHS
    recurrence_interval: tuple[float, float] | None  # None when read from a stored counterfactual


@dataclass(frozen=True)
class WhatIfSummary:
    """:func:`what_if_summary`: the result with ``dropped`` left out, or why it cannot be answered."""

    dropped: list[str]
    result: WhatIfRow
    available: bool = True
    reason: str = ""


def _row(label: str, p: Prediction) -> WhatIfRow:
    headline = p.at(HEADLINE_HORIZON_MONTHS)
    return WhatIfRow(
        label=label,
        risk_group=p.risk_group,
        log_risk=p.log_risk,
        percentile=p.percentile,
        recurrence=headline.probability,
        recurrence_interval=(headline.lower, headline.upper),
    )


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


@dataclass(frozen=True)
class AnalysisFailure:
    """Why an analysis gave no result: ``message`` (clinician sentences, shown in view beside the inputs,
    never only inside a collapsed box) and each input's status when the inputs were read (empty otherwise)."""

    message: str
    statuses: dict[str, InputStatus] = field(default_factory=dict)

    @property
    def invalid(self) -> list[InputStatus]:
        """The inputs that were refused, in INPUTS order, each with its reason."""
        return [s for s in self.statuses.values() if s.state == "invalid"]


def analyse(
    bundle: LoadedBundle,
    inputs: CaseInputs,
    *,
    cache_dir: str | os.PathLike[str],
    upload_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> Review | AnalysisFailure:
    """One patient's whole analysis as the page runs it: intake, then :func:`review_case`, in this process's
    turn at torch. Sessions analysing at once take turns: one that has to wait is told
    :data:`mrrp._threads.BUSY_QUEUED` through ``progress`` and queued, never failed. Never raises for
    something a user can cause: a bad or unusable input comes back as an :class:`AnalysisFailure` that
    names it; anything else as the generic apology, logged with its traceback for the operator.
    """

    def step(fraction: float, text: str) -> None:
        if progress:
            progress(min(max(fraction, 0.0), 1.0), text)

    try:
        with torch_turn(on_wait=lambda: step(0.0, BUSY_QUEUED)):
            intake = build_case(
                inputs, cache_dir=cache_dir, upload_dir=upload_dir, progress=lambda f, t: step(0.75 * f, t)
            )
            unusable = nothing_usable(intake)
            if unusable is not None:
                return AnalysisFailure(unusable, intake.statuses)
            return review_case(bundle, intake, progress=lambda f, t: step(0.75 + 0.25 * f, t))
    except InputError as exc:
        return AnalysisFailure(str(exc))
    except Exception:  # noqa: BLE001 - never a traceback on screen; the operator finds it in the log
        _LOG.exception("an analysis failed")  # no patient id: the log is not pseudonymised
        return AnalysisFailure(UNEXPECTED)


def status_chips(statuses: dict[str, InputStatus], *, reasons: bool) -> str:
    """One Markdown line of coloured chips, one per input in INPUTS order. With ``reasons`` an invalid
    input's chip carries its reason (the inputs area after a failed analysis); without, it says "invalid"
    and the page names the reason in an error line below (the result)."""
    chips = []
    for key, label, _ in INPUTS:
        s = statuses.get(key)
        if s is None:
            continue
        text = md_escape(s.text) if s.state != "invalid" or reasons else "invalid"
        chips.append(f":{CHIP_COLOURS[s.state]}-badge[{CHIP_ICONS[s.state]} {label}: {text}]")
    return " &nbsp; ".join(chips)


def nothing_usable(intake: IntakeResult) -> str | None:
    """The one message for a patient none of whose inputs could be used (None when one could): what to
    give, then why each invalid input was refused. Such a patient is never predicted."""
    if intake.case.present.any():
        return None
    problems = [f"{s.label} — {s.text}" for s in intake.statuses.values() if s.state == "invalid"]
    return (
        "None of the inputs could be used: give at least one of the slide, ultrasound, a report or the clinical record."
        + ("\n\n" + "\n\n".join(problems) if problems else "")
    )


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
    from mrrp.errors import InputError

    explanation = explanation_from_dict(record.explanation) if record.explanation else None
    if explanation is None:
        raise InputError(f"Case {record.case_id} was saved without its explanation and cannot be redrawn.")
    try:
        prediction = Prediction.from_dict(record.prediction)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"Case {record.case_id} was saved without a complete prediction and cannot be redrawn."
        ) from exc
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
        prediction=prediction,
        explanation=explanation,
        pattern=missing_pattern_cindex(evaluation, compensated),
        reference=reference_curves(bundle, evaluation),
        statuses=statuses,
        input_hashes=record.input_hashes,
        case_id=record.case_id,
    )


# -- slide heatmap ------------------------------------------------------------------------------


def heatmap_overlay(
    thumb: Thumbnail,
    explanation: Explanation,
    kind: str,
    alpha: float,
    tissue_mask: np.ndarray | None = None,
    mask_downsample: float | None = None,
):
    """HeatmapResult of the tile scores over the thumbnail, as ``mrrp explain --heatmap`` draws them.

    The display policy of ``kind`` (mrrp.vocabulary): signed IG on a diverging map centred on 0 (red:
    towards higher risk); attention as percentiles.
    """
    from mrrp.explain.heatmap import render_tile_scores
    from mrrp.explain.render import tile_scores

    scores = tile_scores(explanation, kind)
    t = explanation.tiles
    assert t is not None  # tile_scores raised otherwise
    return render_tile_scores(
        thumb.image,
        thumb.downsample,
        t.coords_l0,
        t.tile_size_l0,
        scores,
        EXPLANATION_TILE_DISPLAYS[kind],
        tissue_mask,
        mask_downsample,
        alpha=alpha,
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


def what_if_summary(bundle: LoadedBundle, review: Review, drop: Iterable[str]) -> WhatIfSummary:
    """The result with the modalities in ``drop`` left out, beside the full result.

    A live case is re-predicted (full prediction with its interval); a case reopened from the history
    has no features, so a single left-out modality is read from the stored counterfactual log-risk
    (``Explanation.counterfactual``), turned into a group and a 5-year probability with the bundle's
    cut-offs and ensemble baseline (no interval). ``available`` is False, with the reason, when that
    cannot be answered.
    """
    from mrrp.model.survival import percentile

    drop = [m for m in MODALITIES if m in set(drop)]
    base = _row("", review.prediction)
    if not drop:
        return WhatIfSummary(drop, base)
    if review.intake is not None:
        remaining = [m for m in MODALITIES if review.explanation.present.get(m) and m not in drop]
        if not remaining:
            return WhatIfSummary(drop, base, False, "Leaving out every input leaves nothing of the patient.")
        return WhatIfSummary(drop, _row("", what_if(bundle, review.intake.case, drop)))
    if len(drop) == 1 and drop[0] in review.explanation.counterfactual:
        lr = float(review.explanation.counterfactual[drop[0]])
        probability = bundle.ensemble_baseline.recurrence_probability(lr, float(HEADLINE_HORIZON_MONTHS))[0]
        stored = WhatIfRow(
            label="",
            risk_group=str(bundle.cutoffs.group(lr)[0]),
            log_risk=lr,
            percentile=percentile(lr, bundle.reference_risk),
            recurrence=float(probability),
            recurrence_interval=None,
        )
        return WhatIfSummary(drop, stored)
    return WhatIfSummary(drop, base, False, "A case reopened from the history can leave out one input at a time.")


# -- finding a reopened case's slide ----------------------------------------------------------------


def find_slide(fingerprint: str, folders: Iterable[Path], max_files: int = 500) -> Path | None:
    """The slide file under ``folders`` whose :func:`mrrp.io.slides.slide_fingerprint` is ``fingerprint``.

    The history stores only the fingerprint (never a path, which may carry a name), so a reopened case
    finds its slide again by content: the demo folder, saved uploads and the local slide folder.
    """
    from mrrp.errors import InputError
    from mrrp.io.slide_files import list_local_slides
    from mrrp.io.slides import slide_fingerprint

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


def slide_search_folders(cache_dir: str | os.PathLike[str], slide_dir: str | os.PathLike[str]) -> tuple[str, ...]:
    """Where a reopened case's slide is looked for: the cache (demo slides and saved uploads) and the local
    slide folder, as strings (a cache key for the page)."""
    return (str(cache_dir), str(slide_dir))


@dataclass(frozen=True)
class ReviewSlide:
    """The slide a review's heatmap is drawn on. ``path`` None: the file is not on this computer any more."""

    path: Path | None
    mpp: float | None = None  # the resolution the user entered, when the slide does not record it
    tissue_mask: np.ndarray | None = None  # (h, w) bool, known for a live review only
    mask_downsample: float | None = None  # level-0 px per mask px


def review_slide(
    review: Review,
    folders: tuple[str, ...],
    find: Callable[[str, tuple[str, ...]], str | Path | None] | None = None,
) -> ReviewSlide | None:
    """The slide of ``review``, or None when the case has no tile attributions to draw.

    A live review knows its file and tissue mask; a case reopened from the history finds its slide by
    fingerprint under ``folders`` with ``find`` (default :func:`find_slide`; the page passes a cached one).
    """
    if review.explanation.tiles is None:
        return None
    live = review.intake.slide if review.intake is not None else None
    if live is not None:
        return ReviewSlide(live.path, live.mpp, live.tissue_mask, live.mask_downsample)
    fingerprint = review.input_hashes.get("slide")
    if fingerprint is None:
        return ReviewSlide(None)
    if find is None:
        found = find_slide(fingerprint, [Path(f) for f in folders])
    else:
        found = find(fingerprint, folders)
    return ReviewSlide(Path(found) if found else None)


# -- the model a shown result came from ------------------------------------------------------------


@dataclass(frozen=True)
class ModelMismatch:
    """A review shown under another model than the active one: what to tell the user, and whether the
    result stays on screen (a stored case does; a live result is recomputed instead, never mixed)."""

    keep: bool
    message: str


def model_mismatch(review: Review, active_version: str) -> ModelMismatch | None:
    """None when ``review`` was computed with the active model (``active_version``, as in its predictions)."""
    shown = review.prediction.model_version
    if shown == active_version:
        return None
    if review.intake is not None:
        return ModelMismatch(
            keep=False,
            message=f"The result shown before was computed with {shown}; analyse the patient "
            f"again to use {active_version}.",
        )
    return ModelMismatch(
        keep=True,
        message=f"This case was computed with model {shown}; the active model is "
        f"{active_version}. The risk-group chart shows the active model's cut-offs.",
    )


# -- export --------------------------------------------------------------------------------------


def model_label(bundled: bool, model_path: Path) -> str:
    """How the exports name the model: the bundled demo model says it was trained on synthetic data."""
    return "bundled demo model (synthetic data)" if bundled else str(model_path.name)


def export_stem(review: Review) -> str:
    """The file name of this review's downloads, without the suffix: its case id, else the patient id."""
    return "mrrp-" + (review.case_id or review.prediction.patient_id).replace("/", "_")


def drawn_heatmap(review: Review, drawn: tuple[str, bytes] | None) -> bytes | None:
    """The heatmap PNG the page drew, if it was drawn for this review (never another case's)."""
    return drawn[1] if drawn and drawn[0] == review.token else None


def review_pdf(
    review: Review,
    *,
    model_label: str,
    cutoff_text: str,
    heatmap_png: bytes | None,
    quote_report_sentences: bool = False,
) -> bytes:
    """The PDF report of ``review``: the live case's clinical record and ultrasound Grad-CAM overlays go in
    with it (a case reopened from the history keeps neither); report sentences quoted only when asked."""
    from mrrp.dashboard.charts import ultrasound_overlay
    from mrrp.dashboard.export import pdf_report, png_bytes

    us_pngs: list[bytes] = []
    record = None
    if review.intake is not None:
        record = review.intake.clinical_record
        us_pngs = [
            png_bytes(ultrasound_overlay(img, heat, 0.5))
            for img, heat in zip(review.intake.us_images, review.explanation.us_overlays, strict=False)
        ]
    return pdf_report(
        review,
        model_label=model_label,
        cutoff_text=cutoff_text,
        record=record,
        heatmap_png=heatmap_png,
        ultrasound_pngs=us_pngs,
        quote_report_sentences=quote_report_sentences,
    )
