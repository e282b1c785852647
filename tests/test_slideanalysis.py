"""What the slide viewer shows of one slide: the metadata table, the pipeline's per-tile scores, the
tissue and grid pictures, the overlays offered (a reviewed case's attributions first) and the heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrrp.dashboard.history import CaseHistory
from mrrp.dashboard.slideanalysis import (
    format_metadata,
    grid_picture,
    pipeline_heatmap,
    slide_thumbnail,
    tile_overlays,
    tissue_on_view,
    tissue_picture,
)
from mrrp.features.slide import SlideAnalysis, pipeline_tile_scores
from mrrp.features.store import SlideFeatures
from mrrp.io.slides import read_slide_info
from mrrp.slides.drawing import GRID_COLOUR
from mrrp.slides.tiling import TileGrid
from mrrp.slides.tissue import TissueMask
from mrrp.vocabulary import IG_DISPLAY, PIPELINE_DISPLAY


def features(n: int = 3) -> SlideFeatures:
    return SlideFeatures(
        coords_l0=np.array([[0, 0], [448, 0], [0, 448]], np.int64)[:n],
        features=np.array([[3, 4], [0, 0], [1, 0]], np.float32)[:n],
        tissue_fraction=np.array([1.0, 0.5, 0.25], np.float32)[:n],
        tile_size_l0=448,
        tile_size_px=224,
        target_mpp=1.0,
        stride_l0=448,
        encoder="e",
        encoder_version="v",
        slide_fingerprint="f",
    )


def analysis() -> SlideAnalysis:
    """Three tiles of 448 level-0 px on a 1024 x 1024 slide; tissue in the top-left 896 x 896."""
    feats = features()
    mask = np.zeros((64, 64), bool)  # 16 level-0 px per mask px
    mask[:56, :56] = True
    grid = TileGrid(feats.coords_l0, 448, 224, 1.0, 448, feats.tissue_fraction)
    return SlideAnalysis(tissue=TissueMask(mask, 16.0), grid=grid, features=feats, from_cache=False)


def test_pipeline_tile_scores_are_per_tile() -> None:
    scores = pipeline_tile_scores(features())
    assert list(scores) == ["Tissue fraction", "Feature norm (encoder embedding L2)"]
    assert np.allclose(scores["Feature norm (encoder embedding L2)"], [5, 0, 1])
    assert np.allclose(scores["Tissue fraction"], [1.0, 0.5, 0.25])
    assert all(s.dtype == np.float32 for s in scores.values())


def test_format_metadata_in_clinical_words(testdata: Path) -> None:
    rows = dict(format_metadata(read_slide_info(testdata / "small.svs")))
    assert rows["Resolution"] == "0.499 µm/pixel"
    assert rows["Objective"] == "20x"
    assert rows["Size"] == "16 × 16 pixels"
    rows = dict(format_metadata(read_slide_info(testdata / "boxes.tiff")))
    assert rows["Resolution"] == "not recorded"
    assert "Physical size" not in rows  # no resolution, no millimetres


def test_thumbnail_with_an_entered_resolution(testdata: Path) -> None:
    thumb = slide_thumbnail(testdata / "boxes.png", mpp=0.5, max_size_px=100)
    assert max(thumb.image.shape[:2]) <= 100 and thumb.image.dtype == np.uint8
    assert thumb.downsample == pytest.approx(300 / thumb.image.shape[1], rel=0.02)  # boxes.png is 300 px wide


def test_tissue_and_grid_pictures_on_the_thumbnail() -> None:
    thumb = np.full((64, 64, 3), 255, np.uint8)  # 16 level-0 px per thumbnail px
    tissue = tissue_picture(thumb, 16.0, analysis())
    assert (tissue[60, 60] == 255).all() and not (tissue[20, 20] == 255).all()  # tinted on tissue only
    grid = grid_picture(thumb, 16.0, analysis())
    assert (grid[0, 0:28] == GRID_COLOUR).all() and (grid[27, 28:56] == GRID_COLOUR).all()  # tiles 1 and 2
    assert (grid[40:, 40:] == 255).all()  # no tile bottom right
    mask, ds = tissue_on_view(analysis())
    assert mask.shape == (64, 64) and ds == 16.0
    assert tissue_on_view(None) is None


def test_pipeline_heatmap_colours_only_tiles_on_tissue() -> None:
    thumb = np.full((64, 64, 3), 255, np.uint8)
    result = pipeline_heatmap(thumb, 16.0, analysis(), "Tissue fraction", alpha=0.5)
    assert result.label == "Tissue fraction (percentile)" and (result.vmin, result.vmax) == (0.0, 1.0)
    assert result.cmap == PIPELINE_DISPLAY.cmap
    assert (result.overlay[60, 60] == 255).all()  # outside every tile
    assert not (result.overlay[10, 10] == 255).all()  # the first tile, on tissue


def test_overlays_offer_a_reviewed_case_first_then_the_pipeline_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRRP_HISTORY_DB", str(tmp_path / "history.sqlite"))
    labels = [o.label for o in tile_overlays("fp", analysis())]
    assert labels == ["Tissue fraction (percentile)", "Feature norm (encoder embedding L2) (percentile)"]
    assert tile_overlays("fp", None) == []  # nothing computed, nothing reviewed
    tiles = {
        "coords_l0": [[0, 0], [448, 0]],
        "tile_size_l0": 448,
        "attention": [0.5, 0.5],
        "integrated_gradients": [-0.2, 0.4],
    }
    pred = {"patient_id": "P1", "model_version": "site-model@abc", "risk_group": "low"}
    case_id = CaseHistory().record(pred, {"slide": "fp"}, explanation={"tiles": tiles})
    overlays = tile_overlays("fp", analysis())
    assert [o.label for o in overlays][:2] == [
        f"Integrated gradients, case {case_id} (red raises risk)",
        f"Attention, case {case_id}",
    ]
    assert overlays[0].display == IG_DISPLAY and np.allclose(overlays[0].scores, [-0.2, 0.4])
    assert len(overlays) == 4
    assert [o.label for o in tile_overlays("another slide", None)] == []
