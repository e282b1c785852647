"""Demo patients for the dashboard, one click away.

They are generated deterministically on first use into ``<cache>/demo-v1`` rather than shipped
as files in assets/: five patients' slides, ultrasound and reports are ~15 MB of binary data
that would bloat every clone, while regenerating them from fixed latent values and seeds takes
seconds and gives byte-identical files on every machine. The folder is a cache: safe to delete.

Each demo patient fixes the latent biology (so the risk is clearly what the label says) and which
modalities exist; everything else follows the same generating model as the reference cohort.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp._locks import build_once
from mrrp.io.manifest import write_manifest
from mrrp.synth.biology import GENERATED_INPUTS, SITES, SyntheticPatient, draw_patient
from mrrp.synth.cohort import DEFAULT_SLIDE_SIZE_MM, write_patient

DEMO_VERSION = "demo-v1"
ALL = dict.fromkeys(GENERATED_INPUTS, True)


@dataclass(frozen=True)
class DemoSpec:
    patient_id: str
    title: str
    latent: dict[str, float]
    age_years: float
    present: dict[str, bool]
    seed: int


DEMO_PATIENTS: tuple[DemoSpec, ...] = (
    DemoSpec(
        "DEMO-01",
        "Clearly low risk: small, low-grade, immune-rich tumour; all data",
        {"proliferation": -1.6, "invasiveness": -1.3, "immune": 1.6, "burden": -1.2},
        63,
        ALL,
        101,
    ),
    DemoSpec(
        "DEMO-02",
        "Clearly high risk: large, proliferative, invasive tumour; all data",
        {"proliferation": 2.0, "invasiveness": 1.8, "immune": -1.5, "burden": 1.7},
        38,
        ALL,
        102,
    ),
    DemoSpec(
        "DEMO-03",
        "Intermediate risk; all data",
        {"proliferation": 0.2, "invasiveness": 0.0, "immune": 0.0, "burden": 0.1},
        55,
        ALL,
        103,
    ),
    DemoSpec(
        "DEMO-04",
        "High risk, no slide (pathology compensated)",
        {"proliferation": 1.3, "invasiveness": 1.2, "immune": -0.8, "burden": 1.0},
        47,
        {**ALL, "slide": False},
        104,
    ),
    DemoSpec(
        "DEMO-05",
        "Low-intermediate risk, no ultrasound and no reports (slide and record only)",
        {"proliferation": -0.5, "invasiveness": -0.4, "immune": 0.5, "burden": -0.3},
        58,
        {**ALL, "ultrasound": False, "us_report": False, "path_report": False},
        105,
    ),
)


def demo_patient(spec: DemoSpec) -> SyntheticPatient:
    rng = np.random.default_rng(spec.seed)
    return draw_patient(
        rng,
        0,
        SITES["internal"],
        "predict",
        latent=spec.latent,
        present=spec.present,
        age_years=spec.age_years,
        patient_id=spec.patient_id,
    )


def ensure_demo_cohort(cache_dir: str | os.PathLike[str]) -> Path:
    """Write the demo patients if they are not there yet; return the demo manifest's path.

    Two dashboard sessions may ask at once: one writes, the other waits for it (mrrp._locks.build_once).
    """
    folder = build_once(Path(cache_dir) / DEMO_VERSION, _write_demo_cohort, marker="manifest.csv")
    return folder / "manifest.csv"


def _write_demo_cohort(folder: Path) -> None:
    rows = []
    for spec in DEMO_PATIENTS:
        row = write_patient(demo_patient(spec), folder, DEFAULT_SLIDE_SIZE_MM)
        row["demo_title"] = spec.title
        rows.append(row)
    write_manifest(rows, folder / "manifest.csv", extra_columns=("demo_title",))
