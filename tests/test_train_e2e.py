"""End to end on a tiny synthetic cohort: synth → train (CV ensemble bundle) → evaluate → predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mrrp.cli import main
from mrrp.io.manifest import read_manifest, write_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    cohort = root / "cohort"
    assert (
        main(
            [
                "synth",
                "--n",
                "90",
                "--seed",
                "21",
                "--out",
                str(cohort),
                "--slide-size",
                "0.8x0.6",
                "--missing-rate",
                "0.1",
            ]
        )
        == 0
    )
    model = root / "model"
    cache = root / "cache"
    assert (
        main(
            [
                "train",
                "--manifest",
                str(cohort / "manifest.csv"),
                "--out",
                str(model),
                "--folds",
                "3",
                "--max-epochs",
                "150",
                "--cache-dir",
                str(cache),
                "--json",
            ]
        )
        == 0
    )
    return {"cohort": cohort, "model": model, "cache": cache}


def test_bundle_is_complete_and_learned(trained: dict[str, Path]) -> None:
    model = trained["model"]
    names = {p.name for p in model.iterdir()}
    assert {
        "config.json",
        "fold_0.pt",
        "fold_2.pt",
        "baseline.json",
        "cutoffs.json",
        "reference_risk.json",
        "training_summary.json",
        "model_card.json",
        "checksums.json",
    } <= names
    summary = json.loads((model / "training_summary.json").read_text())
    assert summary["oof_harrell_c"] > 0.6, summary  # oracle on such cohorts is ~0.8
    card = json.loads((model / "model_card.json").read_text())
    assert "synthetic data" in card["notice"] and "not for clinical decisions" in card["notice"]
    config = json.loads((model / "config.json").read_text())
    assert config["encoders"]["text"]["name"] == "all-MiniLM-L6-v2"
    assert len(config["encoders"]["tile"]["sha256"]) == 64


def test_evaluate_reports_sksurv_metrics(trained: dict[str, Path], capsys) -> None:
    rc = main(
        [
            "evaluate",
            "--model",
            str(trained["model"]),
            "--manifest",
            str(trained["cohort"] / "manifest.csv"),
            "--bootstrap",
            "30",
            "--cache-dir",
            str(trained["cache"]),
            "--json",
        ]
    )
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    for split in ("test", "external"):
        r = result[split]
        assert 0 <= r["harrell_c"] <= 1 and 0 <= r["uno_c"] <= 1
        assert set(r["cindex_by_missing_pattern"]) == {
            "without_slide",
            "without_ultrasound",
            "without_path_report",
            "without_clinical",
        }
        assert sum(r["group_counts"].values()) == r["n"]


def test_predictions_have_intervals_and_groups(trained: dict[str, Path]) -> None:
    from mrrp.model.bundle import load_bundle
    from mrrp.model.predict import predict_cases
    from mrrp.train.pipeline import load_cases

    bundle = load_bundle(trained["model"])
    rows = read_manifest(trained["cohort"] / "manifest.csv")[:6]
    preds = predict_cases(bundle, load_cases(rows, trained["cache"]))
    for p in preds:
        lo, hi = p.log_risk_interval
        assert lo <= p.log_risk <= hi
        assert p.risk_group in ("low", "intermediate", "high")
        assert 0 <= p.percentile <= 100
        assert 0 <= p.at(36).probability <= p.at(60).probability <= p.at(84).probability <= 1
        assert np.all(np.diff(p.survival) <= 1e-12) and p.survival[0] == pytest.approx(1.0)
        assert p.compensated == [m for m, v in p.present.items() if not v]
    # the reference risk groups' Kaplan–Meier curves travel with the bundle, one per training tertile
    km = bundle.reference_km["curves"]
    assert set(km) == {"low", "intermediate", "high"}
    assert sum(c["n"] for c in km.values()) == len(bundle.reference_risk)
    assert all(np.all(np.diff(c["survival"]) <= 1e-12) for c in km.values())


def test_bad_manifest_fails_before_any_work(trained: dict[str, Path], tmp_path: Path, capsys) -> None:
    rows = [
        {"patient_id": "A", "site": "x", "split": "train", "time_months": -1, "event": 1},
        {"patient_id": "A", "site": "x", "split": "train", "time_months": 10, "event": 3},
    ]
    bad = write_manifest(rows, tmp_path / "bad.csv")
    rc = main(["train", "--manifest", str(bad), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and "2 bad row(s)" in err and "line 2" in err and "line 3" in err
    assert not (tmp_path / "m").exists()


def test_failed_training_keeps_the_good_bundle(trained: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    good = tmp_path / "bundle"
    shutil.copytree(trained["model"], good)
    before = (good / "checksums.json").read_text()
    tiny = trained["cohort"] / "tiny.csv"  # beside the cohort, so its relative paths resolve
    rows = read_manifest(trained["cohort"] / "manifest.csv")[:5]
    text = (trained["cohort"] / "manifest.csv").read_text().splitlines()
    tiny.write_text("\n".join(text[: len(rows) + 1]) + "\n")
    # too few training patients: refused, and the existing bundle is untouched
    rc = main(["train", "--manifest", str(tiny), "--out", str(good)])
    assert rc == 2
    assert (good / "checksums.json").read_text() == before


def test_missing_pattern_that_leaves_nobody_is_reported_as_undefined(trained: dict[str, Path]) -> None:
    """A record-only cohort: hiding the record leaves no input at all, so that pattern has no C-index."""
    from dataclasses import replace

    from mrrp.model.bundle import load_bundle
    from mrrp.train.evaluate import evaluate_split
    from mrrp.train.pipeline import load_cases

    rows = [r for r in read_manifest(trained["cohort"] / "manifest.csv") if r.clinical is not None][:30]
    cases = [
        replace(
            c,
            tiles=c.tiles[:0],
            tile_coords_l0=c.tile_coords_l0[:0],
            us_images=c.us_images[:0],
            us_report=c.us_report[:0],
            path_report=c.path_report[:0],
        )
        for c in load_cases(rows, trained["cache"])
    ]
    t = np.array([r.time_months for r in rows], float)
    e = np.array([r.event for r in rows], int)
    out = evaluate_split(load_bundle(trained["model"]), cases, t, e, t, e, n_boot=5)
    assert out["cindex_by_missing_pattern"]["without_clinical"] is None
    assert 0 <= out["cindex_by_missing_pattern"]["without_slide"] <= 1


def test_selection_chooses_by_out_of_fold_c_on_training_rows(trained: dict[str, Path]) -> None:
    from mrrp.train.selection import CANDIDATES, run_selection

    names = list(CANDIDATES)[:2]
    out = run_selection(
        trained["cohort"] / "manifest.csv",
        names,
        cache_dir=trained["cache"],
        folds=2,
        max_epochs=40,
        patience_epochs=20,
    )
    assert set(out["candidates"]) == set(names)
    best = max(out["candidates"].values(), key=lambda r: r["oof_c_train"])
    assert out["candidates"][out["chosen"]] is best
    for r in out["candidates"].values():
        assert 0 <= r["oof_c_train"] <= 1 and len(r["best_epochs"]) == 2
