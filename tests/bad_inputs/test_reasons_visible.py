"""Error reasons are never hidden (issue 13, under load): when an analysis gives no result, the reason each
input was refused (no µm/pixel, an invalid record, the wrong file) stands in view beside the inputs, in an
element no collapsed expander or status box holds, and the previous patient's result is gone.

The element tree of AppTest is walked: an element counts as in view when none of the blocks above it is a
collapsed expander or status box, or a tab other than the first (the one shown)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Expander, Status, Tab

from mrrp._uploads import UploadedFileData
from mrrp.case import InputStatus
from mrrp.dashboard.intake import CaseInputs
from mrrp.dashboard.models import BUNDLED_MODEL_DIR, load_model
from mrrp.dashboard.review import AnalysisFailure, analyse, status_chips
from mrrp.ui import UNEXPECTED

TIMEOUT_S = 300
CACHE = Path(os.environ["MRRP_CACHE_DIR"])  # the suite's shared cache (conftest)
NOTHING = "None of the inputs could be used"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MRRP_SLIDE_DIR", str(tmp_path / "slides"))
    monkeypatch.setenv("MRRP_HISTORY_DB", str(tmp_path / "history.sqlite"))
    monkeypatch.setenv("MRRP_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(REPO)
    (tmp_path / "slides").mkdir()
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)


def _walk(node, hidden: bool = False) -> Iterator[tuple[object, bool]]:
    """(element, hidden) for every element under ``node``; hidden when a block above it is collapsed."""
    if isinstance(node, Block):
        if isinstance(node, (Expander, Status)):
            hidden = hidden or not node.proto.expanded
        children = list(node.children.values())
        tabs = [c for c in children if isinstance(c, Tab)]
        for child in children:
            yield from _walk(child, hidden or (isinstance(child, Tab) and child is not tabs[0]))
    else:
        yield node, hidden


def _texts(at: AppTest) -> list[tuple[str, str, bool]]:
    """(element type, text, hidden) of every text element on the page."""
    out = []
    for element, hidden in _walk(at._tree):
        value = getattr(element, "value", None)
        if isinstance(value, str):
            out.append((getattr(element, "type", ""), value, hidden))
    return out


def _in_view(at: AppTest, needle: str) -> list[str]:
    return [f"{kind}: {text}" for kind, text, hidden in _texts(at) if needle in text and not hidden]


def _hidden(at: AppTest, needle: str) -> list[str]:
    return [f"{kind}: {text}" for kind, text, hidden in _texts(at) if needle in text and hidden]


def test_the_walk_sees_a_collapsed_expander_as_hidden() -> None:
    script = """
import streamlit as st
with st.expander("closed", expanded=False):
    st.error("inside the closed box")
with st.expander("open", expanded=True):
    st.error("inside the open box")
t = st.tabs(["one", "two"])
t[1].error("in the second tab")
st.error("at the top")
"""
    at = AppTest.from_string(script).run()
    assert _hidden(at, "inside the closed box") and not _in_view(at, "inside the closed box")
    assert _in_view(at, "inside the open box") and _in_view(at, "at the top")
    assert _hidden(at, "in the second tab")


def _slide_without_mpp(testdata: Path) -> list[tuple[str, bytes, str]]:
    return [("boxes.tiff", testdata.joinpath("boxes.tiff").read_bytes(), "image/tiff")]


# (what is given, the reason that must stand in view, the input's label)
REFUSALS = {
    "missing µm/pixel": ("slide", "does not record its resolution", "H&E slide"),
    "invalid record": ("clinical", "Age: 300 years is outside 18–100 years", "Clinical record"),
    "wrong file as ultrasound": ("us", "scan.png", "Ultrasound images"),
    "PDF as pathology report": ("path", "PDF", "Pathology report"),
}


def _give(at: AppTest, what: str, testdata: Path) -> None:
    if what == "slide":
        at.file_uploader(key="rv_slide_upload").set_value(_slide_without_mpp(testdata))
    elif what == "clinical":
        at.file_uploader(key="rv_clinical_file").upload("row.csv", b"age_years\n300\n", "text/csv")
    elif what == "us":
        at.file_uploader(key="rv_us_upload").upload("scan.png", b"this is not an image", "image/png")
    else:
        at.file_uploader(key="rv_path_report_file").upload("path.txt", b"%PDF-1.5 binary", "text/plain")


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_the_reason_of_a_refused_only_input_is_in_view(app: AppTest, testdata: Path, case: str) -> None:
    what, reason, label = REFUSALS[case]
    at = app.run()
    _give(at, what, testdata)
    at.run()
    at.button(key="rv_analyse").click().run()
    assert not at.exception, at.exception
    assert not at.metric  # never predicted
    shown = _in_view(at, reason)
    assert any(s.startswith("error:") and NOTHING in s for s in shown), _texts(at)
    # the input's own chip carries the reason too, in the inputs area
    assert any("-badge[" in s and f"{label}: invalid:" in s for s in shown), _texts(at)
    assert not _hidden(at, reason), _hidden(at, reason)
    # a rerun (any click elsewhere) keeps it in view until the next analysis
    at.run()
    assert any(NOTHING in s for s in _in_view(at, reason))


def test_a_failure_after_a_result_hides_neither_the_reason_nor_shows_the_old_result(
    app: AppTest, testdata: Path
) -> None:
    at = app.run()
    at.button(key="demo_DEMO-01").click().run()
    assert not at.exception and at.metric  # a result, so the inputs box is collapsed now
    _give(at, "clinical", testdata)
    at.run()
    at.button(key="rv_analyse").click().run()
    assert not at.exception, at.exception
    assert not at.metric, "the previous patient's result is still on screen"
    assert not any(h.value.startswith("DEMO-01") for h in at.header)
    reason = "Age: 300 years is outside 18–100 years"
    assert any(s.startswith("error:") for s in _in_view(at, reason)), _texts(at)
    assert not _hidden(at, reason)


# -- the library side: analyse() names each refused input, and says nothing it does not know -----------


@pytest.fixture(scope="module")
def bundle():
    return load_model(str(BUNDLED_MODEL_DIR))


@pytest.mark.parametrize(
    ("inputs", "key", "reason"),
    [
        (CaseInputs(clinical_file=UploadedFileData("r.csv", b"age_years\n300\n")), "clinical", "Age: 300 years"),
        (CaseInputs(us_images=[UploadedFileData("scan.png", b"not an image")]), "us_images", "scan.png"),
        (CaseInputs(path_report=UploadedFileData("p.txt", b"%PDF-1.5 binary")), "path_report", "PDF"),
        (CaseInputs(slide_error="The upload 'x.svs' is empty."), "slide", "is empty"),
    ],
    ids=["record", "ultrasound", "report", "slide"],
)
def test_analyse_names_each_refused_input(bundle, tmp_path: Path, inputs: CaseInputs, key: str, reason: str) -> None:
    outcome = analyse(bundle, inputs, cache_dir=tmp_path / "cache")
    assert isinstance(outcome, AnalysisFailure)
    assert outcome.message.startswith(NOTHING) and reason in outcome.message
    assert [s.key for s in outcome.invalid] == [key] and reason in outcome.invalid[0].reason
    chips = status_chips(outcome.statuses, reasons=True)
    assert reason in chips
    assert f"{outcome.invalid[0].label}: invalid" in status_chips(outcome.statuses, reasons=False)
    assert reason not in status_chips(outcome.statuses, reasons=False)


def test_an_unexpected_failure_is_the_apology_and_is_logged(
    bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mrrp.dashboard.review as review

    def boom(*args, **kwargs):
        raise RuntimeError("stack expects each tensor to be equal size")

    monkeypatch.setattr(review, "review_case", boom)
    form = {"age_years": 61.0}
    outcome = analyse(bundle, CaseInputs(patient_id="P1", clinical_form=form), cache_dir=tmp_path / "cache")
    assert isinstance(outcome, AnalysisFailure) and outcome.message == UNEXPECTED and not outcome.statuses
    assert "stack expects" in caplog.text and "P1" not in caplog.text  # the operator's log has the cause, no id


def test_chips_show_every_state() -> None:
    statuses = {
        "slide": InputStatus("slide", "invalid", "The slide 'a.tiff' does not record its resolution."),
        "us_images": InputStatus("us_images", "missing"),
        "clinical": InputStatus("clinical", "provided"),
    }
    chips = status_chips(statuses, reasons=True)
    assert chips.count("-badge[") == 3
    assert ":red-badge[:material/error: H&E slide: invalid: The slide" in chips
    assert ":gray-badge[:material/remove: Ultrasound images: missing (compensated)]" in chips
    assert chips.count("&nbsp;") == 2
