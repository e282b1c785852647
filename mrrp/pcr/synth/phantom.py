"""Rendering one patient's DCE phases on her site's native grid: anatomy, tumour, kinetics, scanner effects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrrp.pcr.synth.specs import FOV_MM, SITES, PatientSpec, Site

FAT, FGT_PRE, TUMOUR_PRE, MUSCLE_PRE, SKIN_PRE, OEDEMA_PRE, HEART_PRE, THORAX_PRE = (
    1.0,
    0.45,
    0.42,
    0.35,
    0.6,
    0.3,
    0.4,
    0.05,
)  # (T1-weighted pre-contrast signal relative to fat)


def native_shape(site: Site) -> tuple[int, int, int]:
    return tuple(int(round(f / s)) for f, s in zip(FOV_MM, site.spacing_mm, strict=True))  # type: ignore[return-value]


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_mm: float, spacing: tuple[float, ...]
) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``sigma_mm``."""
    from scipy import ndimage

    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), [sigma_mm / s for s in spacing])
    return (f - f.mean()) / (f.std() + 1e-6)


def _enhancement(t: np.ndarray | float, amplitude: float, tau_min: float, washout: float) -> np.ndarray | float:
    """Wash-in (1 - exp(-t/tau)) times wash-out exp(-k t): the classic DCE kinetic curve shapes."""
    return amplitude * (1.0 - np.exp(-np.asarray(t) / tau_min)) * np.exp(-washout * np.asarray(t))


@dataclass
class RenderedMRI:
    phases: np.ndarray  # (P, X, Y, Z) float32 scanner units, RAS+ voxel order (x = right, y = anterior, z = superior)
    mask: np.ndarray  # (X, Y, Z) bool tumour
    affine: np.ndarray  # (4, 4) RAS+ of the RAS-ordered arrays
    times_min: tuple[float, ...]  # 0 for the pre-contrast phase


@dataclass
class _Grid:
    """The site's native grid: voxel centres in RAS millimetres, centred on the field of view."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    x: np.ndarray  # (X, Y, Z) mm, right
    y: np.ndarray  # (X, Y, Z) mm, anterior
    z: np.ndarray  # (X, Y, Z) mm, superior


@dataclass
class _Anatomy:
    """Where each tissue lies ((X, Y, Z) bool masks) and the breast's shape in mm."""

    y_chest_wall: float
    radii_mm: tuple[float, float, float]  # breast half-ellipsoid (x, y, z)
    x0: float  # breast centre, right-left
    z0: float  # breast centre, superior-inferior
    breast: np.ndarray
    skin: np.ndarray
    muscle: np.ndarray
    thorax: np.ndarray
    heart: np.ndarray
    fgt: np.ndarray  # fibroglandular tissue (inside the breast, beneath the skin)


@dataclass
class _Tumour:
    mask: np.ndarray  # (X, Y, Z) bool
    necrosis: np.ndarray  # (X, Y, Z) bool, non-enhancing core
    oedema_shell: np.ndarray  # (X, Y, Z) bool peritumoral oedema
    gain: np.ndarray  # (X, Y, Z) enhancement multiplier (texture, rim, necrosis)


def render_mri(spec: PatientSpec) -> RenderedMRI:
    """Draw the patient's DCE phases on her site's native grid.

    The steps draw from one generator in a fixed order (anatomy, glandular texture, tumour, pre-contrast
    signal, phases), so a patient's volume depends only on her seed.
    """
    site = SITES[spec.site]
    rng = np.random.default_rng([spec.seed, 1])
    shape = native_shape(site)
    sp = site.spacing_mm
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, sp, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")  # mm, RAS, centred
    grid = _Grid(shape, sp, x, y, z)
    anatomy = _draw_anatomy(rng, spec, grid)
    tumour = _draw_tumour(rng, spec, grid, anatomy)
    pre = _pre_contrast(rng, spec, grid, anatomy, tumour)
    times = (0.0, *site.post_times_min)
    phases = _dynamic_phases(rng, spec, site, grid, anatomy, tumour, pre, times)
    affine = np.diag([*sp, 1.0])
    affine[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape, sp, strict=True)]
    spec.extras = {
        "tumour_voxels": float(tumour.mask.sum()),
        "tumour_fraction": float(tumour.mask.mean()),
        "necrosis_fraction": float(tumour.necrosis.sum() / max(tumour.mask.sum(), 1)),
    }
    return RenderedMRI(np.stack(phases), tumour.mask, affine, times)


def _draw_anatomy(rng: np.random.Generator, spec: PatientSpec, grid: _Grid) -> _Anatomy:
    """Chest wall across the posterior FOV, the breast a half-ellipsoid in front of it, a heart behind."""
    x, y, z = grid.x, grid.y, grid.z
    y_cw = -34.0 + rng.normal(0, 3)
    rx, ry, rz = rng.uniform(48, 60), rng.uniform(55, 78), rng.uniform(38, 45)
    x0, z0 = rng.normal(0, 4), rng.normal(0, 3)
    rho = np.sqrt(((x - x0) / rx) ** 2 + ((y - y_cw) / ry) ** 2 + ((z - z0) / rz) ** 2)
    breast = (rho <= 1.0) & (y >= y_cw)
    skin = breast & (rho > 1.0 - 2.0 / ry)
    muscle = (y < y_cw) & (y >= y_cw - 9.0) & (np.abs(z - z0) < 46)
    thorax = y < y_cw - 9.0
    heart_c = (-38.0 + rng.normal(0, 4), y_cw - 40.0, z0 - 12.0)
    heart = ((x - heart_c[0]) / 34) ** 2 + ((y - heart_c[1]) / 26) ** 2 + ((z - heart_c[2]) / 30) ** 2 <= 1.0

    # Fibroglandular tissue: smooth texture, denser centrally, its share of the breast set by fgt_fraction.
    central = np.exp(-(((x - x0) ** 2 + (z - z0) ** 2) / (2 * (0.55 * rx) ** 2)))
    texture = _smooth_noise(rng, grid.shape, 4.0, grid.spacing_mm) + 1.6 * central
    inner = breast & ~skin
    threshold = np.quantile(texture[inner], 1.0 - spec.fgt_fraction) if inner.any() else np.inf
    fgt = inner & (texture > threshold)
    return _Anatomy(y_cw, (rx, ry, rz), x0, z0, breast, skin, muscle, thorax, heart, fgt)


def _draw_tumour(rng: np.random.Generator, spec: PatientSpec, grid: _Grid, anatomy: _Anatomy) -> _Tumour:
    """A lobulated ellipsoid well inside the breast, centred where glandular tissue is, with its oedema,
    internal texture and a non-enhancing necrotic core that grows with heterogeneity."""
    x, y, z, shape, sp = grid.x, grid.y, grid.z, grid.shape, grid.spacing_mm
    rx, ry, rz = anatomy.radii_mm
    x0, z0, breast = anatomy.x0, anatomy.z0, anatomy.breast
    radius = spec.diameter_mm / 2.0
    axes_ratio = rng.uniform(0.8, 1.2, 3)
    depth = rng.uniform(0.25, 0.55) * ry
    centre = np.array(
        [x0 + rng.normal(0, 0.2 * rx), anatomy.y_chest_wall + max(depth, radius + 8), z0 + rng.normal(0, 0.15 * rz)]
    )
    lobes = _smooth_noise(rng, shape, max(3.0, 0.45 * radius), sp)
    dist = np.sqrt(
        ((x - centre[0]) / axes_ratio[0]) ** 2
        + ((y - centre[1]) / axes_ratio[1]) ** 2
        + ((z - centre[2]) / axes_ratio[2]) ** 2
    ) / (radius * (1.0 + 0.18 * lobes))  # < 1 inside
    tumour = (dist <= 1.0) & breast
    if not tumour.any():  # a tumour smaller than a voxel: keep the voxel nearest its centre
        tumour.flat[int(np.argmin(dist))] = True
    oedema_shell = breast & ~tumour & (dist <= 1.0 + 0.7 * spec.oedema) & (spec.oedema > 0.15)

    h = spec.heterogeneity
    inner_texture = 1.0 + 0.55 * h * _smooth_noise(rng, shape, 2.5, sp)
    necrosis = tumour & (dist < 0.75 * max(h - 0.35, 0.0) / 0.65)
    rim = 0.75 + 0.25 * np.clip(dist, 0, 1)  # peripheral (rim) enhancement, stronger when heterogeneous
    tumour_gain = np.clip(inner_texture * (1.0 - h * (1.0 - rim)), 0.2, None)
    tumour_gain[necrosis] = 0.12
    return _Tumour(tumour, necrosis, oedema_shell, tumour_gain)


def _pre_contrast(
    rng: np.random.Generator, spec: PatientSpec, grid: _Grid, anatomy: _Anatomy, tumour: _Tumour
) -> np.ndarray:
    """(X, Y, Z) float32 T1-weighted signal before contrast, relative to fat; later tissues overwrite earlier."""
    pre = np.zeros(grid.shape, np.float32)
    pre[anatomy.thorax] = THORAX_PRE
    pre[anatomy.heart] = HEART_PRE
    pre[anatomy.muscle] = MUSCLE_PRE
    pre[anatomy.breast] = FAT
    pre[anatomy.fgt] = FGT_PRE
    pre[anatomy.skin] = SKIN_PRE
    pre[tumour.oedema_shell] = OEDEMA_PRE + 0.15 * (1 - spec.oedema)
    h = spec.heterogeneity
    pre[tumour.mask] = TUMOUR_PRE * (1.0 + 0.1 * h * _smooth_noise(rng, grid.shape, 2.0, grid.spacing_mm)[tumour.mask])
    return pre


def _dynamic_phases(
    rng: np.random.Generator,
    spec: PatientSpec,
    site: Site,
    grid: _Grid,
    anatomy: _Anatomy,
    tumour: _Tumour,
    pre: np.ndarray,
    times: tuple[float, ...],
) -> list[np.ndarray]:
    """One (X, Y, Z) float32 volume per time point: tissue kinetics, the scanner's contrast, bias and Rician noise."""
    from scipy import ndimage

    x, y, z, shape = grid.x, grid.y, grid.z, grid.shape
    k = site.enhancement
    bias = np.exp(
        site.bias * (np.array(site.bias_direction) @ np.stack([x, y, z]).reshape(3, -1)).reshape(shape) / 64.0
        + 0.1 * site.bias * rng.normal() * (x / 64.0) ** 2
    )
    t_mask = tumour.mask
    phases = []
    for t in times:
        s = pre.copy()
        if t > 0:
            s[anatomy.fgt] += k * float(_enhancement(t, spec.bpe, 3.0, -0.02))
            s[anatomy.muscle] += k * float(_enhancement(t, 0.12, 2.0, 0.0))
            s[anatomy.skin] += k * float(_enhancement(t, 0.08, 2.0, 0.0))
            s[anatomy.heart] += k * float(_enhancement(t, 2.2, 0.3, 0.12))
            s[tumour.oedema_shell] += k * float(_enhancement(t, 0.12 + 0.1 * spec.oedema, 2.5, 0.0))
            s[t_mask] += k * tumour.gain[t_mask] * float(_enhancement(t, spec.wash_in, 0.6, spec.washout_per_min))
        s = np.clip(s, 0, None) ** site.gamma
        s = ndimage.gaussian_filter(s, 0.5)  # partial volume over one native voxel
        s = s * bias
        noise_a = rng.normal(0, site.noise, shape)
        noise_b = rng.normal(0, site.noise, shape)
        s = np.sqrt((s + noise_a) ** 2 + noise_b**2)  # magnitude image: Rician noise
        phases.append((s * site.gain).astype(np.float32))
    return phases
