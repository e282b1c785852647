"""Ablation machinery: restricting modalities really removes their information."""

from __future__ import annotations

import numpy as np
import torch
from conftest import case_features

from mrrp.features.case import CaseFeatures
from mrrp.model.batch import collate
from mrrp.train.ablations import _restrict, run_variant
from mrrp.train.pipeline import default_model_config
from mrrp.train.trainer import TrainConfig


def _cases(rng: np.random.Generator, n: int) -> tuple[list[CaseFeatures], np.ndarray, np.ndarray]:
    """The hazard lives in the tiles only; the clinical record is pure noise."""
    signal = rng.standard_normal(n)
    cases = []
    for i, s in enumerate(signal):
        clinical = {"age_years": float(rng.integers(30, 80))}
        tiles = rng.standard_normal((6, 1280)).astype(np.float32)
        tiles[:, :16] += 1.5 * s
        cases.append(case_features(str(i), tiles, clinical=clinical))
    t = rng.exponential(60 * np.exp(-1.2 * signal))
    e = (t < 90).astype(int)
    return cases, np.minimum(t, 90) + 0.1, e


def test_restrict_hides_modalities() -> None:
    rng = np.random.default_rng(0)
    cases, _, _ = _cases(rng, 4)
    batch = collate(cases)
    only_clinical = _restrict(batch, np.array([False, False, False, True]))
    assert not only_clinical["present"][:, 0].any() and only_clinical["present"][:, 3].all()
    assert torch.equal(batch["present"][:, 0], torch.ones(4, dtype=torch.bool))  # the original is untouched


def test_single_modality_variants_see_only_their_modality() -> None:
    rng = np.random.default_rng(3)
    data = {}
    for split, n in (("train", 90), ("test", 60), ("external", 60)):
        cases, t, e = _cases(rng, n)
        data[split] = {"batch": collate(cases), "time": t, "event": e}
    cfg = TrainConfig(folds=2, max_epochs=80, patience_epochs=30)
    slide = run_variant(default_model_config(), data, np.array([True, False, False, False]), cfg)
    clinical = run_variant(default_model_config(), data, np.array([False, False, False, True]), cfg)
    assert slide["c_test"] > 0.65
    assert abs(clinical["c_test"] - 0.5) < 0.12  # noise only: no better than chance


def test_missing_patterns_cover_every_nonempty_subset() -> None:
    from mrrp.train.ablations import missing_pattern_masks, pattern_name

    masks = missing_pattern_masks()
    assert len(masks) == 15 and len({tuple(m) for m in masks}) == 15
    assert masks[0].all() and pattern_name(masks[0]) == "all_present"
    names = [pattern_name(m) for m in masks]
    assert {"without_slide", "without_ultrasound", "without_path_report", "without_clinical"} <= set(names)
    assert "only_clinical" in names and "only_slide+clinical" in names
