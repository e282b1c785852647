"""The patient-review page's rules, without the page: which model's result may stay on screen, where a
reopened case's slide is found, what the downloads are called and what goes into the PDF, and how
browser uploads become one patient's inputs."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_dashboard_export import make_review

from mrrp._uploads import UploadedFileData
from mrrp.dashboard.review import (
    ReviewSlide,
    drawn_heatmap,
    export_stem,
    find_slide,
    model_label,
    model_mismatch,
    review_pdf,
    review_slide,
    slide_search_folders,
)
from mrrp.dashboard.uploads import (
    SLIDE_NOT_SAVED,
    SavedSlide,
    file_data,
    report_input,
    review_inputs,
    save_slide_upload,
)
from mrrp.explain.types import TileAttribution
from mrrp.io.slides import slide_fingerprint

ACTIVE = "mrrp-demo@1ada8474e016"  # the version make_review's prediction carries


@dataclasses.dataclass
class BrowserUpload:
    """What Streamlit's UploadedFile offers the page: a name and the bytes."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


def with_tiles(review, **changes):
    tiles = TileAttribution(np.array([[0, 0], [224, 0]]), 224, np.array([0.6, 0.4]), np.array([0.1, -0.2]))
    return dataclasses.replace(review, explanation=dataclasses.replace(review.explanation, tiles=tiles), **changes)


def live(review, **intake):
    fields = {"slide": None, "clinical_record": None, "us_images": [], **intake}
    return dataclasses.replace(review, intake=SimpleNamespace(**fields))


# -- which model ---------------------------------------------------------------------------------


def test_a_result_of_the_active_model_is_shown_as_it_is() -> None:
    assert model_mismatch(make_review(), ACTIVE) is None


def test_a_stored_case_of_another_model_stays_with_a_warning() -> None:
    mismatch = model_mismatch(make_review(), "site-a@0123456789ab")
    assert mismatch is not None and mismatch.keep
    assert ACTIVE in mismatch.message and "site-a@0123456789ab" in mismatch.message
    assert "active model's cut-offs" in mismatch.message


def test_a_live_result_of_another_model_is_dropped_never_mixed() -> None:
    mismatch = model_mismatch(live(make_review()), "site-a@0123456789ab")
    assert mismatch is not None and not mismatch.keep
    assert mismatch.message == (
        f"The result shown before was computed with {ACTIVE}; analyse the patient again to use site-a@0123456789ab."
    )


# -- the slide of a review -----------------------------------------------------------------------


def test_no_tiles_means_no_slide_to_look_for() -> None:
    def never(fp: str, folders: tuple[str, ...]) -> None:
        raise AssertionError("must not search")

    assert review_slide(make_review(), ("a",), find=never) is None


def test_a_live_review_draws_on_the_slide_it_was_given() -> None:
    mask = np.ones((4, 4), bool)
    intake_slide = SimpleNamespace(path=Path("/s/a.svs"), mpp=0.25, tissue_mask=mask, mask_downsample=64.0)
    slide = review_slide(with_tiles(live(make_review(), slide=intake_slide)), ("unused",))
    assert slide == ReviewSlide(Path("/s/a.svs"), 0.25, mask, 64.0)


def test_a_reopened_case_finds_its_slide_by_fingerprint(testdata: Path, tmp_path: Path) -> None:
    (tmp_path / "cache" / "uploads" / "x").mkdir(parents=True)
    (tmp_path / "slides").mkdir()
    copy = shutil.copy(testdata / "small.svs", tmp_path / "slides" / "renamed.svs")
    shutil.copy(testdata / "boxes.tiff", tmp_path / "cache" / "uploads" / "x" / "other.tiff")
    folders = slide_search_folders(tmp_path / "cache", tmp_path / "slides")
    assert folders == (str(tmp_path / "cache"), str(tmp_path / "slides"))
    reopened = with_tiles(make_review(), input_hashes={"slide": slide_fingerprint(testdata / "small.svs")})
    assert review_slide(reopened, folders) == ReviewSlide(Path(copy))  # the default search: find_slide
    asked = []
    found = review_slide(reopened, folders, find=lambda fp, f: asked.append((fp, f)) or str(copy))
    assert found.path == Path(copy) and asked == [(reopened.input_hashes["slide"], folders)]
    assert review_slide(with_tiles(make_review(), input_hashes={"slide": "0" * 64}), folders) == ReviewSlide(None)
    assert review_slide(with_tiles(make_review(), input_hashes={}), folders) == ReviewSlide(None)
    assert find_slide(slide_fingerprint(testdata / "small.svs"), [tmp_path / "cache"], max_files=1) is None


# -- downloads -----------------------------------------------------------------------------------


def test_download_names_and_model_label() -> None:
    assert export_stem(make_review()) == "mrrp-C-0123456789"
    assert export_stem(dataclasses.replace(make_review(), case_id=None)) == "mrrp-T-1"
    assert model_label(True, Path("/x/mrrp-demo")) == "bundled demo model (synthetic data)"
    assert model_label(False, Path("/models/site-a")) == "site-a"


def test_only_this_reviews_heatmap_goes_into_the_pdf() -> None:
    review = make_review()
    assert drawn_heatmap(review, (review.token, b"png")) == b"png"
    assert drawn_heatmap(review, ("another review", b"png")) is None
    assert drawn_heatmap(review, None) is None


def test_pdf_of_a_live_review_carries_its_record_and_ultrasound_overlays(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = {}

    def fake_pdf_report(review, **kwargs) -> bytes:
        captured.update(kwargs, review=review)
        return b"%PDF-"

    monkeypatch.setattr("mrrp.dashboard.export.pdf_report", fake_pdf_report)
    image = np.full((32, 40), 128, np.uint8)
    base = make_review()
    review = live(
        dataclasses.replace(base, explanation=dataclasses.replace(base.explanation, us_overlays=[np.eye(32, 40)])),
        clinical_record={"age_years": 52.0},
        us_images=[image, image],  # two images, one overlay: only matched pairs are drawn
    )
    assert review_pdf(review, model_label="m", cutoff_text="c", heatmap_png=b"h") == b"%PDF-"
    assert captured["record"] == {"age_years": 52.0} and captured["heatmap_png"] == b"h"
    assert (captured["model_label"], captured["cutoff_text"]) == ("m", "c")
    assert len(captured["ultrasound_pngs"]) == 1 and captured["ultrasound_pngs"][0].startswith(b"\x89PNG")
    review_pdf(make_review(), model_label="m", cutoff_text="c", heatmap_png=None)
    assert captured["record"] is None and captured["ultrasound_pngs"] == []  # a stored case keeps neither


# -- uploads -------------------------------------------------------------------------------------


def test_an_uploaded_report_wins_over_pasted_text_and_an_empty_box_is_no_report() -> None:
    upload = BrowserUpload("us.txt", b"BI-RADS 4")
    assert report_input(upload, "pasted") == UploadedFileData("us.txt", b"BI-RADS 4")
    assert report_input(None, "pasted") == "pasted"
    assert report_input(None, "") is None and report_input(None, None) is None
    assert file_data(None) is None


def test_slide_uploads_are_saved_or_say_why_not(testdata: Path, tmp_path: Path) -> None:
    assert save_slide_upload(None, tmp_path) == SavedSlide() and save_slide_upload([], tmp_path) == SavedSlide()
    data = (testdata / "small.svs").read_bytes()
    saved = save_slide_upload([BrowserUpload("a.svs", data)], tmp_path / "uploads")
    # Stored under a neutral name (an uploaded file's name may carry the patient's): tests/bad_inputs/test_privacy.py
    assert saved.error is None and saved.path.name == "slide.svs" and saved.path.read_bytes() == data
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("x")
    assert save_slide_upload([BrowserUpload("a.svs", data)], blocked) == SavedSlide(error=SLIDE_NOT_SAVED)


def test_review_inputs_from_the_form() -> None:
    inputs = review_inputs(
        slide=SavedSlide(error="The file is not a slide format."),
        slide_mpp=0.5,
        us_images=[BrowserUpload("a.png", b"1"), BrowserUpload("b.dcm", b"2")],
        us_report_file=None,
        us_report_text="Irregular mass.",
        path_report_file=BrowserUpload("path.txt", b"Grade 2."),
        path_report_text="ignored: the file wins",
        clinical_form={"age_years": 61.0, "histological_grade": None},
        clinical_file=None,
    )
    assert inputs.slide_path is None and inputs.slide_error == "The file is not a slide format."
    assert inputs.slide_mpp == 0.5
    assert inputs.us_images == [UploadedFileData("a.png", b"1"), UploadedFileData("b.dcm", b"2")]
    assert inputs.us_report == "Irregular mass." and inputs.path_report == UploadedFileData("path.txt", b"Grade 2.")
    assert inputs.clinical_form == {"age_years": 61.0, "histological_grade": None} and inputs.clinical_file is None
    local = review_inputs(
        slide=Path("/slides/a.svs"),
        slide_mpp=None,
        us_images=None,
        us_report_file=None,
        us_report_text="",
        path_report_file=None,
        path_report_text="",
        clinical_form={},
        clinical_file=BrowserUpload("p.csv", b"age_years\n61\n"),
    )
    assert local.slide_path == Path("/slides/a.svs") and local.slide_error is None
    assert local.us_images == [] and local.us_report is None and local.path_report is None
    assert local.clinical_file == UploadedFileData("p.csv", b"age_years\n61\n")


def test_a_patient_with_nothing_usable_gets_one_message_naming_each_refused_input() -> None:
    from mrrp.case import InputStatus
    from mrrp.dashboard.review import nothing_usable

    statuses = {
        "slide": InputStatus("slide", "invalid", "The file is not a slide format."),
        "us_images": InputStatus("us_images", "missing"),
        "clinical": InputStatus("clinical", "invalid", "Age: 130 years is outside 18–100 years."),
    }
    none_present = SimpleNamespace(case=SimpleNamespace(present=np.zeros(4, bool)), statuses=statuses)
    message = nothing_usable(none_present)
    assert message.startswith("None of the inputs could be used: give at least one of the slide")
    assert message.split("\n\n")[1:] == [
        "H&E slide — invalid: The file is not a slide format.",
        "Clinical record — invalid: Age: 130 years is outside 18–100 years.",
    ]
    nothing_given = SimpleNamespace(case=SimpleNamespace(present=np.zeros(4, bool)), statuses={})
    assert "\n" not in nothing_usable(nothing_given)
    one_present = SimpleNamespace(case=SimpleNamespace(present=np.array([False, False, False, True])), statuses={})
    assert nothing_usable(one_present) is None
