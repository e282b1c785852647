"""Explanations: exact Shapley values, IG completeness, occlusion, Grad-CAM, ``mrrp explain``.

Tiny untrained models on random CaseFeatures: every property tested here holds for any weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import case_features, write_synthetic_bundle

from mrrp.errors import InputError
from mrrp.explain import explain_case
from mrrp.explain.explain import ensemble_log_risk, shapley_from_subsets, subset_masks
from mrrp.features.case import CATEGORICAL_SIZES, CLINICAL_TOKEN_FIELDS, CaseFeatures
from mrrp.model.batch import collate
from mrrp.model.bundle import LoadedBundle
from mrrp.model.fusion import MODALITIES, MRRP, FusionConfig

RECORD = {
    "age_years": 62,
    "tumour_size_mm": 24,
    "histological_grade": 3,
    "positive_lymph_nodes": 2,
    "er_percent": 90,
    "pr_percent": 40,
    "ki67_percent": None,
    "menopausal_status": "post",
    "lymphovascular_invasion": "yes",
    "endocrine_therapy": "yes",
}


def _cfg(**kw) -> FusionConfig:
    return FusionConfig(d=16, heads=2, dropout=0.0, n_numeric=7, categorical_sizes=CATEGORICAL_SIZES, **kw)


def _bundle(seed: int = 0, members: int = 2, **kw) -> LoadedBundle:
    torch.manual_seed(seed)
    models = [MRRP(_cfg(**kw)).eval() for _ in range(members)]
    return LoadedBundle(
        path=Path("tiny"),
        config={"name": "tiny", "fusion": models[0].cfg.to_dict()},
        models=models,
        baselines=[],
        ensemble_baseline=None,
        member_offsets=np.linspace(-0.2, 0.3, members),
        cutoffs=None,
        reference_risk=np.zeros(1),
        training_summary={},
        model_card={},
        checksum="0" * 64,
    )


def _case(
    seed: int = 0, present: tuple[bool, ...] = (True, True, True, True), n_tiles: int = 24, n_path: int = 5
) -> CaseFeatures:
    rng = np.random.default_rng(seed)

    def arr(n: int, d: int, on: bool) -> np.ndarray:
        return rng.standard_normal((n, d)).astype(np.float32) if on else np.zeros((0, d), np.float32)

    tiles = np.abs(arr(n_tiles, 1280, present[0]))  # EfficientNet features are >= 0
    side = int(np.ceil(np.sqrt(max(n_tiles, 1))))
    coords = np.array([(448 * (i % side), 448 * (i // side)) for i in range(len(tiles))], np.int64).reshape(-1, 2)
    n_usr = 3 if present[1] else 0
    n_pr = n_path if present[2] else 0
    return case_features(
        f"P{seed}",
        tiles,
        clinical=RECORD if present[3] else None,
        tile_coords_l0=coords,
        us_images=arr(10, 1280, present[1]),
        us_report=arr(n_usr, 384, True),
        us_report_sentences=[f"us sentence {i}." for i in range(n_usr)],
        path_report=arr(n_pr, 384, True),
        path_report_sentences=[f"path sentence {i}." for i in range(n_pr)],
    )


def _f(bundle: LoadedBundle, case: CaseFeatures, present=None, **replace) -> float:
    """Ensemble log-risk of one patient, optionally with batch entries replaced."""
    batch = collate([case])
    batch.update(replace)
    p = batch["present"] if present is None else torch.as_tensor(np.asarray(present)[None])
    return float(ensemble_log_risk(bundle, batch, p)[0])


# -- Shapley ------------------------------------------------------------------------------------


def test_shapley_of_known_games() -> None:
    additive = {frozenset(s): sum(v for i, v in enumerate((1.0, -2.0, 0.5)) if i in s) for s in _powerset(3)}
    assert shapley_from_subsets(additive, [0, 1, 2]) == pytest.approx({0: 1.0, 1: -2.0, 2: 0.5})
    unanimity = {frozenset(s): float({0, 1} <= set(s)) for s in _powerset(3)}  # 0 and 1 only count together
    assert shapley_from_subsets(unanimity, [0, 1, 2]) == pytest.approx({0: 0.5, 1: 0.5, 2: 0.0})
    assert subset_masks([True, False, True, False]).tolist() == [
        [False, False, False, False],
        [True, False, False, False],
        [False, False, True, False],
        [True, False, True, False],
    ]


def _powerset(n: int) -> list[tuple[int, ...]]:
    from itertools import combinations

    return [c for r in range(n + 1) for c in combinations(range(n), r)]


def test_shapley_sums_to_full_minus_reference_and_matches_the_prediction() -> None:
    from mrrp.model.predict import member_log_risks

    bundle, case = _bundle(), _case()
    e = explain_case(bundle, case, ig_steps=8)
    assert sum(e.shapley.values()) == pytest.approx(e.full_log_risk - e.reference_log_risk, abs=1e-9)
    batch = collate([case])
    assert e.full_log_risk == pytest.approx(float(member_log_risks(bundle, batch).mean(0)[0]), abs=1e-5)
    assert e.reference_log_risk == pytest.approx(_f(bundle, case, present=[False] * 4), abs=1e-5)
    assert set(e.counterfactual) == set(MODALITIES)
    for i, m in enumerate(MODALITIES):
        without = [j != i for j in range(4)]
        assert e.counterfactual[m] == pytest.approx(_f(bundle, case, present=without), abs=1e-5)
    assert sum(e.shapley_share.values()) == pytest.approx(1.0)
    assert sum(e.attention_share.values()) == pytest.approx(1.0)
    assert e.attention_to_compensation == 0.0
    assert e.tiles is not None and e.tiles.attention.sum() == pytest.approx(1.0)
    assert len(e.tiles.integrated_gradients) == len(case.tiles)
    json.dumps(e.to_dict())  # JSON-ready


def test_absent_modalities_get_exactly_zero() -> None:
    bundle = _bundle()
    case = _case(present=(True, False, False, True))
    e = explain_case(bundle, case, ig_steps=8)
    assert e.shapley["ultrasound"] == 0.0 and e.shapley["path_report"] == 0.0
    assert e.shapley_share["ultrasound"] == 0.0 and e.attention_share["path_report"] == 0.0
    assert set(e.counterfactual) == {"slide", "clinical"}
    assert 0.0 < e.attention_to_compensation < 1.0  # the model did attend to the stand-ins
    assert sum(e.shapley.values()) == pytest.approx(e.full_log_risk - e.reference_log_risk, abs=1e-9)
    assert e.path_report == [] and e.us_report == []
    no_slide = explain_case(bundle, _case(present=(False, True, True, False)), ig_steps=8)
    assert no_slide.tiles is None and no_slide.shapley["slide"] == 0.0
    assert set(no_slide.clinical) == set(CLINICAL_TOKEN_FIELDS) and not any(no_slide.clinical.values())


def test_a_modality_without_effect_gets_zero_shapley() -> None:
    """Path-report tokens projected to zero and its compensation equal to that constant summary:
    present or absent, the model sees the same thing, so its Shapley value must vanish."""
    bundle = _bundle(conditioned_compensation=False)
    m = MODALITIES.index("path_report")
    with torch.no_grad():
        for model in bundle.models:
            model.proj_path_text[1].weight.zero_()
            model.proj_path_text[1].bias.zero_()
            summary, _ = model.intra[m](torch.zeros(1, 1, model.cfg.d), torch.ones(1, 1, dtype=torch.bool))
            model.compensation[m] = summary[0]
    e = explain_case(bundle, _case(), ig_steps=8)
    assert e.shapley["path_report"] == pytest.approx(0.0, abs=1e-6)
    assert abs(e.shapley["slide"]) > 1e-4 and abs(e.shapley["clinical"]) > 1e-4
    assert all(abs(s.attribution) < 1e-6 for s in e.path_report)


# -- integrated gradients, occlusion ------------------------------------------------------------


def test_integrated_gradients_are_complete() -> None:
    bundle, case = _bundle(seed=3), _case(seed=3)
    e = explain_case(bundle, case, ig_steps=32)
    assert e.tiles is not None
    mean_tile = torch.from_numpy(np.repeat(case.tiles.mean(0, keepdims=True), len(case.tiles), 0))[None]
    slide_gap = e.full_log_risk - _f(bundle, case, tiles=mean_tile)
    assert abs(slide_gap) > 1e-3  # the check below is not trivially 0 = 0
    assert e.tiles.integrated_gradients.sum() == pytest.approx(slide_gap, abs=2e-3 + 0.02 * abs(slide_gap))
    unknown = {
        "clin_known": torch.zeros(1, 7, dtype=torch.bool),
        "clin_categorical": torch.tensor([CATEGORICAL_SIZES], dtype=torch.long),
    }
    clinical_gap = e.full_log_risk - _f(bundle, case, **unknown)
    assert sum(e.clinical.values()) == pytest.approx(clinical_gap, abs=2e-3 + 0.02 * abs(clinical_gap))
    assert e.clinical["ki67_percent"] == 0.0 and e.clinical["histological_type"] == 0.0  # unknown = baseline
    assert set(e.completeness_error) == {"tiles", "clinical"} and max(e.completeness_error.values()) < 1e-2


def test_clinical_attribution_includes_the_linear_clinical_term() -> None:
    """The model's linear Cox term on the clinical fields is attributed too: completeness still holds."""
    bundle, case = _bundle(seed=4), _case(seed=4)
    with torch.no_grad():
        for m in bundle.models:
            m.clinical_linear.weight.normal_(0.0, 0.5)  # zero at initialisation; make it matter
    e = explain_case(bundle, case, ig_steps=32)
    unknown = {
        "clin_known": torch.zeros(1, 7, dtype=torch.bool),
        "clin_categorical": torch.tensor([CATEGORICAL_SIZES], dtype=torch.long),
    }
    clinical_gap = e.full_log_risk - _f(bundle, case, **unknown)
    assert abs(clinical_gap) > 0.05
    assert sum(e.clinical.values()) == pytest.approx(clinical_gap, abs=2e-3 + 0.02 * abs(clinical_gap))
    assert e.clinical["ki67_percent"] == 0.0  # unknown = baseline, also for the linear term
    assert e.completeness_error["clinical"] < 1e-2


def test_sentence_occlusion_is_the_risk_without_the_sentence() -> None:
    bundle, case = _bundle(seed=1), _case(seed=1)
    e = explain_case(bundle, case, ig_steps=4)
    mask = torch.ones(1, len(case.path_report), dtype=torch.bool)
    mask[0, 2] = False
    assert e.path_report[2].attribution == pytest.approx(
        e.full_log_risk - _f(bundle, case, path_report_mask=mask), abs=1e-6
    )
    assert [s.sentence for s in e.us_report] == case.us_report_sentences
    only = _case(seed=1, n_path=1)  # removing the only sentence removes the report
    e1 = explain_case(bundle, only, ig_steps=4)
    assert e1.path_report[0].attribution == pytest.approx(e1.full_log_risk - e1.counterfactual["path_report"], abs=1e-6)


def test_ultrasound_gradcam_overlays() -> None:
    bundle, case = _bundle(seed=2), _case(seed=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (90, 120), dtype=np.uint8), rng.integers(0, 255, (64, 64), dtype=np.uint8)]
    e = explain_case(bundle, case, us_images=images, ig_steps=4)
    assert [o.shape for o in e.us_overlays] == [(90, 120), (64, 64)]
    for o in e.us_overlays:
        assert o.dtype == np.float32 and o.min() >= 0.0 and o.max() <= 1.0
    assert any(o.max() == pytest.approx(1.0) for o in e.us_overlays)
    assert e.to_dict()["us_overlays"] == [[90, 120], [64, 64]]
    with pytest.raises(InputError, match="ultrasound image"):
        explain_case(bundle, case, us_images=images[:1], ig_steps=4)


# -- mrrp explain ---------------------------------------------------------------------------------


@pytest.fixture
def tiny_cohort(tmp_path: Path, known_tissue_slide) -> dict[str, Path]:
    """A bundle of two untrained members and a manifest of two patients (one with every modality)."""
    from PIL import Image

    from mrrp.io.manifest import write_manifest

    bundle = _bundle(seed=7)
    cases = [_case(seed=s) for s in range(6)]
    lr = np.stack([m(collate(cases))[0].detach().double().numpy() for m in bundle.models])
    t, ev = np.arange(1.0, 7.0), np.array([1, 0, 1, 1, 0, 1])
    write_synthetic_bundle(tmp_path / "model", bundle.models, lr, t, ev, "tiny")
    slide, _ = known_tissue_slide
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128), dtype=np.uint8)).save(tmp_path / "us.png")
    (tmp_path / "path.txt").write_text("Invasive carcinoma, grade 3. Two of five nodes are positive. ER positive.")
    clinical = {k: v for k, v in RECORD.items() if v is not None}
    rows = [
        {
            "patient_id": "A1",
            "site": "internal",
            "split": "predict",
            "slide_path": str(slide),
            "us_image_paths": "us.png",
            "path_report_path": "path.txt",
            **clinical,
        },
        {"patient_id": "B2", "site": "internal", "split": "predict", **clinical},
    ]
    manifest = write_manifest(rows, tmp_path / "manifest.csv")
    return {"model": tmp_path / "model", "manifest": manifest, "cache": tmp_path / "cache", "root": tmp_path}


def test_cli_explain_json_and_heatmap(tiny_cohort: dict[str, Path], capsys) -> None:
    from mrrp.cli import main
    from mrrp.ui import NOTICE

    png = tiny_cohort["root"] / "heat.png"
    argv = [
        "explain",
        "--manifest",
        tiny_cohort["manifest"],
        "--case",
        "A1",
        "--model",
        tiny_cohort["model"],
        "--cache-dir",
        tiny_cohort["cache"],
        "--heatmap",
        png,
        "--ultrasound-overlay",
        "--ig-steps",
        "8",
        "--json",
    ]
    assert main([str(a) for a in argv]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["notice"] == NOTICE
    e = out["explanation"]
    assert e["patient_id"] == "A1" and all(e["present"].values())
    assert sum(e["shapley"].values()) == pytest.approx(e["full_log_risk"] - e["reference_log_risk"], abs=1e-9)
    assert len(e["tiles"]["integrated_gradients"]) == len(e["tiles"]["coords_l0"]) == 15
    assert e["us_overlays"] == [[96, 128]]
    assert [s["sentence"] for s in e["path_report"]][0].startswith("Invasive carcinoma")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a patient without a slide: explained, and plain text without --json
    argv = [
        "explain",
        "--manifest",
        tiny_cohort["manifest"],
        "--case",
        "B2",
        "--model",
        tiny_cohort["model"],
        "--cache-dir",
        tiny_cohort["cache"],
    ]
    assert main([str(a) for a in argv]) == 0
    text = capsys.readouterr().out
    assert NOTICE in text and "slide        absent (compensated)" in text


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--case", "NOPE"], "'NOPE' is not in the manifest"),
        (["--case", "B2", "--heatmap", "x.png"], "has no slide"),
        (["--case", "A1", "--heatmap", "x.jpg"], "must end in .png"),
        (["--case", "A1", "--ig-steps", "1"], "--ig-steps"),
    ],
)
def test_cli_explain_bad_input_is_one_line(tiny_cohort: dict[str, Path], capsys, extra, fragment, monkeypatch) -> None:
    from mrrp.cli import main

    monkeypatch.chdir(tiny_cohort["root"])
    argv = [
        "explain",
        "--manifest",
        tiny_cohort["manifest"],
        "--model",
        tiny_cohort["model"],
        "--cache-dir",
        tiny_cohort["cache"],
        *extra,
    ]
    assert main([str(a) for a in argv]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.startswith("mrrp: ") and cap.err.count("\n") == 1 and fragment in cap.err
