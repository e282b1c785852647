"""The faithfulness study over a cohort's internal test split: explain, then check, then write.

run ─ explain_test_split ─> ExplainedSplit (rows, CaseFeatures, Explanation per patient)
    ─ slide_checks ─> per-patient deletion and localisation records (patients with a slide)
    ─ randomisation_cascade ─> Spearman of tile scores, trained vs re-initialised, per cascade step
    ─ modality_ranking ─> ModalityRanking (model mean |Shapley| vs the generating model's R^2 shares)
    ─ study_result ─> the JSON record ─ report.draw_pictures / report.render_markdown ─> docs/
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mrrp._fs import atomic_write_text
from mrrp.errors import InputError
from mrrp.evaluate.faithfulness.metrics import (
    DELETION_FRACTION,
    IN_TUMOUR_THRESHOLD,
    N_RANDOM_DRAWS,
    RANDOMISATION_GROUPS,
    TOP_K,
    TOP_K_FRACTION,
    cascade,
    deletion_effects,
    localisation,
    randomisation_correlations,
    randomised_bundle,
    score_summary,
    spearman,
    tile_fraction_in_mask,
    tile_scores,
)
from mrrp.evaluate.faithfulness.report import draw_pictures, render_markdown
from mrrp.evaluate.faithfulness.truth import truth_modality_importance, tumour_mask
from mrrp.features.case import CaseFeatures
from mrrp.model.bundle import LoadedBundle
from mrrp.vocabulary import MODALITIES

if TYPE_CHECKING:
    from mrrp.explain.types import Explanation
    from mrrp.io.manifest import ManifestRow

Log = Callable[[str], None]

# Seeds of the study: the random deletion draws and the re-initialised weights.
DELETION_SEED = 0
RANDOMISATION_SEED = 1000
MIN_TILES = 5  # slides with fewer tiles are left out of deletion and localisation


@dataclass
class ExplainedSplit:
    """The test patients in manifest order, each one's features and explanation (keyed by patient id)."""

    rows: list[ManifestRow]
    cases: dict[str, CaseFeatures]
    explanations: dict[str, Explanation]

    def slide_rows(self) -> list[ManifestRow]:
        """The patients with a slide of at least :data:`MIN_TILES` tiles."""
        return [
            r
            for r in self.rows
            if self.explanations[r.patient_id].tiles is not None and len(self.cases[r.patient_id].tiles) >= MIN_TILES
        ]


@dataclass
class ModalityRanking:
    """The model's mean |Shapley| per modality next to the generating model's R^2 shares."""

    mean_abs: dict[str, float]
    truth: dict[str, float]
    rank_model: list[str]
    rank_truth: list[str]
    spearman: float


def check_cohort(cohort: str | os.PathLike[str]) -> Path:
    """The cohort folder, if it holds the ground truth this study needs (truth.csv and truth/)."""
    cohort_dir = Path(cohort)
    if not (cohort_dir / "truth.csv").is_file() or not (cohort_dir / "truth").is_dir():
        raise InputError(f"'{cohort_dir}' is not a synthetic cohort with ground truth (truth.csv and truth/).")
    return cohort_dir


def explain_test_split(
    bundle: LoadedBundle,
    cohort_dir: Path,
    *,
    ig_steps: int,
    max_patients: int | None,
    cache_dir: str | os.PathLike[str] | None,
    say: Log,
) -> ExplainedSplit:
    """Features and the whole explanation of every test patient (the first ``max_patients`` if given)."""
    from mrrp.case import case_features
    from mrrp.explain.explain import explain_case
    from mrrp.io.manifest import read_manifest

    rows = [r for r in read_manifest(cohort_dir / "manifest.csv") if r.split == "test"]
    if max_patients:
        rows = rows[: int(max_patients)]
    say(f"{len(rows)} test patients; explaining")
    split = ExplainedSplit(rows, {}, {})
    for i, row in enumerate(rows, 1):
        case = case_features(row, cache_dir=cache_dir)
        split.cases[row.patient_id] = case
        split.explanations[row.patient_id] = explain_case(bundle, case, ig_steps=ig_steps)
        if i % 20 == 0:
            say(f"  explained {i}/{len(rows)}")
    return split


def slide_checks(bundle: LoadedBundle, split: ExplainedSplit, cohort_dir: Path, say: Log) -> list[dict[str, Any]]:
    """Deletion and localisation of |IG| and attention, one record per patient with a slide.

    One random stream serves every patient and both scores, in that order, so the draws are reproducible.
    """
    rng = np.random.default_rng(DELETION_SEED)
    per_patient: list[dict[str, Any]] = []
    slide_rows = split.slide_rows()
    say(f"deletion and localisation on {len(slide_rows)} slides")
    for row in slide_rows:
        e, case = split.explanations[row.patient_id], split.cases[row.patient_id]
        assert e.tiles is not None
        mask, mask_ds = tumour_mask(cohort_dir, row)
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
    return per_patient


def randomisation_cascade(bundle: LoadedBundle, split: ExplainedSplit, ig_steps: int, say: Log) -> list[dict[str, Any]]:
    """Model randomisation, cascading from the head: one row per step, the last one the whole model."""
    say("model randomisation")
    slide_rows = split.slide_rows()
    original = {}
    for r in slide_rows:
        tiles = split.explanations[r.patient_id].tiles
        assert tiles is not None
        original[r.patient_id] = (tiles.attention, tiles.integrated_gradients)
    randomisation = []
    for level in range(1, len(RANDOMISATION_GROUPS) + 1):
        rb = randomised_bundle(bundle, cascade(level), seed=RANDOMISATION_SEED)
        rhos: dict[str, list[float]] = {"ig": [], "abs_ig": [], "attention": []}
        for row in slide_rows:
            rho = randomisation_correlations(
                original[row.patient_id], tile_scores(rb, split.cases[row.patient_id], ig_steps)
            )
            for k, v in rho.items():
                rhos[k].append(v)
        randomisation.append(
            {
                "randomised": RANDOMISATION_GROUPS[level - 1][0],
                "cascade": cascade(level),
                **{f"spearman_{k}": float(np.nanmean(v)) for k, v in rhos.items()},
            }
        )
        say(f"  up to {RANDOMISATION_GROUPS[level - 1][0]}: IG rho {randomisation[-1]['spearman_ig']:.3f}")
    return randomisation


def modality_ranking(explanations: dict[str, Explanation], cohort_dir: Path, say: Log) -> ModalityRanking:
    """Mean |Shapley| over the test patients who have each modality, ranked against the generating model."""
    say("modality ranking vs the generating model")
    mean_abs = {
        m: float(np.mean([abs(e.shapley[m]) for e in explanations.values() if e.present[m]] or [0.0]))
        for m in MODALITIES
    }
    truth = truth_modality_importance(cohort_dir)
    return ModalityRanking(
        mean_abs=mean_abs,
        truth=truth,
        rank_model=sorted(MODALITIES, key=lambda m: -mean_abs[m]),
        rank_truth=sorted(MODALITIES, key=lambda m: -truth[m]),
        spearman=spearman(np.array([mean_abs[m] for m in MODALITIES]), np.array([truth[m] for m in MODALITIES])),
    )


def study_result(
    *,
    bundle: LoadedBundle,
    split: ExplainedSplit,
    per_patient: list[dict[str, Any]],
    randomisation: list[dict[str, Any]],
    ranking: ModalityRanking,
    ig_steps: int,
    source: dict[str, str],
    seconds: float,
) -> dict[str, Any]:
    """The JSON record of one run (docs/explanations.json); ``source`` holds the model, cohort and out paths."""
    from mrrp.ui import NOTICE

    ig_summary, att_summary = score_summary(per_patient, "ig"), score_summary(per_patient, "attention")
    whole = randomisation[-1]
    return {
        "notice": NOTICE,
        "headline_scores": "integrated_gradients (|IG| for deletion and localisation)",
        "deletion_ratio": ig_summary["deletion_ratio"],
        "deletion_ratio_ci95": ig_summary["deletion_ratio_ci95"],
        "tumour_auc": ig_summary["tumour_auc"],
        "tumour_auc_ci95": ig_summary["tumour_auc_ci95"],
        "tumour_auc_chance": 0.5,
        "top20_in_tumour": ig_summary["top20_in_tumour"],
        "top20_in_tumour_ci95": ig_summary["top20_in_tumour_ci95"],
        "top20_in_tumour_chance": float(np.mean([p["ig_chance"] for p in per_patient])),
        "top20_k_rule": f"k = min({TOP_K}, ceil({TOP_K_FRACTION:.0%} of the slide's tiles)); "
        f"median k here {int(np.median([p['ig_k'] for p in per_patient]))}",
        "shapley_rank_matches": ranking.rank_model == ranking.rank_truth,
        "shapley_rank_model": ranking.rank_model,
        "shapley_rank_truth": ranking.rank_truth,
        "shapley_spearman": ranking.spearman,
        "shapley_mean_abs": ranking.mean_abs,
        "truth_r2_shapley": ranking.truth,
        "randomisation_spearman": whole["spearman_ig"],
        "randomisation_spearman_abs_ig": whole["spearman_abs_ig"],
        "randomisation_spearman_attention": whole["spearman_attention"],
        "randomisation_cascade": randomisation,
        "by_score": {"integrated_gradients": ig_summary, "attention": att_summary},
        "n_test_patients": len(split.rows),
        "n_slide_patients": len(per_patient),
        "deletion_fraction": DELETION_FRACTION,
        "n_random_draws": N_RANDOM_DRAWS,
        "ig_steps": ig_steps,
        "explain_seconds_median": float(np.median([e.timings_s["total"] for e in split.explanations.values()])),
        "model": {"path": source["model"], "checksum": bundle.checksum, "name": bundle.config.get("name")},
        "cohort": source["cohort"],
        "command": f"python -m mrrp.evaluate.faithfulness --model {source['model']} --cohort {source['cohort']} "
        f"--out {source['out']}",
        "seconds": round(seconds, 1),
    }


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
    from mrrp.model.bundle import load_bundle

    say = log or (lambda _m: None)
    t_start = time.perf_counter()
    cohort_dir = check_cohort(cohort)
    bundle = load_bundle(model, verify_pin=False)  # may be the bundled model being rebuilt (make model)
    split = explain_test_split(
        bundle, cohort_dir, ig_steps=ig_steps, max_patients=max_patients, cache_dir=cache_dir, say=say
    )
    per_patient = slide_checks(bundle, split, cohort_dir, say)
    randomisation = randomisation_cascade(bundle, split, ig_steps, say)
    ranking = modality_ranking(split.explanations, cohort_dir, say)
    result = study_result(
        bundle=bundle,
        split=split,
        per_patient=per_patient,
        randomisation=randomisation,
        ranking=ranking,
        ig_steps=ig_steps,
        source={"model": str(model), "cohort": str(cohort), "out": str(out)},
        seconds=time.perf_counter() - t_start,
    )
    if img_dir is not None:
        result["images"] = draw_pictures(Path(img_dir), bundle, split, per_patient, ranking, cohort_dir)
    atomic_write_text(Path(out), json.dumps(result, indent=2, default=float) + "\n")
    if md_path is not None:
        atomic_write_text(Path(md_path), render_markdown(result, Path(md_path)))
    return result
