"""The procedural H&E tissue model: :class:`SyntheticTissue` renders glass, irregular tissue pieces, eosin
stroma with fibres, fat, tumour nests with tunable nuclear morphology, lymphocyte aggregates, necrosis and
an optional pen mark, at any region and any downsample, plus the ground-truth tissue and tumour masks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mrrp.synth.wsi.model import (
    C_DEEP,
    C_EPI,
    C_FAT,
    C_MEM,
    C_NDEBRIS,
    C_NEC,
    C_NLYMPH,
    C_NMIT,
    C_NSTROMA,
    C_NTUMOUR,
    C_PALE,
    DEBRIS_RGB,
    EPITHELIUM_RGB,
    F_FAT,
    F_LYMPH,
    F_NECROSIS,
    F_NEST,
    F_ORIENT,
    F_PEN,
    F_STAIN,
    F_TISSUE,
    F_TUMOUR,
    FAT_RGB,
    GLASS_RGB,
    LYMPHOCYTE_RGB,
    MEMBRANE_RGB,
    MITOSIS_RGB,
    NECROSIS_RGB,
    NUCLEUS_RGB,
    PEN_TRANSMISSION,
    STROMA_DEEP_RGB,
    STROMA_PALE_RGB,
    STROMAL_NUCLEUS_RGB,
    RegionClasses,
    TissueModel,
    region_classes,
)
from mrrp.synth.wsi.sampling import RegionSampler, ramp
from mrrp.synth.wsi.textures import (
    NucleiTexture,
    ScalarTexture,
    draw_nuclei,
    fat_membranes,
    periodic_noise,
    smooth_noise,
    texture_period_px,
)


@dataclass
class _Grid:
    """The smooth fields on their coarse grid, with what construction derives from them."""

    cell_px: float
    fields: np.ndarray  # (n_fields, gh, gw) float32
    gx: np.ndarray  # (1, gw) level-0 x of the grid columns
    gy: np.ndarray  # (gh, 1) level-0 y of the grid rows
    pen_half_px: float
    tissue_grad_max: float


def _quantile(values: np.ndarray, keep: float) -> float:
    """The threshold above which a share ``keep`` of ``values`` lies (+inf for none, -inf for all)."""
    if keep <= 0 or values.size == 0:
        return math.inf
    if keep >= 1:
        return -math.inf
    return float(np.quantile(values, 1.0 - keep))


def _fibre_u8(f: np.ndarray) -> np.ndarray:
    # Collagen bundles (1) with pale clefts between them (0).
    return np.round(255 / (1 + np.exp(-2.2 * f))).astype(np.uint8)


@dataclass
class SyntheticTissue:
    """A procedural H&E breast-tissue slide of ``width_px`` x ``height_px`` level-0 pixels at ``mpp``.

    Morphology parameters (plain floats, so a cohort generator can drive them from latent biology):

    - ``tissue_fraction``: fraction of the slide area covered by tissue.
    - ``tumour_fraction``: fraction of the tissue area that is tumour bed (nests + intervening stroma).
    - ``nuclear_density``: tumour cellularity, 0-1 (1 = nuclei cover about half of a tumour nest).
    - ``nuclear_size_um``: mean tumour nuclear diameter in microns (normal epithelium ~ 6-7).
    - ``pleomorphism``: 0-1; variation of nuclear size, shape and staining, vesicular chromatin, nucleoli.
    - ``mitotic_rate``: fraction of tumour nuclei in mitosis (0-0.1 is realistic).
    - ``lymphocyte_density``: 0-1; stromal lymphocytes (TILs) and the area of lymphoid aggregates.
    - ``necrosis_fraction``: fraction of the tumour bed that is necrotic.
    - ``fat_fraction``: fraction of the non-tumour tissue that is adipose.
    - ``eosin_strength`` / ``haematoxylin_strength``: stain intensity multipliers (batch effects).
    - ``pen_mark``: draw a marker stroke (``pen_colour``: green, blue, black) on the glass, clear of tissue.

    Tissue-piece and tumour-region sizes scale with the slide; cells, nests, fat lobules and
    lymphoid aggregates have physical sizes in microns. ``tile_fn`` renders any region at any
    downsample; ``tissue_mask`` / ``tumour_mask`` give the ground truth at any downsample.
    """

    width_px: int
    height_px: int
    seed: int = 0
    mpp: float = 0.25
    tissue_fraction: float = 0.4
    tumour_fraction: float = 0.3
    nuclear_density: float = 0.6
    nuclear_size_um: float = 9.0
    pleomorphism: float = 0.5
    mitotic_rate: float = 0.02
    lymphocyte_density: float = 0.3
    necrosis_fraction: float = 0.05
    fat_fraction: float = 0.2
    eosin_strength: float = 1.0
    haematoxylin_strength: float = 1.0
    pen_mark: bool = False
    pen_colour: str = "green"
    _model: TissueModel = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._validate()
        self._model = self._build()

    # -- construction ---------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.width_px < 64 or self.height_px < 64:
            raise ValueError(f"slide must be at least 64x64 px, got {self.width_px}x{self.height_px}")
        if not 0.05 <= self.mpp <= 20:
            raise ValueError(f"mpp {self.mpp} is not a microscope resolution")
        if not 0.01 <= self.tissue_fraction <= 0.9:
            raise ValueError(f"tissue_fraction must be in [0.01, 0.9], got {self.tissue_fraction}")
        for name in (
            "tumour_fraction",
            "nuclear_density",
            "pleomorphism",
            "mitotic_rate",
            "lymphocyte_density",
            "necrosis_fraction",
            "fat_fraction",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if not 2.0 <= self.nuclear_size_um <= 40.0:
            raise ValueError(f"nuclear_size_um {self.nuclear_size_um} is outside 2-40 µm")
        for name in ("eosin_strength", "haematoxylin_strength"):
            if not 0.2 <= getattr(self, name) <= 2.0:
                raise ValueError(f"{name} must be in [0.2, 2.0]")
        if self.pen_colour not in PEN_TRANSMISSION:
            raise ValueError(f"pen_colour must be one of {sorted(PEN_TRANSMISSION)}")

    def _build(self) -> TissueModel:
        # One random stream, drawn in this order: the smooth fields, then the nuclei, then the stroma textures.
        rng = np.random.default_rng(self.seed)
        grid = self._grid_fields(rng)
        thr, eps = self._calibrate(grid)
        um = 1.0 / self.mpp  # level-0 px per micron
        p = texture_period_px(256.0, self.mpp)  # periodic textures of ~256 µm, in level-0 px
        nuclei = self._nuclei_textures(rng, p)
        fibres_a = periodic_noise(rng, p, 18 * um, 1.5 * um, rng.uniform(0, math.pi))
        fibres_b = periodic_noise(rng, p, 18 * um, 1.5 * um, rng.uniform(0, math.pi))
        edge = periodic_noise(rng, p, 4 * um, 4 * um, 0.0)
        grain = rng.integers(0, 256, (p, p), dtype=np.uint8)
        membranes = fat_membranes(rng, texture_period_px(512.0, self.mpp), cell_um=70.0, membrane_um=2.0, mpp=self.mpp)
        edge_rough_um = 5.0
        return TissueModel(
            cell_px=grid.cell_px,
            fields=grid.fields,
            thresholds=thr,
            eps=eps,
            tissue_edge_px=3.0 * um,
            # The edge texture stores 128 + 50 * N(0, 1): one SD moves the outline by edge_rough_um.
            tissue_rough_px=edge_rough_um * um * 255.0 / 50.0,
            tissue_grad_max=grid.tissue_grad_max,
            pen_half_width_px=grid.pen_half_px,
            pen_rgb=np.array(PEN_TRANSMISSION[self.pen_colour], np.float32),
            palette=self._palette(),
            **nuclei,
            fibres_a=ScalarTexture(_fibre_u8(fibres_a)),
            fibres_b=ScalarTexture(_fibre_u8(fibres_b)),
            membranes=ScalarTexture(membranes),
            edge_noise=ScalarTexture(np.round(np.clip(edge * 50 + 128, 0, 255)).astype(np.uint8)),
            grain=ScalarTexture(grain),
        )

    def _grid_fields(self, rng: np.random.Generator) -> _Grid:
        """The smooth fields on one coarse grid (tissue outline clear of the edges and of the pen stroke)."""
        w, h, mpp = self.width_px, self.height_px, self.mpp
        um = 1.0 / mpp  # level-0 px per micron
        short_px = min(w, h)
        # Grid fine enough for 40 µm nests on big slides and for the tissue outline on small ones.
        cell_px = float(np.clip(short_px / 96, 4.0, 16.0 * um))
        gw, gh = math.ceil(w / cell_px) + 2, math.ceil(h / cell_px) + 2
        shape = (gh, gw)

        def noise(scale_px: float) -> np.ndarray:
            return smooth_noise(rng, shape, scale_px / cell_px)

        tissue_scale_px = 0.3 * short_px
        tumour_scale_px = 0.3 * tissue_scale_px
        tissue = noise(tissue_scale_px) + 0.45 * noise(tissue_scale_px / 2.5) + 0.2 * noise(tissue_scale_px / 6)
        gy = (np.arange(gh) * cell_px)[:, None]
        gx = (np.arange(gw) * cell_px)[None, :]
        # Tissue keeps clear of the slide edges, as on a real section; the clearance undulates so the
        # outline never runs parallel to the slide edge.
        to_edge_px = np.minimum(np.minimum(gx, w - gx), np.minimum(gy, h - gy)) + 0.04 * short_px * noise(
            0.1 * short_px
        )
        border = np.clip(to_edge_px / (0.1 * short_px), 0, 1)
        tissue = tissue - 8.0 * (1 - border) ** 2

        pen_half_px = float(np.clip(0.015 * short_px, 8.0, 250.0 * um))
        pen_dist = np.full(shape, 1e6, np.float32)
        if self.pen_mark:
            pen_dist = self._pen_distance(rng, gx, gy, reach_px=8 * pen_half_px + 0.1 * short_px)
            # Keep tissue off the stroke, so the pen sits on glass (what a tissue detector must reject).
            tissue = tissue - 4.0 * np.clip(1.0 - pen_dist / (2 * pen_half_px + 0.04 * short_px), 0, 1)
        fields = np.stack(
            [
                tissue,
                pen_dist,
                noise(0.4 * short_px),
                noise(tumour_scale_px) + 0.4 * noise(tumour_scale_px / 3),
                noise(max(0.3 * tumour_scale_px, 60 * um)) + 0.35 * noise(25 * um),  # ragged necrosis
                noise(max(0.15 * tissue_scale_px, 150 * um)) + 0.3 * noise(60 * um),
                noise(25 * um),
                noise(35 * um) + 0.35 * noise(12 * um),
                noise(60 * um),
                noise(max(0.2 * tissue_scale_px, 200 * um)),
            ]
        ).astype(np.float32)
        gy_t, gx_t = np.gradient(fields[F_TISSUE])
        # x1.5: the cubic interpolant can be steeper than finite differences between nodes.
        tissue_grad_max = 1.5 * float(np.hypot(gx_t, gy_t).max()) / cell_px
        return _Grid(cell_px, fields, gx, gy, pen_half_px, tissue_grad_max)

    def _calibrate(self, grid: _Grid) -> tuple[dict[str, float], dict[str, float]]:
        """(thresholds, ramp widths) of the fields that reach the requested area fractions.

        Thresholds are calibrated on the grid nodes inside the slide, so the requested area fractions
        hold for the rendered slide and its masks.
        """
        fields, cell_px, um = grid.fields, grid.cell_px, 1.0 / self.mpp

        def eps_for(f: np.ndarray, thr: float, edge_um: float) -> float:
            # Field units per level-0 px across the threshold contour turn an edge width in µm into a ramp width.
            if not math.isfinite(thr):
                return 1.0
            gyf, gxf = np.gradient(f)
            mag = np.hypot(gxf, gyf) / cell_px
            near = np.abs(f - thr) < 0.25
            return max(float(np.median(mag[near] if near.any() else mag)), 1e-9) * edge_um * um

        inside = (grid.gy < self.height_px) & (grid.gx < self.width_px)
        thr: dict[str, float] = {}
        eps: dict[str, float] = {}
        thr["tissue"] = _quantile(fields[F_TISSUE][inside], self.tissue_fraction)
        in_tissue = inside & (fields[F_TISSUE] >= thr["tissue"])
        thr["tumour"] = _quantile(fields[F_TUMOUR][in_tissue], self.tumour_fraction)
        eps["tumour"] = eps_for(fields[F_TUMOUR], thr["tumour"], 15.0)
        in_tumour = in_tissue & (fields[F_TUMOUR] >= thr["tumour"])
        thr["necrosis"] = _quantile(fields[F_NECROSIS][in_tumour], self.necrosis_fraction)
        eps["necrosis"] = eps_for(fields[F_NECROSIS], thr["necrosis"], 10.0)
        normal = in_tissue & ~in_tumour
        thr["fat"] = _quantile(fields[F_FAT][normal], self.fat_fraction)
        eps["fat"] = eps_for(fields[F_FAT], thr["fat"], 6.0)
        # Stationary micro-architecture: thresholds from the whole grid.
        thr["lymph"] = _quantile(fields[F_LYMPH].ravel(), 0.12 * self.lymphocyte_density)
        eps["lymph"] = eps_for(fields[F_LYMPH], thr["lymph"], 6.0)
        # Solid, highly cellular tumours have larger nests with less stroma between them.
        thr["nest"] = _quantile(fields[F_NEST].ravel(), 0.45 + 0.35 * self.nuclear_density)
        eps["nest"] = eps_for(fields[F_NEST], thr["nest"], 2.0)
        return thr, eps

    def _nuclei_textures(self, rng: np.random.Generator, p: int) -> dict[str, NucleiTexture]:
        """Tumour, stromal, lymphocyte, mitotic and debris nuclei on a period of ``p`` level-0 px, by TissueModel field."""
        um = 1.0 / self.mpp
        pleo = self.pleomorphism
        tum_d = self.nuclear_size_um * um
        # At nuclear_density = 1 nuclei cover ~55% of a nest; the visible share is chosen per pixel.
        tum_count = int(0.55 * p * p / (math.pi * (tum_d / 2) ** 2 * (1 + 0.6 * pleo)))
        out = {}
        out["tumour_nuclei"] = draw_nuclei(
            rng,
            p,
            tum_count,
            tum_d,
            0.08 + 0.3 * pleo,
            (1.15 + 0.3 * pleo, 0.1 + 0.25 * pleo),
            (0.82, 0.05 + 0.15 * pleo),
            vesicular=0.15 + 0.45 * pleo,
            nucleolus=0.6 * pleo,
            chromatin=0.12 + 0.2 * pleo,
        )
        stromal_d = 5.5 * um
        out["stromal_nuclei"] = draw_nuclei(
            rng, p, int(0.12 * p * p / (math.pi * (stromal_d / 2) ** 2)), stromal_d, 0.15, (4.0, 1.0), (0.8, 0.08)
        )
        lym_d = 6.5 * um
        out["lymphocytes"] = draw_nuclei(
            rng,
            p,
            int(0.55 * p * p / (math.pi * (lym_d / 2) ** 2)),
            lym_d,
            0.08,
            (1.05, 0.05),
            (0.95, 0.04),
            chromatin=0.05,
        )
        out["mitoses"] = draw_nuclei(
            rng, p, max(4, tum_count // 10), tum_d * 0.9, 0.15, (2.0, 0.6), (1.0, 0.02), chromatin=0.1, lobes=6
        )
        out["debris"] = draw_nuclei(
            rng,
            p,
            int(0.08 * p * p / (math.pi * (5 * um / 2) ** 2)),
            5 * um,
            0.3,
            (1.3, 0.3),
            (0.7, 0.15),
            lobes=4,
        )
        return out

    def _palette(self) -> np.ndarray:
        """(11, 3) float32 basis colours (rows C_*) after the eosin and haematoxylin strengths."""

        def stained(rgb: tuple[float, float, float], strength: float) -> tuple[float, float, float]:
            r, g, b = (255.0 - (255.0 - c) * strength for c in rgb)
            return (r, g, b)

        eo, hx = self.eosin_strength, self.haematoxylin_strength
        return np.array(
            [
                stained(c, eo)
                for c in (STROMA_PALE_RGB, STROMA_DEEP_RGB, EPITHELIUM_RGB, NECROSIS_RGB, FAT_RGB, MEMBRANE_RGB)
            ]
            + [stained(c, hx) for c in (STROMAL_NUCLEUS_RGB, NUCLEUS_RGB, MITOSIS_RGB, LYMPHOCYTE_RGB, DEBRIS_RGB)],
            np.float32,
        ).clip(0, 255)

    def _pen_distance(self, rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray, reach_px: float) -> np.ndarray:
        """Distance in level-0 px from each grid node to a wavy marker stroke near one slide edge. (gh, gw)."""
        from scipy.spatial import cKDTree

        horizontal = self.width_px >= self.height_px
        length_px, across_px = (self.width_px, self.height_px) if horizontal else (self.height_px, self.width_px)
        start = rng.uniform(0.08, 0.3)
        t = np.linspace(start, start + rng.uniform(0.4, 0.6), 4000) * length_px
        side = 0.1 if rng.random() < 0.5 else 0.9  # in the glass margin, where pathologists mark slides
        wobble = 0.03 * across_px * np.sin(2 * np.pi * t / length_px * rng.uniform(1.0, 2.5) + rng.uniform(0, 6))
        along, across = t, side * across_px + wobble
        xs, ys = (along, across) if horizontal else (across, along)
        nodes = np.stack(np.broadcast_arrays(gy, gx), -1).reshape(-1, 2)
        d, _ = cKDTree(np.stack([ys, xs], 1)).query(nodes, distance_upper_bound=reach_px)
        # Capped, not infinite: the cubic interpolation would ring across a jump to infinity.
        return np.minimum(d, reach_px).reshape(gy.shape[0], gx.shape[1]).astype(np.float32)

    # -- region evaluation ------------------------------------------------------------------------
    def _region(self, x0_px: float, y0_px: float, w: int, h: int, ds: float) -> RegionSampler:
        # Pixel centres in level-0 px: the same point is sampled whichever tile or level asks.
        xs = x0_px + (np.arange(w, dtype=np.float64) + 0.5) * ds
        ys = y0_px + (np.arange(h, dtype=np.float64) + 0.5) * ds
        return RegionSampler(self._model.fields, self._model.cell_px, xs, ys)

    def _tissue_alpha(
        self, region: RegionSampler, x0_px: float, y0_px: float, w: int, h: int, ds: float
    ) -> np.ndarray | None:
        """Tissue coverage 0-1, or None where the region is certainly glass. (h, w) float32.

        The edge is a ramp over the signed distance to the outline, (field - threshold) / |gradient|, so
        its width and roughness are the same in microns wherever the outline lies, even where the field
        is steep (near the slide border).
        """
        m = self._model
        thr = m.thresholds["tissue"]
        reach_px = 0.5 * m.tissue_rough_px + m.tissue_edge_px  # farthest glass pixel that can be tissue
        if region.upper(F_TISSUE) <= thr - reach_px * m.tissue_grad_max:
            return None
        v = region.sample([F_TISSUE])[0]
        gx, gy = region.gradient([F_TISSUE])
        dist_px = (v - np.float32(thr)) / np.maximum(np.hypot(gx[0], gy[0]), np.float32(1e-12))
        rough = m.edge_noise.sample(x0_px, y0_px, w, h, ds)
        dist_px += (np.asarray(rough, np.float32) - np.float32(0.5)) * np.float32(m.tissue_rough_px)
        dist_px *= np.float32(1.0 / m.tissue_edge_px)
        dist_px += np.float32(0.5)
        return np.clip(dist_px, 0.0, 1.0, out=dist_px)

    def _masks_region(self, x0_px: float, y0_px: float, w: int, h: int, ds: float) -> tuple[np.ndarray, np.ndarray]:
        m = self._model
        region = self._region(x0_px, y0_px, w, h, ds)
        t = self._tissue_alpha(region, x0_px, y0_px, w, h, ds)
        if t is None:
            empty = np.zeros((h, w), bool)
            return empty, empty
        tissue = t >= 0.5
        bed = ramp(region.sample([F_TUMOUR])[0], m.thresholds["tumour"], m.eps["tumour"])
        return tissue, tissue & (bed >= 0.5)

    def _mask(self, downsample: float, which: int) -> np.ndarray:
        ds = float(downsample)
        if ds <= 0:
            raise ValueError("downsample must be positive")
        w, h = math.ceil(self.width_px / ds), math.ceil(self.height_px / ds)
        out = np.zeros((h, w), bool)
        step = 512  # blocks small enough to stay in cache
        for r in range(0, h, step):
            for c in range(0, w, step):
                hh, ww = min(step, h - r), min(step, w - c)
                # Block origins at r * ds exactly, so the mask samples the same pixel centres as tile_fn.
                out[r : r + hh, c : c + ww] = self._masks_region(c * ds, r * ds, ww, hh, ds)[which]
        return out

    def tissue_mask(self, downsample: float) -> np.ndarray:
        """Ground-truth tissue (True) vs glass at ``downsample``. (ceil(H / ds), ceil(W / ds)) bool."""
        return self._mask(downsample, 0)

    def tumour_mask(self, downsample: float) -> np.ndarray:
        """Ground-truth tumour bed (nests, their stroma, necrosis) at ``downsample``. (ceil(H / ds), ceil(W / ds)) bool."""
        return self._mask(downsample, 1)

    def tile_fn(self, x0_px: int, y0_px: int, w_px: int, h_px: int, level_downsample: float) -> np.ndarray:
        """RGB of the region with level-0 top-left (x0_px, y0_px), w_px x h_px output pixels at
        ``level_downsample``. (h_px, w_px, 3) uint8. Thread-safe; a pure function of its arguments."""
        ds = float(level_downsample)
        w, h = int(w_px), int(h_px)
        block = 256  # work in cache-sized blocks; every pixel depends only on its own coordinates
        if w <= block and h <= block:
            return self._render(x0_px, y0_px, w, h, ds)
        out = np.empty((h, w, 3), np.uint8)
        for r in range(0, h, block):
            for c in range(0, w, block):
                hh, ww = min(block, h - r), min(block, w - c)
                out[r : r + hh, c : c + ww] = self._render(x0_px + c * ds, y0_px + r * ds, ww, hh, ds)
        return out

    def _render(self, x0_px: float, y0_px: float, w: int, h: int, ds: float) -> np.ndarray:
        """One cache-sized block. (h, w, 3) uint8."""
        m = self._model
        region = self._region(x0_px, y0_px, w, h, ds)
        glass = np.full((h, w), GLASS_RGB[0], np.float32)
        if ds < 4:
            # Sensor grain; it averages away on reduced levels.
            glass += (np.asarray(m.grain.sample(x0_px, y0_px, w, h, ds), np.float32) - 0.5) * np.float32(5.0 / ds)
        t = self._tissue_alpha(region, x0_px, y0_px, w, h, ds)
        if t is not None and float(t.max()) > 0:
            out = self._tissue_rgb(region, t, x0_px, y0_px, w, h, ds)  # (3, h, w), already weighted by t
            out += glass * (1 - t)
        else:
            out = np.repeat(glass[None], 3, axis=0)
        if self.pen_mark and region.lower(F_PEN) < m.pen_half_width_px + 2.0 / self.mpp:
            pen_dist, wobble = region.sample([F_PEN, F_STAIN])
            pen = np.clip((m.pen_half_width_px - pen_dist) * np.float32(self.mpp / 3.0) + 0.5, 0, 1)
            # Ink absorbs (multiplies); its density varies a little along the stroke.
            pen *= 0.85 + 0.15 * np.tanh(wobble)
            out *= 1 - pen[None] * (1 - m.pen_rgb)[:, None, None]
        out += 0.5
        np.clip(out, 0, 255, out=out)
        return out.transpose(1, 2, 0).astype(np.uint8, order="C")

    def _tissue_rgb(
        self, region: RegionSampler, t: np.ndarray, x0_px: float, y0_px: float, w: int, h: int, ds: float
    ) -> np.ndarray:
        """Tissue colour times tissue coverage ``t`` for a region. (3, h, w) float32.

        Colour is a weighted sum of the basis palette, linear so that reduced levels agree with
        averaged level-0 pixels. Tissue classes whose field cannot reach its threshold in this region
        are skipped.
        """
        c = region_classes(self._model, region, (x0_px, y0_px, w, h, ds))
        weights = self._nuclear_weights(c)  # haematoxylin, then the eosin background under the nuclei
        self._add_eosin_weights(weights, c, t)
        keys = list(weights)
        stack = np.stack([np.broadcast_to(weights[k], (h, w)) for k in keys])  # (K, h, w)
        return np.einsum("kc,khw->chw", self._model.palette[keys], stack)  # not BLAS; see RegionSampler

    def _nuclear_weights(self, c: RegionClasses) -> dict[int, np.ndarray]:
        """Nuclear coverage of each kind, restricted to where that kind lives, by palette row."""
        m, bed, viable = self._model, c.bed, c.viable
        weights: dict[int, np.ndarray] = {}
        tex = m.stromal_nuclei
        not_epi = 1 - bed * c.at_centres(tex, F_NEST, "nest")
        weights[C_NSTROMA] = c.coverage(tex, 0.35) * not_epi * viable * (1 - c.at_centres(tex, F_LYMPH, "lymph"))
        if c.has_bed:
            dens = self.nuclear_density * c.density_mod
            tex = m.tumour_nuclei
            weights[C_NTUMOUR] = c.coverage(tex, dens) * bed * c.at_centres(tex, F_NEST, "nest") * viable
            if self.mitotic_rate > 0:
                # The mitosis texture holds 10% as many figures as there are tumour nuclei.
                tex = m.mitoses
                mit = np.clip(10.0 * self.mitotic_rate * dens, 0, 1)
                weights[C_NMIT] = c.coverage(tex, mit) * bed * c.at_centres(tex, F_NEST, "nest") * viable
        if self.lymphocyte_density > 0:
            # Scattered TILs in stroma (denser in the tumour bed), packed in aggregates.
            tex = m.lymphocytes
            til = self.lymphocyte_density * (0.06 + 0.14 * bed)
            lym_density = til + (0.9 - til) * c.at_centres(tex, F_LYMPH, "lymph")
            not_epi = 1 - bed * c.at_centres(tex, F_NEST, "nest")
            weights[C_NLYMPH] = c.coverage(tex, lym_density) * not_epi * viable
        if float(c.nec.max()) > 0:
            weights[C_NDEBRIS] = c.coverage(m.debris, 0.7) * c.nec
        return weights

    def _add_eosin_weights(self, weights: dict[int, np.ndarray], c: RegionClasses, t: np.ndarray) -> None:
        """Scale the nuclear weights by tissue (not fat) coverage and add the eosin background under them:
        fibrous stroma in two local orientations, epithelium, necrosis; and fat with its membranes."""
        m, f, (x0_px, y0_px, w, h, ds) = self._model, c.f, c.where
        nuclei = np.minimum(sum(weights.values()), 1.0)
        tf = t * (1 - c.fat)
        for k in weights:
            weights[k] *= tf
        rest = tf * (1 - nuclei)
        if c.has_bed:
            weights[C_NEC] = rest * c.nec
            rest = rest - weights[C_NEC]
            weights[C_EPI] = rest * c.epi
            rest = rest - weights[C_EPI]
        fa = m.fibres_a.sample(x0_px, y0_px, w, h, ds)
        fb = m.fibres_b.sample(x0_px, y0_px, w, h, ds)
        orient = np.clip(0.5 + 0.8 * f[F_ORIENT], 0, 1)
        fib = np.clip(fa + (fb - fa) * orient + 0.1 * f[F_STAIN], 0, 1)  # 0 pale cleft .. 1 dense collagen
        weights[C_DEEP] = rest * fib
        weights[C_PALE] = rest - weights[C_DEEP]
        if float(c.fat.max()) > 0:
            adipose = t * c.fat
            weights[C_MEM] = adipose * m.membranes.sample(x0_px, y0_px, w, h, ds)
            weights[C_FAT] = adipose - weights[C_MEM]
