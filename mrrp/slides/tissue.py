"""Tissue detection on a low-resolution level.

H&E tissue is stained pink to purple and is saturated; glass is bright and grey. We
threshold saturation with Otsu (computed on the non-glass pixels only, so a slide that is
mostly tissue still splits well), reject pen ink (green/blue/black strokes: hues H&E never
has, or near-black), fill holes (fat and lumina are tissue), remove specks, and return the
mask with its scale. The mask is computed at about 8 µm/pixel — enough to place 224 µm
tiles (28 mask pixels across) and small enough to be instant on a 100,000-pixel slide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrrp.errors import NoTissueError

DEFAULT_MASK_MPP = 8.0
# Below this a slide with no mpp falls back to a fixed thumbnail size.
_FALLBACK_MASK_SIDE_PX = 2048


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask and its scale.

    ``mask`` is (H, W) bool; ``downsample`` is level-0 pixels per mask pixel.
    """

    mask: np.ndarray  # (H, W) bool
    downsample: float

    @property
    def tissue_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def area_mm2(self, mpp: float) -> float:
        """Tissue area in mm², given the level-0 resolution."""
        px_area_um2 = (self.downsample * mpp) ** 2
        return float(self.mask.sum()) * px_area_um2 / 1e6

    def fraction_in_box(self, x_l0: np.ndarray, y_l0: np.ndarray, size_l0: float) -> np.ndarray:
        """Tissue fraction of each level-0 box (x, y, size) via an integral image: (N,) float32 in [0, 1]."""
        h, w = self.mask.shape
        integral = np.zeros((h + 1, w + 1), dtype=np.int64)
        integral[1:, 1:] = self.mask.astype(np.int64).cumsum(0).cumsum(1)
        x0 = np.clip(np.floor(x_l0 / self.downsample).astype(np.int64), 0, w)
        y0 = np.clip(np.floor(y_l0 / self.downsample).astype(np.int64), 0, h)
        x1 = np.clip(np.ceil((x_l0 + size_l0) / self.downsample).astype(np.int64), 0, w)
        y1 = np.clip(np.ceil((y_l0 + size_l0) / self.downsample).astype(np.int64), 0, h)
        total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        # Divide by the whole box, not its clipped part: a box overhanging the slide edge is
        # glass there, and must not count as mostly tissue.
        area = max((size_l0 / self.downsample) ** 2, 1.0)
        return np.minimum(total / area, 1.0).astype(np.float32)


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    if values.size == 0 or float(values.max()) == float(values.min()):
        return float(values.max()) if values.size else 0.0
    return float(threshold_otsu(values))


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (degrees), saturation and value (0–1) as float32 planes.

    Written out because skimage's rgb2hsv works in float64 and is 4x slower; this is the
    standard hexcone formula.
    """
    c = rgb.astype(np.float32) / 255.0
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    vmax = c.max(axis=-1)
    delta = vmax - c.min(axis=-1)
    safe = np.where(delta > 0, delta, 1.0)
    sat = np.where(vmax > 0, delta / np.where(vmax > 0, vmax, 1.0), 0.0).astype(np.float32)
    hue = np.where(vmax == r, ((g - b) / safe) % 6.0, np.where(vmax == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = np.where(delta > 0, hue * 60.0, 0.0).astype(np.float32)
    return hue, sat, vmax


def tissue_mask_from_rgb(
    rgb: np.ndarray,
    *,
    min_object_px: int = 64,
    min_saturation: float = 0.07,
    max_saturation_threshold: float = 0.2,
    max_brightness: float = 0.95,
) -> np.ndarray:
    """Tissue mask (H, W) bool from a low-resolution RGB image (H, W, 3) uint8.

    ``min_object_px``: connected components smaller than this (in mask pixels) are dropped.
    ``min_saturation`` / ``max_saturation_threshold``: bounds on the Otsu threshold, so faint
    noise on clean glass is never tissue and pale stroma (saturation ~0.2) always is.
    ``max_brightness``: brighter pixels (value, 0–1) are glass whatever their saturation.
    """
    from scipy import ndimage as ndi
    from skimage.morphology import remove_small_holes, remove_small_objects

    hue_deg, sat, val = _hsv(rgb)
    # Pen ink: H&E hues are pink/red/purple (about 250-360 and 0-30 degrees). Green, cyan
    # and blue marker ink sits between; black ink is very dark whatever its hue. Ink is
    # removed before Otsu, or its high saturation would drag the threshold above the tissue.
    pen = ((hue_deg > 60) & (hue_deg < 250) & (sat > 0.2)) | (val < 0.15)
    pen = ndi.binary_dilation(pen, iterations=2)
    sat_smooth = ndi.uniform_filter(sat, size=3)
    # Otsu separates glass from tissue; clamped because on a slide that is almost all
    # tissue (or all glass) Otsu would split pale stroma from nuclei (or noise from noise).
    otsu = _otsu(sat_smooth[~pen]) if (~pen).any() else max_saturation_threshold
    threshold = float(np.clip(otsu, min_saturation, max_saturation_threshold))
    tissue = (sat_smooth > threshold) & (val < max_brightness + 0.05) & ~pen

    tissue = ndi.binary_closing(tissue, structure=np.ones((3, 3), bool), iterations=1)
    tissue = remove_small_objects(tissue, max_size=min_object_px - 1) if min_object_px > 1 else tissue
    # Fat, lumina and tears inside a tissue piece are tissue for tiling purposes; large
    # empty areas between pieces are not holes because they reach the border or are huge.
    tissue = remove_small_holes(tissue, max_size=max(min_object_px * 16, 256))
    return tissue.astype(bool)


def detect_tissue(slide, mask_mpp: float = DEFAULT_MASK_MPP, **kwargs) -> TissueMask:
    """Detect tissue on ``slide`` (an :class:`mrrp.io.slides.Slide`) at about ``mask_mpp`` µm/pixel.

    Reads the pyramid level closest below the target resolution and resizes, so the cost is
    independent of the level-0 size. Raises NoTissueError if nothing is found.
    """
    from PIL import Image

    w0, h0 = slide.dimensions
    if slide.info.mpp is not None:
        downsample = max(mask_mpp / slide.info.mpp, 1.0)
    else:
        downsample = max(max(w0, h0) / _FALLBACK_MASK_SIDE_PX, 1.0)
    out_w, out_h = max(1, round(w0 / downsample)), max(1, round(h0 / downsample))
    level = slide.best_level_for_downsample(downsample)
    img = slide.read_level(level)
    if img.shape[1] != out_w or img.shape[0] != out_h:
        img = np.asarray(Image.fromarray(img).resize((out_w, out_h), Image.Resampling.BOX))
    mask = tissue_mask_from_rgb(img, **kwargs)
    if not mask.any():
        raise NoTissueError(
            f"No tissue was found on the slide '{slide.info.name}'. Check that it is an H&E slide "
            "and that the scan is not blank or out of focus."
        )
    return TissueMask(mask=mask, downsample=w0 / out_w)
