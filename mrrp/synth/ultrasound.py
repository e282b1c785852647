"""Synthetic breast ultrasound (B-mode, linear probe) with a ground-truth lesion mask, plus PNG and DICOM writers.

:func:`render_ultrasound` draws what :func:`mrrp.synth.biology.us_findings_from_latent` describes: a
hypoechoic mass of the given size, aspect ratio, margin, echo pattern and posterior features, inside
layered breast anatomy (skin, subcutaneous fat lobules with Cooper's ligaments, fibroglandular tissue,
retromammary fat, pectoral muscle with striations, chest wall). The image model is the usual
envelope-detection one::

    iq        = PSF ⊛ (backscatter * posterior_column * scatterers) + noise_iq
    amplitude = |iq| * depth_gain * gain          (depth_gain: attenuation minus time-gain compensation)
    grey      = 255 * (amplitude / A_REF) ** GAMMA

``scatterers`` is circular complex white Gaussian noise, so where the tissue is uniform the envelope is
Rayleigh distributed (fully developed speckle), multiplicative and spatially correlated over the PSF
(grain size = PSF width * ``speckle_scale``); see :func:`speckle_iq`. A mild power-law compression
keeps the grey-level statistics Rayleigh-like (a homogeneous patch has a coefficient of variation of
about 0.35; 0.52 before compression) rather than log-flattened.

:func:`image_statistics` measures the drawn image the way a reader would (area, boundary irregularity,
posterior darkening, contrast, depth/width), so tests and model sanity checks can verify that the image
tracks the biology. :func:`save_dicom` writes a valid Ultrasound Image Storage file whose header carries
realistic *fake* identifiers (:func:`fake_identity`), so de-identification can be tested; nothing is
burned into the pixels.

Units are in the names: ``*_mm`` millimetres, ``*_px`` pixels, ``*_db`` decibels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from mrrp._fs import atomic_path

VIEWS = ("radial", "antiradial")
MARGINS = ("circumscribed", "indistinct", "angular", "microlobulated", "spiculated")

# Display: amplitude at which the grey level saturates, and the compression exponent (1 = linear envelope).
A_REF = 1.8
GAMMA = 0.65
# Point-spread function of a ~12 MHz linear probe, Gaussian sigmas in mm: axial resolution is finer than
# lateral, so speckle grains are wider than tall.
PSF_AXIAL_SIGMA_MM = 0.11
PSF_LATERAL_SIGMA_MM = 0.26
# Round-trip attenuation (~0.45 dB/cm/MHz at 10 MHz) and the share of it the TGC curve gives back.
ATTENUATION_DB_PER_MM = 0.9
TGC_COMPENSATION = 0.86
NOISE_FLOOR = 0.03  # electronic noise amplitude relative to fibroglandular backscatter (~ -30 dB)

# Backscatter amplitudes (fibroglandular tissue = ~1).
FAT_ECHO = 0.40
FIBROGLANDULAR_ECHO = 0.95
RETROMAMMARY_FAT_ECHO = 0.33
MUSCLE_ECHO = 0.27
CHEST_WALL_ECHO = 0.2
LESION_ECHO = 0.085  # markedly hypoechoic relative to fat, as most invasive carcinomas are

# The lesion must fit inside the field with room for its posterior column to be seen.
MAX_LESION_WIDTH_FRACTION = 0.72
MAX_LESION_DEPTH_FRACTION = 0.48
LESION_BOTTOM_FRACTION = 0.68

_STREAM_ANATOMY, _STREAM_LESION, _STREAM_VIEW, _STREAM_IDENTITY, _STREAM_UID = 11, 12, 13, 14, 15


@dataclass(frozen=True)
class UltrasoundImage:
    """One B-mode frame. Row 0 is the skin surface; depth grows downwards."""

    image: np.ndarray  # (H, W) uint8 grey levels
    lesion_mask: np.ndarray  # (H, W) bool, ground-truth tumour (core plus hypoechoic spicules)
    pixel_mm: float  # square pixels
    view: str = "radial"
    lesion_size_mm: float = 0.0  # longest axis of the drawn core ellipse, after clipping to the field

    @property
    def shape_px(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


# --------------------------------------------------------------------------------------------------
# Random fields
# --------------------------------------------------------------------------------------------------


def _gaussian_transfer(shape: tuple[int, int], sigma_px: tuple[float, float], *, real: bool) -> np.ndarray:
    """Fourier transfer function of a Gaussian blur with (axial, lateral) sigmas, for (r)fft2 spectra."""
    ky = sfft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = (sfft.rfftfreq(shape[1]) if real else sfft.fftfreq(shape[1])).astype(np.float32)[None, :]
    return np.exp(-2.0 * math.pi**2 * ((ky * sigma_px[0]) ** 2 + (kx * sigma_px[1]) ** 2))


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: tuple[float, float]) -> np.ndarray:
    """(H, W) float32 Gaussian random field with unit variance, correlated over ``sigma_px`` (periodic)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    out = sfft.irfft2(sfft.rfft2(white) * _gaussian_transfer(shape, sigma_px, real=True), s=shape)
    return (out / max(float(out.std()), 1e-6)).astype(np.float32)


def _smooth_1d(rng: np.random.Generator, n: int, sigma_px: float) -> np.ndarray:
    """(n,) float32 smooth unit-variance noise along the lateral axis."""
    out = ndimage.gaussian_filter1d(rng.standard_normal(n + 6 * int(sigma_px) + 2), sigma_px, mode="wrap")
    out = out[3 * int(sigma_px) + 1 : 3 * int(sigma_px) + 1 + n]
    return ((out - out.mean()) / max(float(out.std()), 1e-6)).astype(np.float32)


def speckle_iq(
    rng: np.random.Generator,
    shape_px: tuple[int, int],
    grain_px: tuple[float, float],
    reflectivity: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) complex64 baseband echo: random scatterers weighted by ``reflectivity``, imaged by a Gaussian PSF.

    ``grain_px`` are the PSF's (axial, lateral) sigmas. Scatterers are circular complex Gaussian white
    noise and the PSF is linear, so where ``reflectivity`` is uniform (or None, i.e. 1) the field stays
    complex Gaussian: fully developed speckle, Rayleigh magnitude, E[|iq|^2] = reflectivity^2. Structures
    finer than the PSF (septa, spicules) come out blurred and speckled, as on a real scanner.
    """
    noise = rng.standard_normal((2, *shape_px), dtype=np.float32)
    scatterers = noise[0] + 1j * noise[1]
    if reflectivity is not None:
        scatterers *= reflectivity
    transfer = _gaussian_transfer(shape_px, grain_px, real=False)
    transfer *= np.float32(1.0 / math.sqrt(float(np.mean(transfer**2))))  # unit energy PSF: keeps E|iq|^2
    iq = sfft.ifft2(sfft.fft2(scatterers) * transfer)
    return (iq * np.float32(1.0 / math.sqrt(2.0))).astype(np.complex64)  # white noise had E|z|^2 = 2


def _soft_step(z: np.ndarray, width: float) -> np.ndarray:
    """0 → 1 across z = 0 over about ``width`` (same units as z); anti-aliases layer boundaries."""
    return 0.5 * (1.0 + np.tanh(z / max(width, 1e-6)))


# --------------------------------------------------------------------------------------------------
# Anatomy
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Lesion
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spicules:
    """Slightly curved, tapering lines leaving the core: K straight pieces each."""

    theta: np.ndarray  # (S,) where they leave the core, normalised-ellipse frame angles
    length_mm: np.ndarray  # (S,)
    turn_rad: np.ndarray  # (S, K) direction of each piece relative to the outward radial direction
    width_mm: tuple[float, float]  # at the core, at the tip

    @classmethod
    def none(cls) -> _Spicules:
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, 3)), (0.0, 0.0))


@dataclass(frozen=True)
class _LesionShape:
    """The lesion in physical coordinates: a star-shaped core plus spicules. Same for both views."""

    half_width_mm: float
    half_depth_mm: float
    centre_x_mm: float
    centre_y_mm: float
    tilt_rad: float
    theta: np.ndarray  # (N,) angles of the radial function, normalised-ellipse frame
    radius: np.ndarray  # (N,) relative radius (1 = ellipse), area-normalised
    dark_spicules: _Spicules  # hypoechoic tumour extensions (part of the mask)
    bright_spicules: _Spicules  # echogenic desmoplastic reaction between them (not tumour)
    edge_mm: float  # boundary blur (large for indistinct margins)
    halo_amplitude: float  # echogenic rim
    halo_width_mm: float
    posterior_gain: float  # echo multiplier under the thickest part of the lesion (<1 shadow, >1 enhancement)


def _posterior_gain(shadowing: float) -> float:
    """Monotone in ``shadowing``, matching biology's categories: <0.2 enhancement, >0.6 shadowing, else ~none."""
    if shadowing < 0.2:
        return 1.35 + 2.5 * (0.2 - shadowing)
    if shadowing <= 0.6:
        return 1.0 - 0.25 * (shadowing - 0.2) / 0.4
    return 0.72 * math.exp(-2.6 * (shadowing - 0.6) / 0.4)  # nearly black behind the most attenuating masses


def _lesion_shape(
    findings: Mapping[str, object], rng: np.random.Generator, h_px: int, w_px: int, pixel_mm: float
) -> _LesionShape:
    margin = str(findings.get("margin", "circumscribed"))
    if margin not in MARGINS:
        raise ValueError(f"unknown margin {margin!r}; known: {MARGINS}")
    size_mm = float(findings["size_mm"])  # type: ignore[arg-type]
    aspect = float(findings.get("aspect_ratio", 0.7))  # type: ignore[arg-type]
    irr = float(np.clip(findings.get("irregularity", 0.3), 0.0, 1.0))  # type: ignore[arg-type]
    spic = float(np.clip(findings.get("spiculation", 0.2), 0.0, 1.0))  # type: ignore[arg-type]
    shadowing = float(np.clip(findings.get("shadowing", 0.3), 0.0, 1.0))  # type: ignore[arg-type]
    if not (size_mm > 0 and aspect > 0):
        raise ValueError(f"size_mm and aspect_ratio must be positive, got {size_mm}, {aspect}")

    # size_mm is the longest diameter; aspect = depth / width (> 1 = taller than wide = not parallel).
    width_mm, depth_mm = (size_mm, size_mm * aspect) if aspect <= 1 else (size_mm / aspect, size_mm)
    field_w_mm, field_h_mm = w_px * pixel_mm, h_px * pixel_mm
    scale = min(
        1.0, MAX_LESION_WIDTH_FRACTION * field_w_mm / width_mm, MAX_LESION_DEPTH_FRACTION * field_h_mm / depth_mm
    )
    width_mm, depth_mm = width_mm * scale, depth_mm * scale  # clip, keeping the aspect ratio

    # Mid depth, below the subcutaneous fat, leaving room underneath for the posterior column.
    top_min_mm = 0.22 * field_h_mm + 0.5
    bottom_max_mm = LESION_BOTTOM_FRACTION * field_h_mm
    centre_y_mm = float(np.clip(0.42 * field_h_mm, top_min_mm + depth_mm / 2, bottom_max_mm - depth_mm / 2))
    slack_mm = max(0.0, (field_w_mm - width_mm) / 2 - 2.0)
    centre_x_mm = field_w_mm / 2 + float(rng.uniform(-0.25, 0.25)) * slack_mm

    n = 720
    theta = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    g = np.zeros(n)
    # Gentle low-order asymmetry for every margin: real masses are never perfect ellipses.
    for k in (2, 3, 4):
        g += (0.02 + 0.05 * irr) * rng.normal() / k * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    edge_mm, halo_amp, halo_w_mm = 0.12, 0.0, 1.5
    if margin == "microlobulated":
        # Many small outward lobules with inward cusps between them (scalloped outline).
        lobes = int(rng.integers(8, 15))
        lobe_amp = (0.08 + 0.2 * irr) * (0.7 + 0.3 * np.cos(theta * 2 + rng.uniform(0, 2 * math.pi)))
        lobe = np.abs(np.sin(lobes * theta / 2 + rng.uniform(0, math.pi))) ** 0.6
        g += lobe_amp * (lobe - lobe.mean())
    elif margin in ("angular", "spiculated"):
        # Piecewise-linear radius through alternating protruding corners and inward notches: straight-ish
        # sides meeting at sharp (often acute) angles.
        m = 2 * int(rng.integers(3, 6))
        vertex = (np.arange(m) + rng.uniform(-0.35, 0.35, m)) * 2 * math.pi / m + rng.uniform(0, 2 * math.pi)
        vertex = np.mod(vertex, 2 * math.pi)
        amp = (0.12 + 0.25 * irr) if margin == "angular" else (0.06 + 0.12 * irr)
        r_vertex = amp * np.where(np.arange(m) % 2 == 0, rng.uniform(0.4, 1.0, m), -rng.uniform(0.1, 0.6, m))
        order = np.argsort(vertex)
        vertex, r_vertex = vertex[order], r_vertex[order]
        g += np.interp(theta, vertex, r_vertex, period=2 * math.pi)
        halo_amp, halo_w_mm = (0.25, 1.5) if margin == "angular" else (0.9, 2.0)
        edge_mm = 0.15 if margin == "angular" else 0.25
    elif margin == "indistinct":
        for k in range(5, 10):
            g += (0.05 + 0.08 * irr) * rng.normal() / math.sqrt(k) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        # Blurred boundary fading into an echogenic halo: no sharp interface between lesion and tissue.
        edge_mm = 0.45 + 0.9 * irr
        halo_amp, halo_w_mm = 0.45 + 0.5 * irr, 1.6 + 1.2 * irr
    radius = 1.0 + g
    radius = radius / math.sqrt(float(np.mean(radius**2)))  # area = pi * a * b whatever the outline

    r_eq_mm = math.sqrt(width_mm * depth_mm) / 2
    if margin == "spiculated":
        # Alternating hypoechoic (tumour) and echogenic (desmoplastic) lines radiating from the core;
        # more and longer with stronger spiculation.
        s = int(round(5 + 9 * np.clip((spic - 0.6) / 0.4, 0, 1)))
        spoke = (np.arange(s) + rng.uniform(-0.35, 0.35, s)) * 2 * math.pi / s + rng.uniform(0, 2 * math.pi)
        mean_len_mm = min(6.0, r_eq_mm * (0.35 + 1.4 * max(spic - 0.55, 0.0)))
        # Each line wanders a little: a random walk of piece directions around the outward direction.
        turn = rng.normal(0, 0.22, (s, 1)) + np.cumsum(rng.normal(0, 0.15, (s, 3)), axis=1)
        dark = _Spicules(np.mod(spoke, 2 * math.pi), mean_len_mm * rng.uniform(0.5, 1.5, s), turn, (1.0, 0.2))
        bright_theta = np.mod(spoke + math.pi / s * (1 + rng.uniform(-0.4, 0.4, s)), 2 * math.pi)
        bright_turn = rng.normal(0, 0.22, (s, 1)) + np.cumsum(rng.normal(0, 0.15, (s, 3)), axis=1)
        bright = _Spicules(bright_theta, mean_len_mm * rng.uniform(0.4, 0.9, s), bright_turn, (0.5, 0.15))
    elif margin != "circumscribed" and spic > 0.35:
        # Sub-threshold spiculation: a few short, thick hypoechoic extensions (tethering) from the margin.
        s = 2 + int(4 * min((spic - 0.35) / 0.3, 1.0))
        theta_s = rng.uniform(0, 2 * math.pi, s)
        turn = rng.normal(0, 0.2, (s, 1)) + np.cumsum(rng.normal(0, 0.1, (s, 3)), axis=1)
        length = r_eq_mm * (0.1 + 0.9 * (spic - 0.35)) * rng.uniform(0.6, 1.3, s)
        dark, bright = _Spicules(theta_s, length, turn, (1.0, 0.35)), _Spicules.none()
    else:
        dark = bright = _Spicules.none()
    return _LesionShape(
        half_width_mm=width_mm / 2,
        half_depth_mm=depth_mm / 2,
        centre_x_mm=centre_x_mm,
        centre_y_mm=centre_y_mm,
        tilt_rad=float(rng.normal(0, math.radians(4))),
        theta=theta,
        radius=radius,
        dark_spicules=dark,
        bright_spicules=bright,
        edge_mm=edge_mm,
        halo_amplitude=halo_amp,
        halo_width_mm=halo_w_mm,
        posterior_gain=_posterior_gain(shadowing),
    )


def _boundary_point(shape: _LesionShape, theta: np.ndarray, tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """Physical (x, y) offsets from the centre of the core boundary at normalised-frame angles ``theta``."""
    r = np.interp(theta, shape.theta, shape.radius, period=2 * math.pi)
    u, v = r * np.cos(theta) * shape.half_width_mm, r * np.sin(theta) * shape.half_depth_mm
    return u * math.cos(tilt) - v * math.sin(tilt), u * math.sin(tilt) + v * math.cos(tilt)


def _draw_spicules(
    out: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, shape: _LesionShape, spicules: _Spicules, tilt: float
) -> None:
    """Max-composite the spicules' anti-aliased coverage into ``out`` (h, w) float in [0, 1]; x_mm (w,) and
    y_mm (h,) are the pixel-centre coordinates of ``out``."""
    if len(spicules.theta) == 0:
        return
    pixel_mm = float(x_mm[1] - x_mm[0]) if len(x_mm) > 1 else 1.0
    bx, by = _boundary_point(shape, spicules.theta, tilt)
    outward = np.arctan2(by, bx)  # (S,)
    pieces = spicules.turn_rad.shape[1]
    w_base, w_tip = spicules.width_mm
    for i in range(len(spicules.theta)):
        # Start inside the core so the line is rooted in it; the first piece also crosses the boundary.
        x0, y0 = shape.centre_x_mm + 0.85 * bx[i], shape.centre_y_mm + 0.85 * by[i]
        step_mm = spicules.length_mm[i] / pieces
        for k in range(pieces):
            angle = outward[i] + spicules.turn_rad[i, k]
            reach = step_mm + (0.15 * math.hypot(bx[i], by[i]) if k == 0 else 0.0)
            x1, y1 = x0 + reach * math.cos(angle), y0 + reach * math.sin(angle)
            wa = w_base + (w_tip - w_base) * k / pieces
            wb = w_base + (w_tip - w_base) * (k + 1) / pieces
            _draw_segment(out, x_mm, y_mm, (x0, y0), (x1, y1), (wa, wb), pixel_mm)
            x0, y0 = x1, y1


def _draw_segment(
    out: np.ndarray,
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    width_mm: tuple[float, float],
    pixel_mm: float,
) -> None:
    """One tapered segment (width ``width_mm[0]`` at ``start`` → ``[1]`` at ``end``), drawn in its own bbox."""
    (x0, y0), (x1, y1) = start, end
    pad = max(width_mm) + pixel_mm
    c0, c1 = np.searchsorted(x_mm, [min(x0, x1) - pad, max(x0, x1) + pad])
    r0, r1 = np.searchsorted(y_mm, [min(y0, y1) - pad, max(y0, y1) + pad])
    if c1 <= c0 or r1 <= r0:
        return
    px, py = x_mm[None, c0:c1], y_mm[r0:r1, None]  # (1, w'), (h', 1)
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((px - x0) * dx + (py - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    dist = np.hypot(px - (x0 + t * dx), py - (y0 + t * dy))
    half = 0.5 * (width_mm[0] * (1 - t) + width_mm[1] * t)
    cov = np.clip((half - dist) / pixel_mm + 0.5, 0.0, 1.0)  # anti-aliased: 1 inside, 0 half a pixel outside
    np.maximum(out[r0:r1, c0:c1], cov, out=out[r0:r1, c0:c1])


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


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
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not (gain > 0 and speckle_scale > 0 and pixel_mm > 0):
        raise ValueError("gain, speckle_scale and pixel_mm must be positive")
    h_px, w_px = int(size_px[0]), int(size_px[1])
    if h_px < 64 or w_px < 64:
        raise ValueError(f"size_px must be at least 64 x 64, got {size_px}")
    seed = int(seed)
    view_rng = np.random.default_rng([seed, _STREAM_VIEW, VIEWS.index(view)])

    # Background anatomy, seen from a probe shifted by a few mm between views.
    pad_px = w_px // 4
    offset_px = pad_px // 2 if view == "radial" else int(view_rng.integers(0, pad_px + 1))
    tissue = _anatomy(np.random.default_rng([seed, _STREAM_ANATOMY]), h_px, w_px, pixel_mm, offset_px, pad_px)

    shape = _lesion_shape(findings, np.random.default_rng([seed, _STREAM_LESION]), h_px, w_px, pixel_mm)
    tilt = shape.tilt_rad + (0.0 if view == "radial" else float(view_rng.normal(0, math.radians(5))))
    lesion_rng = np.random.default_rng([seed, _STREAM_LESION, 1])

    # Window around the lesion (spicules, halo, blur included); all lesion work happens inside it.
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
    x_mm = (np.arange(c0, c1) + 0.5) * pixel_mm  # (w',)
    y_mm = (np.arange(r0, r1) + 0.5) * pixel_mm  # (h',)
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
    if str(findings.get("echo_pattern", "hypoechoic")) == "heterogeneous":
        patches = _smooth_field(lesion_rng, win_shape, (1.2 / pixel_mm, 1.2 / pixel_mm))
        inner = LESION_ECHO * 0.9 + 0.33 * _soft_step(patches - 0.3, 0.5)
    else:
        inner = LESION_ECHO * np.exp(0.3 * _smooth_field(lesion_rng, win_shape, (0.6 / pixel_mm, 0.6 / pixel_mm)))
    win = tissue[r0:r1, c0:c1]
    win = win * (1 - soft) + inner * soft
    tissue[r0:r1, c0:c1] = win * (1.0 + halo + 1.3 * bright * (1 - soft))

    # Posterior features: the column under the lesion is attenuated (or enhanced) in proportion to the
    # path length through the core above each pixel, like a real attenuating (or transmitting) mass.
    path_mm = np.cumsum(core, axis=0, dtype=np.float32) * pixel_mm  # (h', w')
    thickness_mm = float(path_mm[-1].max())
    posterior = np.ones((h_px - r0, c1 - c0), dtype=np.float32)
    if thickness_mm > 0:
        log_gain = np.empty_like(posterior)
        log_gain[: r1 - r0] = path_mm
        log_gain[r1 - r0 :] = path_mm[-1]
        log_gain *= math.log(shape.posterior_gain) / thickness_mm
        log_gain = ndimage.gaussian_filter(log_gain, (0.3 / pixel_mm, 0.5 / pixel_mm), mode="nearest")
        posterior = np.exp(log_gain)

    # Depth: attenuation partly undone by the TGC curve (slider ripple), and a focal zone at the lesion.
    depth_mm = (np.arange(h_px, dtype=np.float32) + 0.5) * pixel_mm
    slider_db = np.interp(depth_mm, np.linspace(0, h_px * pixel_mm, 8), view_rng.normal(0, 0.8, 8))
    focus_db = 1.5 * np.exp(-(((depth_mm - shape.centre_y_mm) / 8.0) ** 2))
    depth_db = -ATTENUATION_DB_PER_MM * (1 - TGC_COMPENSATION) * depth_mm + slider_db + focus_db
    depth_gain = (10.0 ** (depth_db / 20.0)).astype(np.float32)[:, None]  # (H, 1)

    grain_px = (PSF_AXIAL_SIGMA_MM * speckle_scale / pixel_mm, PSF_LATERAL_SIGMA_MM * speckle_scale / pixel_mm)
    tissue[r0:, c0:c1] *= posterior
    echo = speckle_iq(view_rng, (h_px, w_px), grain_px, tissue)
    echo += NOISE_FLOOR * speckle_iq(view_rng, (h_px, w_px), (0.6, 0.6))
    amplitude = np.abs(echo) * depth_gain * np.float32(gain)
    grey = 255.0 * np.clip(amplitude / A_REF, 0.0, 1.0) ** GAMMA
    image = np.round(grey).astype(np.uint8)  # (H, W)

    mask = np.zeros((h_px, w_px), dtype=bool)
    mask[r0:r1, c0:c1] = mask_win
    size_drawn_mm = 2 * max(shape.half_width_mm, shape.half_depth_mm)
    return UltrasoundImage(
        image=image, lesion_mask=mask, pixel_mm=float(pixel_mm), view=view, lesion_size_mm=size_drawn_mm
    )


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


def image_statistics(img: UltrasoundImage) -> dict[str, float]:
    """What a reader would measure on the frame, from the ground-truth mask and the grey levels.

    - ``lesion_area_mm2``: mask area.
    - ``boundary_irregularity``: 1 − solidity (area / convex-hull area): 0 for an ellipse, grows with
      lobulation, angular corners and spicules; scale- and aspect-invariant.
    - ``perimeter_ratio``: perimeter² / (4π·area), 1 for a disc (depends on aspect ratio too).
    - ``posterior_darkening``: 1 − mean grey under the lesion / mean grey beside it at the same depth
      (> 0 shadowing, < 0 enhancement).
    - ``lesion_contrast``: 1 − mean grey inside / mean grey of a 1–3 mm ring around it (> 0 hypoechoic).
    - ``depth_width_ratio``: from second moments of the mask, so thin spicules barely move it (> 1 taller than wide).
    """
    from skimage.measure import perimeter, regionprops

    mask = np.asarray(img.lesion_mask, dtype=bool)
    if not mask.any():
        raise ValueError("the image has an empty lesion mask")
    grey = np.asarray(img.image, dtype=np.float64)
    h_px, w_px = mask.shape
    pmm = img.pixel_mm
    area_px = int(mask.sum())
    props = regionprops(mask.astype(np.uint8))[0]
    ys, xs = np.nonzero(mask)
    depth_width = math.sqrt(float(ys.var()) / max(float(xs.var()), 1e-9))

    outside_mm = ndimage.distance_transform_edt(~mask) * pmm
    ring = (outside_mm > 1.0) & (outside_mm <= 3.0)
    contrast = 1.0 - grey[mask].mean() / max(grey[ring].mean(), 1e-6)

    # Posterior column: central half of the mass's columns, from just below its lowest point there,
    # compared with strips on either side (off the mass's own columns) at the same depths. The mass is the
    # mask opened by a 0.7 mm disc: spicules are thin, so they neither widen it nor push its bottom down.
    inside_mm = ndimage.distance_transform_edt(mask) * pmm
    core = (ndimage.distance_transform_edt(inside_mm <= 0.7) * pmm <= 0.7) & mask
    if not core.any():  # a lesion thinner than the disc: use it whole
        core = mask
    xs_core = np.nonzero(core.any(axis=0))[0]
    x0, x1 = int(xs_core.min()), int(xs_core.max()) + 1
    width = x1 - x0
    cc0, cc1 = x0 + width // 4, x1 - width // 4
    bottom = int(np.nonzero(core[:, cc0:cc1].any(axis=1))[0].max()) + 1
    rr0 = min(h_px - 1, bottom + int(round(1.0 / pmm)))
    rr1 = min(h_px, rr0 + max(int(round(10.0 / pmm)), 1))
    under = grey[rr0:rr1, cc0:cc1]
    beside = np.zeros(0)
    for gap_mm in (2.0, 1.0):  # a wide lesion leaves little room beside it: move closer rather than give up
        gap = max(width // 8, int(round(gap_mm / pmm)))
        half = max(cc1 - cc0, 1)
        left = grey[rr0:rr1, max(0, x0 - gap - half) : max(0, x0 - gap)]
        right = grey[rr0:rr1, min(w_px, x1 + gap) : min(w_px, x1 + gap + half)]
        beside = np.concatenate([left.ravel(), right.ravel()])
        if beside.size >= under.size // 4:
            break
    darkening = 1.0 - under.mean() / max(beside.mean(), 1e-6) if beside.size and under.size else float("nan")
    return {
        "lesion_area_mm2": area_px * pmm * pmm,
        "boundary_irregularity": 1.0 - float(props.solidity),
        "perimeter_ratio": float(perimeter(mask)) ** 2 / (4 * math.pi * area_px),
        "posterior_darkening": float(darkening),
        "lesion_contrast": float(contrast),
        "depth_width_ratio": depth_width,
    }


# --------------------------------------------------------------------------------------------------
# Fake identities
# --------------------------------------------------------------------------------------------------

# Patients are women; names from several countries, transliterated to ASCII as many PACS store them.
GIVEN_NAMES = (
    "ANNA",
    "MARIA",
    "SOFIA",
    "ELENA",
    "LAURA",
    "JULIA",
    "SARAH",
    "CLAUDIA",
    "SANDRA",
    "MONIKA",
    "URSULA",
    "BRIGITTE",
    "SABINE",
    "CHRISTINE",
    "NICOLE",
    "FRANZISKA",
    "CHIARA",
    "GIULIA",
    "FRANCESCA",
    "ISABELLE",
    "CAMILLE",
    "NATHALIE",
    "CARMEN",
    "LUCIA",
    "ANA",
    "INES",
    "ELIF",
    "AYSE",
    "ZEYNEP",
    "FATIMA",
    "AGNIESZKA",
    "KATARZYNA",
    "IVANA",
    "JELENA",
    "ELENI",
    "INGRID",
    "ASTRID",
    "SIOBHAN",
    "PRIYA",
    "MEI",
)
FAMILY_NAMES = (
    "MUELLER",
    "MEIER",
    "SCHMID",
    "KELLER",
    "WEBER",
    "HUBER",
    "SCHNEIDER",
    "FISCHER",
    "BAUMANN",
    "GERBER",
    "BRUNNER",
    "STEINER",
    "ROSSI",
    "BIANCHI",
    "ROMANO",
    "FERRARI",
    "MARTIN",
    "BERNARD",
    "DUBOIS",
    "LEFEVRE",
    "GARCIA",
    "FERNANDEZ",
    "LOPEZ",
    "SILVA",
    "PEREIRA",
    "YILMAZ",
    "KAYA",
    "DEMIR",
    "NOWAK",
    "KOWALSKA",
    "HORVAT",
    "PETROVIC",
    "PAPADOPOULOU",
    "JANSSEN",
    "DE VRIES",
    "LINDQVIST",
    "OBRIEN",
    "MURPHY",
    "PATEL",
    "NGUYEN",
)
STAFF_GIVEN_NAMES = GIVEN_NAMES[:20] + ("THOMAS", "MARKUS", "DANIEL", "STEFAN", "MARCO", "LUCA", "PIERRE", "ANDREAS")
INSTITUTIONS = (
    "Kantonsspital Seewald",
    "Klinikum Am Lindenhang",
    "Brustzentrum Nordufer",
    "Hopital des Trois-Vallees",
    "Ospedale Regionale di Valcastello",
    "Stadtspital Oberau",
    "Frauenklinik Sonnenbuehl",
    "Clinique du Mont-Clair",
)


@dataclass(frozen=True)
class FakeIdentity:
    """A plausible, entirely invented patient and encounter, for headers that de-identification must scrub."""

    given_name: str
    family_name: str
    sex: str  # "F"
    birth_date: str  # YYYYMMDD
    age_years: int  # at reference_date
    reference_date: str  # YYYYMMDD, the date age_years refers to
    mrn: str  # hospital patient number, 8 digits (last = Luhn check digit)
    accession_number: str  # radiology order number
    institution_name: str
    referring_physician: str  # DICOM PN: FAMILY^GIVEN^^DR
    operator_name: str  # sonographer, DICOM PN

    @property
    def dicom_name(self) -> str:
        """Patient name as a DICOM PN value, e.g. ``MUELLER^ANNA``."""
        return f"{self.family_name}^{self.given_name}"


def _parse_date(text: str) -> date:
    if len(text) == 8 and text.isdigit():
        try:
            return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            pass
    raise ValueError(f"dates must be YYYYMMDD, got {text!r}")


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February in a non-leap year
        return d.replace(year=d.year - years, day=28)


def age_on(birth_date: str, on_date: str) -> int:
    """Whole years of age on ``on_date`` (both YYYYMMDD)."""
    b, d = _parse_date(birth_date), _parse_date(on_date)
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def _luhn_digit(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return (10 - total % 10) % 10


def fake_identity(seed: int, *, age_years: float = 55.0, reference_date: str = "20240315") -> FakeIdentity:
    """Deterministic invented identity for ``seed``: a birth date that makes the patient ``int(age_years)``
    years old on ``reference_date`` (pass the study date), an MRN, an accession number and staff names."""
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not 0 <= age_years < 130:
        raise ValueError(f"age_years must be in [0, 130), got {age_years}")
    rng = np.random.default_rng([int(seed), _STREAM_IDENTITY])
    ref = _parse_date(reference_date)
    whole = int(age_years)
    latest = _years_before(ref, whole)  # born on this day: turns `whole` exactly on ref
    earliest = _years_before(ref, whole + 1) + timedelta(days=1)  # one day later would already be whole + 1
    birth = earliest + timedelta(days=int(rng.integers(0, (latest - earliest).days + 1)))
    body = f"{int(rng.integers(1_000_000, 10_000_000)):07d}"

    def staff(prefix: str) -> str:
        fam = FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))]
        giv = STAFF_GIVEN_NAMES[int(rng.integers(len(STAFF_GIVEN_NAMES)))]
        return f"{fam}^{giv}^^{prefix}" if prefix else f"{fam}^{giv}"

    return FakeIdentity(
        given_name=GIVEN_NAMES[int(rng.integers(len(GIVEN_NAMES)))],
        family_name=FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))],
        sex="F",
        birth_date=birth.strftime("%Y%m%d"),
        age_years=whole,
        reference_date=ref.strftime("%Y%m%d"),
        mrn=body + str(_luhn_digit(body)),
        accession_number=f"US{ref.year % 100:02d}{int(rng.integers(0, 1_000_000)):06d}",
        institution_name=INSTITUTIONS[int(rng.integers(len(INSTITUTIONS)))],
        referring_physician=staff("DR"),
        operator_name=staff(""),
    )


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------


def save_png(img: UltrasoundImage, path: str | os.PathLike[str]) -> Path:
    """8-bit grayscale PNG, written atomically (a reader never sees a half-written file)."""
    from PIL import Image

    out = Path(path)
    with atomic_path(out) as tmp:
        Image.fromarray(np.ascontiguousarray(img.image, dtype=np.uint8), mode="L").save(tmp, format="PNG")
    return out


def save_dicom(
    img: UltrasoundImage,
    path: str | os.PathLike[str],
    *,
    patient: FakeIdentity,
    study_date: str,
    laterality: str,
    manufacturer: str,
    seed: int,
) -> Path:
    """DICOM Ultrasound Image Storage (explicit VR little endian, MONOCHROME2, 8 bit), written atomically.

    The header carries ``patient``'s fake identifiers (name, ID, birth date, accession, institution,
    physicians) as a real scanner would; the pixels carry no text (BurnedInAnnotation = NO). UIDs are
    derived from ``seed``, so the same call writes the same file.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    side = {"left": "L", "l": "L", "right": "R", "r": "R"}.get(laterality.strip().lower())
    if side is None:
        raise ValueError(f"laterality must be left/right/L/R, got {laterality!r}")
    _parse_date(study_date)
    pixels = np.ascontiguousarray(img.image, dtype=np.uint8)  # (H, W)
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {pixels.shape}")

    rng = np.random.default_rng([int(seed), _STREAM_UID])
    study_time = f"{int(rng.integers(7, 18)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}"

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=[f"mrrp-synth-us:{seed}:{kind}"])

    study_uid, series_uid, sop_uid = uid("study"), uid("series"), uid("sop")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality = "US"
    ds.Manufacturer = manufacturer
    ds.InstitutionName = patient.institution_name
    ds.StationName = f"US{int(rng.integers(1, 9))}"
    # Patient and encounter: realistic fake identifiers for de-identification to find.
    ds.PatientName = patient.dicom_name
    ds.PatientID = patient.mrn
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{age_on(patient.birth_date, study_date):03d}Y"
    ds.AccessionNumber = patient.accession_number
    ds.ReferringPhysicianName = patient.referring_physician
    ds.OperatorsName = patient.operator_name
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study_time
    ds.StudyID = patient.accession_number[-6:]
    ds.StudyDescription = "US BREAST"
    ds.SeriesDescription = f"BREAST {side} {img.view.upper()}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1 if img.view == "radial" else 2
    ds.Laterality = side
    ds.BodyPartExamined = "BREAST"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    # Image pixel module.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{img.pixel_mm:.6g}", f"{img.pixel_mm:.6g}"]  # mm, row then column
    # The standard way to calibrate US pixels: one 2-D tissue region, physical deltas in cm.
    from pydicom.dataset import Dataset

    region = Dataset()
    region.RegionSpatialFormat = 1  # 2-D
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = ds.Columns - 1
    region.RegionLocationMaxY1 = ds.Rows - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = img.pixel_mm / 10.0
    region.PhysicalDeltaY = img.pixel_mm / 10.0
    ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = pixels.tobytes()

    out = Path(path)
    with atomic_path(out) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return out
