"""From a slide file to tile features: tissue → grid → read tiles → encode → cache.

Reading and encoding overlap: reader threads decode JPEG tiles (OpenSlide releases the GIL
inside its C calls) while the main thread runs the encoder, so the slower of the two sets
the pace instead of their sum.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mrrp.errors import InvalidValueError
from mrrp.features.encoders import DEFAULT_ENCODER, TileEncoder, get_encoder
from mrrp.features.store import FeatureCache, SlideFeatures
from mrrp.io.slides import Slide, open_slide, slide_fingerprint
from mrrp.slides.tiling import (
    DEFAULT_MIN_TISSUE_FRACTION,
    DEFAULT_TARGET_MPP,
    TileGrid,
    make_tile_grid,
)
from mrrp.slides.tissue import DEFAULT_MASK_MPP, TissueMask, detect_tissue

# progress(done_tiles, total_tiles)
ProgressFn = Callable[[int, int], None]

DEFAULT_BATCH_SIZE = 8  # small batches keep activations in cache on CPU; see benchmarks/results.md
# Reader threads overlap JPEG decoding with encoding, but on 2 cores they compete with torch's
# own threads and the run gets slower (measured: 7.5 s threaded vs 6.2 s sequential for 1,125
# tiles); with more cores the overlap wins.
DEFAULT_NUM_READERS = 0 if (os.cpu_count() or 1) <= 2 else 2


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or not (1 <= batch_size <= 1024):
        raise InvalidValueError(f"The batch size must be a whole number from 1 to 1024, not {batch_size}.")


def read_tile_batches(
    slide: Slide,
    coords_l0: np.ndarray,
    tile_size_l0: int,
    tile_size_px: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_readers: int = DEFAULT_NUM_READERS,
    prefetch_batches: int = 4,
) -> Iterator[np.ndarray]:
    """Yield (B, tile_size_px, tile_size_px, 3) uint8 batches of tiles in ``coords_l0`` order.

    ``num_readers`` threads decode ahead of the consumer; 0 reads in the calling thread.
    Each tile is read from the pyramid level just finer than the working resolution and
    resized (box filter) to ``tile_size_px``. Memory: at most ``prefetch_batches`` batches.
    """
    from PIL import Image

    _check_batch_size(batch_size)
    downsample = tile_size_l0 / tile_size_px
    level = slide.best_level_for_downsample(downsample)
    level_ds = slide.info.level_downsamples[level]
    read_px = max(1, int(math.ceil(tile_size_l0 / level_ds)))

    def read_one(xy: np.ndarray) -> np.ndarray:
        tile = slide.read_region((int(xy[0]), int(xy[1])), level, (read_px, read_px))
        if read_px != tile_size_px:
            tile = np.asarray(Image.fromarray(tile).resize((tile_size_px, tile_size_px), Image.Resampling.BOX))
        return tile

    def read_batch(start: int) -> np.ndarray:
        chunk = coords_l0[start : start + batch_size]
        return np.stack([read_one(xy) for xy in chunk])

    starts = iter(range(0, len(coords_l0), batch_size))
    if num_readers == 0:
        for s in starts:
            yield read_batch(s)
        return
    with ThreadPoolExecutor(max_workers=max(1, num_readers), thread_name_prefix="mrrp-read") as pool:
        pending = deque(pool.submit(read_batch, s) for s in itertools.islice(starts, prefetch_batches))
        while pending:
            batch = pending.popleft().result()  # re-raises CorruptSlideError from a reader thread
            nxt = next(starts, None)
            if nxt is not None:
                pending.append(pool.submit(read_batch, nxt))
            yield batch


def encode_tiles(
    slide: Slide,
    grid: TileGrid,
    encoder: TileEncoder,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_readers: int = DEFAULT_NUM_READERS,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """(N, D) float32 features of every tile in ``grid``."""
    if grid.tile_size_px != encoder.input_size_px:
        raise InvalidValueError(
            f"The tile size ({grid.tile_size_px} px) must equal the encoder's input size "
            f"({encoder.input_size_px} px for {encoder.name})."
        )
    _check_batch_size(batch_size)
    n = len(grid)
    out = np.empty((n, encoder.embedding_dim), dtype=np.float32)
    done = 0
    if progress:
        progress(0, n)
    for batch in read_tile_batches(
        slide, grid.coords_l0, grid.tile_size_l0, grid.tile_size_px, batch_size, num_readers
    ):
        out[done : done + len(batch)] = encoder.encode(batch)
        done += len(batch)
        if progress:
            progress(done, n)
    if done != n:  # never hand back (or cache) rows that were not computed
        raise RuntimeError(f"encoded {done} of {n} tiles")
    return out


@dataclass
class SlideAnalysis:
    """Everything the viewer shows for one slide: tissue, grid and features."""

    tissue: TissueMask
    grid: TileGrid
    features: SlideFeatures
    from_cache: bool


def pipeline_tile_scores(features: SlideFeatures) -> dict[str, np.ndarray]:
    """Per-tile scores the pipeline produces before any model: label → (N,) float32.

    - tissue fraction: share of the tile covered by detected tissue;
    - feature norm: L2 norm of the encoder embedding (how strongly the ImageNet filters respond,
      high on dense cellular texture, low on fat and blank stroma).
    """
    return {
        "Tissue fraction": features.tissue_fraction.astype(np.float32),
        "Feature norm (encoder embedding L2)": np.linalg.norm(features.features, axis=1).astype(np.float32),
    }


def _resolve_encoder(encoder: TileEncoder | str, tile_size_px: int | None) -> tuple[TileEncoder, int]:
    """(encoder, tile size in px); the tile size must be the encoder's input size."""
    enc = get_encoder(encoder) if isinstance(encoder, str) else encoder
    size_px = tile_size_px or enc.input_size_px
    if size_px != enc.input_size_px:
        raise InvalidValueError(
            f"The tile size ({size_px} px) must equal the encoder's input size ({enc.input_size_px} px for {enc.name})."
        )
    return enc, size_px


def _grid_fields(record: TileGrid | SlideFeatures) -> dict[str, Any]:
    """The tile grid's fields of ``record``: a cache entry stores its grid field for field, under the same names."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(TileGrid)}


def _analysis_from_cache(cached: SlideFeatures, slide: Slide, progress: ProgressFn | None) -> SlideAnalysis:
    """A cached entry as an analysis: its stored mask and grid, no pixel read."""
    tissue = TissueMask(mask=cached.tissue_mask, downsample=float(cached.mask_downsample))
    grid = TileGrid(**_grid_fields(cached))
    if progress:
        progress(len(grid), len(grid))
    # The key is the content, so a renamed copy hits: report the name actually opened.
    cached = dataclasses.replace(cached, slide_name=slide.info.name)
    return SlideAnalysis(tissue=tissue, grid=grid, features=cached, from_cache=True)


def _slide_features_record(
    grid: TileGrid, feats: np.ndarray, tissue: TissueMask, enc: TileEncoder, fp: str, slide: Slide
) -> SlideFeatures:
    return SlideFeatures(
        **_grid_fields(grid),
        features=feats,
        encoder=enc.name,
        encoder_version=enc.version,
        slide_fingerprint=fp,
        slide_name=slide.info.name,
        tissue_mask=tissue.mask,
        mask_downsample=tissue.downsample,
    )


def analyse_slide(
    slide: Slide,
    *,
    encoder: TileEncoder | str = DEFAULT_ENCODER,
    target_mpp: float = DEFAULT_TARGET_MPP,
    tile_size_px: int | None = None,
    min_tissue_fraction: float = DEFAULT_MIN_TISSUE_FRACTION,
    mask_mpp: float = DEFAULT_MASK_MPP,
    cache: FeatureCache | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_readers: int = DEFAULT_NUM_READERS,
    progress: ProgressFn | None = None,
    fingerprint: str | None = None,
) -> SlideAnalysis:
    """Tissue mask, tile grid and tile features of an open slide; features come from the cache when present.

    ``slide.mpp`` must be known (read from the slide or supplied when opening it).
    """
    mpp = slide.mpp  # raises MissingMppError first, before any work
    _check_batch_size(batch_size)
    enc, size_px = _resolve_encoder(encoder, tile_size_px)
    fp = fingerprint or slide_fingerprint(slide.info.path)
    cache = cache if cache is not None else FeatureCache()
    # Everything that decides the tiles, known before any pixel is read: a hit skips tissue
    # detection too, so a cached slide opens in a cache read.
    params = {
        "target_mpp": round(target_mpp, 6),
        "tile_size_px": size_px,
        "min_tissue_fraction": min_tissue_fraction,
        "mask_mpp": mask_mpp,
        "mpp": round(mpp, 6),
    }
    key = FeatureCache.key(fp, enc.name, enc.version, params)
    cached = cache.get(key)
    if cached is not None and cached.tissue_mask is not None:
        return _analysis_from_cache(cached, slide, progress)
    tissue = detect_tissue(slide, mask_mpp=mask_mpp)
    grid = make_tile_grid(
        slide.dimensions,
        mpp,
        tissue,
        target_mpp=target_mpp,
        tile_size_px=size_px,
        min_tissue_fraction=min_tissue_fraction,
    )
    feats = encode_tiles(slide, grid, enc, batch_size=batch_size, num_readers=num_readers, progress=progress)
    result = _slide_features_record(grid, feats, tissue, enc, fp, slide)
    try:
        cache.put(key, result)
    except OSError:
        # A read-only or full cache disk must not cost the user the result.
        pass
    return SlideAnalysis(tissue=tissue, grid=grid, features=result, from_cache=False)


def slide_features(
    path: str | os.PathLike[str],
    *,
    mpp: float | None = None,
    **kwargs,
) -> SlideAnalysis:
    """Open ``path`` and run :func:`analyse_slide` on it."""
    with open_slide(path, mpp=mpp) as slide:
        return analyse_slide(slide, **kwargs)
