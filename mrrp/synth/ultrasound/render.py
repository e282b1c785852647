"""One B-mode frame: anatomy, lesion, posterior column, depth gain and speckle, composed in that order.

Each step draws from its own random stream (anatomy, lesion, lesion texture, view), and within a
stream the draws come in a fixed order, so a seed gives the same frame whichever step changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mrrp.synth.ultrasound.anatomy import _anatomy
from mrrp.synth.ultrasound.lesion import _draw_spicules, _lesion_shape, _LesionShape
from mrrp.synth.ultrasound.physics import (
    _STREAM_ANATOMY,
    _STREAM_LESION,
    _STREAM_VIEW,
    A_REF,
    ATTENUATION_DB_PER_MM,
    GAMMA,
    LESION_ECHO,
    NOISE_FLOOR,
    PSF_AXIAL_SIGMA_MM,
    PSF_LATERAL_SIGMA_MM,
    TGC_COMPENSATION,
    VIEWS,
    UltrasoundImage,
    _smooth_field,
    _soft_step,
    speckle_iq,
)


@dataclass(frozen=True)
class _Window:
    """Rows [r0, r1) and columns [c0, c1) around the lesion; all lesion work happens inside it."""

    r0: int
    r1: int
    c0: int
    c1: int


def _check_render_args(
    view: str, seed: int, gain: float, speckle_scale: float, size_px: tuple[int, int], pixel_mm: float
) -> tuple[int, int]:
    """(h_px, w_px) once the arguments are known to be valid."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not (gain > 0 and speckle_scale > 0 and pixel_mm > 0):
        raise ValueError("gain, speckle_scale and pixel_mm must be positive")
    h_px, w_px = int(size_px[0]), int(size_px[1])
    if h_px < 64 or w_px < 64:
        raise ValueError(f"size_px must be at least 64 x 64, got {size_px}")
    return h_px, w_px


def _lesion_window(shape: _LesionShape, h_px: int, w_px: int, pixel_mm: float) -> _Window:
    """The window around the lesion, its spicules, halo and blurred edge included."""
    reach_mm = (
        max(shape.half_width_mm, shape.half_depth_mm) * float(shape.radius.max()) * 1.05
        + 1.3 * float(np.max(shape.dark_spicules.length_mm, initial=0.0))
        + shape.halo_width_mm
        + 4 * shape.edge_mm
        + 1.5
    )
    c0 = max(0, int((shape.centre_x_mm - reach_mm) / pixel_mm))
    c1 = min(w_px, int(math.ceil((shape.centre_x_mm + reach_mm) / pixel_mm)))
    r0 = max(0, int((shape.centre_y_mm - reach_mm) / pixel_mm))
    r1 = min(h_px, int(math.ceil((shape.centre_y_mm + reach_mm) / pixel_mm)))
    return _Window(r0, r1, c0, c1)


def _paint_lesion(
    tissue: np.ndarray,
    shape: _LesionShape,
    tilt: float,
    win: _Window,
    echo_pattern: str,
    lesion_rng: np.random.Generator,
    pixel_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend the lesion into ``tissue`` (H, W) in place; returns its (core, mask) (h', w') bool in the window."""
    x_mm = (np.arange(win.c0, win.c1) + 0.5) * pixel_mm  # (w',)
    y_mm = (np.arange(win.r0, win.r1) + 0.5) * pixel_mm  # (h',)
    dx = x_mm[None, :] - shape.centre_x_mm  # (1, w')
    dy = y_mm[:, None] - shape.centre_y_mm  # (h', 1)
    # Into the lesion's own frame (undo the tilt), then normalise by the semi-axes.
    u = (dx * math.cos(tilt) + dy * math.sin(tilt)) / shape.half_width_mm
    v = (-dx * math.sin(tilt) + dy * math.cos(tilt)) / shape.half_depth_mm
    rho = np.hypot(u, v)
    r_allowed = np.interp(np.mod(np.arctan2(v, u), 2 * math.pi), shape.theta, shape.radius, period=2 * math.pi)
    core = rho <= r_allowed  # (h', w') bool

    dark = np.zeros(core.shape, dtype=np.float32)
    bright = np.zeros(core.shape, dtype=np.float32)
    _draw_spicules(dark, x_mm, y_mm, shape, shape.dark_spicules, tilt)
    _draw_spicules(bright, x_mm, y_mm, shape, shape.bright_spicules, tilt)
    mask_win = core | (dark >= 0.5)

    # Signed distance to the tumour boundary (mm, > 0 outside) drives the blurred edge and the halo.
    sd_mm = (ndimage.distance_transform_edt(~mask_win) - ndimage.distance_transform_edt(mask_win)) * pixel_mm
    soft = 1.0 / (1.0 + np.exp(np.clip((sd_mm + 0.5 * pixel_mm) / shape.edge_mm, -30, 30)))
    halo = shape.halo_amplitude * np.exp(-(((sd_mm - 0.45 * shape.halo_width_mm) / (0.45 * shape.halo_width_mm)) ** 2))
    halo = halo * (sd_mm > -0.5 * pixel_mm)

    # Internal echoes: sparse and faint (hypoechoic) or patchy, mixed (heterogeneous).
    win_shape = core.shape
    if echo_pattern == "heterogeneous":
        patches = _smooth_field(lesion_rng, win_shape, (1.2 / pixel_mm, 1.2 / pixel_mm))
        inner = LESION_ECHO * 0.9 + 0.33 * _soft_step(patches - 0.3, 0.5)
    else:
        inner = LESION_ECHO * np.exp(0.3 * _smooth_field(lesion_rng, win_shape, (0.6 / pixel_mm, 0.6 / pixel_mm)))
    region = tissue[win.r0 : win.r1, win.c0 : win.c1]
    region = region * (1 - soft) + inner * soft
    tissue[win.r0 : win.r1, win.c0 : win.c1] = region * (1.0 + halo + 1.3 * bright * (1 - soft))
    return core, mask_win


def _posterior_column(core: np.ndarray, posterior_gain: float, win: _Window, h_px: int, pixel_mm: float) -> np.ndarray:
    """(H - r0, c1 - c0) float32 echo multiplier from the window's top down to the bottom of the frame.

    The column under the lesion is attenuated (or enhanced) in proportion to the path length through
    the core above each pixel, like a real attenuating (or transmitting) mass.
    """
    path_mm = np.cumsum(core, axis=0, dtype=np.float32) * pixel_mm  # (h', w')
    thickness_mm = float(path_mm[-1].max())
    posterior = np.ones((h_px - win.r0, win.c1 - win.c0), dtype=np.float32)
    if thickness_mm > 0:
        log_gain = np.empty_like(posterior)
        log_gain[: win.r1 - win.r0] = path_mm
        log_gain[win.r1 - win.r0 :] = path_mm[-1]
        log_gain *= math.log(posterior_gain) / thickness_mm
        log_gain = ndimage.gaussian_filter(log_gain, (0.3 / pixel_mm, 0.5 / pixel_mm), mode="nearest")
        posterior = np.exp(log_gain)
    return posterior


def _depth_gain(view_rng: np.random.Generator, h_px: int, pixel_mm: float, focus_mm: float) -> np.ndarray:
    """(H, 1) float32 amplitude gain: attenuation partly undone by the TGC curve (slider ripple), and a focal
    zone at ``focus_mm`` (the lesion)."""
    depth_mm = (np.arange(h_px, dtype=np.float32) + 0.5) * pixel_mm
    slider_db = np.interp(depth_mm, np.linspace(0, h_px * pixel_mm, 8), view_rng.normal(0, 0.8, 8))
    focus_db = 1.5 * np.exp(-(((depth_mm - focus_mm) / 8.0) ** 2))
    depth_db = -ATTENUATION_DB_PER_MM * (1 - TGC_COMPENSATION) * depth_mm + slider_db + focus_db
    return (10.0 ** (depth_db / 20.0)).astype(np.float32)[:, None]  # (H, 1)


def render_ultrasound(
    findings: Mapping[str, object],
    *,
    seed: int,
    gain: float = 1.0,
    speckle_scale: float = 1.0,
    size_px: tuple[int, int] = (384, 512),
    pixel_mm: float = 0.1,
    view: str = "radial",
) -> UltrasoundImage:
    """Render one B-mode frame of the lesion ``findings`` describe (see ``us_findings_from_latent``).

    Deterministic for ``(findings, seed, gain, speckle_scale, size_px, pixel_mm, view)``. The anatomy and the
    lesion depend on ``seed`` only; ``view`` changes the probe position, a few degrees of lesion tilt and
    the speckle, so "radial" and "antiradial" show the same lesion (pass the same seed for both).
    ``gain`` multiplies echo amplitude (site ``us_gain``); ``speckle_scale`` multiplies grain size (site
    ``us_speckle``). A lesion too large for the field is scaled down to fit, keeping its aspect ratio.
    """
    h_px, w_px = _check_render_args(view, seed, gain, speckle_scale, size_px, pixel_mm)
    seed = int(seed)
    view_rng = np.random.default_rng([seed, _STREAM_VIEW, VIEWS.index(view)])

    # Background anatomy, seen from a probe shifted by a few mm between views.
    pad_px = w_px // 4
    offset_px = pad_px // 2 if view == "radial" else int(view_rng.integers(0, pad_px + 1))
    tissue = _anatomy(np.random.default_rng([seed, _STREAM_ANATOMY]), h_px, w_px, pixel_mm, offset_px, pad_px)

    shape = _lesion_shape(findings, np.random.default_rng([seed, _STREAM_LESION]), h_px, w_px, pixel_mm)
    tilt = shape.tilt_rad + (0.0 if view == "radial" else float(view_rng.normal(0, math.radians(5))))
    lesion_rng = np.random.default_rng([seed, _STREAM_LESION, 1])
    win = _lesion_window(shape, h_px, w_px, pixel_mm)
    echo_pattern = str(findings.get("echo_pattern", "hypoechoic"))
    core, mask_win = _paint_lesion(tissue, shape, tilt, win, echo_pattern, lesion_rng, pixel_mm)
    posterior = _posterior_column(core, shape.posterior_gain, win, h_px, pixel_mm)
    depth_gain = _depth_gain(view_rng, h_px, pixel_mm, shape.centre_y_mm)

    grain_px = (PSF_AXIAL_SIGMA_MM * speckle_scale / pixel_mm, PSF_LATERAL_SIGMA_MM * speckle_scale / pixel_mm)
    tissue[win.r0 :, win.c0 : win.c1] *= posterior
    echo = speckle_iq(view_rng, (h_px, w_px), grain_px, tissue)
    echo += NOISE_FLOOR * speckle_iq(view_rng, (h_px, w_px), (0.6, 0.6))
    amplitude = np.abs(echo) * depth_gain * np.float32(gain)
    grey = 255.0 * np.clip(amplitude / A_REF, 0.0, 1.0) ** GAMMA
    image = np.round(grey).astype(np.uint8)  # (H, W)

    mask = np.zeros((h_px, w_px), dtype=bool)
    mask[win.r0 : win.r1, win.c0 : win.c1] = mask_win
    size_drawn_mm = 2 * max(shape.half_width_mm, shape.half_depth_mm)
    return UltrasoundImage(
        image=image, lesion_mask=mask, pixel_mm=float(pixel_mm), view=view, lesion_size_mm=size_drawn_mm
    )
