"""The patient review page as a clinician drives it (Streamlit AppTest): demo patients, uploads, missing
inputs, bad files, the case history. Assertions are on what the page shows: risk group, probabilities,
status chips, the compensation banner, error messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from mrrp.dashboard.history import CaseHistory
from mrrp.dashboard.intake import CaseInputs, build_case, demo_inputs
from mrrp.dashboard.models import BUNDLED_MODEL_DIR, load_model
from mrrp.model.predict import predict_cases
from mrrp.synth.demo import ensure_demo_cohort
from mrrp.vocabulary import RISK_GROUP_STREAMLIT_COLOURS

TIMEOUT_S = 300
CACHE = Path(os.environ["MRRP_CACHE_DIR"])  # the suite's shared cache (conftest): demo files and features reused
EVALUATION = json.loads((REPO / "docs" / "model_report.json").read_text())["evaluation"]  # the bundled model's


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MRRP_SLIDE_DIR", str(tmp_path / "slides"))
    monkeypatch.setenv("MRRP_HISTORY_DB", str(tmp_path / "history.sqlite"))
    monkeypatch.setenv("MRRP_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(REPO)
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def demo_dir() -> Path:
    return ensure_demo_cohort(CACHE).parent


def _text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def _chips(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "-badge[" in m.value)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _expected(inputs: CaseInputs):
    bundle = load_model(str(BUNDLED_MODEL_DIR))
    return predict_cases(bundle, [build_case(inputs, cache_dir=CACHE).case])[0]


def test_demo_patient_flow(app: AppTest, tmp_path: Path) -> None:
    at = app.run()
    assert not at.exception
    assert any("Pick a demo patient" in i.value for i in at.info)
    at.button(key="demo_DEMO-02").click().run()
    assert not at.exception, at.exception
    assert not at.error
    expected = _expected(demo_inputs(CACHE, "DEMO-02"))
    assert expected.risk_group == "high"
    assert ":red[High risk]" in _text(at)
    shown = _metrics(at)
    for months, years in ((36, 3), (60, 5), (84, 7)):
        assert shown[f"{years}-year recurrence"] == f"{100 * expected.at(months).probability:.1f}%"
    five = expected.at(60)
    assert f"95% interval {100 * five.lower:.1f}–{100 * five.upper:.1f}%" in [c.value for c in at.caption]
    chips = _chips(at)
    for label in ("H&E slide", "Ultrasound images", "Ultrasound report", "Pathology report", "Clinical record"):
        assert f"{label}: provided" in chips
    full_c = f"{EVALUATION['test']['harrell_c']:.2f} (internal test)"
    assert any("Every input was available" in i.value and full_c in i.value for i in at.info)
    assert any("not for clinical decisions" in w.value for w in at.warning)
    # the case is in the history, pseudonymous apart from the synthetic demo id
    cases = CaseHistory(tmp_path / "history.sqlite").list_cases()
    assert len(cases) == 1 and cases[0].prediction["risk_group"] == "high"
    assert cases[0].model_version == expected.model_version and cases[0].inputs is None
    assert {b.label for b in at.get("download_button")} == {"Download PDF report", "Download prediction (JSON)"}
    # what-if: leaving out the slide re-predicts without it
    at.toggle(key="whatif_slide").set_value(True).run()
    assert not at.exception
    import torch

    case = build_case(demo_inputs(CACHE, "DEMO-02"), cache_dir=CACHE).case
    without = predict_cases(
        load_model(str(BUNDLED_MODEL_DIR)), [case], present=torch.tensor([[False, True, True, True]])
    )[0]
    assert _metrics(at)["5-year recurrence"] == f"{100 * without.at(60).probability:.1f}%"
    # the heatmap opacity slider reruns only its fragment and keeps the result
    at.slider(key="hm_alpha").set_value(0.9).run()
    assert not at.exception and ":red[High risk]" in _text(at)


def test_missing_modality_flow_names_what_was_compensated(app: AppTest) -> None:
    at = app.run()
    at.button(key="demo_DEMO-04").click().run()
    assert not at.exception
    chips = _chips(at)
    assert "H&E slide: missing (compensated)" in chips and "Clinical record: provided" in chips
    banner = " ".join(w.value for w in at.warning if "Compensated" in w.value)
    assert "**Compensated:** H&E slide." in banner
    for split, label in (("test", "internal test"), ("external", "external site")):
        c = EVALUATION[split]
        without = c["cindex_by_missing_pattern"]["without_slide"]
        assert f"{without:.2f} ({label}; {c['harrell_c']:.2f} with all inputs)" in banner
    assert any("No slide for this patient" in i.value for i in at.info)
    at.button(key="demo_DEMO-05").click().run()
    banner = " ".join(w.value for w in at.warning if "Compensated" in w.value)
    assert "ultrasound (images and report), pathology report" in banner and "not part of the validation" in banner


def test_upload_flow(app: AppTest, demo_dir: Path) -> None:
    patient = demo_dir / "patients" / "DEMO-03"
    us_report = (patient / "us_report.txt").read_text()
    at = app.run()
    at.file_uploader[0].upload("DEMO-03 slide.svs", (patient / "slide.svs").read_bytes(), "application/octet-stream")
    at.file_uploader[1].upload("us_1.png", (patient / "us_1.png").read_bytes(), "image/png")
    at.text_area(key="rv_us_report_text").set_value(us_report)
    at.file_uploader[4].upload("record.csv", b"age_years,ki67_percent,histological_grade\n55,18,2\n", "text/csv")
    at.run()
    at.button(key="rv_analyse").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    chips = _chips(at)
    for label in ("H&E slide", "Ultrasound images", "Ultrasound report", "Clinical record"):
        assert f"{label}: provided" in chips
    assert "Pathology report: missing (compensated)" in chips
    assert any("**Compensated:** pathology report." in w.value for w in at.warning)
    # the page shows what the package computes for the same inputs
    from mrrp._uploads import UploadedFileData, save_uploads

    slide = save_uploads(
        [UploadedFileData("DEMO-03 slide.svs", (patient / "slide.svs").read_bytes())],
        Path(os.environ["MRRP_CACHE_DIR"]) / "uploads",
    )
    expected = _expected(
        CaseInputs(
            slide_path=slide,
            us_images=[UploadedFileData("us_1.png", (patient / "us_1.png").read_bytes())],
            us_report=us_report,
            clinical_form={"age_years": 55, "ki67_percent": 18, "histological_grade": 2},
        )
    )
    colour = RISK_GROUP_STREAMLIT_COLOURS[expected.risk_group]
    assert f":{colour}[{expected.risk_group.capitalize()} risk]" in _text(at)
    assert _metrics(at)["5-year recurrence"] == f"{100 * expected.at(60).probability:.1f}%"


BAD_SLIDES = {
    "COPYING.LESSER": ("licence.svs", "not a slide format"),
    "unreadable.svs": ("unreadable.svs", "could not be read"),
    "unopenable.tiff": ("unopenable.tiff", "cannot be opened"),
    "boxes.png": ("boxes.png", "does not record its resolution"),
    "boxes.tiff": ("boxes.tiff", "does not record its resolution"),
    "small.svs": ("small.svs", "No tile holds enough tissue"),
    "boxes_0.dcm": ("boxes_0.dcm", "No tile holds enough tissue"),
    "boxes_1.dcm": ("boxes_1.dcm", "cannot be opened"),  # one file of a two-file DICOM slide, alone
}


def test_every_bad_file_gives_one_clear_message_and_keeps_the_rest(app: AppTest, testdata: Path) -> None:
    assert {p.name for p in testdata.iterdir()} == set(BAD_SLIDES), "a new test file needs an expectation here"
    at = app.run()
    at.number_input(key="rv_clin_age_years").set_value(61)
    at.selectbox(key="rv_clin_menopausal_status").set_value("post")
    at.run()
    uploads = [(name, testdata.joinpath(src).read_bytes(), expected) for src, (name, expected) in BAD_SLIDES.items()]
    uploads.append(("empty.svs", b"", "is empty"))
    both = [(n, testdata.joinpath(n).read_bytes()) for n in ("boxes_0.dcm", "boxes_1.dcm")]
    uploads.append((both, None, "No tile holds enough tissue"))  # the whole DICOM slide: it opens, no tissue
    for name, data, expected in uploads:
        # set_value replaces the uploader's files (upload() adds to them: this uploader takes several)
        files = [(n, d, "application/dicom") for n, d in name] if isinstance(name, list) else [(name, data, "")]
        at.file_uploader[0].set_value(files).run()
        at.button(key="rv_analyse").click().run()
        assert not at.exception, (name, at.exception)
        errors = [e.value for e in at.error]
        assert len(errors) == 1, (name, errors)
        assert errors[0].startswith("H&E slide — invalid: ") and expected in errors[0], (name, errors)
        assert "Traceback" not in errors[0] and "openslide" not in errors[0].lower().replace("openslide does", "")
        chips = _chips(at)
        assert "H&E slide: invalid" in chips and "Clinical record: provided" in chips
        assert any(group in _text(at) for group in ("Low risk]", "Intermediate risk]", "High risk]"))
        assert at.number_input(key="rv_clin_age_years").value == 61  # the other inputs are kept
        assert at.selectbox(key="rv_clin_menopausal_status").value == "post"
    # a bad ultrasound image and a PDF as pathology report: each its own message, the slide error gone
    at.radio(key="rv_slide_source").set_value("Local slide folder").run()  # no slide now
    at.file_uploader(key="rv_us_upload").upload("scan.png", b"this is not an image", "image/png")
    at.file_uploader(key="rv_path_report_file").upload("path.txt", b"%PDF-1.5 binary", "text/plain")
    at.run()
    at.button(key="rv_analyse").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2, errors
    assert errors[0].startswith("Ultrasound images — invalid:") and "scan.png" in errors[0]
    assert errors[1].startswith("Pathology report — invalid:") and "PDF" in errors[1]


def test_nothing_usable_is_one_message_not_a_prediction(app: AppTest) -> None:
    at = app.run()
    at.text_area(key="rv_path_report_text").set_value("   ")
    at.button(key="rv_analyse").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("None of the inputs could be used")
    assert not at.metric
    at.file_uploader(key="rv_clinical_file").upload("row.csv", b"age_years\n300\n", "text/csv").run()
    at.button(key="rv_analyse").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Clinical record — invalid: Age: 300 years is outside 18–100 years." in errors[0]


def test_history_round_trip_and_independent_sessions(app: AppTest, tmp_path: Path) -> None:
    at = app.run()
    at.button(key="demo_DEMO-01").click().run()
    shown = _metrics(at)
    case_id = CaseHistory(tmp_path / "history.sqlite").list_cases()[0].case_id
    assert any(case_id in m.value for m in at.markdown)
    at.button(key=f"open_{case_id}").click().run()
    assert not at.exception
    assert at.header[0].value.startswith(f"Case {case_id} from the history")
    assert _metrics(at) == shown and ":green[Low risk]" in _text(at)
    assert "H&E slide: provided" in _chips(at)
    # another session (as the tumor board page does): open by id, no state shared with the first
    other = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)
    other.session_state["open_case_id"] = case_id
    other.run()
    assert not other.exception
    assert other.header[0].value.startswith(f"Case {case_id}") and _metrics(other) == shown
    fresh = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S).run()
    assert not fresh.metric and any("Pick a demo patient" in i.value for i in fresh.info)
    # opting in stores the inputs with the case
    at.button(key="demo_DEMO-01").click().run()
    at.checkbox(key=f"store_inputs_{case_id}").check().run()
    rec = CaseHistory(tmp_path / "history.sqlite").get(case_id)
    assert rec.inputs is not None and rec.inputs["path_report"] and rec.inputs["clinical"]["age_years"] == 63.0


def test_damaged_history_does_not_cost_the_result(app: AppTest, tmp_path: Path) -> None:
    (tmp_path / "history.sqlite").write_bytes(b"not a database" * 100)
    at = app.run()
    at.button(key="demo_DEMO-01").click().run()
    assert not at.exception
    assert ":green[Low risk]" in _text(at)
    damaged = [w.value for w in at.warning if "damaged" in w.value]
    assert damaged and all("move the file aside" in w for w in damaged)


def test_switching_model_never_mixes_results(app: AppTest, tmp_path: Path) -> None:
    """A result of one model is not shown under another: the page asks to analyse again."""
    import hashlib
    import shutil

    site = shutil.copytree(BUNDLED_MODEL_DIR, tmp_path / "models" / "site-a")
    card = json.loads((site / "model_card.json").read_text())
    (site / "model_card.json").write_text(json.dumps({**card, "name": "site-a"}))
    sums = json.loads((site / "checksums.json").read_text())
    sums["model_card.json"] = hashlib.sha256((site / "model_card.json").read_bytes()).hexdigest()
    (site / "checksums.json").write_text(json.dumps(sums))
    at = app.run()
    at.button(key="demo_DEMO-01").click().run()
    assert at.metric
    at.session_state["model_path"] = str(site)  # what the sidebar stores when site-a is chosen
    at.session_state["model_choice"] = "site-a (site model)"
    at.run()
    assert not at.exception
    assert not at.metric
    assert any("analyse the patient again" in i.value for i in at.info)
