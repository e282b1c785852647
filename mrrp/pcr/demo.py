"""Demo MRI patients for the pCR page, generated deterministically into the cache on first use.

Like mrrp.synth.demo: regenerating a patient from fixed parameters takes well under a second and gives
byte-identical files everywhere, so nothing binary is shipped. Each demo is written the way a hospital
would upload it — a zip of a DICOM series (fake identifiers that the reader strips), a tumour mask
NIfTI and a clinical record JSON — and drawn on the external site's scanner, which no model saw in training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mrrp._locks import build_once
from mrrp.pcr.synth import PatientSpec, write_patient

PCR_DEMO_VERSION = "pcr-demo-v1"


@dataclass(frozen=True)
class PCRDemo:
    patient_id: str
    title: str
    spec: PatientSpec


def _spec(
    pid: str,
    subtype: str,
    clinical: dict,
    resistance: float,
    diameter: float,
    het: float,
    oedema: float,
    wash_in: float,
    washout: float,
    seed: int,
) -> PatientSpec:
    post = clinical["menopausal_status"] == "post"
    return PatientSpec(
        patient_id=pid,
        site="site-d",
        split="predict",
        seed=seed,
        subtype=subtype,
        clinical=clinical,
        resistance=resistance,
        diameter_mm=diameter,
        heterogeneity=het,
        oedema=oedema,
        wash_in=wash_in,
        washout_per_min=washout,
        bpe=0.1 if post else 0.25,
        fgt_fraction=0.2 if post else 0.35,
        file_format="dicom-zip",
    )


PCR_DEMOS: tuple[PCRDemo, ...] = (
    PCRDemo(
        "DEMO-MRI-1",
        "Triple-negative, homogeneous enhancing 24 mm tumour (pCR likely)",
        _spec(
            "DEMO-MRI-1",
            "triple-negative",
            {
                "age_years": 44,
                "menopausal_status": "pre",
                "er_percent": 0.0,
                "pr_percent": 0.0,
                "her2_status": "negative",
                "ki67_percent": 70.0,
                "histological_grade": 3,
                "t_stage": "T2",
                "n_stage": "N1",
                "molecular_subtype": "triple-negative",
            },
            -1.2,
            24.0,
            0.15,
            0.2,
            1.45,
            0.08,
            8101,
        ),
    ),
    PCRDemo(
        "DEMO-MRI-2",
        "Luminal A, heterogeneous 38 mm tumour with necrotic core and oedema (pCR unlikely)",
        _spec(
            "DEMO-MRI-2",
            "luminal A",
            {
                "age_years": 61,
                "menopausal_status": "post",
                "er_percent": 95.0,
                "pr_percent": 80.0,
                "her2_status": "negative",
                "ki67_percent": 12.0,
                "histological_grade": 2,
                "t_stage": "T2",
                "n_stage": "N1",
                "molecular_subtype": "luminal A",
            },
            1.4,
            38.0,
            0.85,
            0.8,
            1.0,
            0.0,
            8102,
        ),
    ),
)


@dataclass(frozen=True)
class DemoFiles:
    title: str
    mri: Path  # a zip of the DICOM series
    mask: Path
    clinical: Path  # JSON record


def ensure_pcr_demos(cache_dir: str | os.PathLike[str]) -> dict[str, DemoFiles]:
    """Write the demo patients if they are not there yet; {title: files}."""
    # Two dashboard sessions may ask at once: one writes, the other waits for it.
    folder = build_once(Path(cache_dir) / PCR_DEMO_VERSION, _write_demos, marker="demos.json")
    return {
        d.title: DemoFiles(
            d.title,
            folder / "patients" / d.patient_id / "dicom.zip",
            folder / "patients" / d.patient_id / "mask.nii.gz",
            folder / "patients" / d.patient_id / "clinical.json",
        )
        for d in PCR_DEMOS
    }


def _write_demos(folder: Path) -> None:
    for d in PCR_DEMOS:
        write_patient(d.spec, folder)
        (folder / "patients" / d.patient_id / "clinical.json").write_text(json.dumps(d.spec.clinical, indent=2) + "\n")
    (folder / "demos.json").write_text(json.dumps([d.title for d in PCR_DEMOS], indent=2) + "\n")
