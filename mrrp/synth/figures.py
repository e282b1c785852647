"""Pictures of a synthetic cohort for docs/synthetic_cohort.md.

    .venv/bin/python -m mrrp.synth.figures COHORT_DIR docs/img

Writes ``synth_slide.png`` (thumbnail with the ground-truth tumour outline), ``synth_tumour.png``
(a full-resolution crop inside the tumour next to one of normal tissue), ``synth_us.png`` (ultrasound
images of a low- and a high-risk lesion) for the patients with the lowest and highest oracle risk.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mrrp.io.manifest import read_manifest
from mrrp.io.slides import open_slide
from mrrp.slides.drawing import overlay_mask


def _crop_in(mask: np.ndarray, slide, mask_ds: float, size_px: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    k = rng.integers(len(ys))
    x0 = int(max(xs[k] * mask_ds - size_px / 2, 0))
    y0 = int(max(ys[k] * mask_ds - size_px / 2, 0))
    return slide.read_region((x0, y0), 0, (size_px, size_px))


def make_figures(cohort: Path, out: Path) -> list[Path]:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    rows = {r.patient_id: r for r in read_manifest(cohort / "manifest.csv")}
    truth = pd.read_csv(cohort / "truth.csv").set_index("patient_id")
    with_all = [pid for pid, r in rows.items() if r.slide_path and r.us_image_paths and r.site == "internal"]
    ranked = truth.loc[with_all, "log_hazard"].sort_values()
    low, high = ranked.index[0], ranked.index[-1]
    rng = np.random.default_rng(0)
    written = []

    r = rows[high]
    with open_slide(r.slide_path) as slide:
        thumb, ds = slide.thumbnail(900)
        tumour = np.asarray(Image.open(cohort / "truth" / f"{high}_tumour.png")) > 0
        tissue = np.asarray(Image.open(cohort / "truth" / f"{high}_tissue.png")) > 0
        t_img = Image.fromarray(tumour).resize((thumb.shape[1], thumb.shape[0]), Image.Resampling.NEAREST)
        Image.fromarray(overlay_mask(thumb, np.asarray(t_img), colour=(20, 160, 60), alpha=0.15)).save(
            out / "synth_slide.png"
        )
        mask_ds = slide.dimensions[0] / tumour.shape[1]
        tum = _crop_in(tumour, slide, mask_ds, 512, rng)
        norm = _crop_in(tissue & ~tumour, slide, mask_ds, 512, rng)
        Image.fromarray(np.concatenate([tum, np.full((512, 16, 3), 255, np.uint8), norm], axis=1)).save(
            out / "synth_tumour.png"
        )
    written += [out / "synth_slide.png", out / "synth_tumour.png"]

    pics = []
    for pid in (low, high):
        p = rows[pid].us_image_paths[0]
        if p.suffix == ".dcm":
            import pydicom

            pics.append(pydicom.dcmread(p).pixel_array.astype(np.uint8))
        else:
            pics.append(np.asarray(Image.open(p).convert("L")))
    h = min(p.shape[0] for p in pics)
    strip = np.concatenate([pics[0][:h], np.full((h, 12), 255, np.uint8), pics[1][:h]], axis=1)
    Image.fromarray(strip).save(out / "synth_us.png")
    written.append(out / "synth_us.png")
    (out / "synth_examples.txt").write_text(f"low={low}\nhigh={high}\n")
    return written


if __name__ == "__main__":
    for path in make_figures(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
