"""The synthetic cohort's ground truth as the faithfulness study reads it: the tumour mask of a slide, and
what the generating model says each modality is worth (the reference of the modality-ranking check).

Ground truth: what each modality lets one observe of the generating model (mrrp.synth.biology,
mrrp.synth.cohort, mrrp.synth.reports). Reports state the age; the ultrasound report calls the
axilla suspicious for >= 4 positive nodes (and at random for 1-3). Read from the cohort's files
(truth.csv, the manifest), never by importing the generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrrp.train.ceilings import PERFECT_READER_COLUMNS
from mrrp.vocabulary import MODALITIES

if TYPE_CHECKING:
    from mrrp.io.manifest import ManifestRow

# The generator's measurements a perfect reader of each modality sees (the ceilings' columns), and for the
# slide also its staining, which changes how the tiles look; the tumour size enters on a log scale below.
_SLIDE_COLUMNS = (*PERFECT_READER_COLUMNS["slide"], "slide_stain_hue_shift", "slide_stain_intensity")
_US_COLUMNS = tuple(c for c in PERFECT_READER_COLUMNS["ultrasound"] if c != "us_size_mm")


def tumour_mask(cohort_dir: Path, row: ManifestRow) -> tuple[np.ndarray, float]:
    """(ground-truth tumour mask (H, W) bool, its downsample from level 0) of one patient's slide."""
    from PIL import Image

    from mrrp.io.slides import read_slide_info

    mask = np.asarray(Image.open(cohort_dir / "truth" / f"{row.patient_id}_tumour.png")) > 127
    mask_ds = read_slide_info(row.slide_path).width_px / mask.shape[1]  # type: ignore[arg-type]
    return mask, mask_ds


def _truth_design(cohort: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(true log-hazard (n,), modality -> observed generating parameters (n, p)) of internal patients
    with a clinical record (the reports are written from it, so without it they cannot be rebuilt)."""
    import pandas as pd

    from mrrp.io.manifest import read_manifest
    from mrrp.schema import FIELDS_BY_NAME

    truth = pd.read_csv(cohort / "truth.csv").set_index("patient_id")
    rows = [r for r in read_manifest(cohort / "manifest.csv", check_files=False) if r.site == "internal" and r.clinical]
    t = truth.loc[[r.patient_id for r in rows]]

    def col(name: str, transform: Callable[[float], float] = float) -> np.ndarray:
        vals = np.array([np.nan if r.clinical.get(name) is None else transform(r.clinical[name]) for r in rows])  # type: ignore[union-attr]
        known = ~np.isnan(vals)
        fill = np.nanmedian(vals) if known.any() else 0.0
        return np.column_stack([np.where(known, vals, fill), known.astype(float)])  # value, known

    def cat(name: str) -> np.ndarray:
        cats = FIELDS_BY_NAME[name].categories
        return np.column_stack([[float(r.clinical.get(name) == c) for r in rows] for c in cats])  # type: ignore[union-attr]

    age = col("age_years")
    young = (age[:, :1] < 40).astype(float)
    nodes = col("positive_lymph_nodes", lambda v: math.log1p(float(v)))
    record = np.hstack(
        [
            col("tumour_size_mm", lambda v: math.log(max(float(v), 0.5))),
            col("histological_grade"),
            nodes,
            col("er_percent"),
            col("pr_percent"),
            col("ki67_percent", lambda v: math.log(max(float(v), 0.5))),
            cat("lymphovascular_invasion"),
            cat("histological_type"),
        ]
    )
    axilla = np.array([float((r.clinical.get("positive_lymph_nodes") or 0) >= 4) for r in rows])[:, None]  # type: ignore[union-attr, operator]
    design = {
        "slide": t[list(_SLIDE_COLUMNS)].to_numpy(float),
        "ultrasound": np.hstack(
            [np.log(t[["us_size_mm"]].to_numpy(float)), t[list(_US_COLUMNS)].to_numpy(float), age[:, :1], young, axilla]
        ),
        "path_report": np.hstack([record, age[:, :1], young, cat("menopausal_status")]),
        "clinical": np.hstack(
            [
                record,
                age,
                young,
                cat("menopausal_status"),
                cat("endocrine_therapy"),
                cat("chemotherapy"),
                cat("radiotherapy"),
            ]
        ),
    }
    return t["log_hazard"].to_numpy(float), design


def truth_modality_importance(cohort: Path) -> dict[str, float]:
    """Shapley decomposition of the cross-validated R^2 of the true log-hazard over the modalities."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mrrp.explain.explain import shapley_from_subsets

    y, design = _truth_design(cohort)
    players = list(range(len(MODALITIES)))
    values: dict[frozenset[int], float] = {frozenset(): 0.0}
    folds = KFold(5, shuffle=True, random_state=0)
    for size in range(1, len(players) + 1):
        for combo in combinations(players, size):
            x = np.hstack([design[MODALITIES[i]] for i in combo])
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
            pred = cross_val_predict(model, x, y, cv=folds)
            values[frozenset(combo)] = float(1 - np.mean((y - pred) ** 2) / np.var(y))
    phi = shapley_from_subsets(values, players)
    return {MODALITIES[i]: float(v) for i, v in phi.items()}
