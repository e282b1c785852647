"""The tissue mask and tile grid drawn on a thumbnail: pixels inside, on the outline and outside."""

from __future__ import annotations

import numpy as np

from mrrp.slides.drawing import GRID_COLOUR, TISSUE_COLOUR, draw_tile_grid, overlay_mask


def test_overlay_mask_tints_only_the_mask() -> None:
    thumb = np.full((20, 30, 3), 200, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:15] = True
    out = overlay_mask(thumb, mask)
    assert np.array_equal(out[:, 20:], thumb[:, 20:])
    assert out[10, 10, 1] > out[10, 10, 0]  # green tint inside
    assert (out[5, 10] == TISSUE_COLOUR).all()  # the outline in the full colour
    # inside: 35% of the colour over the thumbnail
    assert np.allclose(out[10, 10], 0.65 * 200 + 0.35 * np.asarray(TISSUE_COLOUR), atol=1)


def test_draw_tile_grid_outlines_tiles() -> None:
    thumb = np.full((100, 100, 3), 255, np.uint8)
    out = draw_tile_grid(thumb, 10.0, np.array([[0, 0], [200, 200]]), 200)
    assert GRID_COLOUR == (20, 90, 160)
    assert (out[0, 0:20] == (20, 90, 160)).all() and (out[19, 0:20] == (20, 90, 160)).all()
    assert (out[10, 10] == 255).all()  # inside a tile stays untouched
    assert (out[60:, :20] == 255).all()  # no tile there
    assert np.array_equal(thumb, np.full((100, 100, 3), 255, np.uint8))  # the input is not drawn on


def test_draw_tile_grid_clips_tiles_at_the_thumbnail_edge() -> None:
    thumb = np.full((50, 50, 3), 255, np.uint8)
    out = draw_tile_grid(thumb, 10.0, np.array([[400, 400], [900, 0]]), 200)  # half off; wholly off
    assert (out[40, 40:50] == GRID_COLOUR).all() and (out[40:50, 40] == GRID_COLOUR).all()
    assert (out[49, 41:49] == GRID_COLOUR).all()  # the cut edge is drawn on the last row
    assert (out[:40, :] == 255).all()
