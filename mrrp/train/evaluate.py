"""``mrrp evaluate``: a bundle's performance on the internal test split and the external site.

Harrell's and Uno's C, td-AUC at 3/5/7 years, integrated Brier score (scikit-survival), 5-year
calibration, Kaplan–Meier by risk group with the log-rank p, bootstrap 95% intervals; plus the
C-index under every single-modality-missing pattern (the modality hidden from every patient),
which the dashboard shows next to a prediction made under that pattern.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from mrrp.errors import InputError
from mrrp.io.manifest import read_manifest
from mrrp.model.batch import collate
from mrrp.model.bundle import LoadedBundle, load_bundle
from mrrp.model.fusion import MODALITIES
from mrrp.model.predict import member_log_risks
from mrrp.model.survival import ensemble_summary
from mrrp.train.metrics import bootstrap, calibration_at, km_by_group, point_metrics
from mrrp.train.pipeline import load_cases

GRID = np.arange(1.0, 121.0, 1.0)


def _scores(bundle: LoadedBundle, cases, present: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    batch = collate(cases)
    lr = member_log_risks(bundle, batch, present)
    s = ensemble_summary(lr, bundle.baselines, horizons=(60,), time_grid_months=GRID)
    return {"log_risk": s["log_risk_mean"], "survival": s["survival_mean"], "recurrence_60": s["recurrence_mean"][:, 0]}


def evaluate_split(
    bundle: LoadedBundle,
    cases,
    time: np.ndarray,
    event: np.ndarray,
    train_time: np.ndarray,
    train_event: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    sc = _scores(bundle, cases)
    lr, surv = sc["log_risk"], sc["survival"]

    def fn(idx: np.ndarray) -> dict:
        return point_metrics(lr[idx], time[idx], event[idx], train_time, train_event, surv[idx], GRID)

    point, ci = bootstrap(fn, len(time), n_boot=n_boot, seed=seed)
    groups = bundle.cutoffs.group(lr)
    out = {
        "n": int(len(time)),
        "events": int(event.sum()),
        **point,
        "ci95": ci,
        "calibration_60": calibration_at(sc["recurrence_60"], time, event, 60),
        "km_by_group": km_by_group(groups, time, event),
        "group_counts": {g: int((groups == g).sum()) for g in ("low", "intermediate", "high")},
    }
    # Missing patterns: hide one modality from everyone (through compensation) and re-score.
    base_present = collate(cases)["present"]
    patterns = {}
    for j, m in enumerate(MODALITIES):
        present = base_present.clone()
        present[:, j] = False
        keep = present.any(dim=1).numpy()
        if keep.sum() < 2 or event[keep].sum() == 0:
            # Nobody (or no recurrence) is left with any input once this modality is hidden: the
            # C-index is undefined for this pattern, reported as None rather than a number.
            patterns[f"without_{m}"] = None
            continue
        lr_m = _scores(bundle, cases, present)["log_risk"]
        patterns[f"without_{m}"] = float(
            point_metrics(lr_m[keep], time[keep], event[keep], train_time, train_event)["harrell_c"]
        )
    out["cindex_by_missing_pattern"] = patterns
    return out


def evaluate_bundle(
    model: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    n_boot: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    bundle = load_bundle(model, verify_pin=False)  # may be the bundled model being rebuilt (make model)
    rows = read_manifest(manifest)
    train = [r for r in rows if r.split == "train"]
    if not train:
        raise InputError(
            "Evaluation needs the training rows (split 'train') for the censoring distribution of Uno's C and td-AUC."
        )
    train_time = np.array([r.time_months for r in train], float)
    train_event = np.array([r.event for r in train], int)
    result: dict = {"model": bundle.config.get("name"), "checksum": bundle.checksum}
    for split in ("test", "external"):
        sel = [r for r in rows if r.split == split]
        if len(sel) < 10:
            continue
        cases = load_cases(sel, cache_dir, progress)
        t = np.array([r.time_months for r in sel], float)
        e = np.array([r.event for r in sel], int)
        result[split] = evaluate_split(bundle, cases, t, e, train_time, train_event, n_boot=n_boot)
    if "test" not in result and "external" not in result:
        raise InputError(
            "The manifest has fewer than 10 patients in the 'test' and 'external' splits; nothing to evaluate."
        )
    return result
