"""Per-tile scores drawn as a heatmap over a slide thumbnail, as the pathology-AI field draws them.

The recipe (percentile scores, mean where overlapping tiles meet, optional blur, colour only
inside tissue, alpha-blended on a low-resolution image, top-k tiles at full resolution) is the
field's; the code is ours. Everything is computed on the thumbnail grid, so memory is
O(thumbnail pixels + tiles) whatever the slide size: a 100,000 x 80,000 slide never becomes a
full-resolution array (the known failure of research heatmap scripts).

Units are in the names: ``*_l0`` level-0 pixels, ``*_px`` pixels of the image at hand;
``*downsample`` is level-0 pixels per pixel of that image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mrrp.errors import InvalidValueError

if TYPE_CHECKING:
    from mrrp.io.slides import Slide
    from mrrp.vocabulary import TileScoreDisplay

# Guards against 49.9999999 -> 49 when a level-0 edge falls exactly on a thumbnail pixel edge
# but the downsample is not exactly representable (e.g. 100000 / 1024).
_EDGE_TOL = 1e-6


@dataclass(frozen=True)
class HeatmapResult:
    """A rendered heatmap. ``score_map`` is NaN wherever the overlay was left uncoloured."""

    overlay: np.ndarray  # (H, W, 3) uint8, thumbnail blended with colours
    score_map: np.ndarray  # (H, W) float32, the values that were coloured
    vmin: float  # value drawn at the low end of the colour map
    vmax: float  # value drawn at the high end of the colour map
    cmap: str
    label: str


@dataclass(frozen=True)
class TopTile:
    """One of the highest (or lowest) scoring tiles, read at full resolution."""

    rank: int  # 1 = most extreme
    index: int  # row in coords_l0 / scores
    score: float
    x_l0: int  # top-left in level-0 pixels
    y_l0: int
    image: np.ndarray  # (out_size_px, out_size_px, 3) uint8


# -- validation -----------------------------------------------------------------------------


def _as_coords(coords_l0: np.ndarray) -> np.ndarray:
    coords = np.asarray(coords_l0, dtype=np.float64)
    if coords.size == 0:
        return coords.reshape(0, 2)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise InvalidValueError(f"Tile coordinates must be an (N, 2) array of (x, y); got shape {coords.shape}.")
    return coords  # (N, 2)


def _as_scores(scores: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if values.shape[0] != n:
        raise InvalidValueError(f"There are {n} tiles but {values.shape[0]} scores; they must match one to one.")
    return values  # (N,)


def _check_positive(name: str, value: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidValueError(f"{name} must be a number; got {value!r}.") from None
    if not np.isfinite(out) or out <= 0:
        raise InvalidValueError(f"{name} must be a positive number; got {value!r}.")
    return out


def _get_cmap(cmap: str):  # -> matplotlib.colors.Colormap
    import matplotlib

    try:
        return matplotlib.colormaps[cmap]
    except KeyError:
        raise InvalidValueError(f"'{cmap}' is not a known colour map; use e.g. 'coolwarm' or 'jet'.") from None


# -- scores ---------------------------------------------------------------------------------


def scores_to_percentiles(scores: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Percentile rank of each score in [0, 1] against ``reference`` (default: ``scores`` themselves).

    A score's rank is its position in the sorted reference; ties take the mean of their
    positions, and the rank is divided by the reference size (scipy's ``percentileofscore``
    with ``kind="rank"``, / 100). So [1, 2, 3, 4] gives [0.25, 0.5, 0.75, 1.0], a score below
    every reference value gives 0 and one above all gives 1. NaN scores stay NaN; NaN
    reference values are ignored. Returns (N,) float64.
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)  # (N,)
    ref = values if reference is None else np.asarray(reference, dtype=np.float64).reshape(-1)
    ref = np.sort(ref[~np.isnan(ref)])  # (M,)
    out = np.full(values.shape, np.nan)
    finite = ~np.isnan(values)
    if ref.size == 0 or not finite.any():
        return out
    v = values[finite]
    n_below = np.searchsorted(ref, v, side="left")  # reference values < v
    n_at_or_below = np.searchsorted(ref, v, side="right")  # reference values <= v
    n_equal = n_at_or_below - n_below
    # Mean of the 1-based positions n_below+1 .. n_at_or_below; a value absent from the
    # reference sits between positions and takes n_below.
    mean_rank = np.where(n_equal > 0, (n_below + 1 + n_at_or_below) / 2.0, n_below)
    out[finite] = mean_rank / ref.size
    return out


# -- tiles on the thumbnail grid ------------------------------------------------------------


def _tile_boxes_px(
    coords_l0: np.ndarray, tile_size_l0: float, downsample: float, shape_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel boxes [x0, x1) x [y0, y1) of each tile on a grid of ``downsample``, clipped. Each (N,) int64."""
    h, w = shape_hw
    x0 = np.clip(np.floor(coords_l0[:, 0] / downsample + _EDGE_TOL), 0, w).astype(np.int64)
    y0 = np.clip(np.floor(coords_l0[:, 1] / downsample + _EDGE_TOL), 0, h).astype(np.int64)
    x1 = np.clip(np.ceil((coords_l0[:, 0] + tile_size_l0) / downsample - _EDGE_TOL), 0, w).astype(np.int64)
    y1 = np.clip(np.ceil((coords_l0[:, 1] + tile_size_l0) / downsample - _EDGE_TOL), 0, h).astype(np.int64)
    return x0, y0, x1, y1


def tile_score_map(
    coords_l0: np.ndarray,
    tile_size_l0: int,
    scores: np.ndarray,
    out_shape_hw: tuple[int, int],
    downsample: float,
) -> np.ndarray:
    """Paint tile scores on a grid of ``downsample`` level-0 px per pixel. Returns (H, W) float32.

    A tile covers pixels floor(x / ds) .. ceil((x + size) / ds), clipped to the grid. Where
    tiles overlap the value is the mean of their scores; pixels covered by no tile (or only
    by tiles with non-finite scores) are NaN.
    """
    h, w = (int(out_shape_hw[0]), int(out_shape_hw[1]))
    if h <= 0 or w <= 0:
        raise InvalidValueError(f"The heatmap size must be positive; got {h} x {w} pixels.")
    ds = _check_positive("The downsample", downsample)
    size_l0 = _check_positive("The tile size", tile_size_l0)
    coords = _as_coords(coords_l0)  # (N, 2)
    values = _as_scores(scores, coords.shape[0])  # (N,)

    keep = np.isfinite(values)
    x0, y0, x1, y1 = _tile_boxes_px(coords[keep], size_l0, ds, (h, w))
    values = values[keep]
    nonempty = (x1 > x0) & (y1 > y0)
    x0, y0, x1, y1, values = x0[nonempty], y0[nonempty], x1[nonempty], y1[nonempty], values[nonempty]

    # Sum and count of covering tiles via 2-D difference arrays: +v at the top-left and
    # bottom-right corners, -v at the other two, then a 2-D cumulative sum. O(N + H*W) with
    # no Python loop over tiles (a slide has 10^4-10^5 of them).
    stride = w + 1
    plus = np.concatenate([y0 * stride + x0, y1 * stride + x1])  # (2N,) flat corner indices
    minus = np.concatenate([y0 * stride + x1, y1 * stride + x0])  # (2N,)
    n_cells = (h + 1) * stride
    weights = np.concatenate([values, values])  # (2N,)
    score_sum = np.bincount(plus, weights=weights, minlength=n_cells)
    score_sum -= np.bincount(minus, weights=weights, minlength=n_cells)
    # Counts stay integer so "no tile here" is exact, not a rounding residue.
    count = np.bincount(plus, minlength=n_cells)
    count -= np.bincount(minus, minlength=n_cells)
    score_sum = score_sum.reshape(h + 1, w + 1)  # (H+1, W+1) float64
    count = count.reshape(h + 1, w + 1)  # (H+1, W+1) int64
    for arr in (score_sum, count):
        np.cumsum(arr, axis=0, out=arr)  # in place: no extra full-grid temporaries
        np.cumsum(arr, axis=1, out=arr)
    score_sum, count = score_sum[:h, :w], count[:h, :w]  # (H, W)

    out = np.full((h, w), np.nan, dtype=np.float32)
    covered = count > 0
    out[covered] = score_sum[covered] / count[covered]
    return out


def resample_mask_nearest(
    mask: np.ndarray, mask_downsample: float, out_shape_hw: tuple[int, int], out_downsample: float
) -> np.ndarray:
    """A bool mask moved to another grid of the same slide, nearest neighbour. Returns (H, W) bool.

    Each output pixel takes the mask pixel under its centre (in level-0 coordinates); output
    pixels beyond the mask's extent are False (not tissue).
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise InvalidValueError(f"The tissue mask must be a 2-D array; got shape {m.shape}.")
    mask_ds = _check_positive("The mask downsample", mask_downsample)
    out_ds = _check_positive("The thumbnail downsample", out_downsample)
    h, w = (int(out_shape_hw[0]), int(out_shape_hw[1]))
    rows = np.floor((np.arange(h) + 0.5) * out_ds / mask_ds).astype(np.int64)  # (H,)
    cols = np.floor((np.arange(w) + 0.5) * out_ds / mask_ds).astype(np.int64)  # (W,)
    row_ok = rows < m.shape[0]
    col_ok = cols < m.shape[1]
    out = np.zeros((h, w), dtype=bool)
    out[np.ix_(row_ok, col_ok)] = m[np.ix_(rows[row_ok], cols[col_ok])]
    return out


def _normalised_blur(score_map: np.ndarray, valid: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of ``score_map`` over ``valid`` pixels only. Returns (H, W) float64, NaN outside valid.

    Blurring the zero-filled values and the 0/1 weights separately and dividing means NaN
    regions contribute nothing, and pixels near an edge are not pulled towards zero.
    """
    from scipy.ndimage import gaussian_filter

    # float32 is ample for display values and halves the memory of the four full-grid arrays.
    weight = valid.astype(np.float32)  # (H, W)
    filled = np.where(valid, score_map, 0.0).astype(np.float32)  # (H, W)
    blurred_sum = gaussian_filter(filled, sigma=sigma_px, mode="constant")
    del filled
    blurred_weight = gaussian_filter(weight, sigma=sigma_px, mode="constant")
    del weight
    out = np.full(score_map.shape, np.nan)
    ok = valid & (blurred_weight > 1e-12)
    out[ok] = blurred_sum[ok] / blurred_weight[ok]
    return out


# -- rendering ------------------------------------------------------------------------------


def render_heatmap(
    thumbnail: np.ndarray,
    thumb_downsample: float,
    coords_l0: np.ndarray,
    tile_size_l0: int,
    scores: np.ndarray,
    tissue_mask: np.ndarray | None = None,
    mask_downsample: float | None = None,
    *,
    cmap: str = "coolwarm",
    alpha: float = 0.4,
    use_percentiles: bool = True,
    reference_scores: np.ndarray | None = None,
    blur_sigma_px: float = 0.0,
    vmin: float | None = None,
    vmax: float | None = None,
    label: str = "score",
) -> HeatmapResult:
    """Blend colour-mapped tile scores onto a thumbnail, only where tiles cover tissue.

    ``thumbnail`` is (H, W, 3) uint8 with ``thumb_downsample`` level-0 px per pixel. The
    optional ``tissue_mask`` (h, w) bool has its own ``mask_downsample``; if that is None the
    mask is taken to span the same slide area as the thumbnail. Scores become percentile
    ranks (against ``reference_scores`` if given) unless ``use_percentiles`` is False; then
    ``vmin``/``vmax`` default to the range of the coloured values. ``blur_sigma_px`` (thumbnail
    pixels) smooths within the coloured area only. Outside it, overlay pixels equal the
    thumbnail exactly.
    """
    thumb = _as_thumbnail(thumbnail)  # (H, W, 3) uint8
    h, w = thumb.shape[:2]
    thumb_ds = _check_positive("The thumbnail downsample", thumb_downsample)
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise InvalidValueError(f"The heatmap opacity must be between 0 and 1; got {alpha}.")
    if blur_sigma_px < 0:
        raise InvalidValueError(f"The blur radius must be zero or positive; got {blur_sigma_px}.")
    colormap = _get_cmap(cmap)

    coords = _as_coords(coords_l0)  # (N, 2)
    values = _as_scores(scores, coords.shape[0])  # (N,)
    if use_percentiles:
        values = scores_to_percentiles(values, reference_scores)
    score_map = tile_score_map(coords, tile_size_l0, values, (h, w), thumb_ds).astype(np.float64)  # (H, W)

    valid = np.isfinite(score_map)  # (H, W) bool
    if tissue_mask is not None:
        mask = np.asarray(tissue_mask, dtype=bool)
        if mask.ndim != 2:
            raise InvalidValueError(f"The tissue mask must be a 2-D array; got shape {mask.shape}.")
        m_ds = thumb_ds * w / mask.shape[1] if mask_downsample is None else mask_downsample
        valid &= resample_mask_nearest(mask, m_ds, (h, w), thumb_ds)

    if blur_sigma_px > 0 and valid.any():
        score_map = _normalised_blur(score_map, valid, float(blur_sigma_px))
    score_map[~valid] = np.nan  # re-mask: no colour outside tissue

    lo, hi = _colour_range(score_map[valid], use_percentiles, vmin, vmax)

    return HeatmapResult(
        overlay=_blend(thumb, score_map, valid, colormap, lo, hi, alpha),
        score_map=score_map.astype(np.float32),
        vmin=lo,
        vmax=hi,
        cmap=cmap,
        label=label,
    )


def _as_thumbnail(thumbnail: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from an RGB or RGBA thumbnail."""
    thumb = np.asarray(thumbnail)
    if thumb.ndim != 3 or thumb.shape[2] not in (3, 4):
        raise InvalidValueError(f"The thumbnail must be an (H, W, 3) RGB image; got shape {thumb.shape}.")
    return thumb[..., :3].astype(np.uint8, copy=False)


def _blend(
    thumb: np.ndarray, score_map: np.ndarray, valid: np.ndarray, colormap, lo: float, hi: float, alpha: float
) -> np.ndarray:
    """The thumbnail with the colour-mapped scores alpha-blended on the ``valid`` pixels only. (H, W, 3) uint8."""
    overlay = thumb.copy()
    if valid.any():
        # Colour only the valid pixels, through the colour map's own N-entry table (the same
        # quantisation matplotlib applies): calling the colour map on ~10^6 floats would
        # allocate several (V, 4) float64 temporaries.
        lut = (colormap(np.arange(colormap.N))[:, :3] * 255.0).astype(np.float32)  # (N_colours, 3)
        normed = np.clip((score_map[valid] - lo) / (hi - lo), 0.0, 1.0)  # (V,)
        lut_idx = np.minimum((normed * colormap.N).astype(np.int64), colormap.N - 1)  # (V,)
        del normed
        blended = thumb[valid].astype(np.float32)  # (V, 3)
        blended *= 1.0 - alpha
        blended += alpha * lut[lut_idx]
        np.rint(blended, out=blended)
        overlay[valid] = np.clip(blended, 0, 255, out=blended).astype(np.uint8)
    return overlay


def display_kwargs(display: TileScoreDisplay, scores: np.ndarray) -> dict:
    """The :func:`render_heatmap` arguments that draw ``scores`` (N,) under ``display``'s policy.

    A symmetric scale spans +-max|score| over all finite scores (1 when every score is 0), so a tile keeps
    its colour in any view of the slide; a percentile scale ranks against all ``scores``.
    """
    if display.scale == "symmetric":
        values = np.abs(np.asarray(scores, dtype=np.float64).reshape(-1))
        values = values[np.isfinite(values)]
        bound = float(values.max()) if values.size and values.max() > 0 else 1.0
        return {"cmap": display.cmap, "use_percentiles": False, "vmin": -bound, "vmax": bound}
    return {"cmap": display.cmap, "use_percentiles": True}


def render_tile_scores(
    thumbnail: np.ndarray,
    thumb_downsample: float,
    coords_l0: np.ndarray,
    tile_size_l0: int,
    scores: np.ndarray,
    display: TileScoreDisplay,
    tissue_mask: np.ndarray | None = None,
    mask_downsample: float | None = None,
    *,
    alpha: float = 0.4,
    blur_sigma_px: float = 0.0,
    label: str | None = None,
) -> HeatmapResult:
    """:func:`render_heatmap` with the scale, colour map and label of ``display`` (mrrp.vocabulary).

    Every screen and file that draws tile scores comes through here, so IG is always signed on a
    symmetric diverging map and attention always a percentile; ``label`` overrides the colour-bar label.
    """
    return render_heatmap(
        thumbnail,
        thumb_downsample,
        coords_l0,
        tile_size_l0,
        scores,
        tissue_mask,
        mask_downsample,
        alpha=alpha,
        blur_sigma_px=blur_sigma_px,
        label=display.label if label is None else label,
        **display_kwargs(display, scores),
    )


def _colour_range(
    shown: np.ndarray, use_percentiles: bool, vmin: float | None, vmax: float | None
) -> tuple[float, float]:
    """(vmin, vmax) for the colour map; never an empty interval."""
    if use_percentiles:
        lo_default, hi_default = 0.0, 1.0
    elif shown.size:
        lo_default, hi_default = float(np.min(shown)), float(np.max(shown))
    else:
        lo_default, hi_default = 0.0, 1.0
    lo = lo_default if vmin is None else float(vmin)
    hi = hi_default if vmax is None else float(vmax)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise InvalidValueError(f"The colour range must run from a lower to a higher value; got {lo} to {hi}.")
    if hi == lo:
        # One value everywhere: centre it on the colour map rather than divide by zero.
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def colorbar_image(
    cmap: str = "coolwarm",
    vmin: float = 0.0,
    vmax: float = 1.0,
    label: str = "score",
    width_px: int = 400,
    height_px: int = 60,
) -> np.ndarray:
    """A horizontal colour bar with ticks and ``label``, as an (height_px, width_px, 3) uint8 image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    width_px, height_px = int(width_px), int(height_px)
    if width_px < 50 or height_px < 30:
        raise InvalidValueError(f"The colour bar needs at least 50 x 30 pixels; got {width_px} x {height_px}.")
    if not (np.isfinite(vmin) and np.isfinite(vmax)) or vmax <= vmin:
        raise InvalidValueError(f"The colour range must run from a lower to a higher value; got {vmin} to {vmax}.")
    colormap = _get_cmap(cmap)

    dpi = 100
    # A Figure with its own Agg canvas: no pyplot, no global figure registry, thread-safe.
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    font_pt = max(5.0, min(9.0, height_px * 0.12))
    margin_x = 12 / width_px
    # Bar in the top third; tick labels and the label below it.
    ax = fig.add_axes((margin_x, 0.62, 1 - 2 * margin_x, 0.3))
    mappable = ScalarMappable(norm=Normalize(vmin=float(vmin), vmax=float(vmax)), cmap=colormap)
    bar = fig.colorbar(mappable, cax=ax, orientation="horizontal")
    bar.ax.tick_params(labelsize=font_pt, length=2, pad=1)
    bar.set_label(label, fontsize=font_pt, labelpad=1)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H', W', 3)
    if rgb.shape[:2] != (height_px, width_px):
        # figsize * dpi can round by a pixel; callers lay the image out by its stated size.
        from PIL import Image

        rgb = np.asarray(Image.fromarray(rgb).resize((width_px, height_px), Image.Resampling.LANCZOS))
    return rgb


def heatmap_png_bytes(result: HeatmapResult) -> bytes:
    """The overlay of ``result`` encoded as PNG, for downloads."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(result.overlay, dtype=np.uint8), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


# -- top tiles ------------------------------------------------------------------------------


def top_k_tiles(
    slide: Slide,
    coords_l0: np.ndarray,
    tile_size_l0: int,
    scores: np.ndarray,
    k: int = 8,
    out_size_px: int = 256,
    highest: bool = True,
) -> list[TopTile]:
    """The ``k`` highest (or lowest) scoring tiles, read from the slide at full resolution.

    Each tile is read at the deepest pyramid level that is still at least as sharp as
    ``out_size_px`` needs (``tile_size_l0 / out_size_px`` downsample), then resized to
    ``out_size_px`` square. NaN scores are skipped; ties keep the input order.
    """
    size_l0 = int(round(_check_positive("The tile size", tile_size_l0)))
    out_px = int(round(_check_positive("The tile image size", out_size_px)))
    if int(k) < 0:
        raise InvalidValueError(f"The number of top tiles must be zero or more; got {k}.")
    coords = _as_coords(coords_l0)  # (N, 2)
    values = _as_scores(scores, coords.shape[0])  # (N,)

    candidates = np.flatnonzero(~np.isnan(values))  # (M,)
    key = -values[candidates] if highest else values[candidates]
    chosen = candidates[np.argsort(key, kind="stable")[: int(k)]]

    level = slide.best_level_for_downsample(size_l0 / out_px)
    level_ds = float(slide.info.level_downsamples[level])
    read_px = max(1, int(round(size_l0 / level_ds)))

    from PIL import Image

    tiles: list[TopTile] = []
    for rank, idx in enumerate(chosen, start=1):
        x_l0, y_l0 = int(round(coords[idx, 0])), int(round(coords[idx, 1]))
        img = slide.read_region((x_l0, y_l0), level, (read_px, read_px))  # (read_px, read_px, 3)
        if img.shape[:2] != (out_px, out_px):
            img = np.asarray(Image.fromarray(img).resize((out_px, out_px), Image.Resampling.LANCZOS))
        tiles.append(TopTile(rank=rank, index=int(idx), score=float(values[idx]), x_l0=x_l0, y_l0=y_l0, image=img))
    return tiles
