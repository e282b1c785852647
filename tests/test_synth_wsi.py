"""Synthetic Aperio slides: OpenSlide reads them as scanner files, and their pixels match the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mrrp.io.slides import open_slide
from mrrp.synth.wsi import SyntheticTissue, save_masks_png, write_aperio_tiff, write_synthetic_slide

W_PX, H_PX = 2048, 1536  # 512 x 384 µm at 0.25 µm/px; level 1 (4x) is 512 x 384 px
SEED = 11
TUMOUR_FRACTION = 0.35


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticTissue]:
    path = tmp_path_factory.mktemp("wsi") / "synthetic.svs"
    tissue = write_synthetic_slide(path, W_PX, H_PX, seed=SEED, tumour_fraction=TUMOUR_FRACTION, pen_mark=True)
    return path, tissue


@pytest.fixture(scope="module")
def level1(written: tuple[Path, SyntheticTissue]) -> np.ndarray:
    """Level 1 (downsample 4) as read back through OpenSlide. (384, 512, 3) float."""
    with open_slide(written[0]) as slide:
        return slide.read_level(1).astype(np.float64)


@pytest.fixture(scope="module")
def truth(written: tuple[Path, SyntheticTissue]) -> dict[str, np.ndarray]:
    """Ground-truth masks at level 1, eroded/dilated by 3 px (12 µm) so region edges do not blur the checks."""
    tissue = written[1]
    t, u = tissue.tissue_mask(4), tissue.tumour_mask(4)
    return {
        "tissue": t,
        "tumour": u,
        "glass": ndimage.binary_erosion(~t, iterations=3),
        "tissue_core": ndimage.binary_erosion(t, iterations=3),
        "tumour_core": ndimage.binary_erosion(u, iterations=3),
        "normal_core": ndimage.binary_erosion(t, iterations=3) & ~ndimage.binary_dilation(u, iterations=3),
    }


def _green_ink(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 1] > rgb[..., 0] + 30) & (rgb[..., 1] > rgb[..., 2] + 20)


def _dark(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin-dark pixels (nuclei): mean intensity below 140."""
    return rgb.mean(axis=-1) < 140


# -- the file is a scanner-like SVS ---------------------------------------------------------------


def test_openslide_reads_it_as_aperio_with_resolution_and_magnification(written: tuple[Path, SyntheticTissue]) -> None:
    with open_slide(written[0]) as slide:
        info = slide.info
        thumb = slide.associated_images().get("thumbnail")
    assert info.vendor == "aperio"
    assert (info.width_px, info.height_px) == (W_PX, H_PX)
    assert info.mpp_x == pytest.approx(0.25) and info.mpp_y == pytest.approx(0.25)
    assert info.mpp_source == "slide"
    assert info.objective_power == 40
    assert info.level_count >= 2
    assert info.level_dimensions[1] == (W_PX // 4, H_PX // 4)
    assert info.level_downsamples[1] == pytest.approx(4.0, abs=0.01)
    # Aperio layout: a stripped thumbnail directory after level 0, as scanners write it.
    assert thumb is not None and max(thumb.shape[:2]) <= 1024


def test_twenty_x_slide_reports_half_micron_pixels(tmp_path: Path) -> None:
    path = tmp_path / "x20.svs"
    write_synthetic_slide(path, 1024, 768, seed=3, mpp=0.5)
    with open_slide(path) as slide:
        assert slide.info.vendor == "aperio"
        assert slide.mpp == pytest.approx(0.5)
        assert slide.info.objective_power == 20


def test_only_the_finished_slide_is_left_in_the_folder(written: tuple[Path, SyntheticTissue]) -> None:
    assert [p.name for p in written[0].parent.iterdir()] == ["synthetic.svs"]


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "slide.svs"
    path.write_bytes(b"previous complete slide")
    calls = {"n": 0}

    def failing_tile_fn(x0_px: int, y0_px: int, w_px: int, h_px: int, ds: float) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("renderer crashed")
        return np.full((h_px, w_px, 3), 200, np.uint8)

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_aperio_tiff(path, 3000, 2000, failing_tile_fn, workers=2)
    assert [p.name for p in tmp_path.iterdir()] == ["slide.svs"]
    assert path.read_bytes() == b"previous complete slide"


@pytest.mark.parametrize(("bigtiff", "workers"), [(False, 1), (True, 2)])
def test_writer_renders_each_level_directly_from_tile_fn(tmp_path: Path, bigtiff: bool, workers: int) -> None:
    """Any tile_fn (here a closure): left half red, right half blue in level-0 coordinates; edge tiles are
    partial. ``workers=2`` renders in forked worker processes, ``workers=1`` in this one."""
    w_px, h_px = 1000, 700
    levels_asked: set[float] = set()

    def halves(x0_px: int, y0_px: int, w: int, h: int, ds: float) -> np.ndarray:
        levels_asked.add(ds)
        x_centre = x0_px + (np.arange(w) + 0.5) * ds
        out = np.empty((h, w, 3), np.uint8)
        out[:] = (200, 30, 40)
        out[:, x_centre >= w_px / 2] = (30, 40, 200)
        return out

    path = tmp_path / "halves.svs"
    write_aperio_tiff(
        path, w_px, h_px, halves, mpp=0.5, objective_power=20, downsamples=(1, 4), bigtiff=bigtiff, workers=workers
    )
    if workers == 1:  # calls made in worker processes are not seen here
        assert {1.0, 4.0} <= levels_asked  # level 1 rendered at its own scale, not decimated from level 0
    with open_slide(path) as slide:
        assert slide.info.vendor == "aperio" and slide.info.level_count == 2
        assert slide.info.objective_power == 20 and slide.mpp == pytest.approx(0.5)
        left = slide.read_region((100, 300), 0, (200, 100)).reshape(-1, 3).mean(0)
        right = slide.read_region((800, 600), 0, (190, 90)).reshape(-1, 3).mean(0)  # inside the last edge tile
        left_l1 = slide.read_region((0, 0), 1, (100, 150)).reshape(-1, 3).mean(0)
    # JPEG at quality 80 keeps flat colours within a few levels.
    np.testing.assert_allclose(left, (200, 30, 40), atol=6)
    np.testing.assert_allclose(right, (30, 40, 200), atol=6)
    np.testing.assert_allclose(left_l1, (200, 30, 40), atol=6)


# -- pixels agree with the ground truth ----------------------------------------------------------


def test_glass_is_near_white(level1: np.ndarray, truth: dict[str, np.ndarray]) -> None:
    glass = level1[truth["glass"] & ~_green_ink(level1)]
    assert glass.shape[0] > 10_000
    assert np.all(glass.mean(axis=0) > 232)
    assert (glass.max(axis=1) - glass.min(axis=1)).mean() < 6  # grey, not tinted
    assert np.mean(glass.min(axis=1) > 220) > 0.99


def test_tissue_is_eosin_pink_and_haematoxylin_purple(level1: np.ndarray, truth: dict[str, np.ndarray]) -> None:
    tissue = level1[truth["tissue_core"]]
    r, g, b = tissue.mean(axis=0)
    assert r > g + 30 and b > g + 20  # H&E: red and blue both above green
    assert np.mean((tissue[:, 0] > tissue[:, 1]) & (tissue[:, 2] > tissue[:, 1])) > 0.95
    assert tissue.mean() < 215  # clearly darker than glass


def test_tumour_has_more_nuclear_pixels_than_normal_tissue(level1: np.ndarray, truth: dict[str, np.ndarray]) -> None:
    dark = _dark(level1)
    tumour, normal = dark[truth["tumour_core"]].mean(), dark[truth["normal_core"]].mean()
    assert truth["tumour_core"].sum() > 2_000 and truth["normal_core"].sum() > 2_000
    assert tumour > 0.08
    assert tumour > 2 * normal


def test_ground_truth_area_fractions_match_the_request(written: tuple[Path, SyntheticTissue]) -> None:
    tissue = written[1]
    t, u = tissue.tissue_mask(8), tissue.tumour_mask(8)
    assert t.shape == (H_PX // 8, W_PX // 8)
    assert t.mean() == pytest.approx(0.4, abs=0.03)
    assert not np.any(u & ~t)  # tumour lies inside tissue
    assert u.sum() / t.sum() == pytest.approx(TUMOUR_FRACTION, abs=0.05)


@pytest.mark.parametrize("fraction", [0.25, 0.6])
def test_rendered_tissue_fraction_matches_the_request(fraction: float) -> None:
    """Measured from pixels (stained = colour saturation > 25), not from the model's own masks."""
    tissue = SyntheticTissue(W_PX, H_PX, seed=5, tissue_fraction=fraction, fat_fraction=0.0)
    rgb = tissue.tile_fn(0, 0, W_PX // 4, H_PX // 4, 4.0).astype(np.float64)
    stained = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 25
    assert stained.mean() == pytest.approx(fraction, abs=0.04)
    assert np.mean(stained == tissue.tissue_mask(4)) > 0.97


def test_pen_mark_is_on_the_glass_not_in_the_tissue(level1: np.ndarray, truth: dict[str, np.ndarray]) -> None:
    ink = _green_ink(level1)
    assert ink.sum() > 500  # a visible stroke
    assert (ink & truth["tissue"]).sum() < 0.01 * ink.sum()  # ground truth excludes it


def test_masks_are_saved_as_png(tmp_path: Path, written: tuple[Path, SyntheticTissue]) -> None:
    tissue = written[1]
    tissue_png, tumour_png = save_masks_png(tissue, tmp_path / "truth" / "case1", 16)
    assert (tissue_png.name, tumour_png.name) == ("case1_tissue.png", "case1_tumour.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tissue_png)) > 0, tissue.tissue_mask(16))
    np.testing.assert_array_equal(np.asarray(Image.open(tumour_png)) > 0, tissue.tumour_mask(16))


# -- rendering is deterministic, seamless and consistent across levels ---------------------------


def test_same_seed_gives_identical_pixels_and_another_seed_differs(tmp_path: Path) -> None:
    def region(folder: str, seed: int) -> np.ndarray:
        path = tmp_path / folder / "s.svs"
        path.parent.mkdir()
        write_synthetic_slide(path, 1024, 768, seed=seed, tumour_fraction=0.5)
        with open_slide(path) as slide:
            return slide.read_region((256, 128), 0, (512, 512))

    a, b, c = region("a", 21), region("b", 21), region("c", 22)
    np.testing.assert_array_equal(a, b)
    assert (tmp_path / "a" / "s.svs").read_bytes() == (tmp_path / "b" / "s.svs").read_bytes()
    assert np.abs(a.astype(float) - c.astype(float)).mean() > 5


def test_a_region_renders_the_same_whichever_tiles_ask_for_it(written: tuple[Path, SyntheticTissue]) -> None:
    tissue = written[1]
    ys, xs = np.nonzero(tissue.tumour_mask(16))
    x0, y0 = int(xs[len(xs) // 2] * 16) - 300, int(ys[len(ys) // 2] * 16) - 300  # in tumour, not tile-aligned
    whole = tissue.tile_fn(x0, y0, 600, 600, 1.0)
    pieces = np.empty_like(whole)
    for r0, r1 in ((0, 200), (200, 600)):  # split at offsets that are not multiples of the 256 px blocks
        for c0, c1 in ((0, 333), (333, 600)):
            pieces[r0:r1, c0:c1] = tissue.tile_fn(x0 + c0, y0 + r0, c1 - c0, r1 - r0, 1.0)
    np.testing.assert_array_equal(whole, pieces)
    assert _dark(whole.astype(float)).mean() > 0.02  # the region really contains nuclei


def test_level_one_matches_downsampled_level_zero(written: tuple[Path, SyntheticTissue], level1: np.ndarray) -> None:
    with open_slide(written[0]) as slide:
        level0 = slide.read_region((0, 0), 0, (W_PX, H_PX)).astype(np.float64)
    box_mean = level0.reshape(H_PX // 4, 4, W_PX // 4, 4, 3).mean(axis=(1, 3))
    diff = np.abs(box_mean - level1)
    assert diff.mean() < 5  # grey levels; JPEG alone accounts for ~2
    tissue = written[1].tissue_mask(4)
    assert diff[tissue].mean() < 8
    # Same colours region by region: dark-pixel fractions agree within a few percent of tissue.
    assert abs(_dark(box_mean)[tissue].mean() - _dark(level1)[tissue].mean()) < 0.04


def test_invalid_morphology_is_rejected() -> None:
    with pytest.raises(ValueError, match="tumour_fraction"):
        SyntheticTissue(512, 512, tumour_fraction=1.5)
    with pytest.raises(ValueError, match="nuclear_size_um"):
        SyntheticTissue(512, 512, nuclear_size_um=0.5)
