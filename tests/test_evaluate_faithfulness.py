"""The explanation faithfulness study (mrrp.evaluate.faithfulness): its metrics on tiny untrained models and
known inputs, its page rendered from its JSON, and the rule that nothing on the runtime path imports it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_explain import _bundle, _case
from test_layers import ROOT, module_name, mrrp_imports

from mrrp.evaluate.faithfulness.metrics import (
    RANDOMISATION_GROUPS,
    bootstrap_ci,
    cascade,
    deletion_effects,
    localisation,
    mean_ci,
    randomisation_correlations,
    randomised_bundle,
    ratio_of_means,
    score_summary,
    spearman,
    tile_fraction_in_mask,
    tile_scores,
    top_k_for,
)
from mrrp.explain import explain_case

# -- deletion, randomisation, localisation on a tiny model -----------------------------------------


def test_deleting_the_top_tiles_moves_the_risk_more_than_random_ones() -> None:
    """Three tiles differ from 27 near-identical ones: only they carry information, IG must rank one of
    them first, and masking the top tiles by |IG| must move the risk more than masking random tiles."""
    bundle = _bundle(seed=4)
    case = _case(seed=4, n_tiles=30)
    rng = np.random.default_rng(4)
    base = np.abs(rng.standard_normal(1280)).astype(np.float32)
    case.tiles[:] = base + 0.01 * rng.standard_normal((30, 1280)).astype(np.float32)
    hot = np.array([4, 17, 25])
    case.tiles[hot] = np.abs(rng.standard_normal((3, 1280))).astype(np.float32) * 3
    e = explain_case(bundle, case, ig_steps=16)
    assert e.tiles is not None
    # An untrained model need not use every distinct tile, but the tile IG ranks first must be one of them
    # (the 27 near-identical tiles barely move the risk), and deleting by |IG| must beat random deletion.
    assert int(np.argmax(np.abs(e.tiles.integrated_gradients))) in set(hot)
    top, random_draws = deletion_effects(bundle, case, np.abs(e.tiles.integrated_gradients), n_random=30)
    assert top > 3 * random_draws.mean()


def test_model_randomisation_changes_tile_attributions() -> None:
    bundle, case = _bundle(seed=5), _case(seed=5, n_tiles=60)
    att0, ig0 = tile_scores(bundle, case, ig_steps=8)
    randomised = randomised_bundle(bundle, seed=99)
    att1, ig1 = tile_scores(randomised, case, ig_steps=8)
    assert abs(spearman(ig0, ig1)) < 0.5
    assert abs(spearman(att0, att1)) < 0.5
    # the cascade's first step re-initialises the head only: tile attention is upstream, unchanged
    head_only = randomised_bundle(bundle, cascade(1), seed=99)
    changed = {
        n for n, t in head_only.models[0].state_dict().items() if not torch.equal(t, bundle.models[0].state_dict()[n])
    }
    assert changed and all(n.startswith("head.") for n in changed)
    np.testing.assert_allclose(tile_scores(head_only, case, ig_steps=4)[0], att0, atol=1e-6)
    assert len(cascade(len(RANDOMISATION_GROUPS))) == len(RANDOMISATION_GROUPS)


def test_localisation_helpers() -> None:
    mask = np.zeros((40, 40), bool)
    mask[:20, :20] = True  # tumour in the top-left quarter; mask pixels of 32 level-0 px
    coords = np.array([[0, 0], [320, 0], [640, 0], [0, 640], [640, 640]])  # tiles of 320 px = 10 mask px
    frac = tile_fraction_in_mask(coords, 320, mask, 32.0)
    np.testing.assert_allclose(frac, [1, 1, 0, 0, 0])
    loc = localisation(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), frac > 0.5)
    assert loc["auc"] == 1.0 and loc["k"] == 1 and loc["top_in_tumour"] == 1.0 and loc["chance"] == 0.4
    assert np.isnan(localisation(np.ones(3), np.zeros(3, bool))["auc"])


# -- small statistics ------------------------------------------------------------------------------


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible() -> None:
    values = np.random.default_rng(0).normal(2.0, 1.0, 200)
    lo, hi = bootstrap_ci(values, lambda a: float(np.mean(a)), n_boot=500)
    assert lo < values.mean() < hi and hi - lo < 0.5  # SE ~ 0.07: a 95% CI about 0.28 wide
    assert bootstrap_ci(values, lambda a: float(np.mean(a)), n_boot=500) == (lo, hi)
    assert all(np.isnan(bootstrap_ci([1.0], lambda a: float(np.mean(a)))))


def test_mean_ci_ignores_patients_without_a_value() -> None:
    mean, (lo, hi) = mean_ci([0.6, float("nan"), 0.8, 0.7])
    assert mean == pytest.approx(0.7) and 0.6 - 1e-12 <= lo <= hi <= 0.8 + 1e-12


def test_ratio_of_means_resamples_patients_as_pairs() -> None:
    rand = np.array([0.1, 0.2, 0.4, 0.3])
    ratio, (lo, hi) = ratio_of_means(3 * rand, rand)
    assert ratio == pytest.approx(3.0) and lo == pytest.approx(3.0) and hi == pytest.approx(3.0)
    with pytest.warns(RuntimeWarning, match="All-NaN"):  # no random effect at all: no ratio, no interval
        ratio, ci = ratio_of_means(rand, np.zeros(4))
    assert np.isnan(ratio) and all(np.isnan(ci))


def test_spearman_is_nan_for_constant_or_too_short_scores() -> None:
    a = np.array([0.1, 0.5, 0.2, 0.9])
    assert spearman(a, 2 * a + 1) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.ones(4))) and np.isnan(spearman(a[:2], a[:2]))


def test_randomisation_correlations_separate_sign_from_magnitude() -> None:
    att, ig = np.array([0.1, 0.3, 0.2, 0.4, 0.0]), np.array([-0.5, 0.2, 0.9, -0.1, 0.4])
    same = randomisation_correlations((att, ig), (att, ig))
    assert same == pytest.approx({"ig": 1.0, "abs_ig": 1.0, "attention": 1.0})
    flipped = randomisation_correlations((att, ig), (att.max() - att, -ig))
    assert flipped["ig"] == pytest.approx(-1.0) and flipped["abs_ig"] == pytest.approx(1.0)
    assert flipped["attention"] == pytest.approx(-1.0)


def test_top_k_is_twenty_tiles_at_most_and_a_fifth_of_a_small_slide() -> None:
    assert [top_k_for(n) for n in (1, 5, 6, 20, 99, 100, 101, 5000)] == [1, 1, 2, 4, 20, 20, 20, 20]


def test_score_summary_of_per_patient_records() -> None:
    per_patient = [
        {"ig_delete_top": 0.4, "ig_delete_random": 0.1, "ig_auc": 0.9, "ig_top_in_tumour": 1.0},
        {"ig_delete_top": 0.2, "ig_delete_random": 0.1, "ig_auc": float("nan"), "ig_top_in_tumour": 0.5},
        {"ig_delete_top": 0.3, "ig_delete_random": 0.2, "ig_auc": 0.7, "ig_top_in_tumour": 0.0},
    ]
    s = score_summary(per_patient, "ig")
    assert s["deletion_ratio"] == pytest.approx(0.9 / 0.4)  # ratio of cohort means, not a mean of ratios
    assert s["deletion_median_patient_ratio"] == pytest.approx(2.0)
    assert s["deletion_top_mean_abs_change"] == pytest.approx(0.3)
    assert s["tumour_auc"] == pytest.approx(0.8)  # the patient without an AUC (one class only) left out
    assert s["top20_in_tumour"] == pytest.approx(0.5)
    assert s["deletion_ratio_ci95"][0] <= s["deletion_ratio"] <= s["deletion_ratio_ci95"][1]


# -- the page and the command ----------------------------------------------------------------------


def test_the_page_is_rendered_from_its_json() -> None:
    """docs/explanations.md is exactly what the report renders from docs/explanations.json: no number is typed by hand."""
    from mrrp.evaluate.faithfulness.report import render_markdown

    md = ROOT / "docs" / "explanations.md"
    result = json.loads((ROOT / "docs" / "explanations.json").read_text(encoding="utf-8"))
    assert render_markdown(result, md) == md.read_text(encoding="utf-8")
    assert result["command"].startswith("python -m mrrp.evaluate.faithfulness ")


def test_command_refuses_a_cohort_without_ground_truth(tmp_path: Path, capsys) -> None:
    from mrrp.evaluate.faithfulness.cli import main

    assert main(["--cohort", str(tmp_path), "--out", str(tmp_path / "out.json")]) == 2
    assert "not a synthetic cohort with ground truth" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


RUNTIME_PACKAGES = ("mrrp.explain", "mrrp.model", "mrrp.dashboard")


def test_nothing_on_the_runtime_path_imports_the_studies() -> None:
    """The dashboard reads the study's results from docs/ JSON, never the module that computes them."""
    mrrp_files = [p for p in (ROOT / "mrrp").rglob("*.py") if module_name(p).startswith(RUNTIME_PACKAGES)]
    runtime = [*mrrp_files, *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]
    assert len(mrrp_files) > 10
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in mrrp_imports(p) if m.startswith("mrrp.evaluate")) for p in runtime
    }
    assert {k: v for k, v in offenders.items() if v} == {}
