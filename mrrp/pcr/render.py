"""Pure drawing functions for MRI attention maps: (volume, scores) → RGB arrays. No Streamlit, no pyplot.

Axial slices are shown as radiologists read them: anterior at the top, the patient's right on the
viewer's left. Working-grid volumes are (X, Y, Z) in RAS+ order, so a slice is ``vol[:, :, k]``
transposed, with both axes reversed.
"""

from __future__ import annotations

import numpy as np

from mrrp.pcr.io import WORKING_SPACING_MM


def axial(vol: np.ndarray, k: int) -> np.ndarray:
    """(X, Y, Z) → (rows = posterior→ down, columns = patient right → left of screen) 2D slice ``k``."""
    return vol[:, :, k].T[::-1, ::-1]


def axial_mip(vol: np.ndarray) -> np.ndarray:
    """Maximum-intensity projection along the superior-inferior axis, in the same display orientation."""
    return vol.max(axis=2).T[::-1, ::-1]


def _gray(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    g = np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return np.repeat(g[..., None], 3, axis=2)


def display_window(vol: np.ndarray) -> tuple[float, float]:
    """1st–99.5th percentile window of a whole volume, so every slice shares one grey scale."""
    return float(np.percentile(vol, 1.0)), float(np.percentile(vol, 99.5))


def overlay(
    background: np.ndarray,
    attention: np.ndarray,
    *,
    window: tuple[float, float],
    attention_max: float,
    mask: np.ndarray | None = None,
    alpha: float = 0.45,
    upscale: int = 4,
    colormap: str = "jet",
) -> np.ndarray:
    """2D background and attention (same shape) → (H, W, 3) uint8: grey image, colour where attention is high.

    Attention saturates at ``attention_max`` (the same value for every slice, and for every model compared,
    so colours mean the same everywhere); below 10% of it nothing is drawn, so a near-uniform attention map
    leaves the image grey. ``mask`` (2D bool) is outlined in green. The image is enlarged by ``upscale``
    (nearest) with the voxel aspect ratio kept.
    """
    from matplotlib import colormaps

    base = _gray(background, *window)
    a = np.clip(attention / max(attention_max, 1e-12), 0.0, 1.0)
    colour = colormaps[colormap](a)[..., :3]
    weight = (alpha * np.clip((a - 0.1) / 0.9, 0.0, 1.0))[..., None]
    rgb = base * (1.0 - weight) + colour * weight
    if mask is not None and mask.any():
        from scipy import ndimage

        edge = mask & ~ndimage.binary_erosion(mask)
        rgb[edge] = (0.1, 0.9, 0.2)
    return _enlarge((rgb * 255).round().astype(np.uint8), upscale)


def _enlarge(img: np.ndarray, upscale: int) -> np.ndarray:
    # Voxels are 2 x 2 mm in-plane, so the same factor on both axes keeps the anatomy's proportions.
    sx, sy = WORKING_SPACING_MM[0], WORKING_SPACING_MM[1]
    ry, rx = upscale, max(1, round(upscale * sx / sy))
    return np.repeat(np.repeat(img, ry, axis=0), rx, axis=1)


def colour_bar(width: int = 256, height: int = 12, colormap: str = "jet") -> np.ndarray:
    """(height, width, 3) uint8 bar from low (left) to high (right) attention."""
    from matplotlib import colormaps

    row = colormaps[colormap](np.linspace(0, 1, width))[:, :3]
    return (np.repeat(row[None], height, axis=0) * 255).round().astype(np.uint8)


def best_slice(attention: np.ndarray, mask: np.ndarray | None = None) -> int:
    """The axial slice to open on: the mask's largest slice, else the slice holding most attention."""
    if mask is not None and mask.any():
        return int(np.argmax(mask.sum(axis=(0, 1))))
    return int(np.argmax(attention.sum(axis=(0, 1))))
