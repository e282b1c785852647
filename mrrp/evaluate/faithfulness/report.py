"""The pictures (docs/img/explain_*.png) and the page (docs/explanations.md) of a faithfulness run.

Drawing is kept apart from computing: :func:`render_markdown` reads only the JSON record of
:func:`mrrp.evaluate.faithfulness.run.run` (numbers are never typed by hand), and :func:`draw_pictures`
only what the run already computed, plus one Grad-CAM explanation for its picture.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mrrp.evaluate.faithfulness.truth import tumour_mask
from mrrp.model.bundle import LoadedBundle
from mrrp.vocabulary import LOWERS_RISK_COLOUR, MODALITIES, RAISES_RISK_COLOUR

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mrrp.evaluate.faithfulness.run import ExplainedSplit, ModalityRanking
    from mrrp.explain.types import Explanation
    from mrrp.io.manifest import ManifestRow

# -- pictures ------------------------------------------------------------------------------------


def draw_pictures(
    img_dir: Path,
    bundle: LoadedBundle,
    split: ExplainedSplit,
    per_patient: list[dict[str, Any]],
    ranking: ModalityRanking,
    cohort_dir: Path,
) -> dict[str, str]:
    """The slide heatmaps of a representative patient, its Shapley bars, the cohort modality ranking and an
    ultrasound Grad-CAM; returns the picture file names (in ``img_dir``) by role, and the patient shown."""
    img_dir.mkdir(parents=True, exist_ok=True)
    chosen = representative_patient(per_patient)
    pid = chosen["patient_id"]
    row = next(r for r in split.rows if r.patient_id == pid)
    e = split.explanations[pid]
    out: dict[str, str] = {"patient": pid}
    out.update(_heatmap_pictures(img_dir, row, e, chosen, cohort_dir))
    out["shapley_patient"] = _save(_shapley_figure(pid, e), img_dir, "explain_shapley_patient.png")
    out["modality_ranking"] = _save(_ranking_figure(ranking), img_dir, "explain_modality_ranking.png")
    us_row = next((r for r in split.rows if r.us_image_paths), None)
    if us_row is not None:
        fig = _gradcam_figure(bundle, us_row, split.cases[us_row.patient_id])
        out["us_gradcam"] = _save(fig, img_dir, "explain_us_gradcam.png")
    return out


def representative_patient(per_patient: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Representative, not best: the record whose IG tumour AUC is the median of those with an AUC."""
    scored = sorted((p for p in per_patient if np.isfinite(p["ig_auc"])), key=lambda p: p["ig_auc"])
    return scored[len(scored) // 2]


def _heatmap_pictures(
    img_dir: Path, row: ManifestRow, e: Explanation, chosen: dict[str, Any], cohort_dir: Path
) -> dict[str, str]:
    """IG and attention over the slide, each with the ground-truth tumour outlined."""
    from mrrp.explain.heatmap import resample_mask_nearest
    from mrrp.explain.render import heatmap_figure_png, slide_heatmap, write_png

    pid = row.patient_id
    mask, mask_ds = tumour_mask(cohort_dir, row)
    out = {}
    for kind, label in (("ig", "Integrated Gradients"), ("attention", "attention")):
        result, ds = slide_heatmap(row.slide_path, e, kind, slide_mpp=row.slide_mpp)
        outline = resample_mask_nearest(mask, mask_ds, result.overlay.shape[:2], ds)
        auc = chosen[f"{kind}_auc"]
        title = f"{pid}: {label} per tile (tumour AUC {auc:.2f}; patient with the median IG AUC)"
        path = img_dir / f"explain_heatmap_{kind}.png"
        write_png(path, heatmap_figure_png(result, title, outline=outline))
        out[f"heatmap_{kind}"] = path.name
    return out


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=110, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, img_dir: Path, name: str) -> str:
    """Write ``fig`` with the notice under it as ``img_dir/name``; returns ``name``."""
    from mrrp.explain.render import write_png
    from mrrp.ui import NOTICE

    fig.text(0.5, 0.01, NOTICE, ha="center", va="bottom", fontsize=6.5)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_png(img_dir / name, buf.getvalue())
    return name


def _shapley_figure(pid: str, e: Explanation) -> Figure:
    """One patient's Shapley values (and which modalities were absent, hence compensated)."""
    fig = _figure(7.5, 3.4)
    ax = fig.add_axes((0.2, 0.22, 0.75, 0.62))
    vals = [e.shapley[m] for m in MODALITIES]
    colours = [RAISES_RISK_COLOUR if v > 0 else LOWERS_RISK_COLOUR for v in vals]
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
    return fig


def _ranking_figure(ranking: ModalityRanking) -> Figure:
    """The cohort's mean |Shapley| beside the generating model's R^2 shares."""
    fig = _figure(7.5, 3.4)
    ax1 = fig.add_axes((0.08, 0.22, 0.4, 0.6))
    ax2 = fig.add_axes((0.57, 0.22, 0.4, 0.6))
    ax1.bar(list(MODALITIES), [ranking.mean_abs[m] for m in MODALITIES], color="#555")
    ax1.set_title("model: mean |Shapley| (test patients)", fontsize=9)
    ax2.bar(list(MODALITIES), [ranking.truth[m] for m in MODALITIES], color="#999")
    ax2.set_title("generating model: R² share of true log-hazard", fontsize=9)
    for a in (ax1, ax2):
        a.tick_params(axis="x", labelsize=8, rotation=20)
        a.tick_params(axis="y", labelsize=8)
    return fig


def _gradcam_figure(bundle: LoadedBundle, us_row: ManifestRow, case: Any) -> Figure:
    """Grad-CAM over each ultrasound image of one patient (the first test patient with images)."""
    from mrrp.explain.explain import explain_case
    from mrrp.explain.render import read_us_images

    images = read_us_images(us_row)
    ue = explain_case(bundle, case, us_images=images, ig_steps=8)
    fig = _figure(max(7.5, 3.6 * len(images) + 0.4), 3.8)
    for i, (img, cam) in enumerate(zip(images, ue.us_overlays, strict=True)):
        ax = fig.add_axes((0.02 + i / len(images), 0.14, 0.96 / len(images), 0.74))
        ax.imshow(img, cmap="gray")
        ax.imshow(np.ma.masked_less(cam, 0.2), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"{us_row.patient_id} image {i + 1}: Grad-CAM (towards higher risk)", fontsize=8)
    return fig


# -- the page ------------------------------------------------------------------------------------


def _fmt_ci(ci: Sequence[float]) -> str:
    return f"{ci[0]:.2f}–{ci[1]:.2f}"


def render_markdown(r: dict[str, Any], md_path: Path) -> str:
    """docs/explanations.md from the result of :func:`mrrp.evaluate.faithfulness.run.run`."""
    rel = os.path.relpath(Path(md_path).parent / "img", Path(md_path).parent)
    lines = [
        *_intro(r),
        *_methods(),
        *_faithfulness_table(r),
        *_cascade_section(r),
        *_ranking_section(r),
        *_pictures_section(r.get("images", {}), rel),
        "## What the numbers say",
        "",
        *_findings(r),
        "",
        *_speed_and_caveats(r),
    ]
    return "\n".join(lines)


def _intro(r: dict[str, Any]) -> list[str]:
    return [
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
    ]


def _methods() -> list[str]:
    return [
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
    ]


def _faithfulness_table(r: dict[str, Any]) -> list[str]:
    ig, att = r["by_score"]["integrated_gradients"], r["by_score"]["attention"]
    return [
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
    ]


def _cascade_section(r: dict[str, Any]) -> list[str]:
    return [
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
    ]


def _ranking_section(r: dict[str, Any]) -> list[str]:
    return [
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


def _pictures_section(images: dict[str, str], rel: str) -> list[str]:
    if not images:
        return []
    lines = [
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
    return lines


def _speed_and_caveats(r: dict[str, Any]) -> list[str]:
    return [
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
