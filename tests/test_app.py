"""The dashboard as a user drives it (Streamlit AppTest): the app shell, and the slide viewer's uploads, bad
files, mpp entry, features and heatmap. The patient review page has its own file (test_app_review.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, tissue_image, write_tiff_slide
from streamlit.testing.v1 import AppTest

TIMEOUT_S = 120


@pytest.fixture
def app(dashboard_env: Path) -> AppTest:
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)


SLIDE_VIEWER = "pages/slide_viewer.py"


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _viewer(app: AppTest) -> AppTest:
    """The app, switched to the slide viewer page (the patient review is the default page)."""
    at = app.run()
    at.switch_page(SLIDE_VIEWER).run()
    assert at.title[0].value == "Slide viewer"
    return at


def test_app_starts_with_notice(app: AppTest) -> None:
    at = app.run()
    assert not at.exception
    sidebar = " ".join(w.value for w in at.sidebar.warning)
    assert "synthetic data" in sidebar and "not for clinical decisions" in sidebar
    assert at.title[0].value == "Patient review"
    assert at.selectbox(key="model_choice").value == "mrrp-demo (bundled)"
    assert any(c.value.startswith("Version `mrrp-demo@") for c in at.sidebar.caption)


BAD_UPLOADS = {
    "unreadable.svs": "could not be read",
    "unopenable.tiff": "cannot be opened",
    "COPYING.LESSER": "not a slide format",
}


def test_bad_uploads_show_one_message_and_app_keeps_working(app: AppTest, testdata: Path) -> None:
    at = _viewer(app)
    for name, expected in BAD_UPLOADS.items():
        upload_name = name if name != "COPYING.LESSER" else "licence.svs"
        at.file_uploader[0].upload(upload_name, (testdata / name).read_bytes(), "application/octet-stream").run()
        assert not at.exception, name
        errors = _errors(at)
        assert len(errors) == 1 and expected in errors[0], (name, errors)
        assert "Traceback" not in errors[0]
    at.file_uploader[0].upload("empty.svs", b"", "application/octet-stream").run()
    assert not at.exception
    # a good slide afterwards works in the same session
    at.file_uploader[0].upload("small.svs", (testdata / "small.svs").read_bytes(), "application/octet-stream").run()
    assert not at.exception and not _errors(at)
    assert any(b.label == "Compute tile features" for b in at.button)


def test_slide_without_mpp_asks_for_it_then_computes_heatmap(app: AppTest, tmp_path: Path) -> None:
    slide = write_tiff_slide(
        tmp_path / "slides" / "case 7.tiff", tissue_image(2400, 1800, [(300, 300, 1800, 1500)]), mpp=None
    )
    at = _viewer(app)
    at.radio(key="slide_source").set_value("Local slide folder").run()
    assert at.selectbox(key="slide_pick").value == slide
    assert any("does not record its resolution" in w.value for w in at.warning)
    assert not any(b.label == "Compute tile features" for b in at.button)
    at.number_input[0].set_value(0.5).run()
    assert not at.exception
    at.button(key="compute_features").click().run()
    assert not at.exception, at.exception
    done = " ".join(s.value for s in at.success)
    assert "tiles × 1280 features" in done and "computed now" in done
    # 1500 x 1200 px of tissue at 0.5 µm/px = 3.35 x 2.68 tiles of 448 px
    n_tiles = int(done.split(" tiles")[0].replace(",", ""))
    assert 6 <= n_tiles <= 20
    assert at.selectbox(key="heatmap_score").options == ["Tissue fraction", "Feature norm (encoder embedding L2)"]
    at.slider(key="heatmap_alpha").set_value(0.7).run()
    assert not at.exception
    # a second session opening the same slide reads the features from the cache
    other = _viewer(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S))
    other.radio(key="slide_source").set_value("Local slide folder").run()
    assert any("does not record its resolution" in w.value for w in other.warning), "mpp must not leak across sessions"
    other.number_input[0].set_value(0.5).run()
    other.button(key="compute_features").click().run()
    assert "read from the cache" in " ".join(s.value for s in other.success)


def test_local_folder_lists_slides(app: AppTest, testdata: Path, tmp_path: Path) -> None:
    shutil.copy(testdata / "small.svs", tmp_path / "slides" / "small.svs")
    at = _viewer(app)
    at.radio(key="slide_source").set_value("Local slide folder").run()
    assert not at.exception
    assert at.selectbox(key="slide_pick").options == ["small.svs"]
    assert "0.499 µm/pixel" in str(at.table[0].value)


def test_demo_patient_is_one_click_away(app: AppTest) -> None:
    at = _viewer(app)
    at.radio(key="slide_source").set_value("Demo patient").run()
    assert not at.exception
    options = at.selectbox(key="demo_pick").options
    assert len(options) == 4  # five demo patients, one of them has no slide
    assert any("Clearly high risk" in o for o in options) and any("Clearly low risk" in o for o in options)
    assert "aperio" in str(at.table[0].value) and "0.25 µm/pixel" in str(at.table[0].value)


def test_site_model_can_be_chosen_and_a_tampered_one_is_refused(app: AppTest, tmp_path: Path) -> None:
    from mrrp.dashboard.models import BUNDLED_MODEL_DIR, load_model

    site_a = shutil.copytree(BUNDLED_MODEL_DIR, tmp_path / "models" / "site-a")
    # A different, valid bundle: another model card, checksums rewritten to match.
    card = json.loads((site_a / "model_card.json").read_text())
    (site_a / "model_card.json").write_text(json.dumps({**card, "name": "site-a"}))
    sums = json.loads((site_a / "checksums.json").read_text())
    sums["model_card.json"] = hashlib.sha256((site_a / "model_card.json").read_bytes()).hexdigest()
    (site_a / "checksums.json").write_text(json.dumps(sums))
    shutil.copytree(BUNDLED_MODEL_DIR, tmp_path / "models" / "site-b")
    with open(tmp_path / "models" / "site-b" / "cutoffs.json", "a") as fh:
        fh.write(" ")  # one byte changed: the checksum no longer matches
    at = app.run()
    assert at.selectbox(key="model_choice").options == [
        "mrrp-demo (bundled)",
        "site-a (site model)",
        "site-b (site model)",
    ]
    # AppTest drops the sidebar of st.navigation apps on reruns, so each choice is a fresh session
    # with the choice already made (as the selectbox would store it).
    site = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)
    site.session_state["model_choice"] = "site-a (site model)"
    site.run()
    assert not site.exception
    assert site.session_state["model_path"] == str(tmp_path / "models" / "site-a")
    warnings = [w.value for w in (*site.sidebar.warning, *site.warning)]
    assert not any("not for clinical decisions" in w for w in warnings), "the notice is for the bundled model only"
    assert set(warnings) == {"Not signed: nobody vouches for this model."}, "unsigned, allowed by MRRP_ALLOW_UNSIGNED"
    assert any("Site model" in c.value for c in site.sidebar.caption)
    bundled = load_model(str(BUNDLED_MODEL_DIR)).checksum[:12]
    assert any(c.value.startswith("Version `mrrp-demo@") and bundled not in c.value for c in site.sidebar.caption)
    tampered = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)
    tampered.session_state["model_choice"] = "site-b (site model)"
    tampered.run()
    assert not tampered.exception
    errors = [e.value for e in tampered.sidebar.error]
    assert len(errors) == 1 and "failed its integrity check" in errors[0] and "cutoffs.json was changed" in errors[0]
    assert tampered.session_state["model_path"] == str(BUNDLED_MODEL_DIR)
    assert "not for clinical decisions" in " ".join(w.value for w in tampered.sidebar.warning)
