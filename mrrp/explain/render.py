"""From a manifest patient to an explanation, and from an explanation to files and text (CLI, docs).

Kept out of ``mrrp.cli`` so the command stays a thin shell and the pictures of docs/explanations.md
are drawn by the same code as ``mrrp explain --heatmap``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrrp._fs import atomic_write_bytes
from mrrp.errors import InputError
from mrrp.vocabulary import EXPLANATION_TILE_DISPLAYS

if TYPE_CHECKING:
    from mrrp.explain.types import Explanation
    from mrrp.io.manifest import ManifestRow

SCORE_KINDS = tuple(EXPLANATION_TILE_DISPLAYS)


def find_patient(manifest: str | os.PathLike[str], patient_id: str) -> ManifestRow:
    """The manifest row of ``patient_id``; InputError naming the manifest when it is not there."""
    from mrrp.io.manifest import read_manifest

    rows = read_manifest(manifest, require_outcomes=False)
    for row in rows:
        if row.patient_id == patient_id:
            return row
    raise InputError(f"Patient '{patient_id}' is not in the manifest '{Path(manifest).name}'.")


def read_us_images(row: ManifestRow) -> list[np.ndarray]:
    """The patient's ultrasound images as the feature pipeline reads them (same order as the tokens)."""
    from mrrp.io.ultrasound import read_ultrasound

    return [read_ultrasound(p).image for p in row.us_image_paths]


def tile_scores(explanation: Explanation, kind: str) -> np.ndarray:
    """(N,) tile scores of ``kind`` ("ig" signed, "attention" >= 0)."""
    if kind not in SCORE_KINDS:
        raise InputError(f"Tile scores must be one of {', '.join(SCORE_KINDS)}; got '{kind}'.")
    if explanation.tiles is None:
        raise InputError(f"Patient {explanation.patient_id} has no slide, so there is no slide heatmap.")
    t = explanation.tiles
    return np.asarray(t.integrated_gradients if kind == "ig" else t.attention, np.float64)


def slide_heatmap(
    slide_path: str | os.PathLike[str],
    explanation: Explanation,
    kind: str = "ig",
    *,
    slide_mpp: float | None = None,
    max_size_px: int = 1024,
):
    """(HeatmapResult, thumbnail downsample) of the tile scores over the slide thumbnail.

    Drawn with the display policy of ``kind`` (:data:`mrrp.vocabulary.EXPLANATION_TILE_DISPLAYS`): signed
    IG on a diverging map centred on 0 (red: towards higher risk, blue: lower), attention as percentiles.
    """
    from mrrp.explain.heatmap import render_tile_scores
    from mrrp.io.slides import open_slide

    scores = tile_scores(explanation, kind)
    t = explanation.tiles
    assert t is not None  # tile_scores checked
    with open_slide(slide_path, mpp=slide_mpp) as slide:
        thumb, ds = slide.thumbnail(max_size_px)
    result = render_tile_scores(
        thumb, ds, t.coords_l0, t.tile_size_l0, scores, EXPLANATION_TILE_DISPLAYS[kind], alpha=0.55
    )
    return result, ds


def heatmap_figure_png(
    result,
    title: str,
    *,
    outline: np.ndarray | None = None,
    outline_label: str = "true tumour",
) -> bytes:
    """The overlay with a colour bar, a title and the model notice, as PNG bytes.

    ``outline`` (H, W) bool on the overlay's grid is drawn as a contour (e.g. the ground-truth tumour).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from mrrp.ui import NOTICE

    h, w = result.overlay.shape[:2]
    fig = Figure(figsize=(7.0, 7.0 * h / w + 1.4), dpi=110, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.2, 0.96, 0.72))
    ax.imshow(result.overlay)
    if outline is not None and outline.any():
        ax.contour(outline.astype(float), levels=[0.5], colors=["black"], linewidths=1.2)
        ax.plot([], [], color="black", label=outline_label)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    cax = fig.add_axes((0.2, 0.12, 0.6, 0.025))
    bar = fig.colorbar(
        ScalarMappable(norm=Normalize(result.vmin, result.vmax), cmap=result.cmap), cax=cax, orientation="horizontal"
    )
    bar.set_label(result.label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.text(0.5, 0.02, NOTICE, ha="center", va="bottom", fontsize=6.5, wrap=True)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_png(path: str | os.PathLike[str], data: bytes) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise InputError(f"The picture '{out.name}' must end in .png.")
    if not out.parent.exists():
        raise InputError(f"The output folder '{out.parent}' does not exist.")
    atomic_write_bytes(out, data)
    return out


def summary_lines(explanation: Explanation, top: int = 3) -> list[str]:
    """A few human lines: risk vs the reference, Shapley per modality, what-ifs, top fields and sentences."""
    e = explanation
    lines = [
        f"{e.patient_id}: log-risk {e.full_log_risk:+.3f} vs {e.reference_log_risk:+.3f} for the reference patient "
        f"(nothing known); difference {e.full_log_risk - e.reference_log_risk:+.3f}",
        "modality contributions (Shapley, log-risk; attention share):",
    ]
    for m, v in sorted(e.shapley.items(), key=lambda kv: -abs(kv[1])):
        if e.present.get(m):
            lines.append(
                f"  {m:<12} {v:+.3f}  ({100 * e.shapley_share[m]:.0f}% of the deviation; attention "
                f"{100 * e.attention_share[m]:.0f}%)"
            )
        else:
            lines.append(f"  {m:<12} absent (compensated)")
    if e.counterfactual:
        lines.append(
            "what if a modality were missing: "
            + ", ".join(f"without {m} {v:+.3f}" for m, v in e.counterfactual.items())
        )
    fields = sorted(e.clinical.items(), key=lambda kv: -abs(kv[1]))[:top]
    if any(v != 0 for _, v in fields):
        lines.append("clinical fields moving the risk most: " + ", ".join(f"{f} {v:+.3f}" for f, v in fields))
    for name, sentences in (("pathology report", e.path_report), ("ultrasound report", e.us_report)):
        strongest = sorted(sentences, key=lambda s: -abs(s.attribution))[:top]
        for s in strongest:
            lines.append(f'  {name}: {s.attribution:+.3f}  "{s.sentence[:90]}"')
    return lines
