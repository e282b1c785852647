"""The synthetic multi-site MRI cohort: known pCR model, sites and splits, both file formats, deterministic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mrrp.errors import InputError
from mrrp.pcr.io import read_mask, read_mri, to_working
from mrrp.pcr.manifest import read_pcr_manifest
from mrrp.pcr.synth import SITES, generate_specs, write_pcr_cohort


def test_generating_model_has_the_clinical_facts_and_site_layout() -> None:
    specs = generate_specs(3000, 11)
    y = np.array([s.pcr for s in specs])
    assert 0.2 <= y.mean() <= 0.32  # pCR is the minority class, as in practice
    by_subtype = {
        t: y[[s.subtype == t for s in specs]].mean() for t in ("luminal A", "HER2-enriched", "triple-negative")
    }
    assert by_subtype["HER2-enriched"] > 2 * by_subtype["luminal A"]
    assert by_subtype["triple-negative"] > 2 * by_subtype["luminal A"]
    # the image-visible resistance factor lowers pCR; heterogeneity and oedema rise with it
    r = np.array([s.resistance for s in specs])
    assert y[r < -0.5].mean() > 2 * y[r > 0.5].mean()
    assert np.corrcoef(r, [s.heterogeneity for s in specs])[0, 1] > 0.6
    assert np.corrcoef(r, [s.oedema for s in specs])[0, 1] > 0.3
    sites = {s.site for s in specs}
    assert len(sites) >= 4 and sum(SITES[s].role == "train" for s in sites) >= 3
    for s in specs:
        assert (s.split == "external") == (SITES[s.site].role == "external")
    assert {s.split for s in specs} == {"train", "val", "test", "external"}
    assert [s.pcr for s in generate_specs(50, 11)] == [s.pcr for s in generate_specs(50, 11)]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "cohort.json"
    }


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pcr") / "cohort"
    write_pcr_cohort(out, 8, 3, workers=1)
    return out


def test_cohort_is_deterministic_for_a_seed(small_cohort: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_pcr_cohort(again, 8, 3, workers=2)  # another worker count, same bytes
    assert _digest(small_cohort) == _digest(again)


def test_cohort_files_read_back_in_both_formats_with_masks(small_cohort: Path) -> None:
    rows = read_pcr_manifest(small_cohort / "manifest.csv")
    assert len(rows) == 8
    kinds = set()
    for row in rows:
        study = read_mri(row.mri_paths if len(row.mri_paths) > 1 else row.mri_paths[0])
        kinds.add(study.source_format)
        mask = read_mask(row.mask_path, study)
        work = to_working(study, mask)
        enhancement = work.channels[1]
        assert enhancement[work.mask].mean() > 3 * abs(float(np.median(enhancement)))  # tumour enhances
        assert study.n_phases == 1 + len(SITES[row.site].post_times_min)
    assert kinds == {"dicom", "nifti-4d", "nifti-3d"}
    assert any(r.clinical.get("molecular_subtype") for r in rows)


def test_refuses_a_non_empty_output_folder(small_cohort: Path) -> None:
    with pytest.raises(InputError, match="not empty"):
        write_pcr_cohort(small_cohort, 8, 3)
