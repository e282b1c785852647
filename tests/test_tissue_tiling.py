"""Tissue detection and the tile grid at a physical resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import GLASS, PINK, tissue_image, write_tiff_slide

from mrrp.errors import InvalidValueError, NoTissueError
from mrrp.io.slides import open_slide
from mrrp.slides.tiling import make_tile_grid
from mrrp.slides.tissue import TissueMask, detect_tissue, tissue_mask_from_rgb


def _low_res_scene() -> np.ndarray:
    img = tissue_image(400, 300, [(50, 50, 200, 200)], seed=1)
    img[100:120, 100:120] = GLASS  # a fat vacuole inside tissue: must be filled
    img[250:258, 20:380] = (40, 160, 70)  # green pen stroke on glass
    img[20:26, 250:390] = (60, 70, 200)  # blue pen
    img[270:276, 250:390] = (15, 15, 15)  # black pen
    img[280, 100] = PINK  # a single speck of debris
    return img


def test_mask_finds_tissue_and_rejects_pen_glass_and_specks() -> None:
    mask = tissue_mask_from_rgb(_low_res_scene())
    block = mask[50:200, 50:200]
    assert block[5:-5, 5:-5].all(), "tissue block (including its fat hole) must be tissue"
    assert mask[110, 110], "holes inside tissue are filled"
    assert not mask[250:258, 20:380].any(), "green pen rejected"
    assert not mask[20:26, 250:390].any(), "blue pen rejected"
    assert not mask[270:276, 250:390].any(), "black pen rejected"
    assert not mask[280, 100], "specks removed"
    outside = mask.copy()
    outside[45:205, 45:205] = False
    assert outside.sum() == 0, "glass is not tissue"


def test_tissue_mask_area_and_box_fraction() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10:30, 10:60] = True
    t = TissueMask(mask=mask, downsample=16.0)
    assert t.tissue_fraction == pytest.approx(0.1)
    assert t.area_mm2(mpp=0.5) == pytest.approx(1000 * (16 * 0.5) ** 2 / 1e6)
    frac = t.fraction_in_box(np.array([160.0, 0.0, 160.0]), np.array([160.0, 0.0, 400.0]), 320.0)
    assert frac[0] == pytest.approx(1.0)
    assert frac[1] == pytest.approx(0.25)  # mask px 0–20: 10 of 20 rows x 10 of 20 cols
    assert frac[2] == pytest.approx(0.25)  # rows 25–45 → 5 tissue rows; cols 10–30 all tissue


def test_detect_tissue_on_slide_matches_known_area(known_tissue_slide: tuple[Path, dict]) -> None:
    path, truth = known_tissue_slide
    with open_slide(path) as slide:
        tissue = detect_tissue(slide)
        assert tissue.downsample == pytest.approx(16.0)  # 8 µm/px mask from 0.5 µm/px scan
        assert tissue.area_mm2(slide.mpp) == pytest.approx(truth["area_mm2"], rel=0.06)


def test_tile_grid_counts_tiles_of_known_tissue(known_tissue_slide: tuple[Path, dict]) -> None:
    path, truth = known_tissue_slide
    with open_slide(path) as slide:
        grid = make_tile_grid(slide.dimensions, slide.mpp, detect_tissue(slide))
    assert len(grid) == truth["n_tiles"] == 15
    assert grid.tile_size_l0 == 448 and grid.tile_size_px == 224 and grid.target_mpp == 1.0
    x0, y0, x1, y1 = truth["box"]
    assert grid.coords_l0[:, 0].min() == x0 and grid.coords_l0[:, 0].max() == x1 - 448
    assert grid.coords_l0[:, 1].min() == y0 and grid.coords_l0[:, 1].max() == y1 - 448
    assert (grid.coords_l0 % 448 == 0).all()
    assert grid.tissue_fraction.min() > 0.9
    assert grid.coords_l0.dtype == np.int64


def test_tile_grid_overlap_and_resolution(known_tissue_slide: tuple[Path, dict]) -> None:
    path, _ = known_tissue_slide
    with open_slide(path) as slide:
        tissue = detect_tissue(slide)
        half = make_tile_grid(slide.dimensions, slide.mpp, tissue, overlap=0.5)
        coarse = make_tile_grid(slide.dimensions, slide.mpp, tissue, target_mpp=2.0)
    assert half.stride_l0 == 224 and len(half) > 2 * 15
    assert coarse.tile_size_l0 == 896
    with pytest.raises(InvalidValueError, match="coarser"):
        make_tile_grid((1000, 1000), 1.0, tissue, target_mpp=0.5)
    with pytest.raises(InvalidValueError):
        make_tile_grid((1000, 1000), 0.5, tissue, overlap=1.0)


def test_blank_slide_has_no_tissue(tmp_path: Path) -> None:
    path = write_tiff_slide(tmp_path / "blank.tiff", tissue_image(1024, 1024, []), mpp=0.5)
    with open_slide(path) as slide, pytest.raises(NoTissueError):
        detect_tissue(slide)


def test_tissue_at_the_slide_edge_is_tiled(tmp_path: Path) -> None:
    # 2000 px wide at 0.5 µm/px: tiles of 448 px start at 0..1792; the last one overhangs
    # the edge by 240 px. Tissue only in x 1800–2000 must still get a tile.
    path = write_tiff_slide(tmp_path / "edge.tiff", tissue_image(2000, 1000, [(1800, 0, 2000, 1000)]), mpp=0.5)
    with open_slide(path) as slide:
        grid = make_tile_grid(slide.dimensions, slide.mpp, detect_tissue(slide), min_tissue_fraction=0.2)
    assert set(grid.coords_l0[:, 0].tolist()) == {1792}
    # the overhanging part counts as glass: 200 of 448 columns are tissue
    assert grid.tissue_fraction.max() == pytest.approx(200 / 448, abs=0.05)
