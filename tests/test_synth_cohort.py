"""`mrrp synth` end to end on a small cohort: formats, determinism, manifest, signal in the files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from scipy.stats import spearmanr

from mrrp.cli import main
from mrrp.errors import InputError
from mrrp.io.manifest import read_manifest
from mrrp.io.slides import open_slide
from mrrp.synth.cohort import CohortConfig, write_cohort
from mrrp.synth.reports import pn_stage, pt_stage

N = 14
SIZE_MM = (1.0, 0.8)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    rc = main(
        ["synth", "--n", str(N), "--seed", "5", "--out", str(out), "--slide-size", "1x0.8", "--missing-rate", "0.1"]
    )
    assert rc == 0
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "cohort.json"  # cohort.json records the wall time
    }


def test_manifest_schema_and_files(cohort: Path) -> None:
    rows = read_manifest(cohort / "manifest.csv")  # validates columns, values and that every path exists
    assert len(rows) == N
    assert {r.split for r in rows} <= {"train", "test", "external"}
    assert sum(r.site == "external" for r in rows) == round(0.3 * N)
    summary = json.loads((cohort / "cohort.json").read_text())
    assert summary["n"] == N and 0 <= summary["event_rate"] <= 1
    truth = pd.read_csv(cohort / "truth.csv")
    assert list(truth["patient_id"]) == [r.patient_id for r in rows]
    assert {"log_hazard", "latent_proliferation", "latent_immune"} <= set(truth.columns)
    assert not (cohort.parent / "cohort.partial").exists()


def test_every_slide_opens_with_its_sites_mpp(cohort: Path) -> None:
    rows = read_manifest(cohort / "manifest.csv")
    slides = [r for r in rows if r.slide_path]
    assert slides
    for r in slides:
        with open_slide(r.slide_path) as s:
            expected = 0.25 if r.site == "internal" else 0.5
            assert s.info.vendor == "aperio"
            assert s.mpp == pytest.approx(expected)
            assert s.dimensions == (round(SIZE_MM[0] * 1000 / expected), round(SIZE_MM[1] * 1000 / expected))
        assert (cohort / "truth" / f"{r.patient_id}_tumour.png").is_file()


def test_ultrasound_files_and_dicom_identifiers(cohort: Path) -> None:
    rows = read_manifest(cohort / "manifest.csv")
    images = [p for r in rows for p in r.us_image_paths]
    assert images
    for p in images:
        if p.suffix == ".dcm":
            ds = pydicom.dcmread(p)
            assert ds.Modality == "US"
            assert str(ds.PatientName) and ds.PatientBirthDate and ds.AccessionNumber  # fake identifiers present
            assert ds.pixel_array.ndim == 2
        else:
            img = Image.open(p)
            assert img.mode == "L" and img.size[0] > 100


def test_reports_are_text_and_consistent(cohort: Path) -> None:
    rows = read_manifest(cohort / "manifest.csv")
    for r in rows:
        if r.path_report_path and r.clinical:
            text = r.path_report_path.read_text()
            assert "HER2" in text
            # staging is never omitted and must agree with the record
            assert pt_stage(r.clinical["tumour_size_mm"]) in text
            assert pn_stage(r.clinical["positive_lymph_nodes"]) in text
        if r.us_report_path:
            assert "BI-RADS" in r.us_report_path.read_text() or "BIRADS" in r.us_report_path.read_text()


def test_slide_morphology_follows_proliferation(cohort: Path) -> None:
    """Nuclear (haematoxylin-dark) pixels in the tumour region rise with latent proliferation."""
    truth = pd.read_csv(cohort / "truth.csv").set_index("patient_id")
    rows = [r for r in read_manifest(cohort / "manifest.csv") if r.slide_path]
    dark, prolif = [], []
    for r in rows:
        mask = np.asarray(Image.open(cohort / "truth" / f"{r.patient_id}_tumour.png")) > 0
        if mask.sum() < 20:
            continue
        with open_slide(r.slide_path) as s:
            img = s.read_level(0).astype(np.float32)
        ys, xs = np.nonzero(mask)
        sy, sx = img.shape[0] / mask.shape[0], img.shape[1] / mask.shape[1]
        pick = np.random.default_rng(0).choice(len(ys), size=min(400, len(ys)), replace=False)
        px = img[(ys[pick] * sy + sy / 2).astype(int), (xs[pick] * sx + sx / 2).astype(int)]
        dark.append(float(np.mean(px.mean(axis=1) < 150)))
        prolif.append(truth.loc[r.patient_id, "latent_proliferation"])
    assert len(dark) >= 6
    assert spearmanr(dark, prolif)[0] > 0.5


def test_deterministic_for_a_seed(cohort: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_cohort(again, CohortConfig(n=N, seed=5, slide_size_mm=SIZE_MM, missing_rate=0.1), workers=1)
    assert _digest(again) == _digest(cohort)


def test_refuses_a_non_empty_folder_and_bad_options(cohort: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(InputError, match="not empty"):
        write_cohort(cohort, CohortConfig(n=2, seed=1))
    assert main(["synth", "--n", "0", "--out", str(tmp_path / "x")]) == 2
    assert main(["synth", "--n", "3", "--sites", "mars", "--out", str(tmp_path / "y")]) == 2
    assert main(["synth", "--n", "3", "--slide-size", "big", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("mrrp: ") for line in err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
