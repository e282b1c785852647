"""The dashboard as a user drives it (Streamlit AppTest): uploads, bad files, mpp entry, features, heatmap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, tissue_image, write_tiff_slide
from streamlit.testing.v1 import AppTest

TIMEOUT_S = 120


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MRRP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MRRP_SLIDE_DIR", str(tmp_path / "slides"))
    monkeypatch.chdir(REPO)
    (tmp_path / "slides").mkdir()
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_app_starts_with_notice(app: AppTest) -> None:
    at = app.run()
    assert not at.exception
    sidebar = " ".join(w.value for w in at.sidebar.warning)
    assert "synthetic data" in sidebar and "not for clinical decisions" in sidebar
    assert at.title[0].value == "Slide viewer"


BAD_UPLOADS = {
    "unreadable.svs": "could not be read",
    "unopenable.tiff": "cannot be opened",
    "COPYING.LESSER": "not a slide format",
}


def test_bad_uploads_show_one_message_and_app_keeps_working(app: AppTest, testdata: Path) -> None:
    at = app.run()
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
    at = app.run()
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
    other = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S).run()
    other.radio(key="slide_source").set_value("Local slide folder").run()
    assert any("does not record its resolution" in w.value for w in other.warning), "mpp must not leak across sessions"
    other.number_input[0].set_value(0.5).run()
    other.button(key="compute_features").click().run()
    assert "read from the cache" in " ".join(s.value for s in other.success)


def test_local_folder_lists_slides(app: AppTest, testdata: Path, tmp_path: Path) -> None:
    shutil.copy(testdata / "small.svs", tmp_path / "slides" / "small.svs")
    at = app.run()
    at.radio(key="slide_source").set_value("Local slide folder").run()
    assert not at.exception
    assert at.selectbox(key="slide_pick").options == ["small.svs"]
    assert "0.499 µm/pixel" in str(at.table[0].value)


def test_demo_patient_is_one_click_away(app: AppTest) -> None:
    at = app.run()
    at.radio(key="slide_source").set_value("Demo patient").run()
    assert not at.exception
    options = at.selectbox(key="demo_pick").options
    assert len(options) == 4  # five demo patients, one of them has no slide
    assert any("Clearly high risk" in o for o in options) and any("Clearly low risk" in o for o in options)
    assert "aperio" in str(at.table[0].value) and "0.25 µm/pixel" in str(at.table[0].value)
