"""Pictures of the slide pipeline's steps on a thumbnail: the detected tissue and the tile grid.

Pure functions of (image, mask or coordinates), so the slide viewer and the cohort figures draw
the same outline the same way.
"""

from __future__ import annotations

import numpy as np

TISSUE_COLOUR = (0, 170, 90)
GRID_COLOUR = (20, 90, 160)


def overlay_mask(
    thumbnail: np.ndarray,
    mask_on_thumb: np.ndarray,
    colour: tuple[int, int, int] = TISSUE_COLOUR,
    alpha: float = 0.35,
) -> np.ndarray:
    """Tint ``mask_on_thumb`` (H, W) bool in ``colour`` over ``thumbnail`` (H, W, 3) uint8, and outline it."""
    from scipy import ndimage as ndi

    out = thumbnail.astype(np.float32).copy()
    c = np.asarray(colour, np.float32)
    out[mask_on_thumb] = (1 - alpha) * out[mask_on_thumb] + alpha * c
    edge = mask_on_thumb & ~ndi.binary_erosion(mask_on_thumb)
    out[edge] = c
    return out.clip(0, 255).astype(np.uint8)


def draw_tile_grid(
    thumbnail: np.ndarray,
    thumb_downsample: float,
    coords_l0: np.ndarray,
    tile_size_l0: int,
    colour: tuple[int, int, int] = GRID_COLOUR,
) -> np.ndarray:
    """Outline each tile (level-0 ``coords_l0`` (N, 2), side ``tile_size_l0``) on the thumbnail (H, W, 3).

    ``thumb_downsample`` is level-0 pixels per thumbnail pixel.
    """
    out = thumbnail.copy()
    h, w = out.shape[:2]
    c = np.asarray(colour, np.uint8)
    x0 = np.floor(coords_l0[:, 0] / thumb_downsample).astype(int)
    y0 = np.floor(coords_l0[:, 1] / thumb_downsample).astype(int)
    x1 = np.ceil((coords_l0[:, 0] + tile_size_l0) / thumb_downsample).astype(int) - 1
    y1 = np.ceil((coords_l0[:, 1] + tile_size_l0) / thumb_downsample).astype(int) - 1
    for a, b, e, f in zip(x0, y0, np.minimum(x1, w - 1), np.minimum(y1, h - 1), strict=True):
        if a >= w or b >= h:
            continue
        out[b, a : e + 1] = c
        out[f, a : e + 1] = c
        out[b : f + 1, a] = c
        out[b : f + 1, e] = c
    return out
