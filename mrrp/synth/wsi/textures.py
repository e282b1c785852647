"""Smooth random fields and periodic textures (nuclei, fibres, fat membranes) of the synthetic tissue.

Textures tile the plane (indexed by absolute level-0 position), so tiles meet without seams; reduced
levels use exact box-averaged copies, or the texture's mean where its period would show as a lattice.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

# Textures have periods that are multiples of this, so each can be box-averaged exactly down to it.
MAX_TEXTURE_DOWNSAMPLE = 64
# A texture repeating every few pixels shows as a lattice on low-resolution levels and thumbnails;
# below this period (in output pixels) its mean is used instead.
MIN_TEXTURE_PERIOD_OUT_PX = 64
# Nuclei visibility is quantised in this many density steps below level 0 (see NucleiTexture).
_DENSITY_BINS = 16


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_cells: float) -> np.ndarray:
    """Gaussian random field with correlation length ``sigma_cells``, zero mean, unit SD. (gh, gw) float32."""
    from scipy import ndimage

    gh, gw = shape
    if sigma_cells <= 4:
        f = ndimage.gaussian_filter(rng.standard_normal(shape), max(sigma_cells, 0.5), mode="reflect")
    else:
        # Large scales: filter white noise on a coarse lattice, then spline-upsample (a wide kernel on
        # the full grid would cost O(sigma) per cell).
        step = sigma_cells / 3.0
        ch, cw = math.ceil(gh / step) + 4, math.ceil(gw / step) + 4
        coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), 3.0, mode="reflect")
        f = ndimage.zoom(coarse, step, order=3, prefilter=True)[:gh, :gw]
    f = f.astype(np.float32)
    f -= f.mean()
    f /= max(float(f.std()), 1e-6)
    return f


def periodic_noise(
    rng: np.random.Generator, period_px: int, sigma_along_px: float, sigma_across_px: float, angle_rad: float
) -> np.ndarray:
    """Periodic (seamlessly tiling) anisotropic Gaussian noise, zero mean, unit SD. (P, P) float32."""
    from scipy import fft

    ky = (fft.fftfreq(period_px) * 2 * np.pi).astype(np.float32)[:, None]  # radians per pixel
    kx = (fft.rfftfreq(period_px) * 2 * np.pi).astype(np.float32)[None, :]
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    k_along = kx * ca + ky * sa
    k_across = -kx * sa + ky * ca
    spectrum = np.exp(-0.5 * ((k_along * sigma_along_px) ** 2 + (k_across * sigma_across_px) ** 2))
    noise = fft.rfft2(rng.standard_normal((period_px, period_px), dtype=np.float32))
    f = fft.irfft2(noise * spectrum, s=(period_px, period_px)).astype(np.float32)
    f -= f.mean()
    f /= max(float(f.std()), 1e-6)
    return f


def _box_downsample(a: np.ndarray, ds: int) -> np.ndarray:
    """Mean over ds x ds blocks of the last two axes (which ds divides). (..., H/ds, W/ds) float32."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // ds, ds, w // ds, ds).mean(axis=(-3, -1), dtype=np.float32)


def _wrap_crop(tex: np.ndarray, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Window (..., h, w) of a texture that tiles the plane, top-left at (r0, c0). A view when it fits."""
    ph, pw = tex.shape[-2:]
    r0 %= ph
    c0 %= pw
    if r0 + h <= ph and c0 + w <= pw:
        return tex[..., r0 : r0 + h, c0 : c0 + w]
    rows = np.arange(r0, r0 + h) % ph
    cols = np.arange(c0, c0 + w) % pw
    return np.take(np.take(tex, rows, axis=-2), cols, axis=-1)


def texture_downsample(period_px: int, level_downsample: float) -> int | None:
    """The integer downsample at which a texture of this period is sampled exactly, or None (use its mean)."""
    ds = round(level_downsample)
    if abs(ds - level_downsample) > 1e-6 or ds < 1 or period_px % ds or ds > MAX_TEXTURE_DOWNSAMPLE:
        return None
    if period_px // ds < MIN_TEXTURE_PERIOD_OUT_PX:
        return None
    return ds


class ScalarTexture:
    """A periodic uint8 texture with lazily built box-averaged copies for reduced levels."""

    def __init__(self, values_u8: np.ndarray) -> None:
        self.period_px = values_u8.shape[0]
        self._levels: dict[int, np.ndarray] = {1: values_u8}
        self.mean = float(values_u8.mean()) / 255.0
        self._lock = threading.Lock()

    def level(self, ds: int) -> np.ndarray:
        with self._lock:
            if ds not in self._levels:
                self._levels[ds] = np.round(_box_downsample(self._levels[1].astype(np.float32), ds)).astype(np.uint8)
            return self._levels[ds]

    def sample(self, x0_px: float, y0_px: float, w: int, h: int, level_downsample: float) -> np.ndarray | float:
        """Values in [0, 1] at the output pixels of a region: (h, w) float32, or the texture mean."""
        ds = texture_downsample(self.period_px, level_downsample)
        if ds is None:
            return self.mean
        crop = _wrap_crop(self.level(ds), int(y0_px // ds), int(x0_px // ds), h, w)
        return crop.astype(np.float32) * np.float32(1.0 / 255.0)


class NucleiTexture:
    """Periodic layer of nuclei, each with a random visibility threshold ``u``.

    A nucleus is drawn where the local density exceeds its ``u``, so one texture serves any density
    map and density can vary smoothly across the slide. Reduced levels store, per density bin k,
    the box-averaged coverage of the nuclei with u < k / bins (cumulative, (bins + 1, P/ds, P/ds)),
    so a reduced level shows the average of what level 0 shows at the same density.
    """

    def __init__(self, alpha_u8: np.ndarray, u_u8: np.ndarray, offset_px: np.ndarray) -> None:
        self.period_px = alpha_u8.shape[0]
        self.alpha = alpha_u8  # (P, P) coverage x darkness, 0-255
        self.u = u_u8  # (P, P) visibility threshold of the covering nucleus, 0-254
        self.offset_px = offset_px  # (2, P, P) int16: (dx, dy) from the pixel to its nucleus centre
        self._bins = (u_u8.astype(np.int32) * _DENSITY_BINS) // 255  # (P, P) 0 .. bins-1
        self._cum: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        per_bin = np.bincount(self._bins.ravel(), weights=alpha_u8.ravel(), minlength=_DENSITY_BINS)
        self.mean_cum = np.concatenate([[0.0], np.cumsum(per_bin)]) / (alpha_u8.size * 255.0)  # (bins + 1,)

    def cumulative(self, ds: int) -> np.ndarray:
        with self._lock:
            if ds not in self._cum:
                # One bincount over (density bin, output cell) instead of a box filter per bin.
                p, n = self.period_px, self.period_px // ds
                cell = (np.arange(p) // ds)[:, None] * n + (np.arange(p) // ds)[None, :]  # (P, P)
                per_bin = np.bincount(
                    (self._bins * (n * n) + cell).ravel(), weights=self.alpha.ravel(), minlength=_DENSITY_BINS * n * n
                ).reshape(_DENSITY_BINS, n, n) / (ds * ds)
                cum = np.concatenate([np.zeros((1, n, n)), np.cumsum(per_bin, axis=0)])
                self._cum[ds] = np.round(cum).astype(np.uint8)
            return self._cum[ds]

    def offsets(self, x0_px: float, y0_px: float, w: int, h: int, level_downsample: float) -> np.ndarray | None:
        """(2, h, w) float32 (dx, dy) in level-0 px from each pixel to its nucleus centre, at level 0 only."""
        if texture_downsample(self.period_px, level_downsample) != 1:
            return None
        return _wrap_crop(self.offset_px, int(y0_px), int(x0_px), h, w).astype(np.float32)

    def coverage(
        self, x0_px: float, y0_px: float, w: int, h: int, level_downsample: float, density: np.ndarray | float
    ) -> np.ndarray | float:
        """Nuclear coverage in [0, 1] at the output pixels: (h, w) float32, or a float at tiny scales."""
        ds = texture_downsample(self.period_px, level_downsample)
        if ds is None:
            grid = np.linspace(0.0, 1.0, _DENSITY_BINS + 1)
            return np.interp(np.clip(density, 0, 1), grid, self.mean_cum).astype(np.float32)
        r0, c0 = int(y0_px // ds), int(x0_px // ds)
        if ds == 1:
            cov = _wrap_crop(self.alpha, r0, c0, h, w).astype(np.float32)
            cov *= _wrap_crop(self.u, r0, c0, h, w) < np.float32(255.0) * density
            cov *= np.float32(1.0 / 255.0)
            return cov
        cum = _wrap_crop(self.cumulative(ds), r0, c0, h, w)  # (bins + 1, h, w)
        k = np.clip(np.asarray(density, dtype=np.float32), 0, 1) * _DENSITY_BINS
        i = np.minimum(k.astype(np.int32), _DENSITY_BINS - 1)
        f = k - i
        if i.ndim == 0:
            lo, hi = cum[int(i)], cum[int(i) + 1]
        else:
            lo = np.take_along_axis(cum, i[None], 0)[0]
            hi = np.take_along_axis(cum, i[None] + 1, 0)[0]
        return (lo * (1.0 - f) + hi * f).astype(np.float32) * np.float32(1.0 / 255.0)


def draw_nuclei(
    rng: np.random.Generator,
    period_px: int,
    count: int,
    diameter_px: float,
    diameter_cv: float,
    aspect: tuple[float, float],
    darkness: tuple[float, float],
    vesicular: float = 0.0,
    nucleolus: float = 0.0,
    chromatin: float = 0.15,
    lobes: int = 1,
) -> NucleiTexture:
    """Stamp ``count`` soft elliptical nuclei on a torus of ``period_px``.

    ``aspect`` (mean, sd) is long/short axis; ``darkness`` (mean, sd) the peak alpha; ``vesicular``
    pales the centre (chromatin margination of high-grade nuclei); ``nucleolus`` adds a dark dot;
    ``lobes`` > 1 draws clumped fragments (mitotic figures, karyorrhectic debris).
    """
    p = period_px
    n = count * lobes  # stamps
    # Per-nucleus and per-stamp parameters, drawn vectorised.
    centre = rng.uniform(0, p, (count, 2))  # (count, 2) x, y
    u = rng.integers(0, 255, count)
    dark = np.clip(rng.normal(darkness[0], darkness[1], count), 0.25, 1.0)
    owner = np.repeat(np.arange(count), lobes)  # (n,) nucleus of each stamp
    d = (
        diameter_px
        * np.exp(np.clip(rng.normal(0, diameter_cv, n), -3 * diameter_cv, 3 * diameter_cv))
        / math.sqrt(lobes)
    )
    asp = np.clip(rng.normal(aspect[0], aspect[1], n), 1.0, aspect[0] + 3 * aspect[1])
    a_ax, b_ax = d / 2 * np.sqrt(asp), d / 2 / np.sqrt(asp)
    theta = rng.uniform(0, math.pi, n)
    lobe_offset = rng.normal(0, diameter_px * 0.25, (n, 2)) if lobes > 1 else np.zeros((n, 2))
    nucleolus_offset = rng.normal(0, 0.2, (n, 2)) * b_ax[:, None]
    edge_px = max(0.8, diameter_px * 0.06)

    r = int(math.ceil(a_ax.max() + 2 * edge_px)) + 1  # common half-size of the stamp boxes
    margin = r + int(math.ceil(np.abs(lobe_offset).max())) + 2
    size = p + 2 * margin
    canvas = _Canvas(
        alpha=np.zeros((size, size), np.float32),
        u=np.full((size, size), 254, np.uint8),
        offset=np.zeros((2, size, size), np.int16),  # (dx, dy) from each pixel to its nucleus centre
    )
    # One shared grain field instead of fresh noise per nucleus: same look, far cheaper.
    grain = rng.standard_normal((size, size)).astype(np.float32)
    pos = centre[owner] + lobe_offset + margin  # (n, 2) stamp centres in canvas px
    stamps = _Stamps(
        box0=np.floor(pos).astype(np.intp) - r,  # (n, 2) top-left of each box
        pos=pos,
        span=np.arange(2 * r + 1),
        theta=theta,
        a_ax=a_ax,
        b_ax=b_ax,
        lobe_offset=lobe_offset,
        nucleolus_offset=nucleolus_offset,
        dark=dark[owner],
        u=u[owner],
        edge_px=edge_px,
    )
    for c0 in range(0, n, 64):  # batches bound memory for large, pleomorphic nuclei
        c1 = min(n, c0 + 64)
        stamp, off_x, off_y = _stamp_batch(stamps, c0, c1, grain, vesicular, nucleolus, chromatin)
        _place_batch(canvas, stamps, c0, stamp, off_x, off_y)
    core = _fold_onto_torus(canvas, margin, p)
    return NucleiTexture(np.round(core.alpha * 255).astype(np.uint8), core.u.copy(), core.offset.copy())


@dataclass
class _Canvas:
    """A nuclei texture being drawn: coverage, the owner's visibility threshold, offsets to the owner's centre."""

    alpha: np.ndarray  # (S, S) float32
    u: np.ndarray  # (S, S) uint8
    offset: np.ndarray  # (2, S, S) int16


@dataclass
class _Stamps:
    """Every stamp's box, shape and owner, drawn once (n stamps; a nucleus has ``lobes`` stamps)."""

    box0: np.ndarray  # (n, 2) top-left of each stamp's box in canvas px
    pos: np.ndarray  # (n, 2) stamp centres
    span: np.ndarray  # (2r + 1,) offsets within a box
    theta: np.ndarray
    a_ax: np.ndarray
    b_ax: np.ndarray
    lobe_offset: np.ndarray  # (n, 2)
    nucleolus_offset: np.ndarray  # (n, 2)
    dark: np.ndarray  # (n,) the owner's darkness
    u: np.ndarray  # (n,) the owner's visibility threshold
    edge_px: float


def _stamp_batch(
    st: _Stamps, c0: int, c1: int, grain: np.ndarray, vesicular: float, nucleolus: float, chromatin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha (b, S, S), dx and dy (b, S, S) int16 to the nucleus centre) of stamps c0 .. c1 - 1."""
    box0, pos, span, edge_px = st.box0, st.pos, st.span, st.edge_px
    dx = (box0[c0:c1, 0, None] + span - pos[c0:c1, 0, None])[:, None, :].astype(np.float32)  # (b, 1, S)
    dy = (box0[c0:c1, 1, None] + span - pos[c0:c1, 1, None])[:, :, None].astype(np.float32)  # (b, S, 1)
    ct, sn = np.cos(st.theta[c0:c1])[:, None, None], np.sin(st.theta[c0:c1])[:, None, None]
    aa, bb = st.a_ax[c0:c1, None, None], st.b_ax[c0:c1, None, None]
    rho = np.sqrt(((dx * ct + dy * sn) / aa) ** 2 + ((dy * ct - dx * sn) / bb) ** 2)  # (b, S, S)
    body = np.clip((1.0 - rho) * (bb / edge_px) + 0.5, 0.0, 1.0)
    stamp = 1.0 - vesicular * np.exp(-((rho / 0.55) ** 2)) if vesicular > 0 else np.ones_like(rho)
    rows = box0[c0:c1, 1, None, None] + span[None, :, None]
    cols = box0[c0:c1, 0, None, None] + span[None, None, :]
    stamp = stamp * (1.0 + chromatin * grain[rows, cols])
    if nucleolus > 0:
        nx, ny = st.nucleolus_offset[c0:c1, 0, None, None], st.nucleolus_offset[c0:c1, 1, None, None]
        stamp += nucleolus * np.exp(-((dx - nx) ** 2 + (dy - ny) ** 2) / (2 * (0.12 * bb + 0.5) ** 2))
    stamp = np.clip(stamp * st.dark[c0:c1, None, None], 0.0, 1.0) * body
    # Offsets to the nucleus centre (not the lobe's), so a fragmented figure is judged as one.
    off_x = np.round(-(dx + st.lobe_offset[c0:c1, 0, None, None])).astype(np.int16)
    off_y = np.round(-(dy + st.lobe_offset[c0:c1, 1, None, None])).astype(np.int16)
    return stamp, off_x, off_y


def _place_batch(
    canvas: _Canvas, st: _Stamps, c0: int, stamp: np.ndarray, off_x: np.ndarray, off_y: np.ndarray
) -> None:
    """Draw a batch of stamps onto the canvas, one after another."""
    size = len(st.span)
    for i in range(len(stamp)):
        k = c0 + i
        sl = (slice(st.box0[k, 1], st.box0[k, 1] + size), slice(st.box0[k, 0], st.box0[k, 0] + size))
        win, uwin = canvas.alpha[sl], canvas.u[sl]
        # Overlaps: the nucleus with the lower threshold (visible more often) owns its solid body, so a
        # hidden neighbour never leaves a crescent-shaped hole; it reads as occlusion instead.
        uk = int(st.u[k])
        take = _owns(stamp[i], uk, win, uwin)
        win[take] = stamp[i][take]
        uwin[take] = uk
        canvas.offset[0][sl][take] = np.broadcast_to(off_x[i], take.shape)[take]
        canvas.offset[1][sl][take] = np.broadcast_to(off_y[i], take.shape)[take]


def _fold_onto_torus(canvas: _Canvas, margin: int, p: int) -> _Canvas:
    """The period-``p`` core of the canvas with its margins folded back, so the texture tiles seamlessly."""
    size = canvas.alpha.shape[0]
    alpha, u_map, offset = canvas.alpha, canvas.u, canvas.offset
    core_a = alpha[margin : margin + p, margin : margin + p]
    core_u = u_map[margin : margin + p, margin : margin + p]
    core_o = offset[:, margin : margin + p, margin : margin + p]
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            if ox == 0 and oy == 0:
                continue
            ys = slice(max(0, margin + oy * p), min(size, margin + (oy + 1) * p))
            xs = slice(max(0, margin + ox * p), min(size, margin + (ox + 1) * p))
            src_a, src_u, src_o = alpha[ys, xs], u_map[ys, xs], offset[:, ys, xs]
            ty, tx = ys.start - (margin + oy * p), xs.start - (margin + ox * p)
            dst = (slice(ty, ty + src_a.shape[0]), slice(tx, tx + src_a.shape[1]))
            dst_a, dst_u, dst_o = core_a[dst], core_u[dst], core_o[(slice(None), *dst)]
            take = _owns(src_a, src_u, dst_a, dst_u)
            dst_a[take] = src_a[take]
            dst_u[take] = src_u[take]
            dst_o[:, take] = src_o[:, take]
    return _Canvas(core_a, core_u, core_o)


def _owns(new_alpha: np.ndarray, new_u: np.ndarray | int, old_alpha: np.ndarray, old_u: np.ndarray) -> np.ndarray:
    """Pixels a new nucleus takes over: where it is stronger, unless an existing more-visible nucleus is solid there."""
    stronger = new_alpha > old_alpha
    solid_new = (new_alpha >= 0.5) & (new_u < old_u)
    blocked = (old_alpha >= 0.5) & (old_u < new_u)
    return (stronger & ~blocked) | solid_new


def fat_membranes(
    rng: np.random.Generator, period_px: int, cell_um: float, membrane_um: float, mpp: float
) -> np.ndarray:
    """Periodic Voronoi membranes of adipocytes, coverage 0-255. (P, P) uint8."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    n_cells = max(4, round((period_px * mpp / cell_um) ** 2))
    seeds = rng.uniform(0, period_px, (n_cells, 2))
    tiled = np.concatenate([seeds + np.array([oy, ox]) * period_px for oy in (-1, 0, 1) for ox in (-1, 0, 1)])
    # (d2 - d1) to the two nearest seeds is ~twice the distance to the membrane; it is smooth enough to
    # compute on a coarse lattice and upsample, which keeps construction fast.
    step = 4
    n = period_px // step
    g = (np.arange(n) + 0.5) * step
    yy, xx = np.meshgrid(g, g, indexing="ij")
    d, _ = cKDTree(tiled).query(np.stack([yy.ravel(), xx.ravel()], 1), k=2)
    gap = (d[:, 1] - d[:, 0]).reshape(n, n).astype(np.float32)
    gap = ndimage.zoom(gap, step, order=1, mode="grid-wrap", grid_mode=True)[:period_px, :period_px]
    half_px = 0.5 * membrane_um / mpp
    cov = np.clip(half_px - gap / 2 + 0.5, 0, 1)
    return np.round(cov * 255).astype(np.uint8)


def texture_period_px(period_um: float, mpp: float) -> int:
    return max(4, round(period_um / mpp / MAX_TEXTURE_DOWNSAMPLE)) * MAX_TEXTURE_DOWNSAMPLE
