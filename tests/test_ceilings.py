"""Per-modality ceilings: the perfect reader sees the generator's measurements, the probe the frozen features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from conftest import case_features

from mrrp.train.ceilings import PERFECT_READER_COLUMNS, modality_ceilings


def test_reader_sees_truth_probe_sees_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    hazard = rng.standard_normal(n)
    split = np.array(["train"] * 150 + ["test"] * 75 + ["external"] * 75)
    cases = []
    for i, h in enumerate(hazard):
        tiles = rng.standard_normal((5, 64)).astype(np.float32)
        tiles[:, 0] += 2.0 * h  # the slide features carry the hazard
        us = rng.standard_normal((5, 64)).astype(np.float32)  # ultrasound features are noise
        cases.append(case_features(f"P{i}", tiles if i % 10 else np.zeros((0, 64), np.float32), us_images=us))
    t = rng.exponential(50 * np.exp(-hazard))
    e = (t < 80).astype(int)
    t = np.minimum(t, 80) + 0.1
    truth = {"patient_id": [c.patient_id for c in cases]}
    for col in PERFECT_READER_COLUMNS["slide"] + PERFECT_READER_COLUMNS["ultrasound"]:
        truth[col] = rng.standard_normal(n)
    truth["us_size_mm"] = hazard + 0.1 * rng.standard_normal(n)  # the ultrasound measurements carry it
    pd.DataFrame(truth).to_csv(tmp_path / "truth.csv", index=False)

    out = modality_ceilings(cases, t, e, split, tmp_path / "truth.csv")
    assert out["slide"]["linear_probe"]["test"] > 0.7
    assert abs(out["ultrasound"]["linear_probe"]["test"] - 0.5) < 0.12
    assert out["ultrasound"]["perfect_reader"]["test"] > 0.7
    assert abs(out["slide"]["perfect_reader"]["test"] - 0.5) < 0.12
    assert modality_ceilings(cases, t, e, split, None)["slide"].keys() == {"linear_probe"}
