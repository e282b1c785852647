"""A streaming writer of tiled, JPEG-compressed, pyramidal Aperio-style TIFFs (SVS layout), for any
procedurally rendered slide: OpenSlide opens the result as vendor ``"aperio"``.

Tiles are rendered and JPEG-encoded in worker processes and never held all at once: a 60,000 x 40,000 px
slide is 7 GB of RGB but is written with a few MB in flight (~55 s on 2 cores, 170 MB).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mrrp._fs import atomic_path

# tile_fn(x0_px, y0_px, w_px, h_px, level_downsample) -> (h_px, w_px, 3) uint8. (x0_px, y0_px) is the
# top-left corner in level-0 pixels; (w_px, h_px) is the output size in pixels of that downsample.
TileFn = Callable[[int, int, int, int, float], np.ndarray]

APERIO_HEADER = "Aperio Image Library v12.0.0"
THUMBNAIL_MAX_PX = 1024


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
    levels = _check_levels(width_px, height_px, tile_px, downsamples)
    if bigtiff is None:
        bigtiff = width_px * height_px * 3 > 2**31
    n_workers = max(1, workers or os.cpu_count() or 1)
    tiles_per_block = 4
    tags = _tiff_tags(mpp, jpeg_quality)
    describe = functools.partial(
        _aperio_description, width_px, height_px, tile_px, jpeg_quality, mpp, objective_power, out.name
    )
    with atomic_path(out) as tmp:
        executor, worker_tile_fn = _make_executor(n_workers, tile_fn)
        with executor or _no_executor(), tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tw:
            for i, ds in enumerate(levels):
                lw, lh = _level_size(width_px, height_px, ds)
                tiles = _level_tiles(
                    executor, worker_tile_fn, (lw, lh, ds), tile_px, jpeg_quality, tiles_per_block, 3 * n_workers
                )
                tw.write(
                    tiles,
                    shape=(lh, lw, 3),
                    dtype=np.uint8,
                    tile=(tile_px, tile_px),
                    description=describe(reduced_to=None if i == 0 else (lw, lh)),
                    subfiletype=0 if i == 0 else 1,
                    **tags,
                )
                if i == 0 and thumbnail:
                    # Aperio puts the thumbnail second; OpenSlide names a stripped directory 1 "thumbnail".
                    thumb = _thumbnail(tile_fn, width_px, height_px)
                    th_px, tw_px = thumb.shape[:2]
                    tw.write(thumb, description=describe(reduced_to=(tw_px, th_px)), rowsperstrip=16, **tags)


def _check_levels(width_px: int, height_px: int, tile_px: int, downsamples: Sequence[int] | None) -> tuple[int, ...]:
    """The pyramid's downsamples, checked (integers from 1, increasing), and the slide and tile sizes."""
    if width_px < 1 or height_px < 1:
        raise ValueError(f"slide size must be positive, got {width_px}x{height_px}")
    if tile_px % 16:
        raise ValueError("tile_px must be a multiple of 16 (JPEG 4:2:0 MCU)")
    levels = tuple(int(d) for d in (downsamples or default_downsamples(width_px, height_px, tile_px)))
    if levels[0] != 1 or any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
        raise ValueError(f"downsamples must start at 1 and increase, got {levels}")
    return levels


def _tiff_tags(mpp: float, jpeg_quality: int) -> dict[str, Any]:
    """The TIFF tags every directory shares."""
    return {
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": jpeg_quality},
        "subsampling": (2, 2),
        "metadata": None,  # no tifffile JSON description: OpenSlide would read it instead of ours
        "resolution": (1e4 / mpp, 1e4 / mpp),  # pixels per cm
        "resolutionunit": "CENTIMETER",
        "software": "mrrp.synth.wsi",
    }


def _thumbnail(tile_fn: TileFn, width_px: int, height_px: int) -> np.ndarray:
    """The whole slide with its longer side at most THUMBNAIL_MAX_PX, rendered directly. (h, w, 3) uint8."""
    thumb_ds = max(width_px, height_px) / THUMBNAIL_MAX_PX
    tw_px, th_px = (
        (width_px, height_px)
        if thumb_ds <= 1
        else (max(1, round(width_px / thumb_ds)), max(1, round(height_px / thumb_ds)))
    )
    thumb_ds = max(1.0, max(width_px / tw_px, height_px / th_px))
    return _render_checked(tile_fn, 0, 0, tw_px, th_px, thumb_ds)
