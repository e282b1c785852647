"""One slide, from an open file to everything the slide-viewer page draws: its metadata table, the
pipeline's tissue mask, tile grid and tile features (through the feature cache), the per-tile scores
that can be drawn over it, and a reviewed case's tile attributions on the same slide.

:func:`analyse` is the call the slide viewer runs (the patient review's is
:func:`mrrp.dashboard.review.review_case`); everything else turns its result into pictures and
rows. Pan and zoom are in :mod:`mrrp.dashboard.slideview`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrrp.dashboard.deepzoom import TileOverlay, explanation_overlays
from mrrp.features.slide import SlideAnalysis, pipeline_tile_scores
from mrrp.vocabulary import PIPELINE_DISPLAY

if TYPE_CHECKING:
    from mrrp.explain.heatmap import HeatmapResult, TopTile
    from mrrp.features.encoders import TileEncoder
    from mrrp.io.slides import Slide, SlideInfo

# progress(done_tiles, total_tiles)
TileProgressFn = Callable[[int, int], None]


def format_metadata(info: SlideInfo) -> list[tuple[str, str]]:
    """(label, value) rows for a slide's metadata table, in clinician wording."""
    mpp = (
        f"{info.mpp:.4g} µm/pixel" + (" (entered by user)" if info.mpp_source == "user" else "")
        if info.mpp is not None
        else "not recorded"
    )
    rows = [
        ("File", info.name),
        ("Format", info.vendor),
        ("Size", f"{info.width_px:,} × {info.height_px:,} pixels"),
        ("Resolution", mpp),
        ("Objective", f"{info.objective_power:g}x" if info.objective_power else "not recorded"),
        ("Pyramid levels", str(info.level_count)),
        ("File size", f"{info.file_size_bytes / 1e6:,.1f} MB"),
    ]
    if info.width_mm is not None:
        rows.insert(3, ("Physical size", f"{info.width_mm:.1f} × {info.height_mm:.1f} mm"))
    return rows


def demo_slides(cache_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """ "<id> — <title>" → slide path, for the demo patients that have a slide (generated on first use)."""
    from mrrp.io.manifest import read_manifest
    from mrrp.synth.demo import ensure_demo_cohort

    rows = read_manifest(ensure_demo_cohort(cache_dir), require_outcomes=False)
    return {f"{r.patient_id} — {r.extra.get('demo_title', '')}": r.slide_path for r in rows if r.slide_path}


@dataclass
class Thumbnail:
    image: np.ndarray  # (H, W, 3) uint8
    downsample: float  # level-0 px per thumbnail px


def slide_thumbnail(path: Path, mpp: float | None, max_size_px: int = 1024) -> Thumbnail:
    """The whole slide at most ``max_size_px`` on its longer side, with ``mpp`` for a slide that lacks it."""
    from mrrp.io.slides import open_slide

    with open_slide(path, mpp=mpp) as slide:
        image, ds = slide.thumbnail(max_size_px)
    return Thumbnail(image, float(ds))


def tile_encoder() -> TileEncoder:
    """The process-wide tile encoder (loaded on first use, a few seconds; shared by every session)."""
    from mrrp.features.encoders import get_encoder

    return get_encoder()


def analyse(
    slide: Slide,
    cache_dir: str | os.PathLike[str],
    *,
    fingerprint: str,
    progress: TileProgressFn | None = None,
    encoder: TileEncoder | None = None,
) -> SlideAnalysis:
    """Tissue mask, tile grid and tile features of an open slide, read from the feature cache in
    ``cache_dir`` when this slide (by ``fingerprint``, from :func:`mrrp.io.slides.slide_fingerprint`)
    was analysed before. Raises MissingMppError when the slide's resolution is unknown."""
    from mrrp.features.slide import analyse_slide
    from mrrp.features.store import FeatureCache

    return analyse_slide(
        slide,
        encoder=encoder if encoder is not None else tile_encoder(),
        cache=FeatureCache(cache_dir),
        progress=progress,
        fingerprint=fingerprint,
    )


def tissue_picture(thumb: np.ndarray, thumb_downsample: float, analysis: SlideAnalysis) -> np.ndarray:
    """The thumbnail (H, W, 3) with the detected tissue tinted and outlined."""
    from mrrp.explain.heatmap import resample_mask_nearest
    from mrrp.slides.drawing import overlay_mask

    mask = resample_mask_nearest(analysis.tissue.mask, analysis.tissue.downsample, thumb.shape[:2], thumb_downsample)
    return overlay_mask(thumb, mask)


def grid_picture(thumb: np.ndarray, thumb_downsample: float, analysis: SlideAnalysis) -> np.ndarray:
    """The thumbnail (H, W, 3) with every tile of the grid outlined."""
    from mrrp.slides.drawing import draw_tile_grid

    return draw_tile_grid(thumb, thumb_downsample, analysis.grid.coords_l0, analysis.grid.tile_size_l0)


def reviewed_overlays(fingerprint: str, prefer_case: str | None = None) -> list[TileOverlay]:
    """Tile attributions of a reviewed case on this slide, if the case history has one (every review is
    saved there); ``prefer_case`` (the case under review in this session) comes first."""
    from mrrp.dashboard.history import CaseHistory, HistoryError, history_path

    try:
        records = CaseHistory(history_path()).list_cases(limit=50)
    except HistoryError:
        return []  # the patient-review page reports a damaged history; here it only means no overlay
    return explanation_overlays(records, fingerprint, prefer_case=prefer_case)


def tile_overlays(
    fingerprint: str, analysis: SlideAnalysis | None, prefer_case: str | None = None
) -> list[TileOverlay]:
    """Everything that can be drawn over the deep-zoom view: a reviewed case's attributions first,
    then the pipeline's own per-tile scores once the features are computed."""
    overlays = reviewed_overlays(fingerprint, prefer_case)
    if analysis is not None:
        feats = analysis.features
        overlays += [
            TileOverlay(f"{label} (percentile)", feats.coords_l0, int(feats.tile_size_l0), scores, PIPELINE_DISPLAY)
            for label, scores in pipeline_tile_scores(feats).items()
        ]
    return overlays


def tissue_on_view(analysis: SlideAnalysis | None) -> tuple[np.ndarray, float] | None:
    """(mask (h, w) bool, level-0 px per mask px) that limits an overlay to tissue, once analysed."""
    if analysis is None:
        return None
    return analysis.tissue.mask, float(analysis.tissue.downsample)


def pipeline_heatmap(
    thumb: np.ndarray,
    thumb_downsample: float,
    analysis: SlideAnalysis,
    label: str,
    *,
    alpha: float,
    blur_sigma_px: float = 0.0,
) -> HeatmapResult:
    """The pipeline score ``label`` (a key of :func:`~mrrp.features.slide.pipeline_tile_scores`) as
    percentiles within this slide over the thumbnail, on tissue only (:data:`~mrrp.vocabulary.PIPELINE_DISPLAY`)."""
    from mrrp.explain.heatmap import render_tile_scores

    feats = analysis.features
    return render_tile_scores(
        thumb,
        thumb_downsample,
        feats.coords_l0,
        feats.tile_size_l0,
        pipeline_tile_scores(feats)[label],
        PIPELINE_DISPLAY,
        analysis.tissue.mask,
        analysis.tissue.downsample,
        alpha=alpha,
        blur_sigma_px=blur_sigma_px,
        label=f"{label} (percentile)",
    )


def pipeline_top_tiles(slide: Slide, analysis: SlideAnalysis, label: str, k: int = 6) -> list[TopTile]:
    """The ``k`` highest-scoring tiles for the pipeline score ``label``, read at full resolution."""
    from mrrp.explain.heatmap import top_k_tiles

    feats = analysis.features
    return top_k_tiles(slide, feats.coords_l0, feats.tile_size_l0, pipeline_tile_scores(feats)[label], k=k)
