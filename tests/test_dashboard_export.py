"""Export: the prediction JSON and the PDF report (numbers, figures, model version, notice)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from test_dashboard_charts import make_explanation, make_prediction

from mrrp.dashboard.export import figure_png, pdf_report, png_bytes, prediction_json
from mrrp.dashboard.intake import InputStatus
from mrrp.dashboard.reference import PatternPerformance, ReferenceCurve, ReferenceCurves
from mrrp.dashboard.review import Review
from mrrp.ui import NOTICE


def make_review() -> Review:
    statuses = {
        "slide": InputStatus("slide", "provided"),
        "us_images": InputStatus("us_images", "missing"),
        "us_report": InputStatus("us_report", "missing"),
        "path_report": InputStatus("path_report", "provided"),
        "clinical": InputStatus("clinical", "invalid", "Age: 130 years is outside 18–100 years."),
    }
    reference = ReferenceCurves(
        [
            ReferenceCurve(g, np.array([0.0, 60.0, 120.0]), np.array([1.0, s, s - 0.1]), 10)
            for g, s in (("low", 0.95), ("intermediate", 0.85), ("high", 0.6))
        ],
        "kaplan-meier",
        "KM of 30 patients.",
    )
    return Review(
        prediction=make_prediction(0.3),
        explanation=make_explanation(),
        pattern=PatternPerformance(("ultrasound",), {"internal test": 0.716}, {"internal test": 0.733}, True),
        reference=reference,
        statuses=statuses,
        input_hashes={"slide": "a" * 64, "path_report": "b" * 64},
        case_id="C-0123456789",
    )


def test_prediction_json_has_numbers_status_version_and_notice() -> None:
    doc = json.loads(prediction_json(make_review(), model_label="bundled demo model"))
    assert doc["notice"] == NOTICE and doc["case_id"] == "C-0123456789"
    assert doc["prediction"]["model_version"] == "mrrp-demo@1ada8474e016"
    assert doc["prediction"]["recurrence"]["60"] == pytest.approx(0.3)
    assert doc["inputs"]["clinical"] == "invalid: Age: 130 years is outside 18–100 years."
    assert doc["inputs"]["us_images"] == "missing (compensated)"
    assert doc["compensated"] == ["ultrasound"]
    assert doc["validated_cindex"]["by_split"] == {"internal test": 0.716}
    assert doc["explanation"]["shapley"]["slide"] == 0.45


def _pdf_text(pdf: bytes) -> tuple[str, dict, int, int]:
    """(text of every page, metadata, pages, embedded images), read back with pypdf."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    images = sum(len(page.images) for page in reader.pages)
    return text, dict(reader.metadata or {}), len(reader.pages), images


def test_pdf_report_carries_numbers_figures_version_and_notice() -> None:
    heat = png_bytes(np.full((60, 80, 3), 200, np.uint8))
    pdf = pdf_report(make_review(), model_label="bundled demo model", cutoff_text="low ≤ -1.03", heatmap_png=heat)
    assert pdf.startswith(b"%PDF-")
    text, meta, pages, images = _pdf_text(pdf)
    flat = " ".join(text.split())
    for expected in (
        "Intermediate risk",
        "5 years",
        "30.0%",
        "20.0–40.0%",
        "mrrp-demo@1ada8474e016",
        "not for clinical decisions",
        "Compensated by the model: ultrasound (images and report)",
        "invalid: Age: 130 years",
        "low ≤ -1.03",
        "Pathology report: sentences that moved the risk most",
        "Report sentences are not quoted in this PDF",
        "Recurrence-free survival",
        "Slide heatmap",
    ):
        assert expected in flat, expected
    assert "Grade 3 <b>invasive</b> carcinoma." not in flat  # free text stays out unless asked for
    assert "C-0123456789" in meta["/Title"]
    assert pages >= 2
    assert images == 5  # survival, icon array, contributions, clinical bars (kaleido) and the heatmap


def test_pdf_quotes_report_sentences_only_when_asked() -> None:
    quoted = " ".join(
        _pdf_text(pdf_report(make_review(), model_label="m", with_charts=False, quote_report_sentences=True))[0].split()
    )
    assert "Grade 3 <b>invasive</b> carcinoma." in quoted and "not quoted" not in quoted
    by_place = " ".join(_pdf_text(pdf_report(make_review(), model_label="m", with_charts=False))[0].split())
    assert "Grade 3" not in by_place and "sentence 1 of" in by_place


def test_pdf_without_charts_still_has_the_numbers() -> None:
    pdf = pdf_report(make_review(), model_label="bundled demo model", with_charts=False)
    text, _meta, _pages, images = _pdf_text(pdf)
    assert images == 0 and "30.0%" in text and "not for clinical decisions" in " ".join(text.split())


def test_figure_png_uses_kaleido() -> None:
    from mrrp.dashboard import charts

    png = figure_png(charts.icon_array_figure(0.2), width_px=400)
    assert png is not None and png.startswith(b"\x89PNG")
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(png)).size == (800, 760)  # 400 x 380 at scale 2
