"""Synthetic pyramidal Aperio-style slides with a procedural H&E-like tissue model and known ground truth.

Two independent pieces:

- :func:`write_aperio_tiff` streams any procedurally rendered slide into a tiled, JPEG-compressed,
  pyramidal TIFF that OpenSlide opens as vendor ``"aperio"`` (baseline, stripped thumbnail,
  reduced levels, the same directory layout as a scanner's SVS). Tiles are rendered and
  JPEG-encoded in worker processes and never held all at once: a 60,000 x 40,000 px slide is
  7 GB of RGB but is written with a few MB in flight (~55 s on 2 cores, 170 MB).
- :class:`SyntheticTissue` renders glass, irregular tissue pieces, eosin stroma with fibres, fat,
  tumour nests with tunable nuclear morphology, lymphocyte aggregates, necrosis and an optional pen
  mark, at any region and any downsample, plus the ground-truth tissue and tumour masks.

Usage::

    from mrrp.synth.wsi import save_masks_png, write_synthetic_slide

    tissue = write_synthetic_slide("demo.svs", 20_000, 15_000, seed=7, tumour_fraction=0.3, pen_mark=True)
    save_masks_png(tissue, "demo", downsample=32)   # demo_tissue.png, demo_tumour.png

or from a shell: ``python -m mrrp.synth.wsi demo.svs 20000 15000 --seed 7``.

Every pixel is a function of its level-0 coordinates only (smooth fields on a fixed coarse grid,
periodic textures indexed by absolute position), so tiles meet without seams, pyramid levels
agree, and a seed gives the same slide whichever tile or thread asked for a region.

Units are in the names: ``*_px`` level-0 pixels, ``*_um`` microns, ``mpp`` microns per pixel.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# tile_fn(x0_px, y0_px, w_px, h_px, level_downsample) -> (h_px, w_px, 3) uint8. (x0_px, y0_px) is the
# top-left corner in level-0 pixels; (w_px, h_px) is the output size in pixels of that downsample.
TileFn = Callable[[int, int, int, int, float], np.ndarray]

APERIO_HEADER = "Aperio Image Library v12.0.0"
THUMBNAIL_MAX_PX = 1024
# Textures have periods that are multiples of this, so each can be box-averaged exactly down to it.
MAX_TEXTURE_DOWNSAMPLE = 64
# A texture repeating every few pixels shows as a lattice on low-resolution levels and thumbnails;
# below this period (in output pixels) its mean is used instead.
MIN_TEXTURE_PERIOD_OUT_PX = 64
# Nuclei visibility is quantised in this many density steps below level 0 (see _NucleiTexture).
_DENSITY_BINS = 16

# H&E palette, RGB 0-255. Colours mix linearly, so averaging level-0 pixels gives the same colour as
# rendering a reduced level directly (pyramid levels agree).
GLASS_RGB = (240.0, 240.0, 240.0)
STROMA_PALE_RGB = (238.0, 178.0, 208.0)
STROMA_DEEP_RGB = (220.0, 122.0, 172.0)
EPITHELIUM_RGB = (222.0, 160.0, 200.0)
NECROSIS_RGB = (236.0, 196.0, 218.0)
FAT_RGB = (246.0, 242.0, 245.0)
MEMBRANE_RGB = (212.0, 128.0, 176.0)
NUCLEUS_RGB = (80.0, 50.0, 140.0)
STROMAL_NUCLEUS_RGB = (96.0, 58.0, 146.0)
LYMPHOCYTE_RGB = (52.0, 30.0, 104.0)
MITOSIS_RGB = (34.0, 18.0, 72.0)
DEBRIS_RGB = (122.0, 78.0, 150.0)
PEN_TRANSMISSION = {"green": (0.30, 0.72, 0.42), "blue": (0.30, 0.42, 0.85), "black": (0.22, 0.22, 0.25)}


# --------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------


def default_downsamples(width_px: int, height_px: int, tile_px: int = 256) -> tuple[int, ...]:
    """1, 4, 16, ... while the reduced level still spans at least one tile along its longer side."""
    out = [1]
    while max(width_px, height_px) / (out[-1] * 4) >= tile_px:
        out.append(out[-1] * 4)
    return tuple(out)


def _level_size(width_px: int, height_px: int, downsample: int) -> tuple[int, int]:
    return max(1, math.ceil(width_px / downsample)), max(1, math.ceil(height_px / downsample))


def _aperio_description(
    width_px: int,
    height_px: int,
    tile_px: int,
    jpeg_quality: int,
    mpp: float,
    objective_power: float,
    filename: str,
    reduced_to: tuple[int, int] | None = None,
) -> str:
    """ImageDescription in the form Aperio scanners write (OpenSlide's aperio reader keys on the prefix)."""
    head = f"{APERIO_HEADER} \r\n{width_px}x{height_px} [0,0 {width_px}x{height_px}] ({tile_px}x{tile_px})"
    if reduced_to is not None:
        head += f" -> {reduced_to[0]}x{reduced_to[1]}"
    fields = [
        f"{head} JPEG/RGB Q={jpeg_quality}",
        f"AppMag = {objective_power:g}",
        f"MPP = {mpp:.4f}",
        f"Filename = {filename.replace('|', '_')}",
        "ScanScope ID = mrrp-synthetic",
    ]
    return "|".join(fields)


def _encode_tile(tile_rgb: np.ndarray, tile_px: int, jpeg_quality: int) -> bytes:
    import imagecodecs

    h, w = tile_rgb.shape[:2]
    if h != tile_px or w != tile_px:
        # Edge tiles: replicate the border rather than pad with black, which would ring in JPEG.
        tile_rgb = np.pad(tile_rgb, ((0, tile_px - h), (0, tile_px - w), (0, 0)), mode="edge")
    # YCbCr 4:2:0, like scanner SVS files; OpenSlide decodes it directly.
    return imagecodecs.jpeg_encode(
        np.ascontiguousarray(tile_rgb),
        level=jpeg_quality,
        colorspace="RGB",
        outcolorspace="YCBCR",
        subsampling=(2, 2),
    )


def _render_checked(tile_fn: TileFn, x0_px: int, y0_px: int, w_px: int, h_px: int, downsample: float) -> np.ndarray:
    rgb = np.asarray(tile_fn(x0_px, y0_px, w_px, h_px, downsample))
    if rgb.shape != (h_px, w_px, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"tile_fn returned {rgb.dtype} {rgb.shape}; expected uint8 {(h_px, w_px, 3)}")
    return rgb


# In forked worker processes, the tile_fn inherited from the parent (set by _init_worker). Never set in
# the parent process.
_WORKER_TILE_FN: TileFn | None = None


def _init_worker(tile_fn: TileFn) -> None:
    global _WORKER_TILE_FN
    _WORKER_TILE_FN = tile_fn


def _encode_block(
    tile_fn: TileFn | None,
    level: tuple[int, int, int],
    tile_px: int,
    jpeg_quality: int,
    row: int,
    col0: int,
    ncols: int,
) -> list[bytes]:
    """Render a strip of ``ncols`` tiles of one level in one call and JPEG-encode each tile."""
    fn = tile_fn if tile_fn is not None else _WORKER_TILE_FN
    assert fn is not None
    level_w_px, level_h_px, downsample = level
    x_px, y_px = col0 * tile_px, row * tile_px
    w_px = min(ncols * tile_px, level_w_px - x_px)
    h_px = min(tile_px, level_h_px - y_px)
    block = _render_checked(fn, x_px * downsample, y_px * downsample, w_px, h_px, float(downsample))
    return [_encode_tile(block[:, i * tile_px : (i + 1) * tile_px], tile_px, jpeg_quality) for i in range(ncols)]


def _make_executor(n_workers: int, tile_fn: TileFn) -> tuple[Executor | None, TileFn | None]:
    """(executor, tile_fn to pass to _encode_block). Rendering is many small numpy calls whose dispatch
    holds the GIL: threads reach ~1.2x on two cores, forked processes ~1.9x. Fork shares the tile_fn
    (and its precomputed textures) without pickling; where fork is unsafe (macOS) or missing (Windows)
    threads are used."""
    import multiprocessing as mp
    import sys

    if n_workers <= 1:
        return None, tile_fn
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        ctx = mp.get_context("fork")
        return ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=(tile_fn,)), None
    return ThreadPoolExecutor(n_workers), tile_fn


@contextlib.contextmanager
def _no_executor() -> Iterator[None]:
    yield None


def _level_tiles(
    executor: Executor | None,
    tile_fn: TileFn | None,
    level: tuple[int, int, int],
    tile_px: int,
    jpeg_quality: int,
    tiles_per_block: int,
    max_in_flight: int,
) -> Iterator[bytes]:
    """Encoded tiles of one level (width, height, downsample) in TIFF order (row-major), rendered ahead in
    strips of tiles along a row."""
    level_w_px, level_h_px, _ = level
    tiles_x = math.ceil(level_w_px / tile_px)
    tiles_y = math.ceil(level_h_px / tile_px)
    jobs = [
        (r, c, min(tiles_per_block, tiles_x - c)) for r in range(tiles_y) for c in range(0, tiles_x, tiles_per_block)
    ]
    if executor is None:
        for job in jobs:
            yield from _encode_block(tile_fn, level, tile_px, jpeg_quality, *job)
        return
    pending: deque[Future[list[bytes]]] = deque()
    next_job = 0
    while next_job < len(jobs) or pending:
        # Bounded look-ahead keeps memory flat however large the level is.
        while next_job < len(jobs) and len(pending) < max_in_flight:
            pending.append(executor.submit(_encode_block, tile_fn, level, tile_px, jpeg_quality, *jobs[next_job]))
            next_job += 1
        yield from pending.popleft().result()


def write_aperio_tiff(
    path: str | os.PathLike[str],
    width_px: int,
    height_px: int,
    tile_fn: TileFn,
    *,
    mpp: float = 0.25,
    objective_power: float = 40,
    tile_px: int = 256,
    jpeg_quality: int = 80,
    downsamples: Sequence[int] | None = None,
    thumbnail: bool = True,
    bigtiff: bool | None = None,
    workers: int | None = None,
) -> None:
    """Write a tiled, JPEG-compressed, pyramidal Aperio-style TIFF (SVS layout) rendered by ``tile_fn``.

    Directory layout, as OpenSlide's aperio reader expects: level 0 (tiled, Aperio ImageDescription
    with ``AppMag`` and ``MPP``), then a stripped thumbnail (longer side <= 1024 px) if ``thumbnail``,
    then one tiled directory per reduced level. ``downsamples`` (integers, starting at 1; default
    1, 4, 16, ... see :func:`default_downsamples`) are rendered by calling ``tile_fn`` at that
    downsample, never by re-reading level 0.

    ``workers`` (default: CPU count) render and encode tiles in parallel: forked processes on Linux
    (``tile_fn`` is inherited, not pickled; it must not rely on side effects in the caller's
    process), threads elsewhere (``tile_fn`` must then be thread-safe). ``workers=1`` renders in the
    calling thread, e.g. inside a caller's own process pool.

    The file is written to a hidden temporary name in the same folder and renamed at the end, so
    the output path only ever holds a complete slide. ``bigtiff`` defaults to on above 2 GB of raw
    pixels (classic TIFF cannot address more than 4 GB).
    """
    import tifffile

    out = Path(path)
    if width_px < 1 or height_px < 1:
        raise ValueError(f"slide size must be positive, got {width_px}x{height_px}")
    if tile_px % 16:
        raise ValueError("tile_px must be a multiple of 16 (JPEG 4:2:0 MCU)")
    levels = tuple(int(d) for d in (downsamples or default_downsamples(width_px, height_px, tile_px)))
    if levels[0] != 1 or any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
        raise ValueError(f"downsamples must start at 1 and increase, got {levels}")
    if bigtiff is None:
        bigtiff = width_px * height_px * 3 > 2**31
    n_workers = max(1, workers or os.cpu_count() or 1)
    tiles_per_block = 4

    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    resolution = (1e4 / mpp, 1e4 / mpp)  # pixels per cm
    common: dict[str, Any] = {
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": jpeg_quality},
        "subsampling": (2, 2),
        "metadata": None,  # no tifffile JSON description: OpenSlide would read it instead of ours
        "resolution": resolution,
        "resolutionunit": "CENTIMETER",
        "software": "mrrp.synth.wsi",
    }
    try:
        executor, worker_tile_fn = _make_executor(n_workers, tile_fn)
        with executor or _no_executor(), tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tw:
            for i, ds in enumerate(levels):
                lw, lh = _level_size(width_px, height_px, ds)
                desc = _aperio_description(
                    width_px,
                    height_px,
                    tile_px,
                    jpeg_quality,
                    mpp,
                    objective_power,
                    out.name,
                    reduced_to=None if i == 0 else (lw, lh),
                )
                tiles = _level_tiles(
                    executor, worker_tile_fn, (lw, lh, ds), tile_px, jpeg_quality, tiles_per_block, 3 * n_workers
                )
                tw.write(
                    tiles,
                    shape=(lh, lw, 3),
                    dtype=np.uint8,
                    tile=(tile_px, tile_px),
                    description=desc,
                    subfiletype=0 if i == 0 else 1,
                    **common,
                )
                if i == 0 and thumbnail:
                    # Aperio puts the thumbnail second; OpenSlide names a stripped directory 1 "thumbnail".
                    thumb_ds = max(width_px, height_px) / THUMBNAIL_MAX_PX
                    tw_px, th_px = (
                        (width_px, height_px)
                        if thumb_ds <= 1
                        else (max(1, round(width_px / thumb_ds)), max(1, round(height_px / thumb_ds)))
                    )
                    thumb_ds = max(1.0, max(width_px / tw_px, height_px / th_px))
                    thumb = _render_checked(tile_fn, 0, 0, tw_px, th_px, thumb_ds)
                    desc = _aperio_description(
                        width_px,
                        height_px,
                        tile_px,
                        jpeg_quality,
                        mpp,
                        objective_power,
                        out.name,
                        reduced_to=(tw_px, th_px),
                    )
                    tw.write(thumb, description=desc, rowsperstrip=16, **common)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------
# Smooth fields and periodic textures
# --------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_cells: float) -> np.ndarray:
    """Gaussian random field with correlation length ``sigma_cells``, zero mean, unit SD. (gh, gw) float32."""
    from scipy import ndimage

    gh, gw = shape
    if sigma_cells <= 4:
        f = ndimage.gaussian_filter(rng.standard_normal(shape), max(sigma_cells, 0.5), mode="reflect")
    else:
        # Large scales: filter white noise on a coarse lattice, then spline-upsample (a wide kernel on
        # the full grid would cost O(sigma) per cell).
        step = sigma_cells / 3.0
        ch, cw = math.ceil(gh / step) + 4, math.ceil(gw / step) + 4
        coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), 3.0, mode="reflect")
        f = ndimage.zoom(coarse, step, order=3, prefilter=True)[:gh, :gw]
    f = f.astype(np.float32)
    f -= f.mean()
    f /= max(float(f.std()), 1e-6)
    return f


def _periodic_noise(
    rng: np.random.Generator, period_px: int, sigma_along_px: float, sigma_across_px: float, angle_rad: float
) -> np.ndarray:
    """Periodic (seamlessly tiling) anisotropic Gaussian noise, zero mean, unit SD. (P, P) float32."""
    from scipy import fft

    ky = (fft.fftfreq(period_px) * 2 * np.pi).astype(np.float32)[:, None]  # radians per pixel
    kx = (fft.rfftfreq(period_px) * 2 * np.pi).astype(np.float32)[None, :]
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    k_along = kx * ca + ky * sa
    k_across = -kx * sa + ky * ca
    spectrum = np.exp(-0.5 * ((k_along * sigma_along_px) ** 2 + (k_across * sigma_across_px) ** 2))
    noise = fft.rfft2(rng.standard_normal((period_px, period_px), dtype=np.float32))
    f = fft.irfft2(noise * spectrum, s=(period_px, period_px)).astype(np.float32)
    f -= f.mean()
    f /= max(float(f.std()), 1e-6)
    return f


def _box_downsample(a: np.ndarray, ds: int) -> np.ndarray:
    """Mean over ds x ds blocks of the last two axes (which ds divides). (..., H/ds, W/ds) float32."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // ds, ds, w // ds, ds).mean(axis=(-3, -1), dtype=np.float32)


def _wrap_crop(tex: np.ndarray, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Window (..., h, w) of a texture that tiles the plane, top-left at (r0, c0). A view when it fits."""
    ph, pw = tex.shape[-2:]
    r0 %= ph
    c0 %= pw
    if r0 + h <= ph and c0 + w <= pw:
        return tex[..., r0 : r0 + h, c0 : c0 + w]
    rows = np.arange(r0, r0 + h) % ph
    cols = np.arange(c0, c0 + w) % pw
    return np.take(np.take(tex, rows, axis=-2), cols, axis=-1)


def _texture_downsample(period_px: int, level_downsample: float) -> int | None:
    """The integer downsample at which a texture of this period is sampled exactly, or None (use its mean)."""
    ds = round(level_downsample)
    if abs(ds - level_downsample) > 1e-6 or ds < 1 or period_px % ds or ds > MAX_TEXTURE_DOWNSAMPLE:
        return None
    if period_px // ds < MIN_TEXTURE_PERIOD_OUT_PX:
        return None
    return ds


class _ScalarTexture:
    """A periodic uint8 texture with lazily built box-averaged copies for reduced levels."""

    def __init__(self, values_u8: np.ndarray) -> None:
        self.period_px = values_u8.shape[0]
        self._levels: dict[int, np.ndarray] = {1: values_u8}
        self.mean = float(values_u8.mean()) / 255.0
        self._lock = threading.Lock()

    def level(self, ds: int) -> np.ndarray:
        with self._lock:
            if ds not in self._levels:
                self._levels[ds] = np.round(_box_downsample(self._levels[1].astype(np.float32), ds)).astype(np.uint8)
            return self._levels[ds]

    def sample(self, x0_px: float, y0_px: float, w: int, h: int, level_downsample: float) -> np.ndarray | float:
        """Values in [0, 1] at the output pixels of a region: (h, w) float32, or the texture mean."""
        ds = _texture_downsample(self.period_px, level_downsample)
        if ds is None:
            return self.mean
        crop = _wrap_crop(self.level(ds), int(y0_px // ds), int(x0_px // ds), h, w)
        return crop.astype(np.float32) * np.float32(1.0 / 255.0)


class _NucleiTexture:
    """Periodic layer of nuclei, each with a random visibility threshold ``u``.

    A nucleus is drawn where the local density exceeds its ``u``, so one texture serves any density
    map and density can vary smoothly across the slide. Reduced levels store, per density bin k,
    the box-averaged coverage of the nuclei with u < k / bins (cumulative, (bins + 1, P/ds, P/ds)),
    so a reduced level shows the average of what level 0 shows at the same density.
    """

    def __init__(self, alpha_u8: np.ndarray, u_u8: np.ndarray, offset_px: np.ndarray) -> None:
        self.period_px = alpha_u8.shape[0]
        self.alpha = alpha_u8  # (P, P) coverage x darkness, 0-255
        self.u = u_u8  # (P, P) visibility threshold of the covering nucleus, 0-254
        self.offset_px = offset_px  # (2, P, P) int16: (dx, dy) from the pixel to its nucleus centre
        self._bins = (u_u8.astype(np.int32) * _DENSITY_BINS) // 255  # (P, P) 0 .. bins-1
        self._cum: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        per_bin = np.bincount(self._bins.ravel(), weights=alpha_u8.ravel(), minlength=_DENSITY_BINS)
        self.mean_cum = np.concatenate([[0.0], np.cumsum(per_bin)]) / (alpha_u8.size * 255.0)  # (bins + 1,)

    def cumulative(self, ds: int) -> np.ndarray:
        with self._lock:
            if ds not in self._cum:
                # One bincount over (density bin, output cell) instead of a box filter per bin.
                p, n = self.period_px, self.period_px // ds
                cell = (np.arange(p) // ds)[:, None] * n + (np.arange(p) // ds)[None, :]  # (P, P)
                per_bin = np.bincount(
                    (self._bins * (n * n) + cell).ravel(), weights=self.alpha.ravel(), minlength=_DENSITY_BINS * n * n
                ).reshape(_DENSITY_BINS, n, n) / (ds * ds)
                cum = np.concatenate([np.zeros((1, n, n)), np.cumsum(per_bin, axis=0)])
                self._cum[ds] = np.round(cum).astype(np.uint8)
            return self._cum[ds]

    def offsets(self, x0_px: float, y0_px: float, w: int, h: int, level_downsample: float) -> np.ndarray | None:
        """(2, h, w) float32 (dx, dy) in level-0 px from each pixel to its nucleus centre, at level 0 only."""
        if _texture_downsample(self.period_px, level_downsample) != 1:
            return None
        return _wrap_crop(self.offset_px, int(y0_px), int(x0_px), h, w).astype(np.float32)

    def coverage(
        self, x0_px: float, y0_px: float, w: int, h: int, level_downsample: float, density: np.ndarray | float
    ) -> np.ndarray | float:
        """Nuclear coverage in [0, 1] at the output pixels: (h, w) float32, or a float at tiny scales."""
        ds = _texture_downsample(self.period_px, level_downsample)
        if ds is None:
            grid = np.linspace(0.0, 1.0, _DENSITY_BINS + 1)
            return np.interp(np.clip(density, 0, 1), grid, self.mean_cum).astype(np.float32)
        r0, c0 = int(y0_px // ds), int(x0_px // ds)
        if ds == 1:
            cov = _wrap_crop(self.alpha, r0, c0, h, w).astype(np.float32)
            cov *= _wrap_crop(self.u, r0, c0, h, w) < np.float32(255.0) * density
            cov *= np.float32(1.0 / 255.0)
            return cov
        cum = _wrap_crop(self.cumulative(ds), r0, c0, h, w)  # (bins + 1, h, w)
        k = np.clip(np.asarray(density, dtype=np.float32), 0, 1) * _DENSITY_BINS
        i = np.minimum(k.astype(np.int32), _DENSITY_BINS - 1)
        f = k - i
        if i.ndim == 0:
            lo, hi = cum[int(i)], cum[int(i) + 1]
        else:
            lo = np.take_along_axis(cum, i[None], 0)[0]
            hi = np.take_along_axis(cum, i[None] + 1, 0)[0]
        return (lo * (1.0 - f) + hi * f).astype(np.float32) * np.float32(1.0 / 255.0)


def _draw_nuclei(
    rng: np.random.Generator,
    period_px: int,
    count: int,
    diameter_px: float,
    diameter_cv: float,
    aspect: tuple[float, float],
    darkness: tuple[float, float],
    vesicular: float = 0.0,
    nucleolus: float = 0.0,
    chromatin: float = 0.15,
    lobes: int = 1,
) -> _NucleiTexture:
    """Stamp ``count`` soft elliptical nuclei on a torus of ``period_px``.

    ``aspect`` (mean, sd) is long/short axis; ``darkness`` (mean, sd) the peak alpha; ``vesicular``
    pales the centre (chromatin margination of high-grade nuclei); ``nucleolus`` adds a dark dot;
    ``lobes`` > 1 draws clumped fragments (mitotic figures, karyorrhectic debris).
    """
    p = period_px
    n = count * lobes  # stamps
    # Per-nucleus and per-stamp parameters, drawn vectorised.
    centre = rng.uniform(0, p, (count, 2))  # (count, 2) x, y
    u = rng.integers(0, 255, count)
    dark = np.clip(rng.normal(darkness[0], darkness[1], count), 0.25, 1.0)
    owner = np.repeat(np.arange(count), lobes)  # (n,) nucleus of each stamp
    d = (
        diameter_px
        * np.exp(np.clip(rng.normal(0, diameter_cv, n), -3 * diameter_cv, 3 * diameter_cv))
        / math.sqrt(lobes)
    )
    asp = np.clip(rng.normal(aspect[0], aspect[1], n), 1.0, aspect[0] + 3 * aspect[1])
    a_ax, b_ax = d / 2 * np.sqrt(asp), d / 2 / np.sqrt(asp)
    theta = rng.uniform(0, math.pi, n)
    lobe_offset = rng.normal(0, diameter_px * 0.25, (n, 2)) if lobes > 1 else np.zeros((n, 2))
    nucleolus_offset = rng.normal(0, 0.2, (n, 2)) * b_ax[:, None]
    edge_px = max(0.8, diameter_px * 0.06)

    r = int(math.ceil(a_ax.max() + 2 * edge_px)) + 1  # common half-size of the stamp boxes
    margin = r + int(math.ceil(np.abs(lobe_offset).max())) + 2
    size = p + 2 * margin
    alpha = np.zeros((size, size), np.float32)
    u_map = np.full((size, size), 254, np.uint8)
    offset = np.zeros((2, size, size), np.int16)  # (dx, dy) from each pixel to its nucleus centre
    # One shared grain field instead of fresh noise per nucleus: same look, far cheaper.
    grain = rng.standard_normal((size, size)).astype(np.float32)
    pos = centre[owner] + lobe_offset + margin  # (n, 2) stamp centres in canvas px
    box0 = np.floor(pos).astype(np.intp) - r  # (n, 2) top-left of each box
    span = np.arange(2 * r + 1)
    for c0 in range(0, n, 64):  # batches bound memory for large, pleomorphic nuclei
        c1 = min(n, c0 + 64)
        dx = (box0[c0:c1, 0, None] + span - pos[c0:c1, 0, None])[:, None, :].astype(np.float32)  # (b, 1, S)
        dy = (box0[c0:c1, 1, None] + span - pos[c0:c1, 1, None])[:, :, None].astype(np.float32)  # (b, S, 1)
        ct, st = np.cos(theta[c0:c1])[:, None, None], np.sin(theta[c0:c1])[:, None, None]
        aa, bb = a_ax[c0:c1, None, None], b_ax[c0:c1, None, None]
        rho = np.sqrt(((dx * ct + dy * st) / aa) ** 2 + ((dy * ct - dx * st) / bb) ** 2)  # (b, S, S)
        body = np.clip((1.0 - rho) * (bb / edge_px) + 0.5, 0.0, 1.0)
        stamp = 1.0 - vesicular * np.exp(-((rho / 0.55) ** 2)) if vesicular > 0 else np.ones_like(rho)
        rows = box0[c0:c1, 1, None, None] + span[None, :, None]
        cols = box0[c0:c1, 0, None, None] + span[None, None, :]
        stamp = stamp * (1.0 + chromatin * grain[rows, cols])
        if nucleolus > 0:
            nx, ny = nucleolus_offset[c0:c1, 0, None, None], nucleolus_offset[c0:c1, 1, None, None]
            stamp += nucleolus * np.exp(-((dx - nx) ** 2 + (dy - ny) ** 2) / (2 * (0.12 * bb + 0.5) ** 2))
        stamp = np.clip(stamp * dark[owner[c0:c1], None, None], 0.0, 1.0) * body
        # Offsets to the nucleus centre (not the lobe's), so a fragmented figure is judged as one.
        off_x = np.round(-(dx + lobe_offset[c0:c1, 0, None, None])).astype(np.int16)
        off_y = np.round(-(dy + lobe_offset[c0:c1, 1, None, None])).astype(np.int16)
        for i in range(c1 - c0):
            k = c0 + i
            sl = (slice(box0[k, 1], box0[k, 1] + 2 * r + 1), slice(box0[k, 0], box0[k, 0] + 2 * r + 1))
            win, uwin = alpha[sl], u_map[sl]
            # Overlaps: the nucleus with the lower threshold (visible more often) owns its solid body, so a
            # hidden neighbour never leaves a crescent-shaped hole; it reads as occlusion instead.
            uk = int(u[owner[k]])
            take = _owns(stamp[i], uk, win, uwin)
            win[take] = stamp[i][take]
            uwin[take] = uk
            offset[0][sl][take] = np.broadcast_to(off_x[i], take.shape)[take]
            offset[1][sl][take] = np.broadcast_to(off_y[i], take.shape)[take]
    # Fold the margins back onto the torus so the texture tiles seamlessly.
    core_a = alpha[margin : margin + p, margin : margin + p]
    core_u = u_map[margin : margin + p, margin : margin + p]
    core_o = offset[:, margin : margin + p, margin : margin + p]
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            if ox == 0 and oy == 0:
                continue
            ys = slice(max(0, margin + oy * p), min(size, margin + (oy + 1) * p))
            xs = slice(max(0, margin + ox * p), min(size, margin + (ox + 1) * p))
            src_a, src_u, src_o = alpha[ys, xs], u_map[ys, xs], offset[:, ys, xs]
            ty, tx = ys.start - (margin + oy * p), xs.start - (margin + ox * p)
            dst = (slice(ty, ty + src_a.shape[0]), slice(tx, tx + src_a.shape[1]))
            dst_a, dst_u, dst_o = core_a[dst], core_u[dst], core_o[(slice(None), *dst)]
            take = _owns(src_a, src_u, dst_a, dst_u)
            dst_a[take] = src_a[take]
            dst_u[take] = src_u[take]
            dst_o[:, take] = src_o[:, take]
    return _NucleiTexture(np.round(core_a * 255).astype(np.uint8), core_u.copy(), core_o.copy())


def _owns(new_alpha: np.ndarray, new_u: np.ndarray | int, old_alpha: np.ndarray, old_u: np.ndarray) -> np.ndarray:
    """Pixels a new nucleus takes over: where it is stronger, unless an existing more-visible nucleus is solid there."""
    stronger = new_alpha > old_alpha
    solid_new = (new_alpha >= 0.5) & (new_u < old_u)
    blocked = (old_alpha >= 0.5) & (old_u < new_u)
    return (stronger & ~blocked) | solid_new


def _fat_membranes(
    rng: np.random.Generator, period_px: int, cell_um: float, membrane_um: float, mpp: float
) -> np.ndarray:
    """Periodic Voronoi membranes of adipocytes, coverage 0-255. (P, P) uint8."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    n_cells = max(4, round((period_px * mpp / cell_um) ** 2))
    seeds = rng.uniform(0, period_px, (n_cells, 2))
    tiled = np.concatenate([seeds + np.array([oy, ox]) * period_px for oy in (-1, 0, 1) for ox in (-1, 0, 1)])
    # (d2 - d1) to the two nearest seeds is ~twice the distance to the membrane; it is smooth enough to
    # compute on a coarse lattice and upsample, which keeps construction fast.
    step = 4
    n = period_px // step
    g = (np.arange(n) + 0.5) * step
    yy, xx = np.meshgrid(g, g, indexing="ij")
    d, _ = cKDTree(tiled).query(np.stack([yy.ravel(), xx.ravel()], 1), k=2)
    gap = (d[:, 1] - d[:, 0]).reshape(n, n).astype(np.float32)
    gap = ndimage.zoom(gap, step, order=1, mode="grid-wrap", grid_mode=True)[:period_px, :period_px]
    half_px = 0.5 * membrane_um / mpp
    cov = np.clip(half_px - gap / 2 + 0.5, 0, 1)
    return np.round(cov * 255).astype(np.uint8)


def _period_px(period_um: float, mpp: float) -> int:
    return max(4, round(period_um / mpp / MAX_TEXTURE_DOWNSAMPLE)) * MAX_TEXTURE_DOWNSAMPLE


def _ramp(v: np.ndarray, threshold: float, eps: float) -> np.ndarray:
    """0 below, 1 above ``threshold``, linear across a band of width ``eps`` (smooth region edges). New array."""
    if not math.isfinite(threshold):
        return np.zeros_like(v) if threshold > 0 else np.ones_like(v)
    out = v * np.float32(1.0 / eps)
    out += np.float32(0.5 - threshold / eps)
    return np.clip(out, 0.0, 1.0, out=out)


def _catmull_rom_weights(t: np.ndarray) -> np.ndarray:
    """Catmull-Rom weights of the 4 nodes around fractional positions ``t`` in [0, 1). (4, n) float32."""
    t2, t3 = t * t, t * t * t
    return np.stack(
        [
            0.5 * (-t3 + 2 * t2 - t),
            0.5 * (3 * t3 - 5 * t2 + 2),
            0.5 * (-3 * t3 + 4 * t2 + t),
            0.5 * (t3 - t2),
        ]
    ).astype(np.float32)


def _catmull_rom_slopes(t: np.ndarray) -> np.ndarray:
    """d/dt of the Catmull-Rom weights. (4, n) float32."""
    t2 = t * t
    return np.stack(
        [
            0.5 * (-3 * t2 + 4 * t - 1),
            0.5 * (9 * t2 - 10 * t),
            0.5 * (-9 * t2 + 8 * t + 1),
            0.5 * (3 * t2 - 2 * t),
        ]
    ).astype(np.float32)


class _Axis:
    """Cubic interpolation weights along one axis, for increasing node positions ``pos`` (in grid cells).

    Small node windows (level 0) use dense (nodes, n) matrices, applied in one vectorised product;
    large windows (reduced levels, where one pixel spans many cells) use the 4 nonzero taps per
    sample, whose cost does not grow with the window.
    """

    DENSE_MAX_NODES = 24

    def __init__(self, pos: np.ndarray, n_nodes: int, cell_px: float) -> None:
        pos = np.clip(pos, 0, n_nodes - 1 - 1e-6)
        i = pos.astype(np.intp)
        t = pos - i
        self.w = _catmull_rom_weights(t)  # (4, n)
        self.dw = _catmull_rom_slopes(t) / np.float32(cell_px)  # (4, n), per level-0 px
        self.lo = max(int(i[0]) - 1, 0)
        self.size = min(int(i[-1]) + 2, n_nodes - 1) - self.lo + 1  # nodes in the window
        self.taps = np.stack([np.clip(i - 1 + j, 0, n_nodes - 1) - self.lo for j in range(4)])  # (4, n)
        self.dense = self.size <= self.DENSE_MAX_NODES
        if self.dense:
            cols = np.arange(len(pos))
            self.mat = np.zeros((self.size, len(pos)), np.float32)  # (nodes, n)
            self.dmat = np.zeros_like(self.mat)
            for j in range(4):
                self.mat[self.taps[j], cols] += self.w[j]
                self.dmat[self.taps[j], cols] += self.dw[j]

    def apply_last(self, a: np.ndarray, derivative: bool = False) -> np.ndarray:
        """Interpolate along the last axis: (..., nodes) -> (..., n)."""
        if self.dense:
            # A tiny matmul: OpenBLAS keeps products this small single-threaded.
            return np.matmul(a, self.dmat if derivative else self.mat)
        w = self.dw if derivative else self.w
        out = a[..., self.taps[0]] * w[0]
        for j in (1, 2, 3):
            out += a[..., self.taps[j]] * w[j]
        return out

    def apply_middle(self, a: np.ndarray, derivative: bool = False) -> np.ndarray:
        """Interpolate along axis -2: (k, nodes, m) -> (k, n, m)."""
        if self.dense:
            # einsum, not a BLAS call: region-sized products wake OpenBLAS' thread pool on every call,
            # which made rendering 3x slower.
            return np.einsum("hr,krw->khw", (self.dmat if derivative else self.mat).T, a)
        w = self.dw if derivative else self.w
        out = a[:, self.taps[0]] * w[0][:, None]
        for j in (1, 2, 3):
            out += a[:, self.taps[j]] * w[j][:, None]
        return out


class _RegionSampler:
    """Smooth grid fields at the pixel centres of one region.

    Interpolation is separable cubic (Catmull-Rom; thresholded bilinear fields show straight,
    axis-aligned edge segments) over the few grid nodes involved, ~5x faster than per-pixel
    elementwise numpy. The node window also bounds each field over the region, so callers can skip
    fields (and whole tissue classes) that cannot reach their threshold there.
    """

    # Catmull-Rom overshoot: the positive 2-D weights sum to at most ~1.27, so a sample lies within
    # [min - 0.3 r, max + 0.3 r] of its nodes (r = their range).
    _OVERSHOOT = 0.3

    def __init__(self, fields: np.ndarray, cell_px: float, xs_px: np.ndarray, ys_px: np.ndarray) -> None:
        _, gh, gw = fields.shape
        self._x = _Axis(xs_px / cell_px, gw, cell_px)
        self._y = _Axis(ys_px / cell_px, gh, cell_px)
        y, x = self._y, self._x
        self.nodes = fields[:, y.lo : y.lo + y.size, x.lo : x.lo + x.size]  # (n_fields, ny, nx) view

    def upper(self, k: int) -> float:
        lo, hi = float(self.nodes[k].min()), float(self.nodes[k].max())
        return hi + self._OVERSHOOT * (hi - lo)

    def lower(self, k: int) -> float:
        lo, hi = float(self.nodes[k].min()), float(self.nodes[k].max())
        return lo - self._OVERSHOOT * (hi - lo)

    def sample(self, index: list[int]) -> np.ndarray:
        """(len(index), h, w) float32."""
        return self._y.apply_middle(self._x.apply_last(self.nodes[index]))

    def gradient(self, index: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Exact d/dx and d/dy of the interpolated fields, per level-0 px. 2 x (len(index), h, w) float32."""
        nodes = self.nodes[index]
        d_dx = self._y.apply_middle(self._x.apply_last(nodes, derivative=True))
        d_dy = self._y.apply_middle(self._x.apply_last(nodes), derivative=True)
        return d_dx, d_dy


# --------------------------------------------------------------------------------------------------
# Tissue model
# --------------------------------------------------------------------------------------------------

# Smooth fields, stacked on one coarse grid (index into _Model.fields).
_F_TISSUE, _F_PEN, _F_STAIN, _F_TUMOUR, _F_NECROSIS, _F_FAT, _F_LYMPH, _F_NEST, _F_DENSITY, _F_ORIENT = range(10)
# Basis colours (rows of _Model.palette); a pixel is a weighted sum of them plus glass.
_C_PALE, _C_DEEP, _C_EPI, _C_NEC, _C_FAT, _C_MEM, _C_NSTROMA, _C_NTUMOUR, _C_NMIT, _C_NLYMPH, _C_NDEBRIS = range(11)


@dataclass
class _Model:
    """Everything precomputed from the seed; private to SyntheticTissue."""

    cell_px: float
    fields: np.ndarray  # (n_fields, gh, gw) float32, node (i, j) at level-0 (j * cell_px, i * cell_px)
    thresholds: dict[str, float]
    eps: dict[str, float]  # ramp widths in field units
    tissue_edge_px: float  # width of the tissue/glass transition
    tissue_rough_px: float  # outline displacement per unit of (edge texture - 0.5)
    tissue_grad_max: float  # bound on |grad tissue field| (field units per px), for skipping glass
    pen_half_width_px: float
    pen_rgb: np.ndarray  # (3,) ink transmission
    palette: np.ndarray  # (11, 3) float32 basis colours after stain strengths
    tumour_nuclei: _NucleiTexture
    stromal_nuclei: _NucleiTexture
    lymphocytes: _NucleiTexture
    mitoses: _NucleiTexture
    debris: _NucleiTexture
    fibres_a: _ScalarTexture
    fibres_b: _ScalarTexture
    membranes: _ScalarTexture
    edge_noise: _ScalarTexture
    grain: _ScalarTexture


@dataclass
class SyntheticTissue:
    """A procedural H&E breast-tissue slide of ``width_px`` x ``height_px`` level-0 pixels at ``mpp``.

    Morphology parameters (plain floats, so a cohort generator can drive them from latent biology):

    - ``tissue_fraction``: fraction of the slide area covered by tissue.
    - ``tumour_fraction``: fraction of the tissue area that is tumour bed (nests + intervening stroma).
    - ``nuclear_density``: tumour cellularity, 0-1 (1 = nuclei cover about half of a tumour nest).
    - ``nuclear_size_um``: mean tumour nuclear diameter in microns (normal epithelium ~ 6-7).
    - ``pleomorphism``: 0-1; variation of nuclear size, shape and staining, vesicular chromatin, nucleoli.
    - ``mitotic_rate``: fraction of tumour nuclei in mitosis (0-0.1 is realistic).
    - ``lymphocyte_density``: 0-1; stromal lymphocytes (TILs) and the area of lymphoid aggregates.
    - ``necrosis_fraction``: fraction of the tumour bed that is necrotic.
    - ``fat_fraction``: fraction of the non-tumour tissue that is adipose.
    - ``eosin_strength`` / ``haematoxylin_strength``: stain intensity multipliers (batch effects).
    - ``pen_mark``: draw a marker stroke (``pen_colour``: green, blue, black) on the glass, clear of tissue.

    Tissue-piece and tumour-region sizes scale with the slide; cells, nests, fat lobules and
    lymphoid aggregates have physical sizes in microns. ``tile_fn`` renders any region at any
    downsample; ``tissue_mask`` / ``tumour_mask`` give the ground truth at any downsample.
    """

    width_px: int
    height_px: int
    seed: int = 0
    mpp: float = 0.25
    tissue_fraction: float = 0.4
    tumour_fraction: float = 0.3
    nuclear_density: float = 0.6
    nuclear_size_um: float = 9.0
    pleomorphism: float = 0.5
    mitotic_rate: float = 0.02
    lymphocyte_density: float = 0.3
    necrosis_fraction: float = 0.05
    fat_fraction: float = 0.2
    eosin_strength: float = 1.0
    haematoxylin_strength: float = 1.0
    pen_mark: bool = False
    pen_colour: str = "green"
    _model: _Model = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._validate()
        self._model = self._build()

    # -- construction ---------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.width_px < 64 or self.height_px < 64:
            raise ValueError(f"slide must be at least 64x64 px, got {self.width_px}x{self.height_px}")
        if not 0.05 <= self.mpp <= 20:
            raise ValueError(f"mpp {self.mpp} is not a microscope resolution")
        if not 0.01 <= self.tissue_fraction <= 0.9:
            raise ValueError(f"tissue_fraction must be in [0.01, 0.9], got {self.tissue_fraction}")
        for name in (
            "tumour_fraction",
            "nuclear_density",
            "pleomorphism",
            "mitotic_rate",
            "lymphocyte_density",
            "necrosis_fraction",
            "fat_fraction",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if not 2.0 <= self.nuclear_size_um <= 40.0:
            raise ValueError(f"nuclear_size_um {self.nuclear_size_um} is outside 2-40 µm")
        for name in ("eosin_strength", "haematoxylin_strength"):
            if not 0.2 <= getattr(self, name) <= 2.0:
                raise ValueError(f"{name} must be in [0.2, 2.0]")
        if self.pen_colour not in PEN_TRANSMISSION:
            raise ValueError(f"pen_colour must be one of {sorted(PEN_TRANSMISSION)}")

    def _build(self) -> _Model:
        rng = np.random.default_rng(self.seed)
        w, h, mpp = self.width_px, self.height_px, self.mpp
        um = 1.0 / mpp  # level-0 px per micron
        short_px = min(w, h)
        # Grid fine enough for 40 µm nests on big slides and for the tissue outline on small ones.
        cell_px = float(np.clip(short_px / 96, 4.0, 16.0 * um))
        gw, gh = math.ceil(w / cell_px) + 2, math.ceil(h / cell_px) + 2
        shape = (gh, gw)

        def noise(scale_px: float) -> np.ndarray:
            return _smooth_noise(rng, shape, scale_px / cell_px)

        tissue_scale_px = 0.3 * short_px
        tumour_scale_px = 0.3 * tissue_scale_px
        tissue = noise(tissue_scale_px) + 0.45 * noise(tissue_scale_px / 2.5) + 0.2 * noise(tissue_scale_px / 6)
        gy = (np.arange(gh) * cell_px)[:, None]
        gx = (np.arange(gw) * cell_px)[None, :]
        # Tissue keeps clear of the slide edges, as on a real section.
        # Tissue keeps clear of the slide edges, as on a real section; the clearance undulates so the
        # outline never runs parallel to the slide edge.
        to_edge_px = np.minimum(np.minimum(gx, w - gx), np.minimum(gy, h - gy)) + 0.04 * short_px * noise(
            0.1 * short_px
        )
        border = np.clip(to_edge_px / (0.1 * short_px), 0, 1)
        tissue = tissue - 8.0 * (1 - border) ** 2

        pen_half_px = float(np.clip(0.015 * short_px, 8.0, 250.0 * um))
        pen_dist = np.full(shape, 1e6, np.float32)
        if self.pen_mark:
            pen_dist = self._pen_distance(rng, gx, gy, reach_px=8 * pen_half_px + 0.1 * short_px)
            # Keep tissue off the stroke, so the pen sits on glass (what a tissue detector must reject).
            tissue = tissue - 4.0 * np.clip(1.0 - pen_dist / (2 * pen_half_px + 0.04 * short_px), 0, 1)
        fields = np.stack(
            [
                tissue,
                pen_dist,
                noise(0.4 * short_px),
                noise(tumour_scale_px) + 0.4 * noise(tumour_scale_px / 3),
                noise(max(0.3 * tumour_scale_px, 60 * um)) + 0.35 * noise(25 * um),  # ragged necrosis
                noise(max(0.15 * tissue_scale_px, 150 * um)) + 0.3 * noise(60 * um),
                noise(25 * um),
                noise(35 * um) + 0.35 * noise(12 * um),
                noise(60 * um),
                noise(max(0.2 * tissue_scale_px, 200 * um)),
            ]
        ).astype(np.float32)

        gy_t, gx_t = np.gradient(fields[_F_TISSUE])
        # x1.5: the cubic interpolant can be steeper than finite differences between nodes.
        tissue_grad_max = 1.5 * float(np.hypot(gx_t, gy_t).max()) / cell_px

        def quantile(values: np.ndarray, keep: float) -> float:
            if keep <= 0 or values.size == 0:
                return math.inf
            if keep >= 1:
                return -math.inf
            return float(np.quantile(values, 1.0 - keep))

        def eps_for(f: np.ndarray, thr: float, edge_um: float) -> float:
            # Field units per level-0 px across the threshold contour turn an edge width in µm into a ramp width.
            if not math.isfinite(thr):
                return 1.0
            gyf, gxf = np.gradient(f)
            mag = np.hypot(gxf, gyf) / cell_px
            near = np.abs(f - thr) < 0.25
            return max(float(np.median(mag[near] if near.any() else mag)), 1e-9) * edge_um * um

        # Thresholds are calibrated on the grid nodes inside the slide, so the requested area
        # fractions hold for the rendered slide and its masks.
        inside = (gy < h) & (gx < w)
        thr: dict[str, float] = {}
        eps: dict[str, float] = {}
        thr["tissue"] = quantile(fields[_F_TISSUE][inside], self.tissue_fraction)
        in_tissue = inside & (fields[_F_TISSUE] >= thr["tissue"])
        thr["tumour"] = quantile(fields[_F_TUMOUR][in_tissue], self.tumour_fraction)
        eps["tumour"] = eps_for(fields[_F_TUMOUR], thr["tumour"], 15.0)
        in_tumour = in_tissue & (fields[_F_TUMOUR] >= thr["tumour"])
        thr["necrosis"] = quantile(fields[_F_NECROSIS][in_tumour], self.necrosis_fraction)
        eps["necrosis"] = eps_for(fields[_F_NECROSIS], thr["necrosis"], 10.0)
        normal = in_tissue & ~in_tumour
        thr["fat"] = quantile(fields[_F_FAT][normal], self.fat_fraction)
        eps["fat"] = eps_for(fields[_F_FAT], thr["fat"], 6.0)
        # Stationary micro-architecture: thresholds from the whole grid.
        thr["lymph"] = quantile(fields[_F_LYMPH].ravel(), 0.12 * self.lymphocyte_density)
        eps["lymph"] = eps_for(fields[_F_LYMPH], thr["lymph"], 6.0)
        # Solid, highly cellular tumours have larger nests with less stroma between them.
        thr["nest"] = quantile(fields[_F_NEST].ravel(), 0.45 + 0.35 * self.nuclear_density)
        eps["nest"] = eps_for(fields[_F_NEST], thr["nest"], 2.0)

        # Periodic textures (~256 µm), sizes in level-0 px.
        p = _period_px(256.0, mpp)
        pleo = self.pleomorphism
        tum_d = self.nuclear_size_um * um
        # At nuclear_density = 1 nuclei cover ~55% of a nest; the visible share is chosen per pixel.
        tum_count = int(0.55 * p * p / (math.pi * (tum_d / 2) ** 2 * (1 + 0.6 * pleo)))
        tumour_nuclei = _draw_nuclei(
            rng,
            p,
            tum_count,
            tum_d,
            0.08 + 0.3 * pleo,
            (1.15 + 0.3 * pleo, 0.1 + 0.25 * pleo),
            (0.82, 0.05 + 0.15 * pleo),
            vesicular=0.15 + 0.45 * pleo,
            nucleolus=0.6 * pleo,
            chromatin=0.12 + 0.2 * pleo,
        )
        stromal_d = 5.5 * um
        stromal_nuclei = _draw_nuclei(
            rng,
            p,
            int(0.12 * p * p / (math.pi * (stromal_d / 2) ** 2)),
            stromal_d,
            0.15,
            (4.0, 1.0),
            (0.8, 0.08),
        )
        lym_d = 6.5 * um
        lymphocytes = _draw_nuclei(
            rng,
            p,
            int(0.55 * p * p / (math.pi * (lym_d / 2) ** 2)),
            lym_d,
            0.08,
            (1.05, 0.05),
            (0.95, 0.04),
            chromatin=0.05,
        )
        mitoses = _draw_nuclei(
            rng,
            p,
            max(4, tum_count // 10),
            tum_d * 0.9,
            0.15,
            (2.0, 0.6),
            (1.0, 0.02),
            chromatin=0.1,
            lobes=6,
        )
        debris = _draw_nuclei(
            rng,
            p,
            int(0.08 * p * p / (math.pi * (5 * um / 2) ** 2)),
            5 * um,
            0.3,
            (1.3, 0.3),
            (0.7, 0.15),
            lobes=4,
        )
        fibres_a = _periodic_noise(rng, p, 18 * um, 1.5 * um, rng.uniform(0, math.pi))
        fibres_b = _periodic_noise(rng, p, 18 * um, 1.5 * um, rng.uniform(0, math.pi))
        edge = _periodic_noise(rng, p, 4 * um, 4 * um, 0.0)
        grain = rng.integers(0, 256, (p, p), dtype=np.uint8)
        membranes = _fat_membranes(rng, _period_px(512.0, mpp), cell_um=70.0, membrane_um=2.0, mpp=mpp)

        def fibre_u8(f: np.ndarray) -> np.ndarray:
            # Collagen bundles (1) with pale clefts between them (0).
            return np.round(255 / (1 + np.exp(-2.2 * f))).astype(np.uint8)

        def stained(rgb: tuple[float, float, float], strength: float) -> tuple[float, float, float]:
            r, g, b = (255.0 - (255.0 - c) * strength for c in rgb)
            return (r, g, b)

        eo, hx = self.eosin_strength, self.haematoxylin_strength
        palette = np.array(
            [
                stained(c, eo)
                for c in (STROMA_PALE_RGB, STROMA_DEEP_RGB, EPITHELIUM_RGB, NECROSIS_RGB, FAT_RGB, MEMBRANE_RGB)
            ]
            + [stained(c, hx) for c in (STROMAL_NUCLEUS_RGB, NUCLEUS_RGB, MITOSIS_RGB, LYMPHOCYTE_RGB, DEBRIS_RGB)],
            np.float32,
        ).clip(0, 255)
        edge_rough_um = 5.0
        return _Model(
            cell_px=cell_px,
            fields=fields,
            thresholds=thr,
            eps=eps,
            tissue_edge_px=3.0 * um,
            # The edge texture stores 128 + 50 * N(0, 1): one SD moves the outline by edge_rough_um.
            tissue_rough_px=edge_rough_um * um * 255.0 / 50.0,
            tissue_grad_max=tissue_grad_max,
            pen_half_width_px=pen_half_px,
            pen_rgb=np.array(PEN_TRANSMISSION[self.pen_colour], np.float32),
            palette=palette,
            tumour_nuclei=tumour_nuclei,
            stromal_nuclei=stromal_nuclei,
            lymphocytes=lymphocytes,
            mitoses=mitoses,
            debris=debris,
            fibres_a=_ScalarTexture(fibre_u8(fibres_a)),
            fibres_b=_ScalarTexture(fibre_u8(fibres_b)),
            membranes=_ScalarTexture(membranes),
            edge_noise=_ScalarTexture(np.round(np.clip(edge * 50 + 128, 0, 255)).astype(np.uint8)),
            grain=_ScalarTexture(grain),
        )

    def _pen_distance(self, rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray, reach_px: float) -> np.ndarray:
        """Distance in level-0 px from each grid node to a wavy marker stroke near one slide edge. (gh, gw)."""
        from scipy.spatial import cKDTree

        horizontal = self.width_px >= self.height_px
        length_px, across_px = (self.width_px, self.height_px) if horizontal else (self.height_px, self.width_px)
        start = rng.uniform(0.08, 0.3)
        t = np.linspace(start, start + rng.uniform(0.4, 0.6), 4000) * length_px
        side = 0.1 if rng.random() < 0.5 else 0.9  # in the glass margin, where pathologists mark slides
        wobble = 0.03 * across_px * np.sin(2 * np.pi * t / length_px * rng.uniform(1.0, 2.5) + rng.uniform(0, 6))
        along, across = t, side * across_px + wobble
        xs, ys = (along, across) if horizontal else (across, along)
        nodes = np.stack(np.broadcast_arrays(gy, gx), -1).reshape(-1, 2)
        d, _ = cKDTree(np.stack([ys, xs], 1)).query(nodes, distance_upper_bound=reach_px)
        # Capped, not infinite: the cubic interpolation would ring across a jump to infinity.
        return np.minimum(d, reach_px).reshape(gy.shape[0], gx.shape[1]).astype(np.float32)

    # -- region evaluation ------------------------------------------------------------------------
    def _region(self, x0_px: float, y0_px: float, w: int, h: int, ds: float) -> _RegionSampler:
        # Pixel centres in level-0 px: the same point is sampled whichever tile or level asks.
        xs = x0_px + (np.arange(w, dtype=np.float64) + 0.5) * ds
        ys = y0_px + (np.arange(h, dtype=np.float64) + 0.5) * ds
        return _RegionSampler(self._model.fields, self._model.cell_px, xs, ys)

    def _tissue_alpha(
        self, region: _RegionSampler, x0_px: float, y0_px: float, w: int, h: int, ds: float
    ) -> np.ndarray | None:
        """Tissue coverage 0-1, or None where the region is certainly glass. (h, w) float32.

        The edge is a ramp over the signed distance to the outline, (field - threshold) / |gradient|, so
        its width and roughness are the same in microns wherever the outline lies, even where the field
        is steep (near the slide border).
        """
        m = self._model
        thr = m.thresholds["tissue"]
        reach_px = 0.5 * m.tissue_rough_px + m.tissue_edge_px  # farthest glass pixel that can be tissue
        if region.upper(_F_TISSUE) <= thr - reach_px * m.tissue_grad_max:
            return None
        v = region.sample([_F_TISSUE])[0]
        gx, gy = region.gradient([_F_TISSUE])
        dist_px = (v - np.float32(thr)) / np.maximum(np.hypot(gx[0], gy[0]), np.float32(1e-12))
        rough = m.edge_noise.sample(x0_px, y0_px, w, h, ds)
        dist_px += (np.asarray(rough, np.float32) - np.float32(0.5)) * np.float32(m.tissue_rough_px)
        dist_px *= np.float32(1.0 / m.tissue_edge_px)
        dist_px += np.float32(0.5)
        return np.clip(dist_px, 0.0, 1.0, out=dist_px)

    def _masks_region(self, x0_px: float, y0_px: float, w: int, h: int, ds: float) -> tuple[np.ndarray, np.ndarray]:
        m = self._model
        region = self._region(x0_px, y0_px, w, h, ds)
        t = self._tissue_alpha(region, x0_px, y0_px, w, h, ds)
        if t is None:
            empty = np.zeros((h, w), bool)
            return empty, empty
        tissue = t >= 0.5
        bed = _ramp(region.sample([_F_TUMOUR])[0], m.thresholds["tumour"], m.eps["tumour"])
        return tissue, tissue & (bed >= 0.5)

    def _mask(self, downsample: float, which: int) -> np.ndarray:
        ds = float(downsample)
        if ds <= 0:
            raise ValueError("downsample must be positive")
        w, h = math.ceil(self.width_px / ds), math.ceil(self.height_px / ds)
        out = np.zeros((h, w), bool)
        step = 512  # blocks small enough to stay in cache
        for r in range(0, h, step):
            for c in range(0, w, step):
                hh, ww = min(step, h - r), min(step, w - c)
                # Block origins at r * ds exactly, so the mask samples the same pixel centres as tile_fn.
                out[r : r + hh, c : c + ww] = self._masks_region(c * ds, r * ds, ww, hh, ds)[which]
        return out

    def tissue_mask(self, downsample: float) -> np.ndarray:
        """Ground-truth tissue (True) vs glass at ``downsample``. (ceil(H / ds), ceil(W / ds)) bool."""
        return self._mask(downsample, 0)

    def tumour_mask(self, downsample: float) -> np.ndarray:
        """Ground-truth tumour bed (nests, their stroma, necrosis) at ``downsample``. (ceil(H / ds), ceil(W / ds)) bool."""
        return self._mask(downsample, 1)

    def tile_fn(self, x0_px: int, y0_px: int, w_px: int, h_px: int, level_downsample: float) -> np.ndarray:
        """RGB of the region with level-0 top-left (x0_px, y0_px), w_px x h_px output pixels at
        ``level_downsample``. (h_px, w_px, 3) uint8. Thread-safe; a pure function of its arguments."""
        ds = float(level_downsample)
        w, h = int(w_px), int(h_px)
        block = 256  # work in cache-sized blocks; every pixel depends only on its own coordinates
        if w <= block and h <= block:
            return self._render(x0_px, y0_px, w, h, ds)
        out = np.empty((h, w, 3), np.uint8)
        for r in range(0, h, block):
            for c in range(0, w, block):
                hh, ww = min(block, h - r), min(block, w - c)
                out[r : r + hh, c : c + ww] = self._render(x0_px + c * ds, y0_px + r * ds, ww, hh, ds)
        return out

    def _render(self, x0_px: float, y0_px: float, w: int, h: int, ds: float) -> np.ndarray:
        """One cache-sized block. (h, w, 3) uint8."""
        m = self._model
        region = self._region(x0_px, y0_px, w, h, ds)
        glass = np.full((h, w), GLASS_RGB[0], np.float32)
        if ds < 4:
            # Sensor grain; it averages away on reduced levels.
            glass += (np.asarray(m.grain.sample(x0_px, y0_px, w, h, ds), np.float32) - 0.5) * np.float32(5.0 / ds)
        t = self._tissue_alpha(region, x0_px, y0_px, w, h, ds)
        if t is not None and float(t.max()) > 0:
            out = self._tissue_rgb(region, t, x0_px, y0_px, w, h, ds)  # (3, h, w), already weighted by t
            out += glass * (1 - t)
        else:
            out = np.repeat(glass[None], 3, axis=0)
        if self.pen_mark and region.lower(_F_PEN) < m.pen_half_width_px + 2.0 / self.mpp:
            pen_dist, wobble = region.sample([_F_PEN, _F_STAIN])
            pen = np.clip((m.pen_half_width_px - pen_dist) * np.float32(self.mpp / 3.0) + 0.5, 0, 1)
            # Ink absorbs (multiplies); its density varies a little along the stroke.
            pen *= 0.85 + 0.15 * np.tanh(wobble)
            out *= 1 - pen[None] * (1 - m.pen_rgb)[:, None, None]
        out += 0.5
        np.clip(out, 0, 255, out=out)
        return out.transpose(1, 2, 0).astype(np.uint8, order="C")

    def _tissue_rgb(
        self, region: _RegionSampler, t: np.ndarray, x0_px: float, y0_px: float, w: int, h: int, ds: float
    ) -> np.ndarray:
        """Tissue colour times tissue coverage ``t`` for a region. (3, h, w) float32.

        Colour is a weighted sum of the basis palette, linear so that reduced levels agree with
        averaged level-0 pixels. Tissue classes whose field cannot reach its threshold in this region
        are skipped.
        """
        m = self._model
        thr, eps = m.thresholds, m.eps
        zero = np.zeros((h, w), np.float32)

        def present(k: int, name: str) -> bool:
            # Generous margin: nuclei take their class from their centre, up to a nucleus radius away.
            return region.upper(k) > thr[name] - 2.0 * eps[name]

        need = [_F_STAIN, _F_ORIENT]
        has_bed, has_fat, has_lymph = present(_F_TUMOUR, "tumour"), present(_F_FAT, "fat"), present(_F_LYMPH, "lymph")
        need += [_F_TUMOUR, _F_NEST, _F_NECROSIS, _F_DENSITY] if has_bed else []
        need += [_F_FAT] if has_fat else []
        need += [_F_LYMPH] if has_lymph else []
        f = dict(zip(need, region.sample(need), strict=True))  # field index -> (h, w)

        if has_bed:
            bed = _ramp(f[_F_TUMOUR], thr["tumour"], eps["tumour"])
            epi = bed * _ramp(f[_F_NEST], thr["nest"], eps["nest"])  # tumour epithelium
            nec = bed * _ramp(f[_F_NECROSIS], thr["necrosis"], eps["necrosis"])
            density_mod = np.clip(1.0 + 0.18 * f[_F_DENSITY], 0.6, 1.4)
        else:
            bed = epi = nec = zero
        fat = (1 - bed) * _ramp(f[_F_FAT], thr["fat"], eps["fat"]) if has_fat else zero
        viable = 1 - nec

        # A nucleus belongs to the nest or aggregate its centre lies in, so nuclei on a boundary stay whole:
        # the fine fields are evaluated at each nucleus' centre by one step along their exact gradient.
        centre_keys = [k for k in (_F_NEST, _F_LYMPH) if k in f]
        slope: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if centre_keys and _texture_downsample(m.tumour_nuclei.period_px, ds) == 1:
            gx, gy = region.gradient(centre_keys)
            slope = {k: (gx[i], gy[i]) for i, k in enumerate(centre_keys)}

        def at_centres(tex: _NucleiTexture, k: int, name: str) -> np.ndarray:
            if k not in f:
                return zero
            off = tex.offsets(x0_px, y0_px, w, h, ds) if k in slope else None
            v = f[k] if off is None else f[k] + slope[k][0] * off[0] + slope[k][1] * off[1]
            return _ramp(v, thr[name], eps[name])

        # Haematoxylin: nuclear coverage of each kind, restricted to where that kind lives.
        weights: dict[int, np.ndarray] = {}
        tex = m.stromal_nuclei
        not_epi = 1 - bed * at_centres(tex, _F_NEST, "nest")
        weights[_C_NSTROMA] = (
            tex.coverage(x0_px, y0_px, w, h, ds, 0.35) * not_epi * viable * (1 - at_centres(tex, _F_LYMPH, "lymph"))
        )
        if has_bed:
            dens = self.nuclear_density * density_mod
            tex = m.tumour_nuclei
            weights[_C_NTUMOUR] = (
                tex.coverage(x0_px, y0_px, w, h, ds, dens) * bed * at_centres(tex, _F_NEST, "nest") * viable
            )
            if self.mitotic_rate > 0:
                # The mitosis texture holds 10% as many figures as there are tumour nuclei.
                tex = m.mitoses
                mit = np.clip(10.0 * self.mitotic_rate * dens, 0, 1)
                weights[_C_NMIT] = (
                    tex.coverage(x0_px, y0_px, w, h, ds, mit) * bed * at_centres(tex, _F_NEST, "nest") * viable
                )
        if self.lymphocyte_density > 0:
            # Scattered TILs in stroma (denser in the tumour bed), packed in aggregates.
            tex = m.lymphocytes
            til = self.lymphocyte_density * (0.06 + 0.14 * bed)
            lym_density = til + (0.9 - til) * at_centres(tex, _F_LYMPH, "lymph")
            not_epi = 1 - bed * at_centres(tex, _F_NEST, "nest")
            weights[_C_NLYMPH] = tex.coverage(x0_px, y0_px, w, h, ds, lym_density) * not_epi * viable
        if float(nec.max()) > 0:
            weights[_C_NDEBRIS] = m.debris.coverage(x0_px, y0_px, w, h, ds, 0.7) * nec
        nuclei = np.minimum(sum(weights.values()), 1.0)

        # Eosin background under the nuclei: fibrous stroma in two local orientations, epithelium, necrosis.
        tf = t * (1 - fat)
        for k in weights:
            weights[k] *= tf
        rest = tf * (1 - nuclei)
        if has_bed:
            weights[_C_NEC] = rest * nec
            rest = rest - weights[_C_NEC]
            weights[_C_EPI] = rest * epi
            rest = rest - weights[_C_EPI]
        fa = m.fibres_a.sample(x0_px, y0_px, w, h, ds)
        fb = m.fibres_b.sample(x0_px, y0_px, w, h, ds)
        orient = np.clip(0.5 + 0.8 * f[_F_ORIENT], 0, 1)
        fib = np.clip(fa + (fb - fa) * orient + 0.1 * f[_F_STAIN], 0, 1)  # 0 pale cleft .. 1 dense collagen
        weights[_C_DEEP] = rest * fib
        weights[_C_PALE] = rest - weights[_C_DEEP]
        if float(fat.max()) > 0:
            adipose = t * fat
            weights[_C_MEM] = adipose * m.membranes.sample(x0_px, y0_px, w, h, ds)
            weights[_C_FAT] = adipose - weights[_C_MEM]

        keys = list(weights)
        stack = np.stack([np.broadcast_to(weights[k], (h, w)) for k in keys])  # (K, h, w)
        return np.einsum("kc,khw->chw", m.palette[keys], stack)  # not BLAS; see _RegionSampler


# --------------------------------------------------------------------------------------------------
# Convenience
# --------------------------------------------------------------------------------------------------


def objective_power_for_mpp(mpp: float) -> int:
    """Nominal objective of a scan: 40x ~ 0.25 µm/px, 20x ~ 0.5, 10x ~ 1.0."""
    return int(max(1, round(10.0 / mpp / 10) * 10)) if mpp <= 1.0 else max(1, round(10.0 / mpp))


def write_synthetic_slide(
    path: str | os.PathLike[str],
    width_px: int,
    height_px: int,
    *,
    seed: int,
    mpp: float = 0.25,
    tissue_fraction: float = 0.4,
    objective_power: float | None = None,
    jpeg_quality: int = 80,
    workers: int | None = None,
    **tissue_params: Any,
) -> SyntheticTissue:
    """Write a synthetic Aperio-style slide and return its :class:`SyntheticTissue` (for ground truth).

    ``tissue_params`` are the other :class:`SyntheticTissue` fields (``tumour_fraction``,
    ``nuclear_density``, ``pen_mark``, ...). ``objective_power`` defaults to the nominal one for ``mpp``.
    """
    tissue = SyntheticTissue(
        width_px=width_px, height_px=height_px, seed=seed, mpp=mpp, tissue_fraction=tissue_fraction, **tissue_params
    )
    write_aperio_tiff(
        path,
        width_px,
        height_px,
        tissue.tile_fn,
        mpp=mpp,
        objective_power=objective_power if objective_power is not None else objective_power_for_mpp(mpp),
        jpeg_quality=jpeg_quality,
        workers=workers,
    )
    return tissue


def save_masks_png(
    tissue: SyntheticTissue, path_prefix: str | os.PathLike[str], downsample: float
) -> tuple[Path, Path]:
    """Write ``{prefix}_tissue.png`` and ``{prefix}_tumour.png`` (0 / 255, one pixel per ``downsample``
    level-0 pixels) and return their paths."""
    from PIL import Image

    prefix = str(path_prefix)
    out = (Path(f"{prefix}_tissue.png"), Path(f"{prefix}_tumour.png"))
    out[0].parent.mkdir(parents=True, exist_ok=True)
    for p, mask in zip(out, (tissue.tissue_mask(downsample), tissue.tumour_mask(downsample)), strict=True):
        Image.fromarray(mask.astype(np.uint8) * 255).save(p)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import time

    ap = argparse.ArgumentParser(description="Write a synthetic Aperio-style H&E slide with ground-truth masks.")
    ap.add_argument("path")
    ap.add_argument("width_px", type=int)
    ap.add_argument("height_px", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mpp", type=float, default=0.25)
    ap.add_argument("--tissue-fraction", type=float, default=0.4)
    ap.add_argument("--tumour-fraction", type=float, default=0.3)
    ap.add_argument("--pen-mark", action="store_true")
    ap.add_argument("--masks-downsample", type=float, default=0.0, help="also write mask PNGs at this downsample")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tissue = write_synthetic_slide(
        args.path,
        args.width_px,
        args.height_px,
        seed=args.seed,
        mpp=args.mpp,
        tissue_fraction=args.tissue_fraction,
        tumour_fraction=args.tumour_fraction,
        pen_mark=args.pen_mark,
    )
    size_mb = Path(args.path).stat().st_size / 1e6
    print(
        f"wrote {args.path}: {args.width_px}x{args.height_px} px, {size_mb:.1f} MB in {time.perf_counter() - t0:.1f} s"
    )
    if args.masks_downsample > 0:
        stem = str(Path(args.path).with_suffix(""))
        for p in save_masks_png(tissue, stem, args.masks_downsample):
            print(f"wrote {p}")


if __name__ == "__main__":
    main()
