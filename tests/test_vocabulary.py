"""The shared vocabulary: one definition of horizons, modalities, risk colours and tile-heatmap policy,
read by the model, the dashboard and the heatmaps; importing it pulls in nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mrrp import vocabulary as v
from mrrp.explain.heatmap import display_kwargs, render_tile_scores


def test_horizons_are_whole_years_with_labels_and_json_keys() -> None:
    assert v.HORIZONS_MONTHS == (36, 60, 84) and v.HEADLINE_HORIZON_MONTHS in v.HORIZONS_MONTHS
    assert [v.horizon_years(m) for m in v.HORIZONS_MONTHS] == [3, 5, 7]
    assert v.HORIZON_LABELS == {36: "3 years", 60: "5 years", 84: "7 years"}
    assert [v.horizon_key(m) for m in v.HORIZONS_MONTHS] == ["36", "60", "84"]  # evaluation reports' keys


def test_modalities_are_the_models_and_every_one_is_named() -> None:
    from mrrp.model.fusion import MODALITIES

    assert MODALITIES is v.MODALITIES == ("slide", "ultrasound", "path_report", "clinical")
    for names in (v.MODALITY_LABELS, v.MODALITY_WORDS, v.MODALITY_INPUTS):
        assert tuple(names) == v.MODALITIES
    assert v.MODALITY_LABELS["ultrasound"] == "Ultrasound" and v.MODALITY_WORDS["ultrasound"] == "ultrasound"
    assert v.sentence_start(v.MODALITY_INPUTS["ultrasound"]) == "Ultrasound (images and report)"


def test_one_palette_for_risk_groups_distinct_from_the_patient_and_the_cases() -> None:
    assert tuple(v.RISK_GROUP_COLOURS) == v.RISK_GROUPS == tuple(v.RISK_GROUP_STREAMLIT_COLOURS)
    groups = set(v.RISK_GROUP_COLOURS.values())
    assert len(groups) == 3 and v.PATIENT_COLOUR not in groups and not groups & set(v.CASE_COLOURS)
    assert v.RAISES_RISK_COLOUR == v.RISK_GROUP_COLOURS["high"] and v.LOWERS_RISK_COLOUR not in groups
    # Okabe-Ito: every colour that carries meaning is one of the palette's seven
    palette = {v.BLACK, v.ORANGE, v.SKY_BLUE, v.BLUISH_GREEN, v.BLUE, v.VERMILLION, v.REDDISH_PURPLE}
    assert groups | set(v.CASE_COLOURS) | set(v.SITE_COLOURS.values()) | {v.PATIENT_COLOUR} <= palette
    assert v.rgb(v.BLUE) == (0, 114, 178) and v.rgba(v.BLUE, 0.2) == "rgba(0,114,178,0.2)"


def test_signed_scores_use_a_symmetric_scale_and_the_rest_percentiles() -> None:
    ig = display_kwargs(v.IG_DISPLAY, np.array([-0.2, 0.5, np.nan, 0.1]))
    assert ig == {"cmap": "coolwarm", "use_percentiles": False, "vmin": -0.5, "vmax": 0.5}  # NaN ignored
    assert display_kwargs(v.IG_DISPLAY, np.zeros(3))["vmax"] == 1.0  # never an empty range
    for display in (v.ATTENTION_DISPLAY, v.PIPELINE_DISPLAY):
        assert display_kwargs(display, np.array([1.0, 2.0])) == {"cmap": "viridis", "use_percentiles": True}
    assert list(v.EXPLANATION_TILE_DISPLAYS) == ["ig", "attention"]


@pytest.mark.parametrize("display", [v.IG_DISPLAY, v.ATTENTION_DISPLAY])
def test_rendered_heatmap_carries_the_policy(display: v.TileScoreDisplay) -> None:
    thumb = np.full((20, 40, 3), 240, np.uint8)
    coords = np.array([[0, 0], [80, 0]])  # two 80-px tiles at downsample 4: left and right halves
    res = render_tile_scores(thumb, 4.0, coords, 80, np.array([-1.0, 3.0]), display, alpha=1.0)
    assert (res.cmap, res.label) == (display.cmap, display.label)
    assert (res.vmin, res.vmax) == ((-3.0, 3.0) if display.scale == "symmetric" else (0.0, 1.0))
    if display.scale == "symmetric":  # -1 of ±3 is a pale blue, +3 the full red end
        left, right = res.overlay[10, 5].astype(int), res.overlay[10, 35].astype(int)
        assert left[2] > left[0] and right[0] > right[2] + 100


def test_vocabulary_and_the_prediction_record_import_nothing_heavy() -> None:
    heavy = "sorted({'torch', 'numpy'} & set(sys.modules))"
    code = f"import sys, mrrp.vocabulary; print({heavy}); import mrrp.model.predict; print({heavy})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "['numpy']"]  # the Prediction record needs numpy, never torch
