"""``mrrp train`` and ``mrrp evaluate``: manifest → features (cached) → CV ensemble → bundle → metrics."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mrrp import __version__
from mrrp.case import case_features
from mrrp.errors import InputError
from mrrp.features.case import CATEGORICAL_FIELDS, CATEGORICAL_SIZES, NUMERIC_FIELDS, CaseFeatures
from mrrp.io.manifest import ManifestRow, read_manifest
from mrrp.model.fusion import MODALITIES, FusionConfig
from mrrp.train.trainer import TrainConfig, cross_validate, harrell_c, predict
from mrrp.vocabulary import HORIZONS_MONTHS

Log = Callable[[str], None]


def load_cases(
    rows: list[ManifestRow],
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CaseFeatures]:
    """Features of every row, strictly: a training cohort with an unusable file is an error naming the patient."""
    out = []
    for i, row in enumerate(rows, 1):
        out.append(case_features(row, cache_dir=cache_dir, strict=True))
        if progress:
            progress(i, len(rows))
    return out


def default_model_config(**overrides) -> FusionConfig:
    return FusionConfig(n_numeric=len(NUMERIC_FIELDS), categorical_sizes=CATEGORICAL_SIZES, **overrides)


def fit_ensemble(
    cases: list[CaseFeatures],
    time: np.ndarray,
    event: np.ndarray,
    model_cfg: FusionConfig,
    train_cfg: TrainConfig,
    log: Log | None = None,
):
    """CV fold models + what a bundle needs from them."""
    from mrrp.model.batch import collate
    from mrrp.model.survival import breslow_baseline, fit_risk_cutoffs
    from mrrp.train.metrics import km_by_group

    batch = collate(cases)
    models, oof, infos = cross_validate(model_cfg, batch, time, event, train_cfg, log=log)
    member = np.stack([predict(m, batch) for m in models])  # (M, N)
    offsets = member.mean(axis=1)
    centred = member - offsets[:, None]
    baselines = [breslow_baseline(centred[k], time, event) for k in range(len(models))]
    ens = centred.mean(axis=0)
    cutoffs = fit_risk_cutoffs(ens, method="tertiles")
    return {
        "models": models,
        "oof": oof,
        "infos": infos,
        "offsets": offsets,
        "baselines": baselines,
        "ensemble_baseline": breslow_baseline(ens, time, event),
        "cutoffs": cutoffs,
        "reference_risk": ens,
        "reference_km": km_by_group(cutoffs.group(ens), time, event),
    }


def train_bundle(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model_cfg: FusionConfig | None = None,
    train_cfg: TrainConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    log: Log | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    from mrrp.features.encoders import get_encoder
    from mrrp.features.text import get_sentence_encoder
    from mrrp.model.bundle import write_bundle

    t0 = time.perf_counter()
    rows = read_manifest(manifest)  # fails before any work on a bad manifest
    train_rows = [r for r in rows if r.split == "train"]
    if len(train_rows) < 20 or sum(r.event for r in train_rows) < 5:  # type: ignore[misc]
        raise InputError(
            f"Training needs at least 20 patients with split 'train' and 5 recurrences; the manifest has "
            f"{len(train_rows)} and {sum(r.event or 0 for r in train_rows)}."
        )
    model_cfg = model_cfg or default_model_config()
    train_cfg = train_cfg or TrainConfig()
    cases = load_cases(train_rows, cache_dir, progress)
    t_feat = time.perf_counter() - t0
    t_arr = np.array([r.time_months for r in train_rows], float)
    e_arr = np.array([r.event for r in train_rows], int)
    fit = fit_ensemble(cases, t_arr, e_arr, model_cfg, train_cfg, log)
    img, txt = get_encoder(), get_sentence_encoder()
    oof_c = harrell_c(fit["oof"], t_arr, e_arr)
    name = name or Path(out).name
    config = {
        "name": name,
        "mrrp_version": __version__,
        "fusion": model_cfg.to_dict(),
        "training": train_cfg.to_dict(),
        "modalities": list(MODALITIES),
        "encoders": {
            "tile": {"name": img.name, "sha256": img.version},
            "ultrasound_image": {"name": img.name, "sha256": img.version},
            "text": {"name": txt.name, "sha256": txt.version},
        },
        "clinical": {"numeric": [list(f) for f in NUMERIC_FIELDS], "categorical": list(CATEGORICAL_FIELDS)},
        "horizons_months": list(HORIZONS_MONTHS),
    }
    summary = {
        "n_train": len(train_rows),
        "events_train": int(e_arr.sum()),
        "folds": train_cfg.folds,
        "fold_val_c": [i["val_c"] for i in fit["infos"]],
        "fold_best_epoch": [i["best_epoch"] for i in fit["infos"]],
        "oof_harrell_c": oof_c,
        "cutoffs": fit["cutoffs"].to_dict(),
        "feature_seconds": round(t_feat, 1),
        "train_seconds": round(time.perf_counter() - t0 - t_feat, 1),
        "missing_fraction_train": {
            m: float(1 - np.mean([c.present[j] for c in cases])) for j, m in enumerate(MODALITIES)
        },
    }
    card = model_card(name, summary, config)
    write_bundle(
        out,
        models=fit["models"],
        config=config,
        baselines=fit["baselines"],
        ensemble_baseline=fit["ensemble_baseline"],
        member_offsets=list(fit["offsets"]),
        cutoffs=fit["cutoffs"],
        reference_risk=fit["reference_risk"],
        training_summary=summary,
        model_card=card,
        reference_km=fit["reference_km"],
    )
    return summary


def model_card(name: str, summary: dict, config: dict, metrics: dict | None = None) -> dict:
    return {
        "name": name,
        "notice": "Trained on synthetic data. For research and demonstration only; not for clinical decisions.",
        "intended_use": (
            "Recurrence-risk stratification research for HR+/HER2− early breast cancer from routine data "
            "(H&E slide, breast ultrasound images and report, pathology report, clinical record); "
            "demonstration of the mrrp dashboard."
        ),
        "not_intended_for": "Treatment decisions for individual patients; populations other than HR+/HER2− early breast cancer.",
        "training_data": (
            "mrrp synthetic reference cohort (docs/synthetic_cohort.md): simulated patients whose recurrence "
            "hazard is a known function of latent tumour biology; split 'train' of the internal site."
        ),
        "missing_data": "Absent modalities are replaced by learnable compensation tokens, trained with modality dropout.",
        "risk_groups": "Tertiles of the ensemble log-risk on the training patients; cut-offs fixed, never re-fitted.",
        "training_summary": summary,
        "metrics": metrics or {},
        "encoders": config["encoders"],
        "limitations": [
            "Synthetic training data: performance on real patients is unknown.",
            "Tile features come from an ImageNet encoder, not a pathology foundation model.",
            "Calibration and cut-offs are specific to the training cohort's baseline hazard.",
        ],
        "how_to_train_your_own": "Fill a manifest (docs/manifest.md) with your cohort and run `mrrp train --manifest M.csv --out models/NAME`.",
    }
