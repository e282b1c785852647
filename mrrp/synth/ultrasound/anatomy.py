"""Normal breast tissue behind the lesion: skin, fat lobules, fibroglandular tissue, muscle, chest wall."""

from __future__ import annotations

import math

import numpy as np

from mrrp.synth.ultrasound.physics import (
    CHEST_WALL_ECHO,
    FAT_ECHO,
    FIBROGLANDULAR_ECHO,
    MUSCLE_ECHO,
    RETROMAMMARY_FAT_ECHO,
    _smooth_1d,
    _smooth_field,
    _soft_step,
)


def _anatomy(
    rng: np.random.Generator, h_px: int, w_px: int, pixel_mm: float, offset_px: int, pad_px: int
) -> np.ndarray:
    """(H, W) float32 backscatter amplitude of normal breast tissue.

    Fields are drawn on a canvas ``pad_px`` wider than the frame and cropped at ``offset_px``, so the
    two views of one patient show the same tissue seen from a slightly shifted probe position.
    """
    wc_px = w_px + pad_px
    depth_mm = h_px * pixel_mm
    px = 1.0 / pixel_mm  # pixels per mm

    def crop(a: np.ndarray) -> np.ndarray:
        return a[..., offset_px : offset_px + w_px]

    def lateral(sigma_mm: float) -> np.ndarray:
        return crop(_smooth_1d(rng, wc_px, sigma_mm * px))

    def field(sigma_axial_mm: float, sigma_lateral_mm: float) -> np.ndarray:
        return crop(_smooth_field(rng, (h_px, wc_px), (sigma_axial_mm * px, sigma_lateral_mm * px)))

    y_mm = ((np.arange(h_px, dtype=np.float32) + 0.5) * pixel_mm)[:, None]  # (H, 1)
    x_mm = ((np.arange(w_px, dtype=np.float32) + 0.5) * pixel_mm)[None, :]  # (1, W)

    # Layer depths: fractions of the field (the sonographer sets depth to show the chest wall), undulating.
    skin_mm = 1.8 + 0.12 * lateral(6.0)
    fat_bottom_mm = depth_mm * rng.uniform(0.17, 0.23) + 1.3 * lateral(7.0) + 0.5 * lateral(2.5)
    fg_bottom_mm = depth_mm * rng.uniform(0.68, 0.72) + 1.2 * lateral(10.0)
    slope = rng.uniform(-0.05, 0.05)  # the chest wall is rarely exactly parallel to the probe
    fg_bottom_mm = fg_bottom_mm + slope * (x_mm[0] - x_mm.mean())
    muscle_top_mm = fg_bottom_mm + 1.4 + 0.35 * lateral(8.0)
    muscle_bottom_mm = muscle_top_mm + depth_mm * 0.13 + 0.5 * lateral(10.0)

    # Skin: bright entrance echo, moderately echogenic dermis, bright dermis/fat interface.
    skin = 1.7 * np.exp(-(((y_mm - 0.22) / 0.14) ** 2)) + 1.05 * np.exp(0.15 * field(0.2, 0.6))
    skin = skin + 1.1 * np.exp(-(((y_mm - skin_mm) / 0.13) ** 2))

    # Subcutaneous fat: mid-grey lobules outlined by thin echogenic septa and oblique Cooper's ligaments
    # (zero crossings of a smooth field make closed, curved lines of the right spacing).
    septa_field = field(1.1, 1.6)
    septa = np.exp(-((septa_field / 0.12) ** 2)) * _soft_step(field(2.0, 2.0) + 0.2, 0.6)
    fat = FAT_ECHO * np.exp(0.18 * field(1.2, 2.5)) + 0.55 * septa

    # Fibroglandular tissue: bright and layered (lateral streaks), with hypoechoic fat islands.
    fg = FIBROGLANDULAR_ECHO * np.exp(0.28 * field(0.3, 3.0) + 0.12 * field(1.5, 1.5))
    islands = _soft_step(field(1.3, 3.0) - 1.1, 0.25)
    fg = fg * (1.0 - islands) + FAT_ECHO * 1.05 * islands

    retro = RETROMAMMARY_FAT_ECHO * np.exp(0.15 * field(0.6, 2.0))

    # Pectoral muscle: low-echo fibres separated by bright fibro-adipose striations running nearly parallel to
    # the fascia, wavy and interrupted, plus bright fasciae at top and bottom.
    period_mm = rng.uniform(0.9, 1.3)
    phase = 2.0 * math.pi * ((y_mm - muscle_top_mm) / period_mm + 0.06 * x_mm / period_mm) + 1.2 * field(1.5, 4.0)
    striation = ((1.0 + np.cos(phase)) / 2.0) ** 4 * _soft_step(field(0.6, 1.5) + 0.1, 0.3)
    muscle = MUSCLE_ECHO * np.exp(0.15 * field(0.5, 2.0)) + 0.6 * striation
    fascia = 1.2 * (
        np.exp(-(((y_mm - muscle_top_mm) / 0.18) ** 2)) + 0.8 * np.exp(-(((y_mm - muscle_bottom_mm) / 0.2) ** 2))
    )

    chest = CHEST_WALL_ECHO * np.exp(0.3 * field(0.8, 2.0))

    edge_mm = 0.2
    s1 = _soft_step(y_mm - skin_mm, edge_mm)
    s2 = _soft_step(y_mm - fat_bottom_mm, 0.35)
    s3 = _soft_step(y_mm - fg_bottom_mm, edge_mm)
    s4 = _soft_step(y_mm - muscle_top_mm, edge_mm)
    s5 = _soft_step(y_mm - muscle_bottom_mm, edge_mm)
    tissue = (
        (1 - s1) * skin
        + (s1 - s2) * fat
        + (s2 - s3) * fg
        + (s3 - s4) * retro
        + (s4 - s5) * muscle
        + s5 * chest
        + fascia
        + 0.6 * np.exp(-(((y_mm - skin_mm) / 0.13) ** 2))
    )
    return np.maximum(tissue, 0.0).astype(np.float32)
