"""Where the signal is lost: per-modality ceilings on a synthetic cohort.

Two linear references per modality, both ridge CoxPH (scikit-survival) fitted on the training split
and scored on the internal test split and the external site:

- *perfect reader*: the generator's own per-modality measurements from ``truth.csv`` (for the slide:
  nuclear density, size, pleomorphism, mitotic rate, lymphocytes, necrosis, tumour fraction; for
  ultrasound: size, irregularity, spiculation, shadowing, aspect ratio). This is what a perfect
  encoder of that modality could extract; the gap to the oracle is what the modality never sees.
- *linear probe*: the frozen encoder features the model actually gets, mean-pooled per patient and
  reduced by PCA fitted on the training split. The gap between the probe and the perfect reader is
  lost in the frozen encoder (an ImageNet CNN, not a pathology foundation model); the gap between the
  probe and the trained single-modality model is the fusion model's own.

Patients without the modality are left out of that modality's rows (no imputation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrrp.features.case import CaseFeatures

PERFECT_READER_COLUMNS = {
    "slide": [
        "slide_nuclear_density",
        "slide_nuclear_size",
        "slide_pleomorphism",
        "slide_mitotic_rate",
        "slide_lymphocyte_density",
        "slide_necrosis_fraction",
        "slide_tumour_fraction",
    ],
    "ultrasound": ["us_size_mm", "us_irregularity", "us_spiculation", "us_shadowing", "us_aspect_ratio"],
}
PROBE_COMPONENTS = 16
RIDGE_ALPHA = 1.0


def _fit_score(x: np.ndarray, time: np.ndarray, event: np.ndarray, split: np.ndarray) -> dict[str, float]:
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    from mrrp.train.trainer import harrell_c

    mu, sd = x[split == "train"].mean(0), x[split == "train"].std(0) + 1e-9
    z = (x - mu) / sd
    tr = split == "train"
    model = CoxPHSurvivalAnalysis(alpha=RIDGE_ALPHA, ties="efron").fit(
        z[tr], Surv.from_arrays(event[tr].astype(bool), time[tr])
    )
    risk = model.predict(z)
    return {s: harrell_c(risk[split == s], time[split == s], event[split == s]) for s in ("test", "external")}


def _pooled(cases: list[CaseFeatures], attr: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) mean token per patient and (N,) has-tokens."""
    arrays = [getattr(c, attr) for c in cases]
    dim = max(a.shape[1] for a in arrays)
    has = np.array([len(a) > 0 for a in arrays])
    pooled = np.stack([a.mean(0) if len(a) else np.zeros(dim, np.float32) for a in arrays]).astype(float)
    return pooled, has


def modality_ceilings(
    cases: list[CaseFeatures], time: np.ndarray, event: np.ndarray, split: np.ndarray, truth_csv: str | Path | None
) -> dict[str, dict[str, dict[str, float]]]:
    """{modality: {"perfect_reader": {test, external}, "linear_probe": {...}}}. ``split`` holds
    "train" / "test" / "external" per case (external = the external site's patients)."""
    from sklearn.decomposition import PCA

    out: dict[str, dict[str, dict[str, float]]] = {}
    truth = None
    if truth_csv is not None and Path(truth_csv).is_file():
        import pandas as pd

        truth = pd.read_csv(truth_csv).set_index("patient_id")
    for modality, attr in (("slide", "tiles"), ("ultrasound", "us_images")):
        pooled, has = _pooled(cases, attr)
        tr = (split == "train") & has
        k = min(PROBE_COMPONENTS, int(tr.sum()) - 1, pooled.shape[1])
        z = PCA(k, random_state=0).fit(pooled[tr]).transform(pooled)
        out[modality] = {"linear_probe": _fit_score(z[has], time[has], event[has], split[has])}
        if truth is not None:
            ids = [c.patient_id for c in cases]
            x = truth.loc[ids, PERFECT_READER_COLUMNS[modality]].to_numpy(float)
            out[modality]["perfect_reader"] = _fit_score(x[has], time[has], event[has], split[has])
    return out
