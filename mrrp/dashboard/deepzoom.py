"""Deep zoom for the slide viewer: the visible part of a slide of any size, at any zoom, from
OpenSlide's :class:`openslide.deepzoom.DeepZoomGenerator` tiles.

A browser DZI viewer (OpenSeadragon) would need an HTTP tile endpoint next to Streamlit; instead
the page asks this view model for one viewport (a zoom level and a window on it), and gets back
the DZ tiles that cover it composed into one image. Only those tiles are ever read, each from the
pyramid level OpenSlide picks for that zoom, so a 100,000 x 80,000 slide costs what the screen
shows, never its level 0.

A slide without a pyramid (a plain PNG/JPEG through ``ImageSlide``, or a flat TIFF) can only be
zoomed out by reading level 0 itself; zoom levels whose tiles would read more than
``max_read_px`` level pixels are therefore not offered (:meth:`DeepZoomView.min_level`).

Coordinates: ``level`` is a Deep Zoom level (0 = 1 x 1 pixel, ``level_count - 1`` = full
resolution); ``*_px`` are pixels of that DZ level; ``*_l0`` are level-0 slide pixels;
``downsample`` is level-0 pixels per DZ-level pixel (a power of two).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mrrp.errors import InvalidValueError
from mrrp.vocabulary import ATTENTION_DISPLAY, IG_DISPLAY, PIPELINE_DISPLAY, TileScoreDisplay

if TYPE_CHECKING:
    from PIL import Image

    from mrrp.explain.heatmap import HeatmapResult
    from mrrp.io.slides import Slide

# 254 + 2 x 1 overlap = 256: the tile size OpenSlide recommends for Deep Zoom.
TILE_SIZE_PX = 254
OVERLAP_PX = 1
# Most slide-level pixels one DZ tile may read (16 MiB of RGBA, ~0.1 s to read and shrink). Pyramidal
# slides read about one tile's worth at every zoom; only slides without a pyramid get near this: a
# plain image up to 8 x the view's size still fits in the view as a whole.
MAX_READ_PX = 2048 * 2048
# Decoded tiles kept per view: ~200 KB each, enough for a few screens of panning.
TILE_CACHE_SIZE = 192


class _SlideAsOpenSlide:
    """An mrrp :class:`~mrrp.io.slides.Slide` seen through the interface DeepZoomGenerator reads.

    Going through ``Slide.read_region`` rather than the raw OpenSlide handle keeps mrrp's error
    messages (a damaged tile becomes a CorruptSlideError), ImageSlide's lock, and lets us count
    every pixel read (the guarantee that level 0 is never read whole is tested on that count).
    """

    def __init__(self, slide: Slide) -> None:
        self._slide = slide
        info = slide.info
        self.dimensions = (info.width_px, info.height_px)
        self.level_count = info.level_count
        self.level_dimensions = info.level_dimensions
        self.level_downsamples = info.level_downsamples
        # Slide.read_region already puts transparent areas on white; no bounds: whole slide shown.
        self.properties: dict[str, str] = {}
        self._lock = threading.Lock()
        self.pixels_read = 0
        self.largest_read_px = 0

    def get_best_level_for_downsample(self, downsample: float) -> int:
        return self._slide.best_level_for_downsample(downsample)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        from PIL import Image

        rgb = self._slide.read_region(location, level, size)  # (h, w, 3) uint8
        with self._lock:
            self.pixels_read += int(size[0]) * int(size[1])
            self.largest_read_px = max(self.largest_read_px, int(size[0]) * int(size[1]))
        return Image.fromarray(rgb).convert("RGBA")


@dataclass(frozen=True)
class Viewport:
    """A window of ``width_px`` x ``height_px`` on Deep Zoom ``level``, top-left at (``x_px``, ``y_px``)."""

    level: int
    x_px: int
    y_px: int
    width_px: int
    height_px: int
    downsample: float  # level-0 pixels per pixel of this DZ level

    @property
    def origin_l0(self) -> tuple[float, float]:
        return (self.x_px * self.downsample, self.y_px * self.downsample)

    @property
    def size_l0(self) -> tuple[float, float]:
        return (self.width_px * self.downsample, self.height_px * self.downsample)


class DeepZoomView:
    """Deep Zoom tiles of one open slide, and the viewport images composed from them.

    Safe to share between sessions: DeepZoomGenerator is read-only after construction, slide reads
    are thread-safe, and the tile cache is locked.
    """

    def __init__(
        self,
        slide: Slide,
        tile_size_px: int = TILE_SIZE_PX,
        overlap_px: int = OVERLAP_PX,
        max_read_px: int = MAX_READ_PX,
    ) -> None:
        from openslide.deepzoom import DeepZoomGenerator

        if tile_size_px < 8 or overlap_px < 0:
            raise InvalidValueError(f"Deep zoom tiles must be at least 8 pixels; got {tile_size_px}.")
        self.slide = slide
        self._source = _SlideAsOpenSlide(slide)
        self.dz = DeepZoomGenerator(self._source, tile_size=tile_size_px, overlap=overlap_px, limit_bounds=False)
        self.tile_size_px = int(tile_size_px)
        self.overlap_px = int(overlap_px)
        self.max_read_px = int(max_read_px)
        self._cache: OrderedDict[tuple[int, int, int], Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        self._min_level = self._coarsest_affordable_level()

    # -- geometry ------------------------------------------------------------------------------

    @property
    def level_count(self) -> int:
        return self.dz.level_count

    @property
    def max_level(self) -> int:
        """The full-resolution DZ level (1 DZ pixel = 1 level-0 pixel)."""
        return self.dz.level_count - 1

    @property
    def pixels_read(self) -> int:
        """Slide-level pixels read so far through this view (all tiles, all levels)."""
        return self._source.pixels_read

    @property
    def largest_read_px(self) -> int:
        """The largest single slide read so far, in slide-level pixels."""
        return self._source.largest_read_px

    def level_dimensions(self, level: int) -> tuple[int, int]:
        self._check_level(level)
        w, h = self.dz.level_dimensions[level]
        return int(w), int(h)

    def downsample(self, level: int) -> float:
        """Level-0 pixels per pixel of DZ ``level`` (each DZ level halves the one above it)."""
        self._check_level(level)
        return float(2 ** (self.max_level - level))

    def tile_read_px(self, level: int) -> int:
        """Slide-level pixels one interior tile of ``level`` reads (the largest tile of that level)."""
        self._check_level(level)
        cols, rows = self.dz.level_tiles[level]
        worst = 0
        for address in {(0, 0), (min(1, cols - 1), min(1, rows - 1))}:
            _, _, (w, h) = self.dz.get_tile_coordinates(level, address)
            worst = max(worst, int(w) * int(h))
        return worst

    def _coarsest_affordable_level(self) -> int:
        for level in range(self.level_count):
            if self.tile_read_px(level) <= self.max_read_px:
                return level
        return self.max_level

    @property
    def min_level(self) -> int:
        """The most zoomed-out level whose tiles stay within ``max_read_px`` reads."""
        return self._min_level

    def fit_level(self, view_w_px: int, view_h_px: int) -> int:
        """The sharpest level at which the whole slide fits in the view (never below ``min_level``)."""
        fit = 0
        for level in range(self.level_count):
            w, h = self.dz.level_dimensions[level]
            if w <= view_w_px and h <= view_h_px:
                fit = level
        return max(fit, self.min_level)

    def zoom_levels(self, view_w_px: int, view_h_px: int) -> list[int]:
        """The levels a zoom control offers: from the whole slide in view to full resolution."""
        return list(range(self.fit_level(view_w_px, view_h_px), self.max_level + 1))

    def viewport(self, level: int, centre_x: float, centre_y: float, view_w_px: int, view_h_px: int) -> Viewport:
        """The window of at most ``view_w_px`` x ``view_h_px`` on ``level`` centred as near as possible on
        (``centre_x``, ``centre_y``), given as fractions 0–1 of the slide's width and height.

        The window is clamped to stay on the slide, so panning past an edge stops at the edge.
        """
        self._check_level(level)
        if view_w_px < 1 or view_h_px < 1:
            raise InvalidValueError(f"The view must be at least 1 x 1 pixels; got {view_w_px} x {view_h_px}.")
        w_lvl, h_lvl = self.level_dimensions(level)
        w, h = min(int(view_w_px), w_lvl), min(int(view_h_px), h_lvl)
        cx = float(np.clip(centre_x, 0.0, 1.0)) * w_lvl
        cy = float(np.clip(centre_y, 0.0, 1.0)) * h_lvl
        x0 = int(np.clip(round(cx - w / 2), 0, w_lvl - w))
        y0 = int(np.clip(round(cy - h / 2), 0, h_lvl - h))
        return Viewport(level, x0, y0, w, h, self.downsample(level))

    def tiles_for(self, vp: Viewport) -> list[tuple[int, int]]:
        """(col, row) addresses of the DZ tiles that cover the viewport, row by row."""
        ts = self.tile_size_px
        c0, c1 = vp.x_px // ts, (vp.x_px + vp.width_px - 1) // ts
        r0, r1 = vp.y_px // ts, (vp.y_px + vp.height_px - 1) // ts
        return [(c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    # -- pixels --------------------------------------------------------------------------------

    def tile(self, level: int, col: int, row: int) -> Image.Image:
        """One DZ tile (RGB PIL image, ``tile_size_px`` plus the overlap on interior edges), cached."""
        key = (level, col, row)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if level < self.min_level:
            raise InvalidValueError(
                f"This slide has no pyramid level coarse enough for zoom level {level}; zoom in to at least "
                f"level {self.min_level}."
            )
        img = self.dz.get_tile(level, (col, row))
        with self._lock:
            self._cache[key] = img
            while len(self._cache) > TILE_CACHE_SIZE:
                self._cache.popitem(last=False)
        return img

    def render(self, vp: Viewport) -> np.ndarray:
        """The viewport as one (height_px, width_px, 3) uint8 image, composed from its DZ tiles."""
        from PIL import Image

        canvas = Image.new("RGB", (vp.width_px, vp.height_px), "white")
        ts, ov = self.tile_size_px, self.overlap_px
        for col, row in self.tiles_for(vp):
            tile = self.tile(vp.level, col, row)
            # A tile starts ``overlap`` pixels before its grid cell on every interior edge.
            left = col * ts - (ov if col > 0 else 0)
            top = row * ts - (ov if row > 0 else 0)
            canvas.paste(tile, (left - vp.x_px, top - vp.y_px))
        return np.asarray(canvas)

    def dzi(self, image_format: str = "jpeg") -> str:
        """The DZI XML descriptor of the slide (what a browser Deep Zoom viewer would load)."""
        return self.dz.get_dzi(image_format)

    def _check_level(self, level: int) -> None:
        if not 0 <= int(level) < self.dz.level_count:
            raise InvalidValueError(f"Zoom level {level} does not exist; this slide has levels 0–{self.max_level}.")


# -- overlays on a viewport ----------------------------------------------------------------------


@dataclass(frozen=True)
class TileOverlay:
    """Per-tile scores that can be drawn over the slide."""

    label: str
    coords_l0: np.ndarray  # (N, 2) level-0 top-left corners
    tile_size_l0: int
    scores: np.ndarray  # (N,)
    display: TileScoreDisplay = PIPELINE_DISPLAY  # scale and colours (mrrp.vocabulary)
    from_bundled_model: bool = False  # a bundled (synthetic-data) model's output: shown with the notice

    @property
    def signed(self) -> bool:
        """True for attributions drawn on a diverging scale about zero; False for percentiles."""
        return self.display.scale == "symmetric"


def explanation_overlays(
    records: Iterable, slide_fingerprint: str, prefer_case: str | None = None
) -> list[TileOverlay]:
    """Tile attributions of a reviewed case whose slide is this one (matched by the slide fingerprint the
    case history stores), as overlays: integrated gradients (signed) and attention.

    ``records`` are :class:`mrrp.dashboard.history.CaseRecord` rows, newest first; ``prefer_case`` (the case
    open in this session) wins over newer ones.
    """
    matching = [
        r
        for r in records
        if (r.input_hashes or {}).get("slide") == slide_fingerprint and ((r.explanation or {}).get("tiles"))
    ]
    if not matching:
        return []
    chosen = next((r for r in matching if r.case_id == prefer_case), matching[0])
    tiles = chosen.explanation["tiles"]
    coords = np.asarray(tiles["coords_l0"], dtype=np.int64).reshape(-1, 2)
    size = int(tiles["tile_size_l0"])
    from mrrp.dashboard.tumorboard import is_bundled_version

    who = chosen.prediction.get("patient_id") or chosen.case_id
    bundled = is_bundled_version(str(chosen.model_version))
    out = []
    if tiles.get("integrated_gradients") is not None:
        ig = np.asarray(tiles["integrated_gradients"], dtype=np.float64)
        label = f"Integrated gradients, case {who} (red raises risk)"
        out.append(TileOverlay(label, coords, size, ig, IG_DISPLAY, from_bundled_model=bundled))
    if tiles.get("attention") is not None:
        att = np.asarray(tiles["attention"], dtype=np.float64)
        out.append(
            TileOverlay(f"Attention, case {who}", coords, size, att, ATTENTION_DISPLAY, from_bundled_model=bundled)
        )
    return [o for o in out if len(o.scores) == len(coords)]


def mask_on_viewport(mask: np.ndarray, mask_downsample: float, vp: Viewport) -> np.ndarray:
    """A slide-wide tissue mask sampled on the viewport's pixels (nearest, pixel centres). (h, w) bool.

    mrrp.explain.heatmap.resample_mask_nearest assumes the output grid starts at the slide's
    origin; a viewport starts at ``vp.origin_l0``, hence this offset version.
    """
    m = np.asarray(mask, dtype=bool)
    ox, oy = vp.origin_l0
    cols = np.floor((ox + (np.arange(vp.width_px) + 0.5) * vp.downsample) / mask_downsample).astype(np.int64)
    rows = np.floor((oy + (np.arange(vp.height_px) + 0.5) * vp.downsample) / mask_downsample).astype(np.int64)
    col_ok, row_ok = cols < m.shape[1], rows < m.shape[0]
    out = np.zeros((vp.height_px, vp.width_px), dtype=bool)
    out[np.ix_(row_ok, col_ok)] = m[np.ix_(rows[row_ok], cols[col_ok])]
    return out


def viewport_heatmap(
    image: np.ndarray,
    vp: Viewport,
    coords_l0: np.ndarray,
    tile_size_l0: int,
    scores: np.ndarray,
    *,
    tissue_mask: np.ndarray | None = None,
    mask_downsample: float | None = None,
    alpha: float = 0.4,
    display: TileScoreDisplay = PIPELINE_DISPLAY,
    label: str | None = None,
) -> HeatmapResult:
    """Tile scores drawn over the viewport ``image`` (h, w, 3) only, under ``display``'s policy.

    Colours are fixed by all ``scores`` (N,), not the visible ones, so a tile keeps its colour while
    panning: percentiles within the slide, or for signed scores (integrated gradients) a diverging scale
    symmetric about zero. Work is O(N + viewport pixels) whatever the slide size.
    """
    from mrrp.explain.heatmap import render_tile_scores

    coords = np.asarray(coords_l0, dtype=np.float64).reshape(-1, 2)  # (N, 2)
    shifted = coords - np.asarray(vp.origin_l0)[None, :]
    vp_mask = None
    if tissue_mask is not None and mask_downsample is not None:
        vp_mask = mask_on_viewport(tissue_mask, mask_downsample, vp)  # (h, w), already on the viewport grid
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    return render_tile_scores(
        image, vp.downsample, shifted, tile_size_l0, values, display, vp_mask, vp.downsample, alpha=alpha, label=label
    )


def draw_viewport_box(
    thumbnail: np.ndarray, thumb_downsample: float, vp: Viewport, colour: tuple[int, int, int] = (230, 30, 30)
) -> np.ndarray:
    """The thumbnail (H, W, 3) with the viewport outlined (2 px), as a map of where the view is."""
    out = thumbnail.copy()
    h, w = out.shape[:2]
    ox, oy = vp.origin_l0
    sw, sh = vp.size_l0
    x0 = int(np.clip(np.floor(ox / thumb_downsample), 0, w - 1))
    y0 = int(np.clip(np.floor(oy / thumb_downsample), 0, h - 1))
    x1 = int(np.clip(np.ceil((ox + sw) / thumb_downsample) - 1, x0, w - 1))
    y1 = int(np.clip(np.ceil((oy + sh) / thumb_downsample) - 1, y0, h - 1))
    c = np.asarray(colour, np.uint8)
    for d in (0, 1):
        out[min(y0 + d, y1), x0 : x1 + 1] = c
        out[max(y1 - d, y0), x0 : x1 + 1] = c
        out[y0 : y1 + 1, min(x0 + d, x1)] = c
        out[y0 : y1 + 1, max(x1 - d, x0)] = c
    return out


def zoom_label(level: int, view: DeepZoomView, objective_power: float | None, mpp: float | None) -> str:
    """How a zoom step reads to a pathologist: equivalent objective ("10x"), else µm per screen pixel."""
    ds = view.downsample(level)
    if objective_power:
        return f"{objective_power / ds:g}x"
    if mpp:
        return f"{mpp * ds:.3g} µm/px"
    return f"1:{ds:g}"
