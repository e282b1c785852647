"""Slide viewer: open a slide, see its metadata, tissue and tiles, compute features, show a heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from mrrp.config import load_settings
from mrrp.errors import InputError, MissingMppError
from mrrp.explain.heatmap import colorbar_image, render_heatmap, resample_mask_nearest, top_k_tiles
from mrrp.features.slide import analyse_slide
from mrrp.features.store import FeatureCache
from mrrp.io.slides import open_slide, slide_fingerprint
from mrrp.ui import UNEXPECTED
from mrrp.viewer import (
    SLIDE_EXTENSIONS,
    UploadedFileData,
    demo_slides,
    draw_tile_grid,
    format_metadata,
    list_local_slides,
    overlay_mask,
    save_uploads,
    tile_scores,
)

settings = load_settings()
state = st.session_state
state.setdefault("analyses", {})

st.title("Slide viewer")
st.caption(
    "Open an H&E whole-slide image, check the detected tissue and tile grid, compute tile "
    "features and view a per-tile heatmap."
)


@st.cache_data(show_spinner=False, max_entries=16)
def thumbnail_of(path: str, mpp: float | None, mtime: float) -> tuple[np.ndarray, float]:
    with open_slide(path, mpp=mpp) as s:
        return s.thumbnail(1024)


# --- choose a slide --------------------------------------------------------------------
source = st.radio(
    "Slide source", ["Upload a file", "Local slide folder", "Demo patient"], horizontal=True, key="slide_source"
)
slide_path: Path | None = None
try:
    if source == "Upload a file":
        uploads = st.file_uploader(
            "Slide file (or all files of a DICOM/MIRAX slide)",
            type=[e.lstrip(".") for e in SLIDE_EXTENSIONS] + ["dat", "ini", "xml"],
            accept_multiple_files=True,
            key="slide_upload",
            help="Files larger than 2 GB: put them in the local slide folder instead.",
        )
        if uploads:
            slide_path = save_uploads([UploadedFileData(u.name, u.getvalue()) for u in uploads], settings.upload_dir)
    elif source == "Demo patient":
        with st.spinner("Preparing the demo patients (first time only, about half a minute)…"):
            demos = demo_slides(settings.cache_dir)
        title = st.selectbox("Demo patient", list(demos), key="demo_pick")
        slide_path = demos[title]
    else:
        local = list_local_slides(settings.slide_dir)
        if not local:
            st.info(f"No slides found in the local slide folder `{settings.slide_dir}` (set MRRP_SLIDE_DIR).")
        else:
            choice = st.selectbox(
                "Slide", local, format_func=lambda p: str(p.relative_to(settings.slide_dir)), key="slide_pick"
            )
            slide_path = Path(choice)
except InputError as exc:
    st.error(str(exc))
except OSError:
    st.error("The slide could not be saved on this computer (disk full or not writable).")

if slide_path is None:
    st.stop()

mpp_key = f"mpp::{slide_path}"
user_mpp = state.get(mpp_key)

try:
    slide = open_slide(slide_path, mpp=user_mpp)
except InputError as exc:
    st.error(str(exc))
    st.stop()
except Exception:
    st.error(UNEXPECTED)
    st.stop()

with slide:
    info = slide.info
    if info.mpp is None:
        st.warning(
            f"{info.name} does not record its resolution. Enter the microns per pixel of the scan "
            "(0.25 for 40x, 0.5 for 20x) to place tiles at the right physical size."
        )
        entered = st.number_input(
            "Resolution (µm/pixel)",
            min_value=0.05,
            max_value=20.0,
            value=None,
            step=0.01,
            format="%.3f",
            key=f"mpp_input::{slide_path}",
        )
        if entered is None:
            st.stop()
        state[mpp_key] = float(entered)
        st.rerun()

    # --- metadata and thumbnail ----------------------------------------------------------
    left, right = st.columns([1, 2])
    with left:
        st.subheader("Slide")
        st.table(dict(format_metadata(info)), border="horizontal")
        if user_mpp is not None and st.button("Change resolution", key=f"mpp_reset::{slide_path}"):
            state.pop(mpp_key, None)
            st.rerun()

    try:
        thumb, thumb_ds = thumbnail_of(str(slide_path), user_mpp, slide_path.stat().st_mtime)
        fingerprint = slide_fingerprint(slide_path)
    except InputError as exc:
        st.error(str(exc))
        st.stop()

    analysis_key = (fingerprint, info.mpp)
    analysis = state["analyses"].get(analysis_key)

    with right:
        tab_thumb, tab_tissue, tab_grid = st.tabs(["Thumbnail", "Tissue mask", "Tile grid"])
        with tab_thumb:
            st.image(thumb, caption=f"{info.name} — 1 pixel = {thumb_ds * info.mpp:.1f} µm", width="stretch")
        if analysis is None:
            for tab in (tab_tissue, tab_grid):
                tab.info("Compute the tile features below to see the tissue mask and tile grid.")
        else:
            mask_thumb = resample_mask_nearest(
                analysis.tissue.mask, analysis.tissue.downsample, thumb.shape[:2], thumb_ds
            )
            tab_tissue.image(
                overlay_mask(thumb, mask_thumb),
                caption=f"Detected tissue: {analysis.tissue.area_mm2(info.mpp):.1f} mm² "
                f"({100 * analysis.tissue.tissue_fraction:.0f}% of the slide)",
                width="stretch",
            )
            tab_grid.image(
                draw_tile_grid(thumb, thumb_ds, analysis.grid.coords_l0, analysis.grid.tile_size_l0),
                caption=f"{len(analysis.grid):,} tiles of {analysis.grid.tile_size_px} px at "
                f"{analysis.grid.target_mpp:g} µm/pixel ({analysis.grid.tile_size_px * analysis.grid.target_mpp:.0f} µm)",
                width="stretch",
            )

    # --- features ------------------------------------------------------------------------
    st.subheader("Tile features")
    if analysis is None:
        if st.button("Compute tile features", type="primary", key="compute_features"):
            bar = st.progress(0.0, text="Detecting tissue…")

            def on_progress(done: int, total: int) -> None:
                bar.progress(done / max(total, 1), text=f"Encoding tiles: {done:,} of {total:,}")

            try:
                with st.spinner("Loading the tile encoder…"):
                    from mrrp.features.encoders import get_encoder

                    encoder = get_encoder()
                analysis = analyse_slide(
                    slide,
                    encoder=encoder,
                    cache=FeatureCache(settings.cache_dir),
                    progress=on_progress,
                    fingerprint=fingerprint,
                )
            except MissingMppError as exc:
                st.error(str(exc))
                st.stop()
            except InputError as exc:
                bar.empty()
                st.error(str(exc))
                st.stop()
            state["analyses"][analysis_key] = analysis
            st.rerun()
        st.stop()

    feats = analysis.features
    st.success(
        f"{len(feats):,} tiles × {feats.embedding_dim} features from {feats.encoder} "
        f"({'read from the cache' if analysis.from_cache else 'computed now'})."
    )

    # --- heatmap -------------------------------------------------------------------------
    st.subheader("Heatmap")
    st.caption("Per-tile scores from the slide pipeline, not a risk prediction.")
    scores_by_label = tile_scores(feats)
    c1, c2, c3 = st.columns(3)
    label = c1.selectbox("Score", list(scores_by_label), key="heatmap_score")
    alpha = c2.slider("Opacity", 0.0, 1.0, 0.4, 0.05, key="heatmap_alpha")
    blur = c3.slider("Smoothing (thumbnail pixels)", 0.0, 8.0, 0.0, 0.5, key="heatmap_blur")
    scores = scores_by_label[label]
    result = render_heatmap(
        thumb,
        thumb_ds,
        feats.coords_l0,
        feats.tile_size_l0,
        scores,
        analysis.tissue.mask,
        analysis.tissue.downsample,
        alpha=alpha,
        blur_sigma_px=blur,
        label=f"{label} (percentile)",
    )
    st.image(result.overlay, caption=f"{label}, as percentiles within this slide", width="stretch")
    st.image(colorbar_image(result.cmap, result.vmin, result.vmax, result.label), width=420)

    st.markdown("**Highest-scoring tiles** (full resolution)")
    top = top_k_tiles(slide, feats.coords_l0, feats.tile_size_l0, scores, k=6)
    cols = st.columns(max(len(top), 1))
    for col, t in zip(cols, top, strict=False):
        col.image(t.image, caption=f"#{t.rank}: {t.score:.3g} at ({t.x_l0:,}, {t.y_l0:,})", width="stretch")
