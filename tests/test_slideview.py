"""The slide viewer's pan, zoom and "go to the highest-scoring tile" rules, in real slide coordinates."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import tissue_image, write_tiff_slide

from mrrp.dashboard import slideview
from mrrp.dashboard.slideview import ViewGeometry, ViewState

VIEW_W_PX, VIEW_H_PX = 1024, 640


def geometry(width_l0: int, height_l0: int, view_w_px: int = VIEW_W_PX, view_h_px: int = VIEW_H_PX) -> ViewGeometry:
    """What DeepZoomGenerator gives a slide of this size: each level halves the next, rounding up."""
    max_level = math.ceil(math.log2(max(width_l0, height_l0)))
    dims = {
        lv: (math.ceil(width_l0 / 2 ** (max_level - lv)), math.ceil(height_l0 / 2 ** (max_level - lv)))
        for lv in range(max_level + 1)
    }
    fit = max(lv for lv, (w, h) in dims.items() if w <= view_w_px and h <= view_h_px)
    levels = tuple(range(fit, max_level + 1))
    return ViewGeometry(levels, {lv: dims[lv] for lv in levels}, max_level, width_l0, height_l0, view_w_px, view_h_px)


# A 4000 x 3000 slide: levels 9 (500 x 375, whole slide in view) to 12 (full resolution).
SLIDE = geometry(4000, 3000)


def test_the_view_starts_with_the_whole_slide_centred() -> None:
    assert SLIDE.levels == (9, 10, 11, 12)
    assert slideview.start(SLIDE) == ViewState(9, 50.0, 50.0)


def test_pan_moves_half_a_view_and_stops_at_the_edges() -> None:
    at = ViewState(11, 50.0, 50.0)  # level 11: 2000 x 1500 pixels, the view shows 1024 x 640 of them
    right = slideview.pan(at, SLIDE, "right")
    assert right == ViewState(11, pytest.approx(50 + 50 * 1024 / 2000), 50.0)
    down = slideview.pan(at, SLIDE, "down")
    assert down.x_pct == 50.0 and down.y_pct == pytest.approx(50 + 50 * 640 / 1500)
    assert slideview.pan(slideview.pan(right, SLIDE, "right"), SLIDE, "right").x_pct == 100.0
    assert slideview.pan(ViewState(11, 10.0, 5.0), SLIDE, "left").x_pct == 0.0
    assert slideview.pan(ViewState(11, 10.0, 5.0), SLIDE, "up").y_pct == 0.0
    # zoomed right in, one step is a much smaller share of the slide: 512 of 4000 pixels
    assert slideview.pan(ViewState(12, 50.0, 50.0), SLIDE, "left").x_pct == pytest.approx(50 - 50 * 1024 / 4000)
    # the whole slide (500 px) is narrower than the view: half of what is visible is half the slide
    assert slideview.pan(ViewState(9, 50.0, 50.0), SLIDE, "right").x_pct == 100.0


def test_zoom_keeps_the_centre_and_stays_within_the_offered_levels() -> None:
    at = ViewState(10, 30.0, 40.0)
    assert slideview.zoom(at, SLIDE, 1) == ViewState(11, 30.0, 40.0)
    assert slideview.zoom(at, SLIDE, -1) == ViewState(9, 30.0, 40.0)
    assert slideview.zoom(at, SLIDE, 5).level == 12  # full resolution is the sharpest
    assert slideview.zoom(at, SLIDE, -5).level == 9  # the whole slide is the coarsest offered
    assert slideview.zoom(ViewState(3, 30.0, 40.0), SLIDE, 1).level == 10  # from an unoffered level: the first


def test_clamp_keeps_the_view_on_the_slide() -> None:
    assert slideview.clamp(ViewState(12, -5.0, 130.0), SLIDE) == ViewState(12, 0.0, 100.0)
    assert slideview.clamp(ViewState(2, 20.0, 30.0), SLIDE) == ViewState(9, 20.0, 30.0)
    assert slideview.clamp(ViewState(13, 20.0, 30.0), SLIDE).level == 9


def test_go_to_tile_centres_the_tile_at_the_sharpest_zoom_that_shows_its_surroundings() -> None:
    slide = geometry(2048, 1536)  # levels 9 (512 x 384) to 11 (full resolution)
    # a 256 px tile takes 256 of 1024 view pixels at full resolution: a quarter, within the third allowed
    assert slideview.go_to_tile(slide, (768, 512), 256) == ViewState(
        11, pytest.approx(100 * (768 + 128) / 2048), pytest.approx(100 * (512 + 128) / 1536)
    )
    # a 1024 px tile is 512 px at level 10 (half the view, too much) and 256 px at level 9
    assert slideview.tile_level(slide, 1024) == 9
    # a tile too large for any offered level: the whole-slide view, still centred on it
    big = slideview.go_to_tile(slide, (0, 0), 2048)
    assert big == ViewState(9, 50.0, pytest.approx(100 * 1024 / 1536))


def test_go_to_top_tile_picks_the_highest_finite_score() -> None:
    slide = geometry(2048, 1536)
    coords = np.array([[0, 0], [1024, 768], [1792, 1280]])
    target = slideview.go_to_top_tile(slide, coords, 256, np.array([0.1, 0.9, np.nan]))
    assert target == ViewState(11, pytest.approx(100 * 1152 / 2048), pytest.approx(100 * 896 / 1536))
    assert slideview.top_tile(np.array([np.nan, -2.0, -1.0])) == 2
    assert slideview.top_tile(np.array([np.nan, np.nan])) is None
    assert slideview.go_to_top_tile(slide, coords, 256, np.full(3, np.nan)) is None


def test_geometry_of_a_real_deep_zoom_view_and_the_centre_kept_on_screen(tmp_path: Path) -> None:
    from mrrp.dashboard.deepzoom import DeepZoomView
    from mrrp.io.slides import open_slide

    path = write_tiff_slide(tmp_path / "s.tiff", tissue_image(2048, 1536, [(256, 256, 1536, 1024)]), mpp=0.5)
    with open_slide(path) as slide:
        view = DeepZoomView(slide)
        assert ViewGeometry.of(view, VIEW_W_PX, VIEW_H_PX) == geometry(2048, 1536)
        small = ViewGeometry.of(view, 256, 160)  # a small view, so that levels 9 and 10 are not clamped
        assert small == geometry(2048, 1536, 256, 160) and small.levels == (7, 8, 9, 10, 11)
        # zooming in keeps the level-0 point under the view centre (to within one pixel of the level)
        at = ViewState(9, 40.0, 45.0)
        for state in (at, slideview.zoom(at, small, 1), slideview.zoom(at, small, 2)):
            vp = view.viewport(state.level, state.x_pct / 100, state.y_pct / 100, 256, 160)
            cx_l0 = (vp.x_px + vp.width_px / 2) * vp.downsample
            cy_l0 = (vp.y_px + vp.height_px / 2) * vp.downsample
            assert abs(cx_l0 - 0.40 * 2048) <= vp.downsample and abs(cy_l0 - 0.45 * 1536) <= vp.downsample
