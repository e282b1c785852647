"""One call from parameters to a slide file and its ground truth; ``python -m mrrp.synth.wsi``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrrp.synth.wsi.tiff import write_aperio_tiff
from mrrp.synth.wsi.tissue import SyntheticTissue


def objective_power_for_mpp(mpp: float) -> int:
    """Nominal objective of a scan: 40x ~ 0.25 µm/px, 20x ~ 0.5, 10x ~ 1.0."""
    return int(max(1, round(10.0 / mpp / 10) * 10)) if mpp <= 1.0 else max(1, round(10.0 / mpp))


def write_synthetic_slide(
    path: str | os.PathLike[str],
    width_px: int,
    height_px: int,
    *,
    seed: int,
    mpp: float = 0.25,
    tissue_fraction: float = 0.4,
    objective_power: float | None = None,
    jpeg_quality: int = 80,
    workers: int | None = None,
    **tissue_params: Any,
) -> SyntheticTissue:
    """Write a synthetic Aperio-style slide and return its :class:`SyntheticTissue` (for ground truth).

    ``tissue_params`` are the other :class:`SyntheticTissue` fields (``tumour_fraction``,
    ``nuclear_density``, ``pen_mark``, ...). ``objective_power`` defaults to the nominal one for ``mpp``.
    """
    tissue = SyntheticTissue(
        width_px=width_px, height_px=height_px, seed=seed, mpp=mpp, tissue_fraction=tissue_fraction, **tissue_params
    )
    write_aperio_tiff(
        path,
        width_px,
        height_px,
        tissue.tile_fn,
        mpp=mpp,
        objective_power=objective_power if objective_power is not None else objective_power_for_mpp(mpp),
        jpeg_quality=jpeg_quality,
        workers=workers,
    )
    return tissue


def save_masks_png(
    tissue: SyntheticTissue, path_prefix: str | os.PathLike[str], downsample: float
) -> tuple[Path, Path]:
    """Write ``{prefix}_tissue.png`` and ``{prefix}_tumour.png`` (0 / 255, one pixel per ``downsample``
    level-0 pixels) and return their paths."""
    from PIL import Image

    prefix = str(path_prefix)
    out = (Path(f"{prefix}_tissue.png"), Path(f"{prefix}_tumour.png"))
    out[0].parent.mkdir(parents=True, exist_ok=True)
    for p, mask in zip(out, (tissue.tissue_mask(downsample), tissue.tumour_mask(downsample)), strict=True):
        Image.fromarray(mask.astype(np.uint8) * 255).save(p)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import time

    ap = argparse.ArgumentParser(description="Write a synthetic Aperio-style H&E slide with ground-truth masks.")
    ap.add_argument("path")
    ap.add_argument("width_px", type=int)
    ap.add_argument("height_px", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mpp", type=float, default=0.25)
    ap.add_argument("--tissue-fraction", type=float, default=0.4)
    ap.add_argument("--tumour-fraction", type=float, default=0.3)
    ap.add_argument("--pen-mark", action="store_true")
    ap.add_argument("--masks-downsample", type=float, default=0.0, help="also write mask PNGs at this downsample")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tissue = write_synthetic_slide(
        args.path,
        args.width_px,
        args.height_px,
        seed=args.seed,
        mpp=args.mpp,
        tissue_fraction=args.tissue_fraction,
        tumour_fraction=args.tumour_fraction,
        pen_mark=args.pen_mark,
    )
    size_mb = Path(args.path).stat().st_size / 1e6
    print(
        f"wrote {args.path}: {args.width_px}x{args.height_px} px, {size_mb:.1f} MB in {time.perf_counter() - t0:.1f} s"
    )
    if args.masks_downsample > 0:
        stem = str(Path(args.path).with_suffix(""))
        for p in save_masks_png(tissue, stem, args.masks_downsample):
            print(f"wrote {p}")
