"""Survival metrics with bootstrap confidence intervals, all from scikit-survival.

Harrell's and Uno's C-index, time-dependent AUC at 3/5/7 years, integrated Brier score, 5-year
calibration (predicted vs Kaplan–Meier observed recurrence by risk quintile), and Kaplan–Meier
curves by risk group with the log-rank test. Nothing here re-implements a metric.
"""

from __future__ import annotations

import numpy as np

from mrrp.vocabulary import HORIZONS_MONTHS, horizon_key


def _surv(time: np.ndarray, event: np.ndarray):
    from sksurv.util import Surv

    return Surv.from_arrays(event=event.astype(bool), time=time.astype(float))


def point_metrics(
    log_risk: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    train_time: np.ndarray,
    train_event: np.ndarray,
    survival_at: np.ndarray | None = None,
    grid_months: np.ndarray | None = None,
) -> dict[str, float | list | None]:
    """Metrics of one set of predictions. ``survival_at`` (n, T) S(t) on ``grid_months`` for the Brier score."""
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    y_train, y = _surv(train_time, train_event), _surv(time, event)
    out: dict[str, float | list | None] = {}
    out["harrell_c"] = float(concordance_index_censored(event.astype(bool), time, log_risk)[0])
    # Uno's C and td-AUC use the training censoring distribution; evaluate only inside its support.
    tau = float(min(train_time.max(), time.max()) - 1e-6)
    out["uno_c"] = float(concordance_index_ipcw(y_train, y, log_risk, tau=tau)[0])
    horizons = [h for h in HORIZONS_MONTHS if time.min() < h < tau and ((time <= h) & event.astype(bool)).any()]
    if horizons:
        auc, _ = cumulative_dynamic_auc(y_train, y, log_risk, np.array(horizons, float))
        out["td_auc"] = {horizon_key(h): float(a) for h, a in zip(horizons, auc, strict=True)}  # JSON keys
    else:
        out["td_auc"] = {}
    if survival_at is not None and grid_months is not None:
        lo, hi = max(time.min(), grid_months.min()), min(tau, grid_months.max(), time.max())
        keep = (grid_months > lo) & (grid_months < hi)
        if keep.sum() >= 2:
            out["integrated_brier"] = float(integrated_brier_score(y_train, y, survival_at[:, keep], grid_months[keep]))
        else:
            out["integrated_brier"] = None
    return out


def bootstrap(
    fn, n: int, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[dict, dict[str, tuple[float, float]]]:
    """Evaluate ``fn(index) -> dict of floats`` on the full sample and ``n_boot`` resamples.

    Returns (point, {name: (low, high)}) percentile intervals; resamples where a metric is
    undefined (e.g. no events) are skipped for that metric.
    """
    rng = np.random.default_rng(seed)
    point = fn(np.arange(n))
    draws: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        try:
            vals = fn(idx)
        except Exception:
            continue
        for k, v in _flatten(vals).items():
            if v is not None and np.isfinite(v):
                draws.setdefault(k, []).append(v)
    a = (1 - level) / 2
    ci = {k: (float(np.quantile(v, a)), float(np.quantile(v, 1 - a))) for k, v in draws.items() if len(v) >= 20}
    return point, ci


def _flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float) or v is None:
            out[key] = v
    return out


def calibration_at(
    predicted_recurrence: np.ndarray, time: np.ndarray, event: np.ndarray, horizon_months: float = 60, groups: int = 5
) -> list[dict[str, float]]:
    """Predicted vs Kaplan–Meier observed recurrence at ``horizon_months`` by predicted-risk quantile group."""
    from sksurv.nonparametric import kaplan_meier_estimator

    order = np.argsort(predicted_recurrence)
    rows = []
    for chunk in np.array_split(order, groups):
        if len(chunk) == 0:
            continue
        t, s = kaplan_meier_estimator(event[chunk].astype(bool), time[chunk])
        observed = 1 - (s[t <= horizon_months][-1] if (t <= horizon_months).any() else 1.0)
        rows.append(
            {"n": int(len(chunk)), "predicted": float(predicted_recurrence[chunk].mean()), "observed": float(observed)}
        )
    return rows


def km_by_group(groups: np.ndarray, time: np.ndarray, event: np.ndarray) -> dict[str, object]:
    """Kaplan–Meier curve of each risk group and the log-rank test across groups."""
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator

    curves = {}
    for g in ("low", "intermediate", "high"):
        m = groups == g
        if m.sum() == 0:
            continue
        t, s = kaplan_meier_estimator(event[m].astype(bool), time[m])
        curves[g] = {
            "n": int(m.sum()),
            "events": int(event[m].sum()),
            "time_months": t.tolist(),
            "survival": s.tolist(),
        }
    p = None
    if len(curves) >= 2 and event.sum() > 0:
        try:
            _, p = compare_survival(_surv(time, event), groups)
            p = float(p)
        except Exception:
            p = None
    return {"curves": curves, "logrank_p": p}
