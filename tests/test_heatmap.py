"""Slide heatmaps: percentiles, overlap averaging, tissue-only colour, bounded memory, top tiles."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrrp.errors import InvalidValueError
from mrrp.explain.heatmap import (
    HeatmapResult,
    colorbar_image,
    heatmap_png_bytes,
    render_heatmap,
    resample_mask_nearest,
    scores_to_percentiles,
    tile_score_map,
    top_k_tiles,
)

OPENSLIDE_TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "openslide"
BOXES_TIFF = OPENSLIDE_TESTDATA / "boxes.tiff"

# A grey-pink, H&E-like background that is itself slightly red (R > B), so "bluish" tests
# have to be caused by the colour map.
THUMB_RGB = (200, 170, 190)


def _grid(width_l0: int, height_l0: int, tile_l0: int) -> np.ndarray:
    """Non-overlapping tile origins covering a width x height level-0 area. (N, 2) int64."""
    xs, ys = np.meshgrid(np.arange(0, width_l0, tile_l0), np.arange(0, height_l0, tile_l0))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)


def _thumb(h: int = 100, w: int = 100) -> np.ndarray:
    return np.broadcast_to(np.array(THUMB_RGB, dtype=np.uint8), (h, w, 3)).copy()


# -- percentiles ----------------------------------------------------------------------------


def test_percentiles_are_monotone_ranks_in_unit_interval():
    p = scores_to_percentiles(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(p, [0.25, 0.5, 0.75, 1.0])
    assert np.all(np.diff(p) > 0)
    # Order of the input does not matter, only rank.
    np.testing.assert_allclose(scores_to_percentiles(np.array([3.0, 1.0, 4.0, 2.0])), [0.75, 0.25, 1.0, 0.5])


def test_percentile_ties_share_the_mean_rank_and_nan_stays_nan():
    p = scores_to_percentiles(np.array([5.0, 1.0, 5.0, np.nan, 3.0]))
    # Reference (NaN ignored) is [1, 3, 5, 5]: the two 5s hold positions 3 and 4 -> 3.5 / 4.
    np.testing.assert_allclose(p[[0, 1, 2, 4]], [0.875, 0.25, 0.875, 0.5])
    assert p[0] == p[2]
    assert np.isnan(p[3])


def test_percentiles_against_a_reference_match_scipy_rank():
    from scipy.stats import percentileofscore

    reference = np.array([0.1, 0.2, 0.2, 0.4, 0.8, 0.9, np.nan])
    scores = np.array([-1.0, 0.2, 0.3, 0.9, 5.0, np.nan])
    p = scores_to_percentiles(scores, reference)
    ref_clean = reference[~np.isnan(reference)]
    expected = [percentileofscore(ref_clean, s, kind="rank") / 100 for s in scores[:5]]
    np.testing.assert_allclose(p[:5], expected)
    assert p[0] == 0.0 and p[4] == 1.0  # below / above every reference score
    np.testing.assert_allclose(p[1], 2.5 / 6)  # tie with two 0.2s at positions 2 and 3
    np.testing.assert_allclose(p[2], 3 / 6)  # between 0.2 and 0.4: three reference scores below
    assert np.isnan(p[5])


# -- tile score map -------------------------------------------------------------------------


def test_overlapping_tiles_are_averaged_and_uncovered_pixels_are_nan():
    # Thumbnail grid at 2 level-0 px per pixel; 20-px tiles -> 10 thumbnail pixels each.
    coords = np.array([[0, 0], [10, 0]])  # second tile overlaps the right half of the first
    m = tile_score_map(coords, 20, np.array([0.0, 1.0]), (12, 20), 2.0)
    assert m.shape == (12, 20) and m.dtype == np.float32
    np.testing.assert_allclose(m[:10, 0:5], 0.0, atol=1e-6)  # first tile only
    np.testing.assert_allclose(m[:10, 5:10], 0.5, atol=1e-6)  # overlap: mean of 0 and 1
    np.testing.assert_allclose(m[:10, 10:15], 1.0, atol=1e-6)  # second tile only
    assert np.isnan(m[:10, 15:]).all()  # right of both tiles
    assert np.isnan(m[10:, :]).all()  # below both tiles


def test_tile_boxes_use_floor_and_ceil_and_are_clipped():
    # Tile at x=3..13 level-0 on a ds=4 grid -> pixels floor(0.75)=0 .. ceil(3.25)=4.
    m = tile_score_map(np.array([[3, 3], [36, 36]]), 10, np.array([2.0, 7.0]), (10, 10), 4.0)
    covered = np.isfinite(m)
    assert covered[0:4, 0:4].all() and not covered[4:9, :].any()
    # Second tile (36..46 -> pixels 9..12) is clipped to the 10-px grid.
    assert m[9, 9] == 7.0 and covered[9, 9:].all()
    assert np.sum(covered) == 16 + 1


def test_three_way_overlap_and_nan_scores_are_ignored():
    coords = np.array([[0, 0], [0, 0], [0, 0], [0, 0]])
    m = tile_score_map(coords, 4, np.array([1.0, 2.0, 6.0, np.nan]), (4, 4), 1.0)
    np.testing.assert_allclose(m, 3.0)


# -- render ---------------------------------------------------------------------------------


def _left_right_scene(ds: float = 4.0):
    """100x100 thumbnail at ``ds``; 10x10 tiles of 10 thumbnail px covering it all.

    Scores rise with the row: top half low, bottom half high.
    """
    tile_l0 = int(10 * ds)
    coords = _grid(int(100 * ds), int(100 * ds), tile_l0)
    scores = coords[:, 1].astype(float)  # higher further down
    return _thumb(), coords, tile_l0, scores


def test_colour_only_inside_tissue_and_coolwarm_direction():
    thumb, coords, tile_l0, scores = _left_right_scene(ds=4.0)
    mask = np.zeros((100, 100), dtype=bool)
    mask[:, :50] = True  # tissue on the left half only, same grid as the thumbnail
    res = render_heatmap(thumb, 4.0, coords, tile_l0, scores, mask, 4.0)

    assert isinstance(res, HeatmapResult)
    assert res.overlay.shape == (100, 100, 3) and res.overlay.dtype == np.uint8
    assert (res.vmin, res.vmax, res.cmap, res.label) == (0.0, 1.0, "coolwarm", "score")
    # Right half: not tissue, so exactly the thumbnail.
    np.testing.assert_array_equal(res.overlay[:, 50:], thumb[:, 50:])
    assert np.isnan(res.score_map[:, 50:]).all()
    # Left half: every pixel is recoloured.
    assert np.all(np.any(res.overlay[:, :50] != thumb[:, :50], axis=2))
    assert np.isfinite(res.score_map[:, :50]).all()
    # Percentiles: bottom rows (high scores) are near 1, top rows near 0.
    assert res.score_map[95, 10] > 0.9 and res.score_map[5, 10] < 0.1
    r, b = res.overlay[..., 0].astype(int), res.overlay[..., 2].astype(int)
    assert np.all(r[90:, :50] > b[90:, :50] + 40)  # high -> red
    assert np.all(b[:10, :50] > r[:10, :50] + 30)  # low -> blue
    # Blend with alpha 0.4: 0.6 * thumbnail + 0.4 * colour.
    import matplotlib

    top_colour = np.array(matplotlib.colormaps["coolwarm"](res.score_map[95, 10])[:3]) * 255
    np.testing.assert_allclose(res.overlay[95, 10], 0.6 * np.array(THUMB_RGB) + 0.4 * top_colour, atol=0.51)
    # The input is untouched.
    np.testing.assert_array_equal(thumb, _thumb())


def test_no_colour_where_no_tile_covers_even_inside_tissue():
    thumb = _thumb()
    coords = np.array([[0, 0]])  # one 40x40 level-0 tile -> 10x10 thumbnail pixels at ds=4
    res = render_heatmap(thumb, 4.0, coords, 40, np.array([0.3]), np.ones((100, 100), bool), 4.0)
    assert np.any(res.overlay[:10, :10] != thumb[:10, :10])
    np.testing.assert_array_equal(res.overlay[10:, :], thumb[10:, :])
    np.testing.assert_array_equal(res.overlay[:, 10:], thumb[:, 10:])
    assert np.isfinite(res.score_map).sum() == 100


def test_no_tiles_leaves_thumbnail_unchanged():
    thumb = _thumb()
    res = render_heatmap(thumb, 4.0, np.zeros((0, 2), dtype=np.int64), 40, np.zeros(0))
    np.testing.assert_array_equal(res.overlay, thumb)
    assert np.isnan(res.score_map).all()


def test_mask_at_coarser_downsample_is_resampled_to_thumbnail():
    thumb, coords, tile_l0, scores = _left_right_scene(ds=4.0)  # slide is 400 x 400 level-0 px
    mask = np.zeros((50, 50), dtype=bool)  # 8 level-0 px per mask pixel
    mask[:, :25] = True  # level-0 x < 200 -> thumbnail columns < 50
    res = render_heatmap(thumb, 4.0, coords, tile_l0, scores, mask, 8.0)
    coloured = np.isfinite(res.score_map)
    assert coloured[:, :50].all() and not coloured[:, 50:].any()
    np.testing.assert_array_equal(res.overlay[:, 50:], thumb[:, 50:])

    # A single mask column (level-0 x in [96, 104)) holds the centres of thumbnail columns 24, 25.
    thin = np.zeros((50, 50), dtype=bool)
    thin[:, 12] = True
    res = render_heatmap(thumb, 4.0, coords, tile_l0, scores, thin, 8.0)
    assert np.flatnonzero(np.isfinite(res.score_map).any(axis=0)).tolist() == [24, 25]


def test_mask_at_finer_downsample_and_default_downsample():
    thumb, coords, tile_l0, scores = _left_right_scene(ds=4.0)
    fine = np.zeros((200, 200), dtype=bool)  # 2 level-0 px per mask pixel
    fine[100:, :] = True  # level-0 y >= 200 -> thumbnail rows >= 50
    expected = np.zeros((100, 100), dtype=bool)
    expected[50:, :] = True
    res = render_heatmap(thumb, 4.0, coords, tile_l0, scores, fine, 2.0)
    np.testing.assert_array_equal(np.isfinite(res.score_map), expected)
    # Without mask_downsample the mask is assumed to span the same slide area.
    res_default = render_heatmap(thumb, 4.0, coords, tile_l0, scores, fine)
    np.testing.assert_array_equal(res_default.overlay, res.overlay)


def test_resample_mask_nearest_samples_under_pixel_centres():
    # Thumbnail ds=4 over a mask at ds=2: thumbnail pixel (i, j) has its centre at level-0
    # (4i + 2, 4j + 2), i.e. in mask pixel (2i + 1, 2j + 1). Only odd rows and columns decide.
    odd = np.zeros((8, 16), dtype=bool)
    odd[1::2, 1::2] = True
    assert resample_mask_nearest(odd, 2.0, (4, 8), 4.0).all()
    assert not resample_mask_nearest(~odd, 2.0, (4, 8), 4.0).any()
    # Non-integer ratio (thumbnail ds=3, mask ds=2): centres 1.5, 4.5, 7.5, 10.5, 13.5 level-0
    # -> mask columns 0, 2, 3, 5, 6.
    picked = []
    for col in range(8):
        one = np.zeros((1, 8), dtype=bool)
        one[0, col] = True
        picked += [col] * int(resample_mask_nearest(one, 2.0, (1, 5), 3.0).sum())
    assert picked == [0, 2, 3, 5, 6]


def test_resample_mask_nearest_outside_extent_is_not_tissue():
    mask = np.ones((10, 10), dtype=bool)  # covers level-0 0..80 at ds=8
    out = resample_mask_nearest(mask, 8.0, (20, 20), 8.0)
    assert out[:10, :10].all() and not out[10:, :].any() and not out[:, 10:].any()


def test_blur_keeps_constant_map_and_nan_outside_tissue():
    thumb = _thumb()
    coords = _grid(400, 400, 40)
    mask = np.zeros((100, 100), dtype=bool)
    mask[20:80, 10:60] = True
    res = render_heatmap(
        thumb, 4.0, coords, 40, np.full(len(coords), 0.7), mask, 4.0, use_percentiles=False, blur_sigma_px=5.0
    )
    assert np.isnan(res.score_map[~mask]).all()
    np.testing.assert_allclose(res.score_map[mask], 0.7, rtol=1e-5)  # edges not darkened
    np.testing.assert_array_equal(res.overlay[~mask], thumb[~mask])


def test_blur_smooths_a_step_without_bleeding_across_tissue_edges():
    thumb = _thumb()
    coords = _grid(400, 400, 40)
    scores = (coords[:, 0] >= 200).astype(float)  # step at thumbnail column 50
    mask = np.zeros((100, 100), dtype=bool)
    mask[:, :70] = True
    sharp = render_heatmap(thumb, 4.0, coords, 40, scores, mask, 4.0, use_percentiles=False)
    soft = render_heatmap(thumb, 4.0, coords, 40, scores, mask, 4.0, use_percentiles=False, blur_sigma_px=3.0)
    assert sharp.score_map[50, 49] == 0.0 and sharp.score_map[50, 50] == 1.0
    assert 0.0 < soft.score_map[50, 49] < 0.5 < soft.score_map[50, 50] < 1.0
    # Far from the step and at the tissue edge (column 69) the value is unchanged.
    np.testing.assert_allclose(soft.score_map[50, 5], 0.0, atol=1e-6)
    np.testing.assert_allclose(soft.score_map[50, 69], 1.0, atol=1e-6)
    assert np.isnan(soft.score_map[:, 70:]).all()


def test_raw_scores_use_their_range_or_given_limits():
    thumb, coords, tile_l0, scores = _left_right_scene(ds=4.0)
    res = render_heatmap(thumb, 4.0, coords, tile_l0, scores, use_percentiles=False, cmap="jet", label="risk")
    assert (res.vmin, res.vmax) == (0.0, 360.0)
    assert (res.cmap, res.label) == ("jet", "risk")
    res = render_heatmap(thumb, 4.0, coords, tile_l0, scores, use_percentiles=False, vmin=-10, vmax=10)
    assert (res.vmin, res.vmax) == (-10.0, 10.0)


def test_invalid_inputs_raise_clinician_readable_errors():
    thumb, coords, tile_l0, scores = _left_right_scene()
    with pytest.raises(InvalidValueError):
        render_heatmap(thumb, 4.0, coords, tile_l0, scores[:-1])
    with pytest.raises(InvalidValueError):
        render_heatmap(thumb, 4.0, coords, tile_l0, scores, alpha=1.5)
    with pytest.raises(InvalidValueError):
        render_heatmap(thumb, 4.0, coords, tile_l0, scores, cmap="no-such-map")
    with pytest.raises(InvalidValueError):
        render_heatmap(thumb, 0.0, coords, tile_l0, scores)


def test_memory_stays_bounded_for_a_huge_slide():
    # 100,000 x 80,000 level-0 px (a large 40x scan) with a 1000-px thumbnail: ds = 100.
    width_l0, height_l0, ds = 100_000, 80_000, 100.0
    thumb = _thumb(800, 1000)
    coords = _grid(width_l0, height_l0, 448)  # ~40k tiles
    coords = np.concatenate([coords, coords + 224])  # and a half-overlapping second pass
    rng = np.random.default_rng(0)
    scores = rng.normal(size=len(coords))
    mask = np.zeros((400, 500), dtype=bool)  # tissue mask at ds=200
    mask[50:350, 100:400] = True
    render_heatmap(thumb[:10, :10], ds, coords[:5], 448, scores[:5])  # warm up lazy imports

    tracemalloc.start()
    try:
        res = render_heatmap(thumb, ds, coords, 448, scores, mask, 200.0, blur_sigma_px=2.0)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A full-resolution float32 map alone would be 32 GB; the thumbnail-grid work is a few 10s of MB.
    assert peak_bytes < 200 * 1024**2
    assert res.overlay.shape == (800, 1000, 3) and res.score_map.shape == (800, 1000)
    assert np.isfinite(res.score_map[400, 500]) and np.isnan(res.score_map[10, 10])


# -- colour bar and PNG ---------------------------------------------------------------------


def test_colorbar_image_has_requested_size_and_shows_the_colour_map():
    img = colorbar_image("coolwarm", 0.0, 1.0, "risk percentile", width_px=400, height_px=60)
    assert img.shape == (60, 400, 3) and img.dtype == np.uint8
    assert img.std() > 20  # not blank
    # The bar itself: blue on the left, red on the right.
    row = img[int(60 * 0.23)]
    left, right = row[30].astype(int), row[370].astype(int)
    assert left[2] > left[0] + 50 and right[0] > right[2] + 50
    # Tick labels and label: dark text pixels below the bar.
    assert (img[40:].min(axis=2) < 100).sum() > 50
    assert colorbar_image(width_px=333, height_px=45).shape == (45, 333, 3)


def test_heatmap_png_bytes_round_trips():
    thumb, coords, tile_l0, scores = _left_right_scene()
    res = render_heatmap(thumb, 4.0, coords, tile_l0, scores)
    data = heatmap_png_bytes(res)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), res.overlay)


# -- top tiles on a real slide --------------------------------------------------------------


@pytest.fixture
def boxes_slide():
    if not BOXES_TIFF.exists():
        pytest.skip(f"test slide missing: {BOXES_TIFF}")
    from mrrp.io.slides import open_slide

    with open_slide(BOXES_TIFF, mpp=0.5) as slide:
        yield slide


def test_top_k_tiles_order_shape_and_pixels(boxes_slide):
    coords = _grid(300, 250, 50)[:-6]  # 5 rows x 6 columns, minus the last row -> 24 tiles
    coords = np.concatenate([coords, [[250, 200]]])
    rng = np.random.default_rng(1)
    scores = rng.permutation(len(coords)).astype(float)
    scores[3] = np.nan
    scores[7] = 1000.0  # the highest

    top = top_k_tiles(boxes_slide, coords, 50, scores, k=5, out_size_px=50)
    assert [t.rank for t in top] == [1, 2, 3, 4, 5]
    assert top[0].index == 7 and top[0].score == 1000.0
    finite = np.flatnonzero(~np.isnan(scores))
    expected_idx = finite[np.argsort(-scores[finite])][:5]
    assert [t.index for t in top] == expected_idx.tolist()
    assert all(a.score >= b.score for a, b in zip(top, top[1:], strict=False))
    for t in top:
        assert (t.x_l0, t.y_l0) == tuple(int(v) for v in coords[t.index])
        assert t.image.shape == (50, 50, 3) and t.image.dtype == np.uint8
        # Same size as the tile -> level 0, no resize: pixels equal a direct read.
        np.testing.assert_array_equal(t.image, boxes_slide.read_region((t.x_l0, t.y_l0), 0, (50, 50)))

    low = top_k_tiles(boxes_slide, coords, 50, scores, k=3, out_size_px=50, highest=False)
    assert [t.score for t in low] == [0.0, 1.0, 2.0]
    assert 3 not in [t.index for t in top_k_tiles(boxes_slide, coords, 50, scores, k=100, out_size_px=50)]
    assert len(top_k_tiles(boxes_slide, coords, 50, scores, k=100, out_size_px=50)) == len(coords) - 1


def test_top_k_tiles_reads_a_pyramid_level_when_shrinking(boxes_slide):
    coords = np.array([[0, 0], [100, 100]])
    tiles = top_k_tiles(boxes_slide, coords, 200, np.array([0.2, 0.9]), k=2, out_size_px=100)
    assert [t.index for t in tiles] == [1, 0]
    # 200 level-0 px -> 100 px: level 1 (downsample 2) holds exactly that, read without resizing.
    assert boxes_slide.best_level_for_downsample(2.0) == 1
    np.testing.assert_array_equal(tiles[0].image, boxes_slide.read_region((100, 100), 1, (100, 100)))
    assert tiles[0].image.shape == (100, 100, 3)
    # And a thumbnail-sized request comes from a deeper level, resized to the exact size.
    small = top_k_tiles(boxes_slide, coords, 200, np.array([0.2, 0.9]), k=1, out_size_px=24)
    assert small[0].image.shape == (24, 24, 3)
    assert top_k_tiles(boxes_slide, coords, 200, np.array([0.2, 0.9]), k=0) == []
