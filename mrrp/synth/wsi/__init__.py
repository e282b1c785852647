"""Synthetic pyramidal Aperio-style slides with a procedural H&E-like tissue model and known ground truth.

Two independent pieces:

- :func:`write_aperio_tiff` streams any procedurally rendered slide into a tiled, JPEG-compressed,
  pyramidal TIFF that OpenSlide opens as vendor ``"aperio"`` (baseline, stripped thumbnail,
  reduced levels, the same directory layout as a scanner's SVS). Tiles are rendered and
  JPEG-encoded in worker processes and never held all at once: a 60,000 x 40,000 px slide is
  7 GB of RGB but is written with a few MB in flight (~55 s on 2 cores, 170 MB).
- :class:`SyntheticTissue` renders glass, irregular tissue pieces, eosin stroma with fibres, fat,
  tumour nests with tunable nuclear morphology, lymphocyte aggregates, necrosis and an optional pen
  mark, at any region and any downsample, plus the ground-truth tissue and tumour masks.

Usage::

    from mrrp.synth.wsi import save_masks_png, write_synthetic_slide

    tissue = write_synthetic_slide("demo.svs", 20_000, 15_000, seed=7, tumour_fraction=0.3, pen_mark=True)
    save_masks_png(tissue, "demo", downsample=32)   # demo_tissue.png, demo_tumour.png

or from a shell: ``python -m mrrp.synth.wsi demo.svs 20000 15000 --seed 7``.

Every pixel is a function of its level-0 coordinates only (smooth fields on a fixed coarse grid,
periodic textures indexed by absolute position), so tiles meet without seams, pyramid levels
agree, and a seed gives the same slide whichever tile or thread asked for a region.

Units are in the names: ``*_px`` level-0 pixels, ``*_um`` microns, ``mpp`` microns per pixel.

The package: :mod:`.tiff` (the writer), :mod:`.textures` (smooth noise, nuclei, fibres, fat membranes),
:mod:`.sampling` (cubic interpolation of the grid fields over a region), :mod:`.model` (what a slide
precomputes, and a region's tissue classes), :mod:`.tissue` (:class:`SyntheticTissue`), :mod:`.slide`
(:func:`write_synthetic_slide`, :func:`save_masks_png`, the command).
"""

from mrrp.synth.wsi.model import GLASS_RGB, PEN_TRANSMISSION
from mrrp.synth.wsi.slide import main, objective_power_for_mpp, save_masks_png, write_synthetic_slide
from mrrp.synth.wsi.tiff import APERIO_HEADER, THUMBNAIL_MAX_PX, TileFn, default_downsamples, write_aperio_tiff
from mrrp.synth.wsi.tissue import SyntheticTissue

__all__ = [
    "APERIO_HEADER",
    "GLASS_RGB",
    "PEN_TRANSMISSION",
    "THUMBNAIL_MAX_PX",
    "SyntheticTissue",
    "TileFn",
    "default_downsamples",
    "main",
    "objective_power_for_mpp",
    "save_masks_png",
    "write_aperio_tiff",
    "write_synthetic_slide",
]
