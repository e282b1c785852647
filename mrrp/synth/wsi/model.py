"""What a synthetic slide precomputes from its seed (fields, thresholds, textures, palette), and the tissue
classes of one region that the renderer mixes colours from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrrp.synth.wsi.sampling import RegionSampler, ramp
from mrrp.synth.wsi.textures import NucleiTexture, ScalarTexture, texture_downsample

# H&E palette, RGB 0-255. Colours mix linearly, so averaging level-0 pixels gives the same colour as
# rendering a reduced level directly (pyramid levels agree).
GLASS_RGB = (240.0, 240.0, 240.0)
STROMA_PALE_RGB = (238.0, 178.0, 208.0)
STROMA_DEEP_RGB = (220.0, 122.0, 172.0)
EPITHELIUM_RGB = (222.0, 160.0, 200.0)
NECROSIS_RGB = (236.0, 196.0, 218.0)
FAT_RGB = (246.0, 242.0, 245.0)
MEMBRANE_RGB = (212.0, 128.0, 176.0)
NUCLEUS_RGB = (80.0, 50.0, 140.0)
STROMAL_NUCLEUS_RGB = (96.0, 58.0, 146.0)
LYMPHOCYTE_RGB = (52.0, 30.0, 104.0)
MITOSIS_RGB = (34.0, 18.0, 72.0)
DEBRIS_RGB = (122.0, 78.0, 150.0)
PEN_TRANSMISSION = {"green": (0.30, 0.72, 0.42), "blue": (0.30, 0.42, 0.85), "black": (0.22, 0.22, 0.25)}

# Smooth fields, stacked on one coarse grid (index into TissueModel.fields).
F_TISSUE, F_PEN, F_STAIN, F_TUMOUR, F_NECROSIS, F_FAT, F_LYMPH, F_NEST, F_DENSITY, F_ORIENT = range(10)
# Basis colours (rows of TissueModel.palette); a pixel is a weighted sum of them plus glass.
C_PALE, C_DEEP, C_EPI, C_NEC, C_FAT, C_MEM, C_NSTROMA, C_NTUMOUR, C_NMIT, C_NLYMPH, C_NDEBRIS = range(11)


@dataclass
class TissueModel:
    """Everything precomputed from the seed; private to SyntheticTissue."""

    cell_px: float
    fields: np.ndarray  # (n_fields, gh, gw) float32, node (i, j) at level-0 (j * cell_px, i * cell_px)
    thresholds: dict[str, float]
    eps: dict[str, float]  # ramp widths in field units
    tissue_edge_px: float  # width of the tissue/glass transition
    tissue_rough_px: float  # outline displacement per unit of (edge texture - 0.5)
    tissue_grad_max: float  # bound on |grad tissue field| (field units per px), for skipping glass
    pen_half_width_px: float
    pen_rgb: np.ndarray  # (3,) ink transmission
    palette: np.ndarray  # (11, 3) float32 basis colours after stain strengths
    tumour_nuclei: NucleiTexture
    stromal_nuclei: NucleiTexture
    lymphocytes: NucleiTexture
    mitoses: NucleiTexture
    debris: NucleiTexture
    fibres_a: ScalarTexture
    fibres_b: ScalarTexture
    membranes: ScalarTexture
    edge_noise: ScalarTexture
    grain: ScalarTexture


@dataclass
class RegionClasses:
    """The tissue classes of one region (per-pixel weights in [0, 1]) and what the nuclei need to join them."""

    model: TissueModel
    where: tuple[float, float, int, int, float]  # (x0_px, y0_px, w, h, ds) of the region
    f: dict[int, np.ndarray]  # field index -> (h, w), only the fields that can matter here
    slope: dict[int, tuple[np.ndarray, np.ndarray]]  # field -> (d/dx, d/dy), at level 0 only
    has_bed: bool
    bed: np.ndarray | float  # tumour bed
    epi: np.ndarray | float  # tumour epithelium (nests)
    nec: np.ndarray | float  # necrosis
    fat: np.ndarray | float
    viable: np.ndarray | float
    density_mod: np.ndarray | None  # local modulation of the tumour's nuclear density (in the bed only)
    zero: np.ndarray

    def coverage(self, tex: NucleiTexture, density: np.ndarray | float) -> np.ndarray | float:
        return tex.coverage(*self.where, density)

    def at_centres(self, tex: NucleiTexture, k: int, name: str) -> np.ndarray:
        """Class weight of field ``k`` at each pixel's nucleus centre, so nuclei on a boundary stay whole."""
        if k not in self.f:
            return self.zero
        off = tex.offsets(*self.where) if k in self.slope else None
        v = self.f[k] if off is None else self.f[k] + self.slope[k][0] * off[0] + self.slope[k][1] * off[1]
        return ramp(v, self.model.thresholds[name], self.model.eps[name])


def region_classes(m: TissueModel, region: RegionSampler, where: tuple[float, float, int, int, float]) -> RegionClasses:
    """Sample the fields a region needs (classes that cannot reach their threshold there are skipped)."""
    thr, eps = m.thresholds, m.eps
    h, w, ds = where[3], where[2], where[4]
    zero = np.zeros((h, w), np.float32)

    def present(k: int, name: str) -> bool:
        # Generous margin: nuclei take their class from their centre, up to a nucleus radius away.
        return region.upper(k) > thr[name] - 2.0 * eps[name]

    need = [F_STAIN, F_ORIENT]
    has_bed, has_fat, has_lymph = present(F_TUMOUR, "tumour"), present(F_FAT, "fat"), present(F_LYMPH, "lymph")
    need += [F_TUMOUR, F_NEST, F_NECROSIS, F_DENSITY] if has_bed else []
    need += [F_FAT] if has_fat else []
    need += [F_LYMPH] if has_lymph else []
    f = dict(zip(need, region.sample(need), strict=True))  # field index -> (h, w)

    density_mod = None
    if has_bed:
        bed = ramp(f[F_TUMOUR], thr["tumour"], eps["tumour"])
        epi = bed * ramp(f[F_NEST], thr["nest"], eps["nest"])  # tumour epithelium
        nec = bed * ramp(f[F_NECROSIS], thr["necrosis"], eps["necrosis"])
        density_mod = np.clip(1.0 + 0.18 * f[F_DENSITY], 0.6, 1.4)
    else:
        bed = epi = nec = zero
    fat = (1 - bed) * ramp(f[F_FAT], thr["fat"], eps["fat"]) if has_fat else zero

    # A nucleus belongs to the nest or aggregate its centre lies in, so nuclei on a boundary stay whole:
    # the fine fields are evaluated at each nucleus' centre by one step along their exact gradient.
    centre_keys = [k for k in (F_NEST, F_LYMPH) if k in f]
    slope: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if centre_keys and texture_downsample(m.tumour_nuclei.period_px, ds) == 1:
        gx, gy = region.gradient(centre_keys)
        slope = {k: (gx[i], gy[i]) for i, k in enumerate(centre_keys)}
    return RegionClasses(m, where, f, slope, has_bed, bed, epi, nec, fat, 1 - nec, density_mod, zero)
