"""Are the explanations faithful to the model, and do they find what the synthetic cohort planted?

``python -m mrrp.explain.faithfulness --model assets/models/mrrp-demo --cohort data/cohort
--out docs/explanations.json`` runs, over the internal test split of a synthetic cohort written by
``mrrp synth`` (it needs truth.csv and the truth/<id>_tumour.png masks):

- **Deletion** (patients with a slide): mask the top 10% of tiles by |score| out of the slide
  (``tiles_mask``) and compare |change in log-risk| with masking a random 10% (20 draws per
  patient). Reported as the ratio of the cohort means, with a patient-bootstrap 95% CI.
- **Localisation**: a tile is "in the tumour" when more than half of its footprint lies in the
  ground-truth tumour mask. AUC of the tile scores against that label (per patient, averaged),
  and the fraction of the top-k tiles inside the tumour, next to chance (the tumour fraction of
  the patient's tiles). Slides of the demo cohort have ~20 tiles, so "top 20" would be the whole
  slide: k = min(20, ceil(20% of the tiles)), stated in the output.
- **Modality ranking**: mean |Shapley| per modality over test patients who have it, ranked against
  the generating model's own ranking, measured rather than assumed: the Shapley decomposition of the
  R^2 with which each modality's *observed* generating parameters (truth.csv, the clinical record)
  explain the true log-hazard (linear regressions on every subset of modalities, 5-fold
  cross-validated R^2).
- **Model randomisation** (Adebayo et al., 2018): re-initialise the fusion model's weights,
  top-down in cascade (read-out head first) and all at once, and correlate (Spearman) the tile
  attributions with the trained model's. Faithful attributions change.

Scores are reported for Integrated Gradients (the headline: the signed tile explanation
``mrrp explain --heatmap`` draws by default; |IG| for deletion and localisation,
since both directions of evidence sit in the tumour) and, beside it, for the pathology attention.

The JSON (written atomically), docs/explanations.md and docs/img/explain_*.png are all produced here,
so a retrained bundle gets new numbers and pictures by re-running the command.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrrp.errors import InputError
from mrrp.features.case import CaseFeatures
from mrrp.model.bundle import LoadedBundle

Log = Callable[[str], None]

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

# Ground truth: what each modality lets one observe of the generating model (mrrp.synth.biology,
# mrrp.synth.cohort, mrrp.synth.reports). Reports state the age; the ultrasound report calls the
# axilla suspicious for >= 4 positive nodes (and at random for 1-3).
_SLIDE_COLUMNS = (
    "slide_nuclear_density",
    "slide_nuclear_size",
    "slide_pleomorphism",
    "slide_mitotic_rate",
    "slide_lymphocyte_density",
    "slide_necrosis_fraction",
    "slide_tumour_fraction",
    "slide_stain_hue_shift",
    "slide_stain_intensity",
)
_US_COLUMNS = ("us_irregularity", "us_spiculation", "us_shadowing", "us_aspect_ratio")


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
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


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
    from mrrp.explain.explain import attention_summary, tile_integrated_gradients
    from mrrp.features.encoders import torch_threads
    from mrrp.model.batch import collate

    batch = collate([case])
    with torch_threads(1):
        _, _, attention = attention_summary(bundle, batch)
        ig, _ = tile_integrated_gradients(bundle, batch, ig_steps=ig_steps)
    return attention, ig


# -- ground-truth modality importance -------------------------------------------------------------


def _truth_design(cohort: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(true log-hazard (n,), modality -> observed generating parameters (n, p)) of internal patients
    with a clinical record (the reports are written from it, so without it they cannot be rebuilt)."""
    import pandas as pd

    from mrrp.io.manifest import read_manifest
    from mrrp.schema import FIELDS_BY_NAME

    truth = pd.read_csv(cohort / "truth.csv").set_index("patient_id")
    rows = [r for r in read_manifest(cohort / "manifest.csv", check_files=False) if r.site == "internal" and r.clinical]
    t = truth.loc[[r.patient_id for r in rows]]

    def col(name: str, transform: Callable[[float], float] = float) -> np.ndarray:
        vals = np.array([np.nan if r.clinical.get(name) is None else transform(r.clinical[name]) for r in rows])  # type: ignore[union-attr]
        known = ~np.isnan(vals)
        fill = np.nanmedian(vals) if known.any() else 0.0
        return np.column_stack([np.where(known, vals, fill), known.astype(float)])  # value, known

    def cat(name: str) -> np.ndarray:
        cats = FIELDS_BY_NAME[name].categories
        return np.column_stack([[float(r.clinical.get(name) == c) for r in rows] for c in cats])  # type: ignore[union-attr]

    age = col("age_years")
    young = (age[:, :1] < 40).astype(float)
    nodes = col("positive_lymph_nodes", lambda v: math.log1p(float(v)))
    record = np.hstack(
        [
            col("tumour_size_mm", lambda v: math.log(max(float(v), 0.5))),
            col("histological_grade"),
            nodes,
            col("er_percent"),
            col("pr_percent"),
            col("ki67_percent", lambda v: math.log(max(float(v), 0.5))),
            cat("lymphovascular_invasion"),
            cat("histological_type"),
        ]
    )
    axilla = np.array([float((r.clinical.get("positive_lymph_nodes") or 0) >= 4) for r in rows])[:, None]  # type: ignore[union-attr, operator]
    design = {
        "slide": t[list(_SLIDE_COLUMNS)].to_numpy(float),
        "ultrasound": np.hstack(
            [np.log(t[["us_size_mm"]].to_numpy(float)), t[list(_US_COLUMNS)].to_numpy(float), age[:, :1], young, axilla]
        ),
        "path_report": np.hstack([record, age[:, :1], young, cat("menopausal_status")]),
        "clinical": np.hstack(
            [
                record,
                age,
                young,
                cat("menopausal_status"),
                cat("endocrine_therapy"),
                cat("chemotherapy"),
                cat("radiotherapy"),
            ]
        ),
    }
    return t["log_hazard"].to_numpy(float), design


def truth_modality_importance(cohort: Path) -> dict[str, float]:
    """Shapley decomposition of the cross-validated R^2 of the true log-hazard over the modalities."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mrrp.explain.explain import shapley_from_subsets
    from mrrp.model.fusion import MODALITIES

    y, design = _truth_design(cohort)
    players = list(range(len(MODALITIES)))
    values: dict[frozenset[int], float] = {frozenset(): 0.0}
    folds = KFold(5, shuffle=True, random_state=0)
    for size in range(1, len(players) + 1):
        from itertools import combinations

        for combo in combinations(players, size):
            x = np.hstack([design[MODALITIES[i]] for i in combo])
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
            pred = cross_val_predict(model, x, y, cv=folds)
            values[frozenset(combo)] = float(1 - np.mean((y - pred) ** 2) / np.var(y))
    phi = shapley_from_subsets(values, players)
    return {MODALITIES[i]: float(v) for i, v in phi.items()}


# -- the run -------------------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; docs are read by everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    return float(v.mean()) if len(v) else float("nan"), bootstrap_ci(v, lambda a: float(np.mean(a)))


def _ratio_of_means(top: np.ndarray, rand: np.ndarray) -> tuple[float, tuple[float, float]]:
    pairs = np.column_stack([top, rand])  # (n_patients, 2)

    def stat(a: np.ndarray) -> float:
        return float(a[:, 0].mean() / a[:, 1].mean()) if a[:, 1].mean() > 0 else float("nan")

    return stat(pairs), bootstrap_ci(pairs, stat)


def run(
    model: str | os.PathLike[str],
    cohort: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    img_dir: str | os.PathLike[str] | None = None,
    md_path: str | os.PathLike[str] | None = None,
    ig_steps: int = 32,
    max_patients: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Every faithfulness figure; writes ``out`` (JSON), and the Markdown page and pictures when asked."""
    from PIL import Image

    from mrrp.explain.explain import explain_case
    from mrrp.features.case import case_features
    from mrrp.io.manifest import read_manifest
    from mrrp.io.slides import read_slide_info
    from mrrp.model.bundle import load_bundle
    from mrrp.model.fusion import MODALITIES
    from mrrp.ui import NOTICE

    say = log or (lambda _m: None)
    t_start = time.perf_counter()
    cohort_dir = Path(cohort)
    if not (cohort_dir / "truth.csv").is_file() or not (cohort_dir / "truth").is_dir():
        raise InputError(f"'{cohort_dir}' is not a synthetic cohort with ground truth (truth.csv and truth/).")
    bundle = load_bundle(model)
    rows = [r for r in read_manifest(cohort_dir / "manifest.csv") if r.split == "test"]
    if max_patients:
        rows = rows[: int(max_patients)]
    say(f"{len(rows)} test patients; explaining")

    cases: dict[str, CaseFeatures] = {}
    explanations = {}
    for i, row in enumerate(rows, 1):
        case = case_features(row, cache_dir=cache_dir)
        cases[row.patient_id] = case
        explanations[row.patient_id] = explain_case(bundle, case, ig_steps=ig_steps)
        if i % 20 == 0:
            say(f"  explained {i}/{len(rows)}")
    seconds = [e.timings_s["total"] for e in explanations.values()]

    # deletion and localisation, patients with a slide
    rng = np.random.default_rng(0)
    per_patient: list[dict[str, Any]] = []
    slide_rows = [
        r for r in rows if explanations[r.patient_id].tiles is not None and len(cases[r.patient_id].tiles) >= 5
    ]
    say(f"deletion and localisation on {len(slide_rows)} slides")
    for row in slide_rows:
        e, case = explanations[row.patient_id], cases[row.patient_id]
        assert e.tiles is not None
        mask = np.asarray(Image.open(cohort_dir / "truth" / f"{row.patient_id}_tumour.png")) > 127
        mask_ds = read_slide_info(row.slide_path).width_px / mask.shape[1]  # type: ignore[arg-type]
        frac = tile_fraction_in_mask(e.tiles.coords_l0, e.tiles.tile_size_l0, mask, mask_ds)
        in_tumour = frac > IN_TUMOUR_THRESHOLD
        rec: dict[str, Any] = {
            "patient_id": row.patient_id,
            "n_tiles": len(case.tiles),
            "tumour_tiles": int(in_tumour.sum()),
        }
        for name, scores in (("ig", np.abs(e.tiles.integrated_gradients)), ("attention", e.tiles.attention)):
            top, rand = deletion_effects(bundle, case, scores, rng=rng)
            rec[f"{name}_delete_top"], rec[f"{name}_delete_random"] = top, float(rand.mean())
            loc = localisation(scores, in_tumour)
            rec.update({f"{name}_{k}": v for k, v in loc.items()})
        per_patient.append(rec)

    # model randomisation: cascading from the head, and the whole model at once
    say("model randomisation")
    original = {
        r.patient_id: (
            explanations[r.patient_id].tiles.attention,
            explanations[r.patient_id].tiles.integrated_gradients,
        )
        for r in slide_rows
    }  # type: ignore[union-attr]
    randomisation = []
    for level in range(1, len(RANDOMISATION_GROUPS) + 1):
        rb = randomised_bundle(bundle, cascade(level), seed=1000)
        rhos: dict[str, list[float]] = {"ig": [], "abs_ig": [], "attention": []}
        for row in slide_rows:
            att, ig = tile_scores(rb, cases[row.patient_id], ig_steps)
            att0, ig0 = original[row.patient_id]
            rhos["ig"].append(spearman(ig0, ig))
            rhos["abs_ig"].append(spearman(np.abs(ig0), np.abs(ig)))
            rhos["attention"].append(spearman(att0, att))
        randomisation.append(
            {
                "randomised": RANDOMISATION_GROUPS[level - 1][0],
                "cascade": cascade(level),
                **{f"spearman_{k}": float(np.nanmean(v)) for k, v in rhos.items()},
            }
        )
        say(f"  up to {RANDOMISATION_GROUPS[level - 1][0]}: IG rho {randomisation[-1]['spearman_ig']:.3f}")

    # modality ranking
    say("modality ranking vs the generating model")
    mean_abs = {
        m: float(np.mean([abs(e.shapley[m]) for e in explanations.values() if e.present[m]] or [0.0]))
        for m in MODALITIES
    }
    truth = truth_modality_importance(cohort_dir)
    rank_model = sorted(MODALITIES, key=lambda m: -mean_abs[m])
    rank_truth = sorted(MODALITIES, key=lambda m: -truth[m])
    rho = spearman(np.array([mean_abs[m] for m in MODALITIES]), np.array([truth[m] for m in MODALITIES]))

    def summary(name: str) -> dict[str, Any]:
        top = np.array([p[f"{name}_delete_top"] for p in per_patient])
        rand = np.array([p[f"{name}_delete_random"] for p in per_patient])
        ratio, ratio_ci = _ratio_of_means(top, rand)
        auc, auc_ci = _mean_ci([p[f"{name}_auc"] for p in per_patient])
        topk, topk_ci = _mean_ci([p[f"{name}_top_in_tumour"] for p in per_patient])
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

    ig_summary, att_summary = summary("ig"), summary("attention")
    chance_top = float(np.mean([p["ig_chance"] for p in per_patient]))
    whole = randomisation[-1]
    result: dict[str, Any] = {
        "notice": NOTICE,
        "headline_scores": "integrated_gradients (|IG| for deletion and localisation)",
        "deletion_ratio": ig_summary["deletion_ratio"],
        "deletion_ratio_ci95": ig_summary["deletion_ratio_ci95"],
        "tumour_auc": ig_summary["tumour_auc"],
        "tumour_auc_ci95": ig_summary["tumour_auc_ci95"],
        "tumour_auc_chance": 0.5,
        "top20_in_tumour": ig_summary["top20_in_tumour"],
        "top20_in_tumour_ci95": ig_summary["top20_in_tumour_ci95"],
        "top20_in_tumour_chance": chance_top,
        "top20_k_rule": f"k = min({TOP_K}, ceil({TOP_K_FRACTION:.0%} of the slide's tiles)); "
        f"median k here {int(np.median([p['ig_k'] for p in per_patient]))}",
        "shapley_rank_matches": rank_model == rank_truth,
        "shapley_rank_model": rank_model,
        "shapley_rank_truth": rank_truth,
        "shapley_spearman": rho,
        "shapley_mean_abs": mean_abs,
        "truth_r2_shapley": truth,
        "randomisation_spearman": whole["spearman_ig"],
        "randomisation_spearman_abs_ig": whole["spearman_abs_ig"],
        "randomisation_spearman_attention": whole["spearman_attention"],
        "randomisation_cascade": randomisation,
        "by_score": {"integrated_gradients": ig_summary, "attention": att_summary},
        "n_test_patients": len(rows),
        "n_slide_patients": len(per_patient),
        "deletion_fraction": DELETION_FRACTION,
        "n_random_draws": N_RANDOM_DRAWS,
        "ig_steps": ig_steps,
        "explain_seconds_median": float(np.median(seconds)),
        "model": {"path": str(model), "checksum": bundle.checksum, "name": bundle.config.get("name")},
        "cohort": str(cohort),
        "command": f"python -m mrrp.explain.faithfulness --model {model} --cohort {cohort} --out {out}",
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    if img_dir is not None:
        result["images"] = _draw_pictures(
            Path(img_dir), bundle, rows, cases, explanations, per_patient, mean_abs, truth, cohort_dir
        )
    _atomic_write_text(Path(out), json.dumps(result, indent=2, default=float) + "\n")
    if md_path is not None:
        _atomic_write_text(Path(md_path), render_markdown(result, Path(md_path)))
    return result


# -- pictures ------------------------------------------------------------------------------------


def _draw_pictures(img_dir, bundle, rows, cases, explanations, per_patient, mean_abs, truth, cohort_dir) -> dict:
    """The slide heatmap of a representative patient, its Shapley bars, and the cohort modality ranking."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from mrrp.explain.heatmap import resample_mask_nearest
    from mrrp.explain.render import heatmap_figure_png, slide_heatmap, write_png
    from mrrp.io.slides import read_slide_info
    from mrrp.model.fusion import MODALITIES
    from mrrp.ui import NOTICE

    img_dir.mkdir(parents=True, exist_ok=True)
    # Representative, not best: the patient whose IG tumour AUC is the median of those with an AUC.
    scored = sorted((p for p in per_patient if np.isfinite(p["ig_auc"])), key=lambda p: p["ig_auc"])
    chosen = scored[len(scored) // 2]
    pid = chosen["patient_id"]
    row = next(r for r in rows if r.patient_id == pid)
    e = explanations[pid]
    out: dict[str, str] = {"patient": pid}

    mask = np.asarray(Image.open(cohort_dir / "truth" / f"{pid}_tumour.png")) > 127
    mask_ds = read_slide_info(row.slide_path).width_px / mask.shape[1]
    for kind, label in (("ig", "Integrated Gradients"), ("attention", "attention")):
        result, ds = slide_heatmap(row.slide_path, e, kind, slide_mpp=row.slide_mpp)
        outline = resample_mask_nearest(mask, mask_ds, result.overlay.shape[:2], ds)
        auc = chosen[f"{kind}_auc"]
        title = f"{pid}: {label} per tile (tumour AUC {auc:.2f}; patient with the median IG AUC)"
        path = img_dir / f"explain_heatmap_{kind}.png"
        write_png(path, heatmap_figure_png(result, title, outline=outline))
        out[f"heatmap_{kind}"] = path.name

    def save(fig, name: str) -> str:
        fig.text(0.5, 0.01, NOTICE, ha="center", va="bottom", fontsize=6.5)
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        write_png(img_dir / name, buf.getvalue())
        return name

    # one patient's Shapley values and counterfactuals
    fig = Figure(figsize=(7.5, 3.4), dpi=110, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.2, 0.22, 0.75, 0.62))
    vals = [e.shapley[m] for m in MODALITIES]
    colours = ["#c0392b" if v > 0 else "#2c7fb8" for v in vals]
    ax.barh(list(MODALITIES), vals, color=colours)
    ax.axvline(0, color="black", lw=0.8)
    for y, m in enumerate(MODALITIES):
        if not e.present[m]:
            ax.text(0, y, "  absent (compensated): 0", va="center", fontsize=8, color="#666")
    ax.invert_yaxis()
    ax.set_xlabel("Shapley value (log-risk; > 0 raises the risk)")
    ax.set_title(
        f"{pid}: log-risk {e.full_log_risk:+.2f} vs {e.reference_log_risk:+.2f} with nothing known", fontsize=10
    )
    out["shapley_patient"] = save(fig, "explain_shapley_patient.png")

    # cohort: mean |Shapley| vs the generating model's R^2 shares
    fig = Figure(figsize=(7.5, 3.4), dpi=110, facecolor="white")
    FigureCanvasAgg(fig)
    ax1 = fig.add_axes((0.08, 0.22, 0.4, 0.6))
    ax2 = fig.add_axes((0.57, 0.22, 0.4, 0.6))
    ax1.bar(list(MODALITIES), [mean_abs[m] for m in MODALITIES], color="#555")
    ax1.set_title("model: mean |Shapley| (test patients)", fontsize=9)
    ax2.bar(list(MODALITIES), [truth[m] for m in MODALITIES], color="#999")
    ax2.set_title("generating model: R² share of true log-hazard", fontsize=9)
    for a in (ax1, ax2):
        a.tick_params(axis="x", labelsize=8, rotation=20)
        a.tick_params(axis="y", labelsize=8)
    out["modality_ranking"] = save(fig, "explain_modality_ranking.png")

    # ultrasound Grad-CAM of the first test patient with ultrasound images
    us_row = next((r for r in rows if r.us_image_paths), None)
    if us_row is not None:
        from mrrp.explain.explain import explain_case
        from mrrp.explain.render import read_us_images

        images = read_us_images(us_row)
        ue = explain_case(bundle, cases[us_row.patient_id], us_images=images, ig_steps=8)
        fig = Figure(figsize=(max(7.5, 3.6 * len(images) + 0.4), 3.8), dpi=110, facecolor="white")
        FigureCanvasAgg(fig)
        for i, (img, cam) in enumerate(zip(images, ue.us_overlays, strict=True)):
            ax = fig.add_axes((0.02 + i / len(images), 0.14, 0.96 / len(images), 0.74))
            ax.imshow(img, cmap="gray")
            ax.imshow(np.ma.masked_less(cam, 0.2), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(f"{us_row.patient_id} image {i + 1}: Grad-CAM (towards higher risk)", fontsize=8)
        out["us_gradcam"] = save(fig, "explain_us_gradcam.png")
    return out


# -- the page ------------------------------------------------------------------------------------


def _fmt_ci(ci: Sequence[float]) -> str:
    return f"{ci[0]:.2f}–{ci[1]:.2f}"


def render_markdown(r: dict[str, Any], md_path: Path) -> str:
    """docs/explanations.md from the result of :func:`run` (numbers are never typed by hand)."""
    ig, att = r["by_score"]["integrated_gradients"], r["by_score"]["attention"]
    images = r.get("images", {})
    rel = os.path.relpath(Path(md_path).parent / "img", Path(md_path).parent)
    lines = [
        "# Explanations a tumour board can trust",
        "",
        f"> {r['notice']}",
        "",
        "`mrrp explain --manifest M.csv --case ID [--json] [--heatmap out.png]` and "
        '`mrrp.explain.explain_case(bundle, case)` answer "why is she high risk?" at every level: '
        "modalities (exact Shapley values through the model's compensation, and attention shares), "
        "slide tiles (attention and Integrated Gradients), clinical fields (Integrated Gradients), "
        "report sentences (occlusion), ultrasound images (Grad-CAM) and what-if counterfactuals. "
        "The methods and their baselines are in the docstring of `mrrp/explain/explain.py` and in "
        "`Explanation.methods`.",
        "",
        "## Methods in one place",
        "",
        "| part | method | baseline / combination |",
        "|---|---|---|",
        "| modalities | exact Shapley over present modalities, all 2^k subsets in one batch per member | "
        "absent = the model's learned compensation; sums to f(all) − f(none) |",
        "| modality attention | attention rollout through the inter-modality transformer × fusion read-out | "
        "0.5 A + 0.5 I per layer, head-averaged; mean over queries and members; compensation tokens apart |",
        "| slide tiles | pathology intra-attention; captum Integrated Gradients on tile features | "
        "IG baseline: every tile = the patient's mean tile (a zero baseline is degenerate behind LayerNorm) |",
        "| clinical fields | captum LayerIntegratedGradients on the clinical token encoder | "
        "every field 'unknown' (learned unknown embedding), record still present |",
        "| report sentences | occlusion (token masked out) | full log-risk minus risk without the sentence |",
        "| ultrasound | captum LayerGradCam, last EfficientNet-Lite0 block, through the ensemble | "
        "whole image + 4 quadrants mapped back, scaled to [0, 1] |",
        "| counterfactual | one modality removed, compensated | same batch as the Shapley subsets |",
        "",
        "All numbers are centred log-risk of the ensemble mean (the scale of `Prediction.log_risk`).",
        "",
        "## Faithfulness on the synthetic cohort",
        "",
        f"Reproduce: `{r['command']}` "
        f"({r['seconds']:.0f} s on 2 shared cores). Model `{r['model']['name']}` "
        f"(checksum `{r['model']['checksum'][:12]}…`); {r['n_test_patients']} internal test patients, "
        f"{r['n_slide_patients']} with a slide. Tracked release over release in `docs/explanations.json`.",
        "",
        f"Headline scores: **{r['headline_scores']}**, chosen before the numbers were seen because IG is the "
        "signed tile explanation (`mrrp explain --heatmap` draws it by default); attention beside it.",
        "",
        "| check | Integrated Gradients | attention | chance / reference |",
        "|---|---|---|---|",
        f"| deletion: mean \\|Δ log-risk\\| top 10% / random 10% | **{ig['deletion_ratio']:.2f}** "
        f"({_fmt_ci(ig['deletion_ratio_ci95'])}) | {att['deletion_ratio']:.2f} ({_fmt_ci(att['deletion_ratio_ci95'])}) | 1 |",
        f"| localisation: tumour AUC of tile scores | **{ig['tumour_auc']:.2f}** ({_fmt_ci(ig['tumour_auc_ci95'])}) | "
        f"{att['tumour_auc']:.2f} ({_fmt_ci(att['tumour_auc_ci95'])}) | 0.50 |",
        f"| localisation: top-k tiles inside the tumour | **{ig['top20_in_tumour']:.2f}** "
        f"({_fmt_ci(ig['top20_in_tumour_ci95'])}) | {att['top20_in_tumour']:.2f} | {r['top20_in_tumour_chance']:.2f} |",
        f"| randomisation: Spearman, trained vs re-initialised model | **{r['randomisation_spearman']:.2f}** "
        f"(\\|IG\\| {r['randomisation_spearman_abs_ig']:.2f}) | {r['randomisation_spearman_attention']:.2f} | 1 = unchanged |",
        "",
        f"Top-k: {r['top20_k_rule']} — the demo slides are small (1.6 × 1.2 mm), so a literal top 20 would be the "
        "whole slide. CIs are 95% patient-bootstrap intervals. Deletion masks tiles out of the slide's attention "
        f"(`tiles_mask`); random = mean over {r['n_random_draws']} draws per patient; the ratio is of cohort means.",
        "",
        "### Cascading model randomisation",
        "",
        "Weights re-initialised from the output back (each row adds one group to those above it); Spearman "
        "correlation of each patient's tile scores with the trained model's, averaged over patients.",
        "",
        "| re-initialised up to | IG | \\|IG\\| | attention |",
        "|---|---|---|---|",
        *[
            f"| {c['randomised']} | {c['spearman_ig']:.2f} | {c['spearman_abs_ig']:.2f} | {c['spearman_attention']:.2f} |"
            for c in r["randomisation_cascade"]
        ],
        "",
        "### Modality ranking",
        "",
        "The generating model's importance is measured, not assumed: the Shapley decomposition of the "
        "cross-validated R² with which each modality's observed generating parameters (truth.csv; the clinical "
        "record, from which the pathology report is written; the age stated in both reports) explain the true "
        "log-hazard, on the internal patients with a clinical record.",
        "",
        "| modality | model: mean \\|Shapley\\| (log-risk) | generating model: R² share |",
        "|---|---|---|",
        *[
            f"| {m} | {r['shapley_mean_abs'][m]:.3f} | {r['truth_r2_shapley'][m]:.3f} |"
            for m in r["shapley_rank_model"]
        ],
        "",
        f"Model ranking {' > '.join(r['shapley_rank_model'])}; generating model {' > '.join(r['shapley_rank_truth'])}; "
        f"Spearman ρ = {r['shapley_spearman']:.2f}; **rankings match: {r['shapley_rank_matches']}**.",
        "",
    ]
    if images:
        lines += [
            "## Pictures",
            "",
            f"Patient {images['patient']} (the test patient with the median IG tumour AUC: representative, "
            "not the best). Black outline: the ground-truth tumour.",
            "",
            f"![Integrated Gradients per tile]({rel}/{images['heatmap_ig']})",
            "",
            f"![Attention per tile]({rel}/{images['heatmap_attention']})",
            "",
            f"![Shapley values of one patient]({rel}/{images['shapley_patient']})",
            "",
            f"![Modality ranking]({rel}/{images['modality_ranking']})",
            "",
        ]
        if "us_gradcam" in images:
            lines += [
                "Ultrasound Grad-CAM (regions whose image features pushed the risk up; values below 0.2 not drawn):",
                "",
                f"![Ultrasound Grad-CAM]({rel}/{images['us_gradcam']})",
                "",
            ]
    lines += ["## What the numbers say", ""]
    lines += _findings(r)
    lines += [
        "",
        "## Speed",
        "",
        f"Median {r['explain_seconds_median']:.2f} s per patient for the whole explanation without ultrasound "
        "images (in this run, 1 torch thread); with Grad-CAM see `benchmarks/bench_explain.py` and "
        "`benchmarks/results.md`.",
        "",
        "## Reading the numbers honestly",
        "",
        "- Attributions are faithful to *the model*, not to biology: a sentence such as a radiologist's "
        "signature can carry a large occlusion effect if the model learned to read it; that is what the "
        "occlusion shows, and is a finding about the model.",
        "- Shapley values are exact for the model with compensation; they are not the contribution of the "
        "modality to the true hazard. The modality ranking check compares the two.",
        "- IG is exact in sum (completeness error reported per patient in `Explanation.completeness_error`), "
        "but its per-tile split depends on the baseline (the patient's mean tile).",
        "",
    ]
    return "\n".join(lines)


def _findings(r: dict[str, Any]) -> list[str]:
    """Sentences that follow from this run's numbers (so a retrained model gets its own reading)."""
    ig, att = r["by_score"]["integrated_gradients"], r["by_score"]["attention"]
    out = []
    lo = ig["deletion_ratio_ci95"][0]
    out.append(
        f"- Deletion: masking the 10% of tiles with the largest |IG| moves the log-risk {ig['deletion_ratio']:.1f}x "
        f"as much as masking a random 10%; the CI {'excludes' if lo > 1 else 'does not exclude'} 1."
    )
    verdict = "above" if ig["tumour_auc_ci95"][0] > 0.5 else "not clearly above"
    out.append(
        f"- Localisation: IG tile scores rank tumour tiles {verdict} chance (AUC {ig['tumour_auc']:.2f}); "
        f"attention reaches {att['tumour_auc']:.2f}."
        + (
            " Attention localises the tumour better than IG here: IG stays the headline as chosen in advance, and "
            "every Explanation carries both. IG measures what changes the risk relative to the patient's mean tile, "
            "so tissue unlike the average (fat, necrosis, lymphocyte-rich stroma) can carry attribution too."
            if att["tumour_auc"] > ig["tumour_auc"]
            else ""
        )
    )
    flips = [c for c in r["randomisation_cascade"] if c["spearman_ig"] < -0.3 and c["spearman_abs_ig"] > 0.3]
    out.append(
        f"- Randomisation: with every weight re-initialised the signed IG correlates at "
        f"{r['randomisation_spearman']:.2f} (|IG| {r['randomisation_spearman_abs_ig']:.2f}) with the trained model's."
        + (
            " In the cascade, the rows re-initialised up to "
            f"{', '.join(c['randomised'] for c in flips)} turn the signed correlation negative while |IG| still "
            "correlates (> 0.3): the direction of the evidence changed but the same tiles stay prominent. Part of "
            "what |IG| shows is how distinct a tile's features are (the input), a known limit of "
            "gradient-times-input methods (Adebayo et al., 2018); only the fully re-initialised model removes it."
            if flips
            else ""
        )
        + " Tile attention is computed below the head, read-out and transformer, so it cannot change until the "
        "intra-modality attention is re-initialised; that row is its test."
    )
    if r["shapley_rank_matches"]:
        out.append("- Modality ranking: the model's mean |Shapley| ranks the modalities as the generating model does.")
    else:
        swaps = [
            f"{m} (model #{r['shapley_rank_model'].index(m) + 1}, truth #{r['shapley_rank_truth'].index(m) + 1})"
            for m in r["shapley_rank_model"]
            if r["shapley_rank_model"].index(m) != r["shapley_rank_truth"].index(m)
        ]
        out.append(
            f"- Modality ranking: the rankings do not match (Spearman ρ {r['shapley_spearman']:.2f}); out of place: "
            f"{', '.join(swaps)}. Shapley values measure what the model uses, with what the other modalities "
            "already say shared out; the truth column measures what the data could support. A mismatch is a finding "
            "about the model (e.g. leaning on a modality that duplicates another), not an error of the explanation."
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Faithfulness checks of mrrp explanations on a synthetic cohort.")
    ap.add_argument("--model", default="assets/models/mrrp-demo")
    ap.add_argument("--cohort", default="data/cohort")
    ap.add_argument("--out", default="docs/explanations.json")
    ap.add_argument("--md", default="docs/explanations.md", help="Markdown page to write ('' for none)")
    ap.add_argument("--img-dir", default="docs/img", help="folder for the pictures ('' for none)")
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--max-patients", type=int, default=None, help="only the first N test patients (quick look)")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    try:
        r = run(
            args.model,
            args.cohort,
            args.out,
            img_dir=args.img_dir or None,
            md_path=args.md or None,
            ig_steps=args.ig_steps,
            max_patients=args.max_patients,
            cache_dir=args.cache_dir,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except InputError as exc:
        print(f"mrrp: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                k: r[k]
                for k in (
                    "deletion_ratio",
                    "tumour_auc",
                    "top20_in_tumour",
                    "shapley_rank_matches",
                    "randomisation_spearman",
                )
            },
            default=float,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
