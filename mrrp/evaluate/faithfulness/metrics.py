"""The faithfulness checks as functions of one patient's tile scores, or of a cohort's per-patient records.

Nothing here reads a cohort or writes a file: :mod:`mrrp.evaluate.faithfulness.run` loops over the
patients and calls these.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mrrp.errors import InputError
from mrrp.features.case import CaseFeatures
from mrrp.model.bundle import LoadedBundle

DELETION_FRACTION = 0.10
N_RANDOM_DRAWS = 20
TOP_K = 20
TOP_K_FRACTION = 0.20
IN_TUMOUR_THRESHOLD = 0.5
N_BOOT = 2000

# Re-initialisation groups of the fusion model, from the output back to the inputs (cascading order).
RANDOMISATION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("head", ("head.",)),
    ("fusion read-out", ("inter_cross.", "inter_norm.", "fusion_queries")),
    ("inter-modality transformer", ("inter_self.", "modality_embed")),
    ("compensation", ("compensation", "comp_condition.")),
    ("intra-modality attention", ("intra.",)),
    ("input projections", ("proj_tile.", "proj_us.", "proj_us_text.", "proj_path_text.", "us_type", "clinical.")),
)


# -- small statistics ----------------------------------------------------------------------------


def bootstrap_ci(
    values: Sequence[Any], statistic: Callable[[np.ndarray], float], n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% CI of ``statistic`` over patient resamples (rows of ``values``)."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    stats = [statistic(data[rng.integers(0, len(data), len(data))]) for _ in range(n_boot)]
    lo, hi = np.nanpercentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two score vectors; NaN when either is constant or shorter than 3."""
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """(mean of the finite values, its patient-bootstrap 95% CI)."""
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    return float(v.mean()) if len(v) else float("nan"), bootstrap_ci(v, lambda a: float(np.mean(a)))


def ratio_of_means(top: np.ndarray, rand: np.ndarray) -> tuple[float, tuple[float, float]]:
    """(mean(top) / mean(rand), its 95% CI with patients resampled as pairs)."""
    pairs = np.column_stack([top, rand])  # (n_patients, 2)

    def stat(a: np.ndarray) -> float:
        return float(a[:, 0].mean() / a[:, 1].mean()) if a[:, 1].mean() > 0 else float("nan")

    return stat(pairs), bootstrap_ci(pairs, stat)


# -- deletion ------------------------------------------------------------------------------------


def deletion_effects(
    bundle: LoadedBundle,
    case: CaseFeatures,
    scores: np.ndarray,
    *,
    fraction: float = DELETION_FRACTION,
    n_random: int = N_RANDOM_DRAWS,
    rng: np.random.Generator | None = None,
) -> tuple[float, np.ndarray]:
    """(|change| when the top ``fraction`` tiles by |score| are masked out, (n_random,) for random tiles).

    All rows (full, top, random draws) go through the ensemble in one batch.
    """
    import torch

    from mrrp.explain.explain import ensemble_log_risk
    from mrrp.model.batch import collate

    n = len(case.tiles)
    if n < 2:
        raise InputError(f"Patient {case.patient_id} has fewer than 2 tiles; deletion needs more.")
    k = min(n - 1, max(1, round(fraction * n)))
    rng = rng or np.random.default_rng(0)
    batch = collate([case])
    rows = 2 + n_random
    mask = np.ones((rows, n), bool)
    mask[1, np.argsort(-np.abs(np.asarray(scores, np.float64)), kind="stable")[:k]] = False
    for r in range(n_random):
        mask[2 + r, rng.choice(n, size=k, replace=False)] = False
    expanded = {key: v.expand(rows, *v.shape[1:]) for key, v in batch.items()}
    expanded["tiles_mask"] = torch.from_numpy(mask)
    with torch.no_grad():
        f = ensemble_log_risk(bundle, expanded, batch["present"].expand(rows, -1))  # (rows,)
    return float(abs(f[1] - f[0])), np.abs(f[2:] - f[0])


# -- localisation --------------------------------------------------------------------------------


def tile_fraction_in_mask(coords_l0: np.ndarray, tile_size_l0: int, mask: np.ndarray, mask_ds: float) -> np.ndarray:
    """(N,) fraction of each tile's footprint that lies in ``mask`` (a bool grid of ``mask_ds`` level-0 px)."""
    m = np.asarray(mask, dtype=np.float64)
    h, w = m.shape
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = m.cumsum(0).cumsum(1)  # summed-area table: any box sum in O(1)
    coords = np.asarray(coords_l0, np.float64)
    x0 = np.clip(np.round(coords[:, 0] / mask_ds).astype(int), 0, w)
    y0 = np.clip(np.round(coords[:, 1] / mask_ds).astype(int), 0, h)
    x1 = np.clip(np.round((coords[:, 0] + tile_size_l0) / mask_ds).astype(int), 0, w)
    y1 = np.clip(np.round((coords[:, 1] + tile_size_l0) / mask_ds).astype(int), 0, h)
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return inside / area


def top_k_for(n_tiles: int) -> int:
    """k of the "top tiles" check: 20, but never more than 20% of the slide's tiles."""
    return max(1, min(TOP_K, math.ceil(TOP_K_FRACTION * n_tiles)))


def localisation(scores: np.ndarray, in_tumour: np.ndarray) -> dict[str, float]:
    """AUC of ``scores`` for tumour tiles, and the tumour fraction of the top-k tiles vs chance."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, np.float64)
    y = np.asarray(in_tumour, bool)
    k = top_k_for(len(s))
    top = np.argsort(-s, kind="stable")[:k]
    auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    return {"auc": auc, "top_in_tumour": float(y[top].mean()), "chance": float(y.mean()), "k": k}


def score_summary(per_patient: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    """Cohort deletion and localisation figures of one score (``name``: "ig" or "attention") from the
    per-patient records the run writes (``{name}_delete_top``, ``_delete_random``, ``_auc``, ``_top_in_tumour``)."""
    top = np.array([p[f"{name}_delete_top"] for p in per_patient])
    rand = np.array([p[f"{name}_delete_random"] for p in per_patient])
    ratio, ratio_ci = ratio_of_means(top, rand)
    auc, auc_ci = mean_ci([p[f"{name}_auc"] for p in per_patient])
    topk, topk_ci = mean_ci([p[f"{name}_top_in_tumour"] for p in per_patient])
    return {
        "deletion_ratio": ratio,
        "deletion_ratio_ci95": ratio_ci,
        "deletion_top_mean_abs_change": float(top.mean()),
        "deletion_random_mean_abs_change": float(rand.mean()),
        "deletion_median_patient_ratio": float(np.median(top / np.maximum(rand, 1e-12))),
        "tumour_auc": auc,
        "tumour_auc_ci95": auc_ci,
        "top20_in_tumour": topk,
        "top20_in_tumour_ci95": topk_ci,
    }


# -- randomisation -------------------------------------------------------------------------------


def randomised_bundle(bundle: LoadedBundle, groups: Sequence[str] | None = None, seed: int = 0) -> LoadedBundle:
    """A copy of ``bundle`` whose members have the named RANDOMISATION_GROUPS (default: all) re-initialised.

    Each member's parameters are replaced by those of a freshly initialised MRRP (seed + member
    index): the model's own initialisation distribution, not an arbitrary one.
    """
    import torch

    from mrrp.model.fusion import MRRP

    names = [g for g, _ in RANDOMISATION_GROUPS] if groups is None else list(groups)
    unknown = set(names) - {g for g, _ in RANDOMISATION_GROUPS}
    if unknown:
        raise ValueError(f"unknown randomisation groups {sorted(unknown)}")
    prefixes = tuple(p for g, ps in RANDOMISATION_GROUPS if g in names for p in ps)
    models = []
    for k, model in enumerate(bundle.models):
        torch.manual_seed(seed + k)
        fresh = MRRP(model.cfg).state_dict()
        state = {n: (fresh[n] if n.startswith(prefixes) else t) for n, t in model.state_dict().items()}
        clone = copy.deepcopy(model)
        clone.load_state_dict(state)
        clone.eval()
        models.append(clone)
    return dataclasses.replace(bundle, models=models)


def cascade(groups_done: int) -> list[str]:
    """The first ``groups_done`` groups, from the output back (cascading randomisation)."""
    return [g for g, _ in RANDOMISATION_GROUPS[:groups_done]]


def tile_scores(bundle: LoadedBundle, case: CaseFeatures, ig_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(attention (N,), IG (N,)) of one patient, without the rest of the explanation."""
    from mrrp._threads import torch_threads
    from mrrp.explain.explain import attention_summary, tile_integrated_gradients
    from mrrp.model.batch import collate

    batch = collate([case])
    with torch_threads(1):
        _, _, attention = attention_summary(bundle, batch)
        ig, _ = tile_integrated_gradients(bundle, batch, ig_steps=ig_steps)
    return attention, ig


def randomisation_correlations(
    original: tuple[np.ndarray, np.ndarray], randomised: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    """Spearman of one patient's (attention, IG) under the trained and a randomised model: signed IG, |IG|, attention."""
    (att0, ig0), (att, ig) = original, randomised
    return {"ig": spearman(ig0, ig), "abs_ig": spearman(np.abs(ig0), np.abs(ig)), "attention": spearman(att0, att)}
