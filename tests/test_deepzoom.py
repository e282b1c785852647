"""Deep zoom: viewports composed from DeepZoomGenerator tiles match the slide's pixels, at every level,
for OpenSlide and plain-image slides; a slide of huge geometry is never read at level 0 beyond a view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import tissue_image, write_tiff_slide
from PIL import Image

from mrrp.dashboard.deepzoom import (
    MAX_READ_PX,
    DeepZoomView,
    TileOverlay,
    draw_viewport_box,
    explanation_overlays,
    mask_on_viewport,
    viewport_heatmap,
    zoom_label,
)
from mrrp.errors import InvalidValueError
from mrrp.io.slides import Slide, SlideInfo, open_slide
from mrrp.vocabulary import ATTENTION_DISPLAY, IG_DISPLAY


@pytest.mark.parametrize("name", ["small.svs", "boxes.tiff", "boxes.png", "boxes_0.dcm"])
def test_full_resolution_viewport_is_exactly_the_slide(testdata: Path, name: str) -> None:
    with open_slide(testdata / name) as slide:
        view = DeepZoomView(slide, tile_size_px=30)
        w0, h0 = slide.dimensions
        vp = view.viewport(view.max_level, 0.6, 0.4, 50, 37)
        assert vp.downsample == 1.0 and (vp.width_px, vp.height_px) == (min(50, w0), min(37, h0))
        image = view.render(vp)
        expected = slide.read_region((vp.x_px, vp.y_px), 0, (vp.width_px, vp.height_px))
        assert image.shape == expected.shape
        assert np.array_equal(image, expected)  # tiles with overlap pasted exactly where they belong
        cols = {c for c, _ in view.tiles_for(vp)}
        assert cols == set(range(vp.x_px // 30, (vp.x_px + vp.width_px - 1) // 30 + 1))


@pytest.mark.parametrize("name", ["boxes.tiff", "boxes.png"])
def test_viewport_tiles_at_several_levels_match_a_downsampled_slide(testdata: Path, name: str) -> None:
    """boxes.tiff has a 4-level pyramid (OpenSlide), boxes.png has none (ImageSlide): same pictures."""
    with open_slide(testdata / name) as slide:
        view = DeepZoomView(slide, tile_size_px=40)
        full = slide.read_region((0, 0), 0, slide.dimensions)  # (250, 300, 3), a tiny fixture
        levels = view.zoom_levels(160, 120)
        assert levels == list(range(view.fit_level(160, 120), view.max_level + 1))
        fit_w, fit_h = view.level_dimensions(levels[0])
        next_w, next_h = view.level_dimensions(levels[0] + 1)
        assert fit_w <= 160 and fit_h <= 120 and (next_w > 160 or next_h > 120)
        for level in levels:
            w, h = view.level_dimensions(level)
            vp = view.viewport(level, 0.5, 0.5, 10_000, 10_000)  # the whole level
            tiles = view.tiles_for(vp)
            cols, rows = view.dz.level_tiles[level]
            assert len(tiles) == cols * rows and (vp.x_px, vp.y_px) == (0, 0)
            image = view.render(vp)
            assert image.shape == (h, w, 3)
            reference = np.asarray(Image.fromarray(full).resize((w, h), Image.Resampling.BOX), dtype=np.float32)
            assert np.abs(image.astype(np.float32) - reference).mean() < 12, level


def test_viewport_is_clamped_to_the_slide(testdata: Path) -> None:
    with open_slide(testdata / "boxes.tiff") as slide:
        view = DeepZoomView(slide, tile_size_px=64)
        top_left = view.viewport(view.max_level, 0.0, 0.0, 100, 80)
        bottom_right = view.viewport(view.max_level, 1.0, 1.0, 100, 80)
        assert (top_left.x_px, top_left.y_px) == (0, 0)
        assert (bottom_right.x_px, bottom_right.y_px) == (300 - 100, 250 - 80)
        assert bottom_right.origin_l0 == (200.0, 170.0) and bottom_right.size_l0 == (100.0, 80.0)
        with pytest.raises(InvalidValueError):
            view.viewport(view.level_count, 0.5, 0.5, 100, 80)


def test_pyramidal_slide_zoom_reads_from_matching_levels(tmp_path: Path) -> None:
    """A real tiled TIFF with 3 levels: zoomed-out views read the small levels, not level 0."""
    path = write_tiff_slide(tmp_path / "s.tiff", tissue_image(2048, 1536, [(256, 256, 1536, 1024)]), mpp=0.5)
    with open_slide(path) as slide:
        view = DeepZoomView(slide)
        fit = view.fit_level(600, 400)
        assert view.level_dimensions(fit) == (512, 384) and view.downsample(fit) == 4.0
        image = view.render(view.viewport(fit, 0.5, 0.5, 600, 400))
        assert image.shape == (384, 512, 3)
        # the whole slide seen at 1:4 read about one 512 x 384 level, not 2048 x 1536
        assert view.pixels_read <= 512 * 384 * 1.1
        # tissue (pink) in the middle, glass at the corner
        assert image[192, 256, 0] > image[192, 256, 1] + 40 and image[5, 5].min() > 230


# -- a slide of huge geometry ---------------------------------------------------------------------


@dataclass
class _Read:
    level: int
    size: tuple[int, int]


class _HugeHandle:
    """Stands in for an OpenSlide handle of a 200,000 x 150,000 slide; records every read, draws stripes."""

    def __init__(self, downsamples: tuple[float, ...]) -> None:
        self.downsamples = downsamples
        self.reads: list[_Read] = []

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        w, h = size
        assert w * h <= 64_000_000, f"read of {w} x {h} px at level {level}"
        self.reads.append(_Read(level, (w, h)))
        x = (location[0] / self.downsamples[level] + np.arange(w)) * self.downsamples[level]  # level-0 x of columns
        band = ((x // 10_000) % 2).astype(np.uint8) * 200  # 10,000 px wide vertical stripes
        rgba = np.empty((h, w, 4), np.uint8)
        rgba[..., 0] = band[None, :]
        rgba[..., 1] = 100
        rgba[..., 2] = 50
        rgba[..., 3] = 255
        return Image.fromarray(rgba, "RGBA")

    def close(self) -> None:
        pass


def _huge_slide(downsamples: tuple[float, ...]) -> tuple[Slide, _HugeHandle]:
    w0, h0 = 200_000, 150_000
    handle = _HugeHandle(downsamples)
    dims = tuple((int(np.ceil(w0 / d)), int(np.ceil(h0 / d))) for d in downsamples)
    info = SlideInfo(
        path="huge.svs",
        name="huge.svs",
        vendor="aperio",
        width_px=w0,
        height_px=h0,
        level_count=len(dims),
        level_dimensions=dims,
        level_downsamples=downsamples,
        mpp_x=0.25,
        mpp_y=0.25,
        mpp_source="slide",
        objective_power=40.0,
        file_size_bytes=5_000_000_000,
    )
    return Slide(handle, info, is_plain_image=False), handle


def test_huge_pyramidal_slide_is_never_read_whole_at_level_0() -> None:
    slide, handle = _huge_slide((1.0, 4.0, 16.0, 64.0, 256.0))
    view = DeepZoomView(slide)
    assert view.min_level == 0  # the pyramid makes every zoom affordable
    levels = view.zoom_levels(1024, 640)
    assert view.level_dimensions(levels[0])[0] <= 1024
    area_l0 = 200_000 * 150_000
    for level in (levels[0], levels[len(levels) // 2], levels[-1]):
        handle.reads.clear()
        vp = view.viewport(level, 0.31, 0.62, 1024, 640)
        image = view.render(vp)
        assert image.shape == (vp.height_px, vp.width_px, 3)
        read = sum(r.size[0] * r.size[1] for r in handle.reads)
        # one view's worth of pixels, up to the 4x-per-axis step between pyramid levels
        assert read <= 1024 * 640 * 16 * 1.3, (level, read)
        assert read < area_l0 / 1000
        if level == levels[0]:
            assert {r.level for r in handle.reads} == {4}  # the whole-slide view comes from the smallest level
        if level == levels[-1]:
            assert {r.level for r in handle.reads} == {0} and len(handle.reads) == len(view.tiles_for(vp))
    assert view.largest_read_px <= (256 * 4) ** 2
    # the stripes are where they are on the slide: column of level-0 x = 10,000..20,000 is red
    vp = view.viewport(view.max_level, 15_000 / 200_000, 0.5, 200, 100)
    assert (view.render(vp)[..., 0] > 150).all()


def test_huge_flat_slide_offers_only_affordable_zoom_levels() -> None:
    """Without a pyramid, zooming out means reading level 0: levels past the read budget are refused."""
    slide, handle = _huge_slide((1.0,))
    view = DeepZoomView(slide)
    assert view.min_level > 0
    assert view.tile_read_px(view.min_level) <= MAX_READ_PX < view.tile_read_px(view.min_level - 1)
    assert view.zoom_levels(1024, 640)[0] == view.min_level  # the whole slide cannot be shown at once
    with pytest.raises(InvalidValueError):
        view.tile(view.min_level - 1, 0, 0)
    handle.reads.clear()
    vp = view.viewport(view.min_level, 0.5, 0.5, 400, 300)
    view.render(vp)
    assert max(r.size[0] * r.size[1] for r in handle.reads) <= MAX_READ_PX
    assert sum(r.size[0] * r.size[1] for r in handle.reads) < 200_000 * 150_000 / 20


# -- overlays ------------------------------------------------------------------------------------


def test_heatmap_is_drawn_where_the_tiles_are_in_the_viewport(tmp_path: Path) -> None:
    plain = np.full((1536, 2048, 3), 242, np.uint8)  # uniform glass: any colour change is the overlay
    path = write_tiff_slide(tmp_path / "s.tiff", plain, mpp=0.5)
    coords = np.array([[512, 512], [1024, 512], [1536, 1024]])  # level-0 corners of three 256-px tiles
    scores = np.array([0.0, 1.0, 2.0])
    with open_slide(path) as slide:
        view = DeepZoomView(slide)
        vp = view.viewport(view.max_level - 1, 0.5, 0.5, 400, 300)  # 1:2, level-0 x 624..1424, y 468..1068
        assert vp.origin_l0 == (624.0, 468.0)
        image = view.render(vp)
        result = viewport_heatmap(image, vp, coords, 256, scores, alpha=0.6)
        changed = np.any(result.overlay != image, axis=2)
        expected = np.zeros_like(changed)
        expected[22:150, 0:72] = True  # tile 0: x 512..768 → px -56..72, y 512..768 → px 22..150
        expected[22:150, 200:328] = True  # tile 1: x 1024..1280 → px 200..328
        assert np.array_equal(changed, expected)  # tile 2 (px x 456..584) is outside the view
        colour_here = result.overlay[116, 288].copy()  # level-0 (1200, 700), inside tile 1
        # panned so that tile 2 is in view too: tile 1 keeps its colour (percentiles over all tiles)
        vp2 = view.viewport(view.max_level - 1, 0.7, 0.6, 400, 300)
        moved = viewport_heatmap(view.render(vp2), vp2, coords, 256, scores, alpha=0.6).overlay
        x1, y1 = int((1200 - vp2.origin_l0[0]) / 2), int((700 - vp2.origin_l0[1]) / 2)
        assert changed_any(moved, vp2, view, (1536 + 128, 1024 + 128))  # tile 2 now in view
        assert np.array_equal(moved[y1, x1], colour_here)
        # signed scores: negative blue, positive red
        signed = viewport_heatmap(
            image, vp, coords, 256, np.array([-1.0, 1.0, 0.0]), alpha=0.8, display=IG_DISPLAY
        ).overlay
        assert signed[80, 30, 2] > signed[80, 30, 0] + 60 and signed[80, 260, 0] > signed[80, 260, 2] + 60


def changed_any(overlay: np.ndarray, vp, view: DeepZoomView, point_l0: tuple[int, int]) -> bool:
    """Whether the overlay differs from the plain slide at a level-0 point inside the view."""
    x, y = int((point_l0[0] - vp.origin_l0[0]) / vp.downsample), int((point_l0[1] - vp.origin_l0[1]) / vp.downsample)
    return bool(np.any(overlay[y, x] != view.render(vp)[y, x]))


def test_mask_on_viewport_follows_the_viewport_origin(tmp_path: Path) -> None:
    path = write_tiff_slide(tmp_path / "s.tiff", np.full((1536, 2048, 3), 242, np.uint8), mpp=0.5)
    mask = np.zeros((96, 128), bool)  # 16 level-0 px per mask px
    mask[40:60, 70:90] = True  # level-0 x 1120..1440, y 640..960
    with open_slide(path) as slide:
        view = DeepZoomView(slide)
        vp = view.viewport(view.max_level, 0.6, 0.5, 400, 300)  # level-0 x 1029..1429, y 618..918
        on_vp = mask_on_viewport(mask, 16.0, vp)
        assert on_vp.shape == (300, 400)
        ys, xs = np.nonzero(on_vp)
        assert (xs.min(), ys.min()) == (1120 - vp.x_px, 640 - vp.y_px)
        assert (xs.max(), ys.max()) == (vp.width_px - 1, vp.height_px - 1)  # clipped at the view's edge


def test_viewport_box_and_zoom_labels(testdata: Path) -> None:
    with open_slide(testdata / "boxes.tiff") as slide:
        view = DeepZoomView(slide, tile_size_px=64)
        vp = view.viewport(view.max_level, 0.0, 0.0, 100, 50)
        thumb = np.full((125, 150, 3), 255, np.uint8)  # 1:2 thumbnail
        boxed = draw_viewport_box(thumb, 2.0, vp)
        assert (boxed[0, 0:50] == (230, 30, 30)).all() and (boxed[24, 0:50] == (230, 30, 30)).all()
        assert (boxed[10, 10] == 255).all() and (boxed[30:, :] == 255).all()
        assert zoom_label(view.max_level, view, 40.0, 0.25) == "40x"
        assert zoom_label(view.max_level - 2, view, 40.0, 0.25) == "10x"
        assert zoom_label(view.max_level - 1, view, None, 0.25) == "0.5 µm/px"
        assert zoom_label(view.max_level - 3, view, None, None) == "1:8"
        dzi = view.dzi("jpeg")  # what a browser Deep Zoom viewer would load
        assert 'TileSize="64"' in dzi and 'Width="300"' in dzi and 'Height="250"' in dzi


@dataclass
class _Record:
    case_id: str
    input_hashes: dict
    prediction: dict
    explanation: dict | None
    model_version: str = "mrrp-demo@1ada8474e016"


def test_explanation_overlays_match_the_slide_by_fingerprint() -> None:
    tiles = {
        "coords_l0": [[0, 0], [448, 0]],
        "tile_size_l0": 448,
        "attention": [0.3, 0.7],
        "integrated_gradients": [-0.2, 0.5],
    }
    records = [
        _Record("C-NEW", {"slide": "other"}, {"patient_id": "C-NEW"}, {"tiles": tiles}),
        _Record("C-1", {"slide": "fp"}, {"patient_id": "DEMO-02"}, {"tiles": tiles}),
        _Record(
            "C-2", {"slide": "fp"}, {"patient_id": "C-2"}, {"tiles": {**tiles, "attention": [0.9, 0.1]}}, "site@ab"
        ),
        _Record("C-3", {"slide": "fp"}, {"patient_id": "C-3"}, None),
    ]
    overlays = explanation_overlays(records, "fp")
    assert [o.label for o in overlays] == [
        "Integrated gradients, case DEMO-02 (red raises risk)",
        "Attention, case DEMO-02",
    ]
    assert overlays[0].signed and not overlays[1].signed
    assert (overlays[0].display, overlays[1].display) == (IG_DISPLAY, ATTENTION_DISPLAY)
    assert overlays[0].from_bundled_model  # drawn with the synthetic-data notice
    assert np.array_equal(overlays[0].scores, [-0.2, 0.5]) and overlays[0].tile_size_l0 == 448
    preferred = explanation_overlays(records, "fp", prefer_case="C-2")
    assert np.array_equal(preferred[1].scores, [0.9, 0.1]) and not preferred[1].from_bundled_model
    assert explanation_overlays(records, "no such slide") == []
    assert isinstance(overlays[0], TileOverlay)
