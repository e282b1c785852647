"""GBSG2 real-data check of the clinical path: the column mapping, and a quick 2-fold run of both methods."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sksurv")

from mrrp.features.case import CATEGORICAL_FIELDS, NUMERIC_FIELDS  # noqa: E402
from mrrp.schema import parse_clinical_record  # noqa: E402
from mrrp.train.gbsg2 import (  # noqa: E402
    clinical_design,
    gbsg2_cases,
    paired_bootstrap_difference,
    receptor_percent,
    run_gbsg2_check,
)


@pytest.fixture(scope="module")
def gbsg2():
    return gbsg2_cases()


def test_receptor_percent_is_monotone_and_bounded():
    levels = np.array([0, 1, 5, 10, 36, 100, 300, 999, 1000, 2380], float)
    pct = np.array([receptor_percent(x) for x in levels])
    assert pct[0] == 0.0 and pct[-2] == pytest.approx(100.0) and pct[-1] == pytest.approx(100.0)
    assert np.all(np.diff(pct[:-1]) > 0)  # strictly increasing up to the saturation level
    assert np.all((pct >= 0) & (pct <= 100))


def test_mapping(gbsg2):
    cases, time, event = gbsg2
    assert len(cases) == 686 and time.shape == event.shape == (686,)
    assert set(np.unique(event)) == {0, 1}
    assert event.mean() == pytest.approx(0.436, abs=0.01)  # 299 recurrences or deaths
    # time in months: GBSG2 follow-up runs 8 to 2659 days
    assert time.min() == pytest.approx(8 / 30.4375) and time.max() == pytest.approx(2659 / 30.4375)
    assert 20 < np.median(time) < 40

    records = [c.extra["record"] for c in cases]
    for r in records[:50]:  # every record is valid under the clinical schema, unchanged by parsing
        assert parse_clinical_record(r) == r
    grade = np.array([r["histological_grade"] for r in records])
    size = np.array([r["tumour_size_mm"] for r in records])
    nodes = np.array([r["positive_lymph_nodes"] for r in records])
    age = np.array([r["age_years"] for r in records])
    assert set(grade) == {1, 2, 3} and np.sum(grade == 2) == 444
    assert size.min() == 3 and size.max() == 120
    assert nodes.min() == 1 and nodes.max() == 51  # GBSG2 is node-positive
    assert age.min() == 21 and age.max() == 80
    assert {r["menopausal_status"] for r in records} == {"pre", "post"}
    assert sum(r["endocrine_therapy"] == "yes" for r in records) == 246
    for field in ("ki67_percent", "lymphovascular_invasion", "histological_type", "chemotherapy", "radiotherapy"):
        assert all(r[field] is None for r in records)

    # Only the clinical modality is present; encoded knowns follow the record.
    present = np.stack([c.present for c in cases])
    assert present[:, 3].all() and not present[:, :3].any()
    known = np.stack([c.clin_known for c in cases])
    ki67 = [f for f, *_ in NUMERIC_FIELDS].index("ki67_percent")
    assert known[:, ki67].sum() == 0 and np.delete(known, ki67, axis=1).all()
    cat = np.stack([c.clin_categorical for c in cases])
    meno = CATEGORICAL_FIELDS.index("menopausal_status")
    assert set(np.unique(cat[:, meno])) == {0, 1}


def test_coxph_design_uses_the_encoded_inputs(gbsg2):
    cases, _, _ = gbsg2
    x, names = clinical_design(cases, np.arange(len(cases)))
    assert x.shape == (686, len(names))
    assert "ki67_percent" not in names and not any(n.startswith("chemotherapy") for n in names)
    assert {"age_years", "positive_lymph_nodes", "er_percent", "pr_percent"} <= set(names)
    j = names.index("age_years")
    np.testing.assert_allclose(x[:, j], [c.clin_numeric[0] for c in cases])
    assert np.all(np.ptp(x, axis=0) > 0)


def test_paired_bootstrap_of_identical_predictions_is_zero():
    rng = np.random.default_rng(0)
    t, e, r = rng.exponential(10, 80), rng.integers(0, 2, 80), rng.normal(size=80)
    out = paired_bootstrap_difference(r, r, t, e, n_boot=50)
    assert out["estimate"] == 0 and out["ci95"] == [0.0, 0.0]


def test_quick_two_fold_run():
    result = run_gbsg2_check(folds=2, seed=0, max_epochs=60, n_boot=100, threads=1)
    assert len(result["cindex_coxph_folds"]) == len(result["cindex_clinical_path_folds"]) == 2
    assert result["cindex_coxph_cv"] > 0.6
    assert result["cindex_clinical_path_cv"] > 0.6
    lo, hi = result["difference_pooled_oof"]["ci95"]
    assert lo <= result["difference_pooled_oof"]["estimate"] <= hi
