"""``mrrp pcr-train``: manifest → three-stage model + baselines → external evaluation → bundle (+ report).

The splits come from the manifest: ``train`` fits, ``val`` selects epochs and the operating threshold,
``test`` is the internal hold-out, ``external`` the held-out site. The bundle keeps the stepwise model;
the baselines exist to be compared against in ``evaluation.json`` and the report.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp.errors import InputError
from mrrp.pcr.train import TrainConfig

MODEL_NAMES = {
    "stepwise": "Stepwise guided + clinical (3 stages)",
    "stage1_image_only": "Image only (stage 1, global)",
    "stage2_guided_image": "Guided attention, image only (stage 2)",
    "single_stage_nonguided": "Single-stage non-guided (image + clinical)",
    "clinical_only": "Clinical only (logistic regression)",
}
BASELINE = "single_stage_nonguided"
INTERVAL_METHOD = (
    "2.5th–97.5th percentile over the stage-3 fusion heads refitted on bootstrap resamples of the training set, "
    "each applied to the image and its left-right and superior-inferior flips; it reflects the clinical-fusion "
    "stage and flip sensitivity, not retraining of the image network."
)


def _split_check(labels: np.ndarray, idx: np.ndarray, name: str) -> None:
    y = labels[idx]
    if len(idx) == 0 or not ((y == 1).any() and (y == 0).any()):
        raise InputError(f"The manifest's '{name}' split needs patients both with and without pCR.")


@dataclass
class FittedModels:
    """Everything one training run fits: the stepwise net, its non-guided twin, and the clinical-only baseline."""

    net: object  # StepwisePCRNet after stages 1-3
    baseline: object  # StepwisePCRNet trained in one stage without guidance
    fusion_heads: list  # stage-3 heads refitted on bootstrap resamples (the probability interval)
    clinical_lr: object  # sklearn LogisticRegression on the encoded clinical variables
    histories: list  # StageHistory of stage 1, 2, 3 and the single-stage baseline, in that order
    pos_weight: float


def train_pcr(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    cfg: TrainConfig | None = None,
    name: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Train, evaluate and write the bundle; returns the evaluation (also in the bundle's evaluation.json)."""
    from mrrp._threads import torch_threads
    from mrrp.pcr.bundle import write_pcr_bundle
    from mrrp.pcr.clinical import ClinicalEncoder
    from mrrp.pcr.model import NetConfig
    from mrrp.ui import NOTICE

    cfg = cfg or TrainConfig()
    say = log or (lambda _m: None)
    t_start = time.perf_counter()
    data = _read_cohort(manifest, workers, progress, say)
    tr, va = data.index("train"), data.index("val")
    encoder = ClinicalEncoder.fit([data.clinical[i] for i in tr])
    net_cfg = NetConfig(clinical_dim=encoder.dim)
    with torch_threads(1):
        fitted = fit_models(net_cfg, data, tr, va, encoder, cfg, say)
        evaluation, figure_data, calibration = evaluate_models(
            fitted.net, fitted.baseline, fitted.clinical_lr, data, encoder, cfg
        )
    evaluation["training"] = _training_summary(data, fitted, cfg, t_start)
    name = name or Path(out).name
    write_pcr_bundle(
        out,
        net=fitted.net,
        fusion_heads=fitted.fusion_heads,
        config=_bundle_config(name, net_cfg, encoder, calibration, evaluation, cfg),
        evaluation=evaluation,
        training_summary=evaluation["training"],
        model_card=model_card(name, evaluation, cfg, NOTICE),
    )
    evaluation["_figure"] = figure_data  # arrays for the report's picture; never written to JSON
    return evaluation


def _read_cohort(manifest, workers: int | None, progress, say: Callable[[str], None]):
    """The manifest's patients read and resampled (a PreparedCohort); train and val must hold both classes."""
    from mrrp.pcr.manifest import read_pcr_manifest
    from mrrp.pcr.train import prepare_cohort

    rows = read_pcr_manifest(manifest)
    say(f"reading {len(rows)} patients")
    data = prepare_cohort(rows, workers=workers, progress=progress)
    _split_check(data.labels, data.index("train"), "train")
    _split_check(data.labels, data.index("val"), "val")
    return data


def fit_models(net_cfg, data, tr: np.ndarray, va: np.ndarray, encoder, cfg: TrainConfig, say) -> FittedModels:
    """The three stages of the stepwise model, then its baselines. Call under ``torch_threads(1)``: the seeds
    reproduce the bundled weights only on one thread."""
    import torch

    from mrrp.pcr.model import StepwisePCRNet
    from mrrp.pcr.train import (
        fit_clinical_only,
        pos_weight_of,
        train_single_stage,
        train_stage1,
        train_stage2,
        train_stage3,
    )

    torch.manual_seed(cfg.seed)
    net = StepwisePCRNet(net_cfg)
    torch.manual_seed(cfg.seed)
    baseline = StepwisePCRNet(net_cfg)  # same initial weights as the stepwise model
    h1 = train_stage1(net, data, tr, va, cfg, say)
    h2 = train_stage2(net, data, tr, va, cfg, say)
    h3, heads = train_stage3(net, data, tr, va, encoder, cfg, say)
    hb = train_single_stage(baseline, data, tr, va, encoder, cfg, say)
    clin_lr = fit_clinical_only(encoder.encode_many([data.clinical[i] for i in tr]), data.labels[tr], cfg.seed)
    return FittedModels(net, baseline, heads, clin_lr, [h1, h2, h3, hb], pos_weight_of(data.labels[tr]))


def _training_summary(data, fitted: FittedModels, cfg: TrainConfig, t_start: float) -> dict:
    splits = ("train", "val", "test", "external")
    return {
        "n": {s: int(len(data.index(s))) for s in splits},
        "pcr": {s: int((data.labels[data.index(s)] == 1).sum()) for s in splits},
        "prepare_seconds": data.seconds,
        "stages": {h.name: _history(h) for h in fitted.histories},
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "config": cfg.__dict__,
        "pos_weight": round(fitted.pos_weight, 4),
    }


def _bundle_config(name: str, net_cfg, encoder, calibration: dict, evaluation: dict, cfg: TrainConfig) -> dict:
    """The bundle's config.json: what inference needs to rebuild the net, encode clinical data and calibrate."""
    from mrrp.pcr.io import WORKING_SHAPE, WORKING_SPACING_MM

    return {
        "name": name,
        "net": net_cfg.to_dict(),
        "working_spacing_mm": list(WORKING_SPACING_MM),
        "working_shape": list(WORKING_SHAPE),
        "clinical_encoder": encoder.to_dict(),
        "calibration": calibration,
        "calibration_method": "Platt scaling per stage on the validation split: p = sigmoid(a * logit + b), a >= 0",
        "threshold": evaluation["models"]["stepwise"]["threshold"],
        "threshold_rule": f"highest probability threshold reaching {cfg.target_sensitivity:.0%} sensitivity on the validation split",
        "interval_method": INTERVAL_METHOD,
        "created": dt.date.today().isoformat(),
    }


def _history(h) -> dict:
    return {
        "epochs": h.epochs,
        "best": h.best_epoch,
        "seconds": h.seconds,
        "train_loss": [round(v, 4) for v in h.train_loss],
        "val_loss": [round(v, 4) for v in h.val_loss],
        "guidance_loss": [round(v, 4) for v in h.guidance_loss],
        "val_guidance_loss": [round(v, 4) for v in h.val_guidance_loss],
        "note": h.note,
    }


# Per split and model: {"logit": (n,), "p": (n,) once calibrated, optional "attn": (n,) attention in mask,
# optional "cal": the model whose calibrator to reuse}; the "_raw" entry holds attention volumes for the figure.
Outputs = dict[str, dict[str, dict[str, np.ndarray]]]


def evaluate_models(net, baseline, clin_lr, data, encoder, cfg: TrainConfig) -> tuple[dict, dict, dict]:
    """Every model on val (calibration, threshold), test and external, with bootstrap CIs; the headline keys on
    top. Returns (evaluation, figure data, the stepwise model's per-stage Platt calibrators)."""
    splits = {s: data.index(s) for s in ("val", "test", "external") if len(data.index(s))}
    outputs = {split: _model_outputs(net, baseline, clin_lr, data, encoder, idx) for split, idx in splits.items()}
    platt = _calibrate(outputs, data.labels[splits["val"]])
    models = _model_metrics(outputs, splits, data.labels, cfg)
    ext = "external" if "external" in splits else "test"
    headline = _headline(models, outputs[ext], data.labels[splits[ext]], ext, cfg)
    figure = _figure_data(outputs[ext], data, splits[ext])
    calibration = {
        "image_only": platt["stage1_image_only"],
        "guided": platt["stage2_guided_image"],
        "with_clinical": platt["stepwise"],
    }
    return {**headline, "models": models, "target_sensitivity": cfg.target_sensitivity}, figure, calibration


def _model_outputs(net, baseline, clin_lr, data, encoder, idx: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Logits (and attention in the mask) of every model on one split's patients."""
    from mrrp.pcr.train import final_logits

    s = final_logits(net, data, idx, encoder)
    sm = final_logits(net, data, idx, encoder, prior=True)
    b = final_logits(baseline, data, idx, encoder)
    clin = encoder.encode_many([data.clinical[i] for i in idx])
    return {
        "stepwise": {"logit": s["logit_final"], "attn": s["attention_in_mask"]},
        "stepwise_mask_at_inference": {
            "logit": sm["logit_final"],
            "attn": s["attention_in_mask"],
            "cal": "stepwise",
        },
        "stage1_image_only": {"logit": s["logit_image"]},
        "stage2_guided_image": {"logit": s["logit_guided"], "attn": s["attention_in_mask"]},
        BASELINE: {"logit": b["logit_final"], "attn": b["attention_in_mask"]},
        "clinical_only": {"logit": clin_lr.decision_function(clin)},
        "_raw": {"stepwise_attention": s["attention"], "baseline_attention": b["attention"]},
    }


def _calibrate(outputs: Outputs, y_val: np.ndarray) -> dict[str, list[float]]:
    """Fit one Platt calibrator per model on validation and add every split's probabilities ("p") in place."""
    from mrrp.pcr.train import apply_platt, fit_platt

    # Weighted losses and in-sample fits leave every model's probabilities off scale: each is Platt-calibrated
    # on validation (a monotone map, so AUC, sensitivity and specificity at the validation threshold are unchanged).
    platt = {
        m: fit_platt(o["logit"], y_val) for m, o in outputs["val"].items() if not m.startswith("_") and "cal" not in o
    }
    for per_model in outputs.values():
        for m, o in per_model.items():
            if not m.startswith("_"):
                o["p"] = apply_platt(o["logit"], platt[o.get("cal", m)])
    return platt


def _model_metrics(outputs: Outputs, splits: dict[str, np.ndarray], labels: np.ndarray, cfg: TrainConfig) -> dict:
    """Per model: its label, the validation-chosen threshold, and bootstrap metrics on every split."""
    from mrrp.pcr.train import bootstrap_metrics, choose_threshold

    y_val = labels[splits["val"]]
    models: dict[str, dict] = {}
    for k, model in enumerate([m for m in outputs["val"] if not m.startswith("_")]):
        threshold = choose_threshold(outputs["val"][model]["p"], y_val, cfg.target_sensitivity)
        entry: dict[str, object] = {
            "label": MODEL_NAMES.get(model, "Stepwise, tumour mask given at inference"),
            "threshold": threshold,
        }
        for split, idx in splits.items():
            o = outputs[split][model]
            extra = {"attention_in_mask": o["attn"]} if "attn" in o else None
            entry[split] = bootstrap_metrics(o["p"], labels[idx], threshold, cfg.n_boot, cfg.seed + k, extra)
        models[model] = entry
    return models


def _headline(models: dict, ext_outputs: dict, y_ext: np.ndarray, ext: str, cfg: TrainConfig) -> dict:
    """The stepwise model against the non-guided baseline on the evaluation site, and whether the targets are met."""
    from mrrp.pcr.train import sensitivity_at_specificity

    g, b = models["stepwise"][ext], models[BASELINE][ext]
    p_guided, p_base = ext_outputs["stepwise"]["p"], ext_outputs[BASELINE]["p"]
    matched = sensitivity_at_specificity(p_base, y_ext, g["specificity"])
    headline = {
        "evaluated_on": ext,
        "external_auc": g["auc"],
        "external_sensitivity": g["sensitivity"],
        "external_specificity": g["specificity"],
        "external_balanced_accuracy": g["balanced_accuracy"],
        "baseline": BASELINE,
        "baseline_external_auc": b["auc"],
        "baseline_external_sensitivity": b["sensitivity"],
        "baseline_external_specificity": b["specificity"],
        "baseline_external_balanced_accuracy": b["balanced_accuracy"],
        "baseline_external_sensitivity_at_matched_specificity": matched,
        "sensitivity_gain_at_matched_specificity_ci95": _matched_ci(p_guided, p_base, y_ext, g, cfg),
        "attention_in_mask": g.get("attention_in_mask"),
        "baseline_attention_in_mask": b.get("attention_in_mask"),
    }
    headline["targets"] = {
        "higher_sensitivity_at_matched_specificity": None if matched is None else bool(g["sensitivity"] > matched),
        "attention_at_least_twice_baseline": bool(
            headline["attention_in_mask"] is not None
            and headline["baseline_attention_in_mask"] is not None
            and headline["attention_in_mask"] >= 2 * headline["baseline_attention_in_mask"]
        ),
    }
    return headline


def _figure_data(ext_outputs: dict, data, idx_ext: np.ndarray) -> dict:
    """Arrays the report's attention picture is drawn from (evaluation-site patients)."""
    return {
        "patient_ids": [data.patient_ids[i] for i in idx_ext],
        "x": data.x[idx_ext],
        "cells": data.cells[idx_ext],
        "masks": data.masks[idx_ext],
        "labels": data.labels[idx_ext],
        "stepwise_attention": ext_outputs["_raw"]["stepwise_attention"],
        "baseline_attention": ext_outputs["_raw"]["baseline_attention"],
        "stepwise_p": ext_outputs["stepwise"]["p"],
        "baseline_p": ext_outputs[BASELINE]["p"],
    }


def _matched_ci(p_guided, p_base, y, g: dict, cfg: TrainConfig) -> list[float] | None:
    """95% bootstrap interval of (guided sensitivity − baseline sensitivity at the guided model's specificity)."""
    from mrrp.pcr.train import binary_metrics, sensitivity_at_specificity

    rng = np.random.default_rng(cfg.seed + 50)
    diffs = []
    for _ in range(cfg.n_boot):
        ix = rng.integers(0, len(y), len(y))
        if not (0 < y[ix].sum() < len(ix)):
            continue
        m = binary_metrics(p_guided[ix], y[ix], g["threshold"])
        sb = sensitivity_at_specificity(p_base[ix], y[ix], m["specificity"])
        if sb is not None and m["sensitivity"] is not None:
            diffs.append(m["sensitivity"] - sb)
    if len(diffs) < 20:
        return None
    return [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))]


def model_card(name: str, evaluation: dict, cfg: TrainConfig, notice: str) -> dict:
    def r(v):
        return None if v is None else round(float(v), 3)

    return {
        "name": name,
        "notice": notice,
        "intended_use": "Research on, and demonstration of, pathological complete response (pCR) prediction before "
        "neoadjuvant therapy from pre-treatment breast DCE-MRI plus clinical variables.",
        "not_intended_for": "Treatment decisions for individual patients. The bundled model has never seen a real MRI.",
        "training_data": "mrrp synthetic multi-site DCE-MRI cohort (docs/pcr.md): three training sites with different "
        "scanners and case mix, pCR drawn from a known model of subtype, Ki-67, size and an image-visible resistance "
        "factor; one site held out entirely for external validation.",
        "model": "3D CNN on a 64 x 64 x 32 working grid (2 x 2 x 3 mm) trained in three stages: (1) global image-level, "
        "(2) attention guided toward the tumour mask by a cross-entropy loss, (3) clinical variables fused. Class "
        "imbalance: positive-class-weighted cross-entropy; probabilities Platt-calibrated per stage on the validation "
        f"split; operating threshold chosen on validation data for {cfg.target_sensitivity:.0%} sensitivity.",
        "missing_data": "Unknown clinical values are encoded as the training mean plus an 'unknown' indicator; a tumour "
        "mask is optional at inference (without one the attention is the model's own, unguided).",
        "metrics": {
            "external_auc": r(evaluation["external_auc"]),
            "external_sensitivity": r(evaluation["external_sensitivity"]),
            "external_specificity": r(evaluation["external_specificity"]),
            "external_balanced_accuracy": r(evaluation["external_balanced_accuracy"]),
            "attention_in_mask": r(evaluation["attention_in_mask"]),
            "baseline_external_auc": r(evaluation["baseline_external_auc"]),
            "baseline_attention_in_mask": r(evaluation["baseline_attention_in_mask"]),
        },
        "limitations": [
            "Synthetic training data: performance on real MRI is unknown.",
            "One breast per volume: the working box is 128 x 128 x 96 mm centred on the volume; bilateral "
            "acquisitions must be cropped to the affected breast first.",
            "The probability interval covers the clinical-fusion stage and flip sensitivity, not retraining of the "
            "image network.",
            "Enhanced multi-frame MR DICOM is not read; export classic single-frame images or NIfTI.",
        ],
        "version": "1",
    }
