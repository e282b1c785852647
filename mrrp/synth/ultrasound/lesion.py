"""The lesion's shape in physical coordinates (core outline, spicules, halo, posterior gain) and its drawing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mrrp.synth.ultrasound.physics import (
    LESION_BOTTOM_FRACTION,
    MARGINS,
    MAX_LESION_DEPTH_FRACTION,
    MAX_LESION_WIDTH_FRACTION,
)


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


@dataclass(frozen=True)
class _LesionParams:
    """The findings the lesion is drawn from, read and range-checked once."""

    margin: str
    size_mm: float  # longest diameter
    aspect: float  # depth / width (> 1 = taller than wide = not parallel)
    irregularity: float  # 0..1
    spiculation: float  # 0..1
    shadowing: float  # 0..1


def _lesion_params(findings: Mapping[str, object]) -> _LesionParams:
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
    return _LesionParams(margin, size_mm, aspect, irr, spic, shadowing)


def _lesion_placement(
    params: _LesionParams, rng: np.random.Generator, h_px: int, w_px: int, pixel_mm: float
) -> tuple[float, float, float, float]:
    """(width_mm, depth_mm, centre_x_mm, centre_y_mm) of the core, clipped to fit the field."""
    size_mm, aspect = params.size_mm, params.aspect
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
    return width_mm, depth_mm, centre_x_mm, centre_y_mm


@dataclass(frozen=True)
class _Outline:
    """The core's radial function and the margin's boundary blur and halo."""

    theta: np.ndarray  # (N,)
    radius: np.ndarray  # (N,) area-normalised
    edge_mm: float
    halo_amplitude: float
    halo_width_mm: float


def _angular_deviation(margin: str, irr: float, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Piecewise-linear radius through alternating protruding corners and inward notches: straight-ish
    sides meeting at sharp (often acute) angles."""
    m = 2 * int(rng.integers(3, 6))
    vertex = (np.arange(m) + rng.uniform(-0.35, 0.35, m)) * 2 * math.pi / m + rng.uniform(0, 2 * math.pi)
    vertex = np.mod(vertex, 2 * math.pi)
    amp = (0.12 + 0.25 * irr) if margin == "angular" else (0.06 + 0.12 * irr)
    r_vertex = amp * np.where(np.arange(m) % 2 == 0, rng.uniform(0.4, 1.0, m), -rng.uniform(0.1, 0.6, m))
    order = np.argsort(vertex)
    vertex, r_vertex = vertex[order], r_vertex[order]
    return np.interp(theta, vertex, r_vertex, period=2 * math.pi)


def _outline(margin: str, irr: float, rng: np.random.Generator) -> _Outline:
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
        g += _angular_deviation(margin, irr, theta, rng)
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
    return _Outline(theta, radius, edge_mm, halo_amp, halo_w_mm)


def _spicules(margin: str, spic: float, r_eq_mm: float, rng: np.random.Generator) -> tuple[_Spicules, _Spicules]:
    """(dark, bright) spicules for the margin and spiculation; none for most lesions."""
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
        return dark, bright
    if margin != "circumscribed" and spic > 0.35:
        # Sub-threshold spiculation: a few short, thick hypoechoic extensions (tethering) from the margin.
        s = 2 + int(4 * min((spic - 0.35) / 0.3, 1.0))
        theta_s = rng.uniform(0, 2 * math.pi, s)
        turn = rng.normal(0, 0.2, (s, 1)) + np.cumsum(rng.normal(0, 0.1, (s, 3)), axis=1)
        length = r_eq_mm * (0.1 + 0.9 * (spic - 0.35)) * rng.uniform(0.6, 1.3, s)
        return _Spicules(theta_s, length, turn, (1.0, 0.35)), _Spicules.none()
    return _Spicules.none(), _Spicules.none()


def _lesion_shape(
    findings: Mapping[str, object], rng: np.random.Generator, h_px: int, w_px: int, pixel_mm: float
) -> _LesionShape:
    """The lesion ``findings`` describe, placed in an (h_px, w_px) field. The draws from ``rng`` come in a
    fixed order (placement, outline, spicules, tilt), so a seed always gives the same lesion."""
    params = _lesion_params(findings)
    width_mm, depth_mm, centre_x_mm, centre_y_mm = _lesion_placement(params, rng, h_px, w_px, pixel_mm)
    outline = _outline(params.margin, params.irregularity, rng)
    dark, bright = _spicules(params.margin, params.spiculation, math.sqrt(width_mm * depth_mm) / 2, rng)
    return _LesionShape(
        half_width_mm=width_mm / 2,
        half_depth_mm=depth_mm / 2,
        centre_x_mm=centre_x_mm,
        centre_y_mm=centre_y_mm,
        tilt_rad=float(rng.normal(0, math.radians(4))),
        theta=outline.theta,
        radius=outline.radius,
        dark_spicules=dark,
        bright_spicules=bright,
        edge_mm=outline.edge_mm,
        halo_amplitude=outline.halo_amplitude,
        halo_width_mm=outline.halo_width_mm,
        posterior_gain=_posterior_gain(params.shadowing),
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
