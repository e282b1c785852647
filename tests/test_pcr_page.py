"""The pCR page as a user drives it (Streamlit AppTest): demo patient, bad uploads, a good upload."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest
from test_pcr_train import planted_volumes, write_planted_nifti

TIMEOUT_S = 120


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MRRP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    return AppTest.from_file(str(REPO / "pages" / "pcr.py"), default_timeout=TIMEOUT_S)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_demo_patient_shows_probability_stages_and_attention(page: AppTest) -> None:
    at = page.run()
    assert not at.exception
    assert any("synthetic data" in w.value and "not for clinical decisions" in w.value for w in at.warning)
    at.radio(key="pcr_source").set_value("Demo MRI patient").run()
    at.button(key="pcr_demo_load").click().run()
    assert not at.exception and not _errors(at)
    assert at.selectbox(key="pcr_clin_molecular_subtype").value == "triple-negative"  # the form was filled
    assert at.number_input(key="pcr_clin_ki67_percent").value == 70.0
    p = int(_metric(at, "pCR probability").rstrip("%"))
    assert 0 <= p <= 100
    assert len(at.metric) == 4  # the probability and the three stages
    assert any("guided at inference" in i.value for i in at.info)
    slider = at.slider(key="pcr_slice")
    assert 1 <= slider.value <= 32
    slider.set_value(5).run()
    assert not at.exception and _metric(at, "pCR probability") == f"{p}%"
    at.checkbox(key="pcr_demo_mask").uncheck().run()  # without the mask, the page says the attention is unguided
    assert not at.exception and not _errors(at)
    assert any("No tumour mask was given" in w.value and "unguided at inference" in w.value for w in at.warning)


def test_bad_uploads_show_one_error_and_keep_other_inputs(page: AppTest, tmp_path: Path) -> None:
    at = page.run()
    at.number_input(key="pcr_clin_age_years").set_value(52.0).run()
    at.selectbox(key="pcr_clin_her2_status").set_value("positive").run()
    bad = {
        "scan.zip": (b"PK\x03\x04" + b"\0" * 64, "is damaged"),
        "report.dcm": (b"%PDF-1.7 referral letter", "is a PDF document, not an MRI"),
    }
    x, _, _ = planted_volumes(1, 2)
    nib.save(nib.Nifti1Image(x[0, 0], np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "pre.nii")
    bad["pre.nii"] = ((tmp_path / "pre.nii").read_bytes(), "Only one contrast phase")
    for name, (data, expected) in bad.items():
        at.file_uploader(key="pcr_mri_upload").upload(name, data, "application/octet-stream").run()
        assert not at.exception, name
        errors = _errors(at)
        assert len(errors) == 1 and expected in errors[0], (name, errors)
        assert "Traceback" not in errors[0]
        assert at.number_input(key="pcr_clin_age_years").value == 52.0  # other inputs kept
        assert at.selectbox(key="pcr_clin_her2_status").value == "positive"
    good = write_planted_nifti(tmp_path / "dce.nii", x[0])
    at.file_uploader(key="pcr_mri_upload").upload("dce.nii", good.read_bytes(), "application/octet-stream").run()
    assert not at.exception and not _errors(at)
    assert _metric(at, "pCR probability").endswith("%")
    assert any("No tumour mask was given" in w.value for w in at.warning)
