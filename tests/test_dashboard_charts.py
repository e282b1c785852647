"""Figures and context of one prediction: icon array counts, curves, bars, overlays, the validated
C-index lookup and the reference curves. Built from small hand-made predictions (no model run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO

from mrrp.dashboard import charts
from mrrp.dashboard.models import BUNDLED_MODEL_DIR, load_model
from mrrp.dashboard.reference import evaluation_for, group_description, missing_pattern_cindex, reference_curves
from mrrp.explain.types import Explanation, SentenceAttribution
from mrrp.model.predict import HorizonRisk, Prediction
from mrrp.vocabulary import LOWERS_RISK_COLOUR, RAISES_RISK_COLOUR, RISK_GROUP_COLOURS, rgb, rgba


def make_prediction(p5: float = 0.3, group: str = "intermediate") -> Prediction:
    t = np.arange(0, 121, 1.0)  # months
    hazard = -np.log(1 - p5) / 60.0
    s = np.exp(-hazard * t)
    return Prediction(
        patient_id="T-1",
        log_risk=0.1,
        log_risk_interval=(-0.4, 0.6),
        risk_group=group,
        percentile=55.0,
        time_months=t.tolist(),
        survival=s.tolist(),
        survival_lower=(s * 0.9).tolist(),
        survival_upper=np.minimum(s * 1.05, 1).tolist(),
        recurrence={36: 1 - float(s[36]), 60: 1 - float(s[60]), 84: 1 - float(s[84])},
        recurrence_interval={36: (0.1, 0.3), 60: (0.2, 0.4), 84: (0.3, 0.5)},
        present={"slide": True, "ultrasound": False, "path_report": True, "clinical": True},
        compensated=["ultrasound"],
        model_version="mrrp-demo@1ada8474e016",
        interval_method="ensemble",
    )


def make_explanation() -> Explanation:
    return Explanation(
        patient_id="T-1",
        present={"slide": True, "ultrasound": False, "path_report": True, "clinical": True},
        full_log_risk=0.1,
        reference_log_risk=-0.5,
        shapley={"slide": 0.45, "ultrasound": 0.0, "path_report": -0.05, "clinical": 0.2},
        shapley_share={"slide": 0.64, "ultrasound": 0.0, "path_report": 0.07, "clinical": 0.29},
        attention_share={"slide": 0.5, "ultrasound": 0.0, "path_report": 0.2, "clinical": 0.3},
        counterfactual={"slide": -0.3, "path_report": 0.15, "clinical": -0.1},
        clinical={"ki67_percent": 0.12, "age_years": -0.03, "histological_grade": 0.0},
        clinical_baseline="every field unknown",
        path_report=[
            SentenceAttribution("Grade 3 <b>invasive</b> carcinoma.", 0.2),
            SentenceAttribution("Margins clear.", -0.05),
        ],
    )


@pytest.mark.parametrize(
    ("p", "expected"), [(0.0, (0, 100)), (0.922, (92, 8)), (0.925, (93, 7)), (0.004, (0, 100)), (1.0, (100, 0))]
)
def test_icon_counts(p: float, expected: tuple[int, int]) -> None:
    assert charts.icon_counts(p) == expected


def test_icon_counts_refuses_non_probabilities() -> None:
    for bad in (-0.1, 1.2, float("nan")):
        with pytest.raises(ValueError):
            charts.icon_counts(bad)


def test_icon_array_colours_exactly_k_people() -> None:
    fig = charts.icon_array_figure(0.31)
    colours = [s.fillcolor for s in fig.layout.shapes]
    assert len(colours) == 200  # a head and a body per person
    assert colours.count(RAISES_RISK_COLOUR) == 2 * 31 and colours.count(charts.NEUTRAL) == 2 * 69
    assert "about 31 would have" in fig.layout.title.text


def test_survival_figure_draws_band_patient_and_reference() -> None:
    from mrrp.dashboard.reference import ReferenceCurve, ReferenceCurves

    ref = ReferenceCurves(
        [ReferenceCurve("low", np.array([0, 50.0, 100.0]), np.array([1, 0.95, 0.9]), 10)], "kaplan-meier", "KM"
    )
    pred = make_prediction(0.3)
    fig = charts.survival_figure(pred, ref)
    names = [t.name for t in fig.data]
    assert "low risk group (n=10)" in names and "uncertainty band (95%)" in names and "this patient" in names
    patient = next(t for t in fig.data if t.name == "this patient")
    assert patient.x[0] == 0 and patient.x[-1] == 10  # years
    assert patient.y[60] == pytest.approx(0.7)  # 5-year survival = 1 - P(recurrence)
    marks = [t for t in fig.data if t.mode == "markers+text"]
    assert [m.text[0] for m in marks] == ["81%", "70%", "61%"]  # 0.7 ** (36 / 60) = 0.807


def test_prediction_is_read_by_horizon_in_months() -> None:
    p = make_prediction(0.3)
    assert p.at(60) == p.at() == HorizonRisk(60, pytest.approx(0.3), 0.2, 0.4)
    assert [h.months for h in p.horizons] == [36, 60, 84] and p.at(84).years == 7
    with pytest.raises(KeyError):
        p.at(120)


def test_prediction_wire_form_has_string_horizons_and_reads_back() -> None:
    p = make_prediction(0.3)
    wire = json.loads(json.dumps(p.to_dict()))  # as the case history and the JSON export store it
    assert set(wire["recurrence"]) == {"36", "60", "84"} and wire["recurrence_interval"]["60"] == [0.2, 0.4]
    back = Prediction.from_dict(wire)
    assert back == p and back.recurrence_interval[60] == (0.2, 0.4)
    assert p.to_dict()["recurrence"]["60"] == pytest.approx(0.3)  # the on-disk form did not change


def test_recurrence_rows_and_percent_text() -> None:
    rows = charts.recurrence_rows(make_prediction(0.3))
    assert rows[1] == {"Horizon": "5 years", "Recurrence probability": "30.0%", "95% interval": "20.0–40.0%"}
    assert charts.percent_text(55.2) == "55%" and charts.percent_text(99.52) == "99.5%"
    assert charts.percent_text(0.4) == "0.4%"


def test_contribution_and_clinical_bars_show_the_explanation() -> None:
    e = make_explanation()
    fig = charts.contributions_figure(e)
    shap, att = fig.data
    assert list(shap.x) == [0.45, 0.0, -0.05, 0.2]
    assert list(att.x) == [50.0, 0.0, 20.0, 30.0]
    assert "Ultrasound (compensated)" in shap.y
    clin = charts.clinical_figure(e.clinical, {"ki67_percent": 35.0, "age_years": 61.0, "histological_grade": None})
    bar = clin.data[0]
    assert list(bar.y) == ["Ki-67 = 35 %", "Age = 61 years", "Histological grade (unknown)"]
    assert bar.marker.color[0] == RAISES_RISK_COLOUR and bar.marker.color[1] == LOWERS_RISK_COLOUR


def test_what_if_figure_points() -> None:
    from mrrp.dashboard.review import WhatIfRow

    rows = [
        WhatIfRow("All available inputs", "high", 1.2, 90.0, recurrence=0.6, recurrence_interval=(0.5, 0.7)),
        WhatIfRow("without h&e slide", "intermediate", 0.1, 50.0, recurrence=0.3, recurrence_interval=(0.2, 0.4)),
    ]
    fig = charts.what_if_figure(rows)
    assert list(fig.data[0].x) == [60.0, 30.0]
    assert fig.data[0].marker.color == (RISK_GROUP_COLOURS["high"], RISK_GROUP_COLOURS["intermediate"])


def test_ultrasound_overlay_leaves_cold_pixels_alone() -> None:
    img = np.tile(np.arange(64, dtype=np.uint8), (32, 1))  # (32, 64)
    heat = np.zeros((32, 64))
    heat[:, 32:] = 1.0
    out = charts.ultrasound_overlay(img, heat, alpha=0.5)
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :32], np.repeat(img[:, :32, None], 3, axis=-1))
    assert not np.array_equal(out[:, 32:], np.repeat(img[:, 32:, None], 3, axis=-1))
    with pytest.raises(ValueError):
        charts.ultrasound_overlay(img, heat[:, :10])


def test_sentences_are_escaped_and_shaded_by_sign() -> None:
    html = charts.highlighted_sentences_html(make_explanation().path_report)
    assert "&lt;b&gt;invasive&lt;/b&gt;" in html and "<b>" not in html
    assert rgba(RAISES_RISK_COLOUR, 0.58) in html  # the strongest sentence, pushed up: full colour
    assert "rgba({},{},{},".format(*rgb(LOWERS_RISK_COLOUR)) in html  # the other pushed down: blue
    assert charts.top_sentences(make_explanation().path_report, 1) == [("Grade 3 <b>invasive</b> carcinoma.", 0.2)]


# -- context from the bundle and the model report ------------------------------------------------


@pytest.fixture(scope="module")
def bundle():
    return load_model(str(BUNDLED_MODEL_DIR))


def test_bundled_model_has_its_evaluation(bundle) -> None:
    report = json.loads((REPO / "docs" / "model_report.json").read_text())["evaluation"]
    evaluation = evaluation_for(bundle)
    assert evaluation is not None and evaluation["checksum"] == bundle.checksum == report["checksum"]
    slide = missing_pattern_cindex(evaluation, ["slide"])
    want_int = report["test"]["cindex_by_missing_pattern"]["without_slide"]
    want_ext = report["external"]["cindex_by_missing_pattern"]["without_slide"]
    assert slide.validated and slide.cindex == {"internal test": want_int, "external site": want_ext}
    assert f"{want_int:.2f} (internal test; {report['test']['harrell_c']:.2f} with all inputs)" in slide.sentence()
    full = missing_pattern_cindex(evaluation, [])
    assert full.validated and full.full_cindex["internal test"] == report["test"]["harrell_c"]
    assert 0.5 < full.full_cindex["internal test"] < 1.0
    two = missing_pattern_cindex(evaluation, ["ultrasound", "path_report"])
    assert not two.validated and "not part of the validation" in two.sentence()


def test_a_report_of_another_model_is_not_used(bundle, tmp_path) -> None:
    from dataclasses import replace

    (tmp_path / "report.json").write_text(json.dumps({"evaluation": {"checksum": "0" * 64, "test": {}}}))
    other = replace(bundle, path=tmp_path, checksum="f" * 64)
    assert evaluation_for(other, report_path=tmp_path / "report.json") is None
    assert missing_pattern_cindex(None, ["slide"]).validated is False


def test_reference_curves_training_km_then_test_km_then_model_based(bundle) -> None:
    from dataclasses import replace

    km = reference_curves(bundle, evaluation_for(bundle))
    assert km.kind == "kaplan-meier" and [c.group for c in km.curves] == ["low", "intermediate", "high"]
    if bundle.reference_km:  # the bundle's own training-set curves come first
        assert "training patients" in km.description
        assert sum(c.n for c in km.curves) == len(bundle.reference_risk)
    for c in km.curves:
        assert c.time_months[0] == 0.0 and c.survival[0] == 1.0 and np.all(np.diff(c.survival) <= 1e-12)
    # at the end of follow-up the low group has recurred least
    ends = {c.group: c.survival[-1] for c in km.curves}
    assert ends["low"] > ends["high"]
    older = replace(bundle, reference_km=None)
    test_km = reference_curves(older, evaluation_for(bundle))
    assert "held-out internal test" in test_km.description
    assert sum(c.n for c in test_km.curves) == evaluation_for(bundle)["test"]["n"]
    model = reference_curves(older, None)
    assert model.kind == "model" and "Model-estimated" in model.description
    by_group = {c.group: c for c in model.curves}
    assert sum(c.n for c in model.curves) == len(bundle.reference_risk)
    s60 = [by_group[g].survival[60] for g in ("low", "intermediate", "high")]
    assert s60[0] > s60[1] > s60[2]
    c = bundle.cutoffs
    assert f"low ≤ {c.low_upper:.2f} < intermediate ≤ {c.high_lower:.2f} < high" in group_description(bundle)


def test_risk_position_figure_marks_the_patient(bundle) -> None:
    pred = make_prediction()
    fig = charts.risk_position_figure(bundle.reference_risk, bundle.cutoffs.low_upper, bundle.cutoffs.high_lower, pred)
    patient = next(t for t in fig.data if t.name == "this patient")
    assert patient.x[0] == pytest.approx(0.1)
    assert patient.error_x.array[0] == pytest.approx(0.5) and patient.error_x.arrayminus[0] == pytest.approx(0.5)
    assert [s.x0 for s in fig.layout.shapes if s.type == "line"] == [
        bundle.cutoffs.low_upper,
        bundle.cutoffs.high_lower,
    ]
