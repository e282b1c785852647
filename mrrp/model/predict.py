"""From CaseFeatures and a loaded bundle to a Prediction: log-risk with an ensemble interval,
risk group, cohort percentile, survival curve with a band, and 3/5/7-year recurrence probabilities."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from mrrp.features.case import CaseFeatures
from mrrp.model.batch import collate
from mrrp.model.bundle import LoadedBundle
from mrrp.model.fusion import MODALITIES
from mrrp.model.survival import ensemble_summary, percentile

HORIZONS_MONTHS = (36, 60, 84)


@dataclass
class Prediction:
    patient_id: str
    log_risk: float
    log_risk_interval: tuple[float, float]
    risk_group: str
    percentile: float
    time_months: list[float]
    survival: list[float]
    survival_lower: list[float]
    survival_upper: list[float]
    recurrence: dict[str, float]  # "36"/"60"/"84" months → probability
    recurrence_interval: dict[str, tuple[float, float]]
    present: dict[str, bool]
    compensated: list[str]
    model_version: str
    interval_method: str

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def member_log_risks(
    bundle: LoadedBundle, batch: dict[str, torch.Tensor], present: torch.Tensor | None = None
) -> np.ndarray:
    """(M, B) centred log-risk of every ensemble member."""
    from mrrp.features.encoders import torch_threads

    with torch_threads(1):
        out = [
            m(batch, present)[0].double().numpy() - offset
            for m, offset in zip(bundle.models, bundle.member_offsets, strict=True)
        ]
    return np.stack(out)


def predict_cases(
    bundle: LoadedBundle, cases: list[CaseFeatures], present: torch.Tensor | None = None
) -> list[Prediction]:
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
                recurrence={f"{int(h)}": float(summ["recurrence_mean"][i, k]) for k, h in enumerate(HORIZONS_MONTHS)},
                recurrence_interval={
                    f"{int(h)}": (float(summ["recurrence_lower"][i, k]), float(summ["recurrence_upper"][i, k]))
                    for k, h in enumerate(HORIZONS_MONTHS)
                },
                present=p,
                compensated=[m for m, v in p.items() if not v],
                model_version=version,
                interval_method=summ["interval_method"],
            )
        )
    return preds
