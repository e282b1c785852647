"""``mrrp synth``: write a synthetic reference cohort in the formats a hospital would feed mrrp.

Layout of ``DIR``::

    manifest.csv                 one row per patient (docs/manifest.md); paths relative to DIR
    truth.csv                    per patient: latent biology, oracle log-hazard, slide/US parameters
    cohort.json                  parameters, seed, counts, event rate, oracle C-index per split
    patients/<id>/slide.svs      pyramidal Aperio TIFF (JPEG tiles, mpp and objective power)
    patients/<id>/us_1.png|dcm   ultrasound views (DICOM for some, with fake identifiers)
    patients/<id>/us_report.txt, path_report.txt
    truth/<id>_tissue.png, truth/<id>_tumour.png    ground-truth masks at 1/32 of level 0

Patients are written in parallel worker processes; each patient's files depend only on the
cohort seed and the patient's own seed, so the result is the same for any number of workers.
The cohort is first built in ``DIR.partial`` and renamed at the end: a failed run leaves no
half-written cohort where a good one is expected.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp._fs import replace_dir_atomically
from mrrp._parallel import parallel_map
from mrrp.errors import InputError, InvalidValueError
from mrrp.io.manifest import write_manifest
from mrrp.synth.biology import LATENTS, SITES, SyntheticPatient, generate_patients, oracle_cindex

# Physical size of every synthetic slide (width, height), sized so the default 800-patient cohort
# is written in under 20 minutes on 2 cores (about 3 s per 40x slide): ~20 tiles of 224 µm each.
DEFAULT_SLIDE_SIZE_MM = (1.6, 1.2)
MASK_DOWNSAMPLE = 32
DICOM_FRACTION = 0.25  # share of ultrasound images written as DICOM instead of PNG


@dataclass(frozen=True)
class CohortConfig:
    n: int
    seed: int
    sites: tuple[str, ...] = ("internal", "external")
    slide_size_mm: tuple[float, float] = DEFAULT_SLIDE_SIZE_MM
    missing_rate: float | None = None
    test_fraction: float = 0.25


def parse_slide_size(text: str) -> tuple[float, float]:
    """'2.5x2' (millimetres) → (2.5, 2.0)."""
    try:
        w, h = (float(v) for v in text.lower().replace("mm", "").split("x"))
    except ValueError:
        raise InvalidValueError(f"The slide size '{text}' must look like 2.5x2 (width x height in mm).") from None
    if not (0.2 <= w <= 60 and 0.2 <= h <= 60):
        raise InvalidValueError(f"The slide size {w:g} x {h:g} mm is outside 0.2–60 mm.")
    return w, h


def _slide_tissue_params(p: SyntheticPatient) -> dict[str, float]:
    """Biology-driven morphology (0..1 scales in biology.py) → the slide renderer's parameters."""
    s = p.slide_params
    return {
        "tumour_fraction": s["tumour_fraction"],
        "nuclear_density": s["nuclear_density"],
        "nuclear_size_um": 7.0 + 6.0 * s["nuclear_size"],
        "pleomorphism": s["pleomorphism"],
        "mitotic_rate": 0.002 + 0.06 * s["mitotic_rate"],
        "lymphocyte_density": s["lymphocyte_density"],
        "necrosis_fraction": s["necrosis_fraction"],
        "haematoxylin_strength": s["stain_intensity"] * (1.0 + 0.25 * s["stain_hue_shift"]),
        "eosin_strength": s["stain_intensity"] * (1.0 - 0.25 * s["stain_hue_shift"]),
    }


def _write_slide(p: SyntheticPatient, root: Path, folder: Path, slide_size_mm: tuple[float, float]) -> str:
    """The patient's synthetic slide and its ground-truth masks; returns the slide's path relative to root."""
    from mrrp.synth.wsi import save_masks_png, write_synthetic_slide

    site = SITES[p.site]
    w_px = int(round(slide_size_mm[0] * 1000 / site.slide_mpp))
    h_px = int(round(slide_size_mm[1] * 1000 / site.slide_mpp))
    tissue = write_synthetic_slide(
        folder / "slide.svs",
        w_px,
        h_px,
        seed=p.seed,
        mpp=site.slide_mpp,
        tissue_fraction=0.45,
        workers=1,
        **_slide_tissue_params(p),
    )
    save_masks_png(tissue, root / "truth" / p.patient_id, MASK_DOWNSAMPLE * 0.25 / site.slide_mpp)
    return f"patients/{p.patient_id}/slide.svs"


def _write_ultrasound(p: SyntheticPatient, folder: Path, rng: np.random.Generator) -> str:
    """One or two views, each a DICOM or a PNG; returns their ";"-joined paths relative to the cohort root."""
    from mrrp.synth.ultrasound import fake_identity, render_ultrasound, save_dicom, save_png

    site = SITES[p.site]
    paths = []
    study_date = f"{2010 + p.seed % 12}{1 + p.seed % 12:02d}{1 + p.seed % 28:02d}"
    identity = fake_identity(p.seed, age_years=float(p.clinical["age_years"]), reference_date=study_date)  # type: ignore[arg-type]
    for k, view in enumerate(("radial", "antiradial")[: 1 + int(rng.random() < 0.6)], start=1):
        # Same seed for every view: the same lesion seen from another probe angle.
        img = render_ultrasound(p.us_findings, seed=p.seed, gain=site.us_gain, speckle_scale=site.us_speckle, view=view)
        if rng.random() < DICOM_FRACTION:
            name = f"us_{k}.dcm"
            save_dicom(
                img,
                folder / name,
                patient=identity,
                study_date=study_date,
                laterality=str(p.us_findings["laterality"]),
                manufacturer="SynthSonics " + site.name,
                seed=p.seed + k,
            )
        else:
            name = f"us_{k}.png"
            save_png(img, folder / name)
        paths.append(f"patients/{p.patient_id}/{name}")
    return ";".join(paths)


def _write_us_report(p: SyntheticPatient, folder: Path, rng: np.random.Generator) -> str:
    from mrrp.synth.reports import ultrasound_report

    nodes = int(p.clinical["positive_lymph_nodes"])  # type: ignore[arg-type]
    text = ultrasound_report(
        p.us_findings,
        seed=p.seed,
        style=SITES[p.site].report_style,
        age_years=float(p.clinical["age_years"]),  # type: ignore[arg-type]
        axillary_nodes_suspicious=nodes >= 4 or (nodes >= 1 and rng.random() < 0.3),
    )
    (folder / "us_report.txt").write_text(text, encoding="utf-8")
    return f"patients/{p.patient_id}/us_report.txt"


def _write_path_report(p: SyntheticPatient, folder: Path) -> str:
    from mrrp.synth.reports import pathology_report

    text = pathology_report(
        p.clinical, seed=p.seed, style=SITES[p.site].report_style, laterality=str(p.us_findings["laterality"])
    )
    (folder / "path_report.txt").write_text(text, encoding="utf-8")
    return f"patients/{p.patient_id}/path_report.txt"


def write_patient(p: SyntheticPatient, root: Path, slide_size_mm: tuple[float, float]) -> dict[str, object]:
    """Write one patient's files under ``root``; returns the manifest row (paths relative to root).

    One generator seeded by the patient drives the per-file choices (number of views, DICOM or PNG, a
    suspicious axilla), drawn in the order below; keep that order or the cohort changes.
    """
    folder = root / "patients" / p.patient_id
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(p.seed)
    row: dict[str, object] = {
        "patient_id": p.patient_id,
        "site": p.site,
        "split": p.split,
        "time_months": p.time_months,
        "event": p.event,
    }
    if p.present["clinical"]:
        row.update(p.clinical)
    if p.present["slide"]:
        row["slide_path"] = _write_slide(p, root, folder, slide_size_mm)
    if p.present["ultrasound"]:
        row["us_image_paths"] = _write_ultrasound(p, folder, rng)
    if p.present["us_report"]:
        row["us_report_path"] = _write_us_report(p, folder, rng)
    if p.present["path_report"]:
        row["path_report_path"] = _write_path_report(p, folder)
    return row


def _write_patient_job(args: tuple[SyntheticPatient, str, tuple[float, float]]) -> dict[str, object]:
    p, root, size = args
    return write_patient(p, Path(root), size)


def truth_row(p: SyntheticPatient) -> dict[str, object]:
    row: dict[str, object] = {"patient_id": p.patient_id, "site": p.site, "split": p.split, "log_hazard": p.log_hazard}
    row.update({f"latent_{k}": p.latent[k] for k in LATENTS})
    row.update({f"slide_{k}": v for k, v in p.slide_params.items()})
    row.update({f"us_{k}": v for k, v in p.us_findings.items() if isinstance(v, int | float)})
    row.update({f"present_{k}": int(v) for k, v in p.present.items()})
    return row


def write_cohort(
    out: str | os.PathLike[str],
    config: CohortConfig,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Generate and write the cohort; returns the summary also written to ``cohort.json``."""
    import pandas as pd

    final = Path(out)
    if final.exists() and any(final.iterdir()):
        raise InputError(f"The output folder '{final}' is not empty; choose a new folder.")
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    t0 = time.perf_counter()
    patients = generate_patients(
        config.n, config.seed, config.sites, test_fraction=config.test_fraction, missing_rate=config.missing_rate
    )
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    jobs = [(p, str(partial), config.slide_size_mm) for p in patients]
    rows = parallel_map(_write_patient_job, jobs, workers=workers, progress=progress)
    write_manifest(rows, partial / "manifest.csv")
    pd.DataFrame([truth_row(p) for p in patients]).to_csv(partial / "truth.csv", index=False)

    def split_summary(split: str) -> dict[str, object]:
        sub = [p for p in patients if p.split == split]
        events = sum(p.event for p in sub)
        try:
            c: float | None = round(oracle_cindex(sub), 4)
        except Exception:  # no comparable pairs in a tiny split: the oracle is undefined, not 0
            c = None
        return {"n": len(sub), "events": events, "oracle_cindex": c}

    summary: dict[str, object] = {
        "n": len(patients),
        "seed": config.seed,
        "sites": list(config.sites),
        "slide_size_mm": list(config.slide_size_mm),
        "event_rate": round(float(np.mean([p.event for p in patients])), 4),
        "median_follow_up_months": round(float(np.median([p.time_months for p in patients])), 1),
        "splits": {s: split_summary(s) for s in sorted({p.split for p in patients})},
        "missing_fraction": {
            m: round(1 - float(np.mean([p.present[m] for p in patients])), 4) for m in patients[0].present
        },
        "single_modality_fraction": round(float(np.mean([sum(p.present.values()) == 1 for p in patients])), 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "workers": workers,
    }
    (partial / "cohort.json").write_text(json.dumps(summary, indent=2) + "\n")
    replace_dir_atomically(partial, final)  # final is absent or empty, checked above
    return summary
