"""Slide viewer: open a slide, see its metadata, tissue and tiles, zoom and pan it at full resolution
(deep-zoom tiles) with a heatmap overlay, compute features, show a heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from mrrp.config import load_settings
from mrrp.dashboard.deepzoom import (
    DeepZoomView,
    TileOverlay,
    Viewport,
    draw_viewport_box,
    explanation_overlays,
    viewport_heatmap,
    zoom_label,
)
from mrrp.dashboard.history import CaseHistory, HistoryError, history_path
from mrrp.dashboard.shell import require_shell
from mrrp.errors import InputError, MissingMppError
from mrrp.explain.heatmap import colorbar_image, render_heatmap, resample_mask_nearest, top_k_tiles
from mrrp.features.slide import analyse_slide
from mrrp.features.store import FeatureCache
from mrrp.io.slides import open_slide, slide_fingerprint
from mrrp.ui import NOTICE, UNEXPECTED
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

require_shell()  # before anything is drawn: deep links still get the sidebar and notice

st.title("Slide viewer")
st.caption(
    "Open an H&E whole-slide image, check the detected tissue and tile grid, compute tile "
    "features and view a per-tile heatmap."
)


@st.cache_data(show_spinner=False, max_entries=16)
def thumbnail_of(path: str, mpp: float | None, mtime: float) -> tuple[np.ndarray, float]:
    with open_slide(path, mpp=mpp) as s:
        return s.thumbnail(1024)


# Deep-zoom view size in screen pixels; the image is scaled to the column width.
VIEW_W_PX, VIEW_H_PX = 1024, 640
DZ_KEYS = ("dz_zoom", "dz_x", "dz_y", "dz_overlay", "dz_score", "dz_alpha")


@st.cache_resource(show_spinner=False, max_entries=4)
def deep_zoom_view(path: str, mtime: float) -> DeepZoomView:
    """One DeepZoomView per slide file, shared by every session (reads are thread-safe, tiles cached)."""
    return DeepZoomView(open_slide(path))


def reviewed_overlays(fingerprint: str) -> list[TileOverlay]:
    """Tile attributions of a reviewed case on this slide, if the case history has one (every review is
    saved there); the case under review in this session comes first."""
    try:
        records = CaseHistory(history_path()).list_cases(limit=50)
    except HistoryError:
        return []  # the patient-review page reports a damaged history; here it only means no overlay
    return explanation_overlays(records, fingerprint, prefer_case=getattr(state.get("review"), "case_id", None))


def _pan(dx: float, dy: float) -> None:
    """Move the view centre by (dx, dy) in percent of the slide (button callback, runs before the widgets)."""
    state["dz_x"] = float(np.clip(state.get("dz_x", 50.0) + dx, 0.0, 100.0))
    state["dz_y"] = float(np.clip(state.get("dz_y", 50.0) + dy, 0.0, 100.0))


def _zoom(step: int, levels: list[int]) -> None:
    i = levels.index(state.get("dz_zoom", levels[0])) if state.get("dz_zoom") in levels else 0
    state["dz_zoom"] = levels[int(np.clip(i + step, 0, len(levels) - 1))]


def _go_to(x_pct: float, y_pct: float, level: int) -> None:
    state["dz_x"], state["dz_y"], state["dz_zoom"] = float(x_pct), float(y_pct), level


@st.fragment
def deep_zoom_panel(
    path: str,
    mtime: float,
    slide_key: str,
    objective: float | None,
    mpp: float | None,
    thumb: np.ndarray,
    thumb_ds: float,
    overlays: list[TileOverlay],
    tissue: tuple[np.ndarray, float] | None,
) -> None:
    """Zoom, pan and overlay controls with the visible region; reruns on its own when a control moves."""
    try:
        view = deep_zoom_view(path, mtime)
    except InputError as exc:
        st.error(str(exc))
        return
    if state.get("dz_slide") != slide_key:  # another slide: start from the whole-slide view
        for k in DZ_KEYS:
            state.pop(k, None)
        state["dz_slide"] = slide_key
    levels = view.zoom_levels(VIEW_W_PX, VIEW_H_PX)
    state.setdefault("dz_zoom", levels[0])
    state.setdefault("dz_x", 50.0)
    state.setdefault("dz_y", 50.0)
    if state["dz_zoom"] not in levels:
        state["dz_zoom"] = levels[0]
    level = state["dz_zoom"]
    vp: Viewport = view.viewport(level, state["dz_x"] / 100, state["dz_y"] / 100, VIEW_W_PX, VIEW_H_PX)
    w_lvl, h_lvl = view.level_dimensions(level)
    step_x, step_y = 50.0 * vp.width_px / w_lvl, 50.0 * vp.height_px / h_lvl  # half a view, in % of the slide

    main, side = st.columns([3, 1])
    with side:
        if len(levels) > 1:
            st.select_slider(
                "Zoom",
                options=levels,
                key="dz_zoom",
                format_func=lambda lv: zoom_label(lv, view, objective, mpp),
                help="Magnification of the view; the right end is the scan's full resolution.",
            )
            z1, z2 = st.columns(2)
            z1.button("Zoom out", key="dz_out", on_click=_zoom, args=(-1, levels), width="stretch")
            z2.button("Zoom in", key="dz_in", on_click=_zoom, args=(1, levels), width="stretch")
        else:
            st.caption("The whole slide fits in the view at full resolution.")
        b = st.columns(4)
        b[0].button("◀", key="dz_left", on_click=_pan, args=(-step_x, 0.0), help="Pan left by half a view")
        b[1].button("▲", key="dz_up", on_click=_pan, args=(0.0, -step_y), help="Pan up by half a view")
        b[2].button("▼", key="dz_down", on_click=_pan, args=(0.0, step_y), help="Pan down by half a view")
        b[3].button("▶", key="dz_right", on_click=_pan, args=(step_x, 0.0), help="Pan right by half a view")
        st.slider("Left ↔ right (% of the slide width)", 0.0, 100.0, step=0.5, key="dz_x")
        st.slider("Top ↕ bottom (% of the slide height)", 0.0, 100.0, step=0.5, key="dz_y")
        chosen: TileOverlay | None = None
        if overlays:
            if st.toggle("Heatmap overlay", value=False, key="dz_overlay"):
                by_label = {o.label: o for o in overlays}
                label = st.selectbox("Overlay scores", list(by_label), key="dz_score")
                chosen = by_label[label]
                alpha = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="dz_alpha")
                if np.isfinite(chosen.scores).any():
                    best = int(np.nanargmax(chosen.scores))
                    cx_l0, cy_l0 = chosen.coords_l0[best] + chosen.tile_size_l0 / 2
                    # the sharpest zoom at which the tile takes at most a third of the view: the tile in its context
                    goto_level = max(
                        (lv for lv in levels if chosen.tile_size_l0 / view.downsample(lv) <= VIEW_W_PX / 3),
                        default=levels[0],
                    )
                    x_pct, y_pct = 100 * cx_l0 / view.slide.info.width_px, 100 * cy_l0 / view.slide.info.height_px
                    st.button(
                        "Go to the highest-scoring tile",
                        key="dz_goto",
                        on_click=_go_to,
                        args=(x_pct, y_pct, goto_level),
                    )
        else:
            st.caption("Compute the tile features below (or review this patient) to overlay a heatmap.")
        st.image(draw_viewport_box(thumb, thumb_ds, vp), caption="The red box is the view.", width="stretch")

    with main:
        try:
            image = view.render(vp)
            if chosen is not None:
                mask, mask_ds = tissue if tissue is not None else (None, None)
                result = viewport_heatmap(
                    image,
                    vp,
                    chosen.coords_l0,
                    chosen.tile_size_l0,
                    chosen.scores,
                    tissue_mask=mask,
                    mask_downsample=mask_ds,
                    alpha=alpha,
                    signed=chosen.signed,
                    label=chosen.label,
                )
                image = result.overlay
        except InputError as exc:
            # OpenSlide keeps a handle in error once a read failed; drop it so other zoom levels open afresh.
            deep_zoom_view.clear(path, mtime)
            st.error(str(exc))
            return
        size = f"{vp.size_l0[0] * mpp / 1000:.2f} × {vp.size_l0[1] * mpp / 1000:.2f} mm" if mpp else ""
        st.image(
            image,
            caption=f"{zoom_label(level, view, objective, mpp)} · {size} · "
            f"{len(view.tiles_for(vp))} deep-zoom tiles of {view.tile_size_px} px",
            width="stretch" if vp.width_px >= 256 else "content",
        )
        if chosen is not None:
            st.image(colorbar_image(result.cmap, result.vmin, result.vmax, result.label), width=420)
            if chosen.from_bundled_model:
                st.warning(NOTICE, icon=":material/science:")


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

    # --- deep zoom -----------------------------------------------------------------------
    st.subheader("Zoom and pan")
    overlays: list[TileOverlay] = []
    if analysis is not None:
        overlays += [
            TileOverlay(f"{lbl} (percentile)", analysis.features.coords_l0, int(analysis.features.tile_size_l0), sc)
            for lbl, sc in tile_scores(analysis.features).items()
        ]
    overlays = reviewed_overlays(fingerprint) + overlays
    tissue = (analysis.tissue.mask, float(analysis.tissue.downsample)) if analysis is not None else None
    deep_zoom_panel(
        str(slide_path),
        slide_path.stat().st_mtime,
        f"{fingerprint}:{info.mpp}",
        info.objective_power,
        info.mpp,
        thumb,
        thumb_ds,
        overlays,
        tissue,
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
