"""From CaseFeatures and a loaded bundle to a Prediction: log-risk with an ensemble interval,
risk group, cohort percentile, survival curve with a band, and 3/5/7-year recurrence probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mrrp.vocabulary import HEADLINE_HORIZON_MONTHS, HORIZONS_MONTHS, MODALITIES, horizon_key, horizon_years

if TYPE_CHECKING:
    import torch

    from mrrp.features.case import CaseFeatures
    from mrrp.model.bundle import LoadedBundle


@dataclass(frozen=True)
class HorizonRisk:
    """The probability of recurrence by one horizon, with the ensemble's 95% interval."""

    months: int
    probability: float
    lower: float
    upper: float

    @property
    def years(self) -> int:
        return horizon_years(self.months)


@dataclass
class Prediction:
    """One patient's result. Horizons are int months (``HORIZONS_MONTHS``); read them with :meth:`at`.

    :meth:`to_dict` is the stable wire form (JSON exports, the case history, ``mrrp predict --json``),
    with horizons as string keys ("60"); :meth:`from_dict` reads it back, including rows written before
    horizons were typed.
    """

    patient_id: str
    log_risk: float
    log_risk_interval: tuple[float, float]
    risk_group: str
    percentile: float
    time_months: list[float]
    survival: list[float]
    survival_lower: list[float]
    survival_upper: list[float]
    recurrence: dict[int, float]  # horizon (months) → P(recurrence by then)
    recurrence_interval: dict[int, tuple[float, float]]  # horizon (months) → 95% interval
    present: dict[str, bool]
    compensated: list[str]
    model_version: str
    interval_method: str

    def at(self, months: int = HEADLINE_HORIZON_MONTHS) -> HorizonRisk:
        """The recurrence probability by ``months`` (default the headline 5 years) with its interval."""
        m = int(months)
        if m not in self.recurrence:
            raise KeyError(f"no recurrence probability at {m} months (horizons: {sorted(self.recurrence)})")
        lo, hi = self.recurrence_interval[m]
        return HorizonRisk(m, float(self.recurrence[m]), float(lo), float(hi))

    @property
    def horizons(self) -> list[HorizonRisk]:
        """Every horizon predicted, shortest first."""
        return [self.at(m) for m in sorted(self.recurrence)]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["recurrence"] = {horizon_key(m): float(p) for m, p in self.recurrence.items()}
        out["recurrence_interval"] = {horizon_key(m): tuple(ci) for m, ci in self.recurrence_interval.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Prediction:
        """A Prediction from :meth:`to_dict` output or its JSON (keys "36"/"60"/"84", intervals as lists)."""
        return cls(
            patient_id=str(d["patient_id"]),
            log_risk=float(d["log_risk"]),
            log_risk_interval=_pair(d["log_risk_interval"]),
            risk_group=str(d["risk_group"]),
            percentile=float(d["percentile"]),
            time_months=[float(v) for v in d["time_months"]],
            survival=[float(v) for v in d["survival"]],
            survival_lower=[float(v) for v in d["survival_lower"]],
            survival_upper=[float(v) for v in d["survival_upper"]],
            recurrence={int(k): float(v) for k, v in d["recurrence"].items()},
            recurrence_interval={int(k): _pair(v) for k, v in d["recurrence_interval"].items()},
            present={str(k): bool(v) for k, v in d["present"].items()},
            compensated=[str(m) for m in d["compensated"]],
            model_version=str(d["model_version"]),
            interval_method=str(d.get("interval_method", "")),
        )


def _pair(values) -> tuple[float, float]:
    lo, hi = values
    return float(lo), float(hi)


def horizon_risks(d: Mapping[str, Any]) -> dict[int, HorizonRisk]:
    """The horizons of a stored prediction dict that have a probability and an interval, by int months.

    For readers of stored rows that may be partial (the tumor board); a whole row reads with
    :meth:`Prediction.from_dict`.
    """
    rec, ci = d.get("recurrence") or {}, d.get("recurrence_interval") or {}
    out = {}
    for key, p in rec.items():
        if key in ci and p is not None:
            lo, hi = _pair(ci[key])
            out[int(key)] = HorizonRisk(int(key), float(p), lo, hi)
    return out


def member_log_risks(
    bundle: LoadedBundle, batch: dict[str, torch.Tensor], present: torch.Tensor | None = None
) -> np.ndarray:
    """(M, B) centred log-risk of every ensemble member."""
    import torch

    from mrrp._threads import torch_threads

    with torch.no_grad(), torch_threads(1):
        out = [
            m(batch, present)[0].double().numpy() - offset
            for m, offset in zip(bundle.models, bundle.member_offsets, strict=True)
        ]
    return np.stack(out)


def predict_cases(
    bundle: LoadedBundle, cases: list[CaseFeatures], present: torch.Tensor | None = None
) -> list[Prediction]:
    from mrrp.model.batch import collate
    from mrrp.model.survival import ensemble_summary, percentile

    batch = collate(cases)
    lr = member_log_risks(bundle, batch, present)
    summ = ensemble_summary(lr, bundle.baselines, horizons=HORIZONS_MONTHS, time_grid_months=np.arange(0, 121, 1.0))
    pres = (present if present is not None else batch["present"]).numpy()
    groups = bundle.cutoffs.group(summ["log_risk_mean"])
    version = f"{bundle.config.get('name', bundle.path.name)}@{bundle.checksum[:12]}"
    preds = []
    for i, case in enumerate(cases):
        p = {m: bool(pres[i, j]) for j, m in enumerate(MODALITIES)}
        preds.append(
            Prediction(
                patient_id=case.patient_id,
                log_risk=float(summ["log_risk_mean"][i]),
                log_risk_interval=(float(summ["log_risk_lower"][i]), float(summ["log_risk_upper"][i])),
                risk_group=str(groups[i]),
                percentile=float(percentile(summ["log_risk_mean"][i], bundle.reference_risk)),
                time_months=summ["time_grid_months"].tolist(),
                survival=summ["survival_mean"][i].tolist(),
                survival_lower=summ["survival_lower"][i].tolist(),
                survival_upper=summ["survival_upper"][i].tolist(),
                recurrence={int(h): float(summ["recurrence_mean"][i, k]) for k, h in enumerate(HORIZONS_MONTHS)},
                recurrence_interval={
                    int(h): (float(summ["recurrence_lower"][i, k]), float(summ["recurrence_upper"][i, k]))
                    for k, h in enumerate(HORIZONS_MONTHS)
                },
                present=p,
                compensated=[m for m, v in p.items() if not v],
                model_version=version,
                interval_method=summ["interval_method"],
            )
        )
    return preds
