"""Slide viewer: open a slide, see its metadata, tissue and tiles, zoom and pan it at full resolution
(deep-zoom tiles) with a heatmap overlay, compute features, show a heatmap. Only draws: the slide's
analysis is in mrrp.dashboard.slideanalysis, the pan and zoom rules in mrrp.dashboard.slideview."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st

from mrrp.dashboard import slideview
from mrrp.dashboard.deepzoom import DeepZoomView, TileOverlay, Viewport, draw_viewport_box, viewport_heatmap, zoom_label
from mrrp.dashboard.shell import open_page, stop_on_error
from mrrp.dashboard.slideanalysis import (
    Thumbnail,
    analyse,
    demo_slides,
    format_metadata,
    grid_picture,
    pipeline_heatmap,
    pipeline_top_tiles,
    slide_thumbnail,
    tile_encoder,
    tile_overlays,
    tissue_on_view,
    tissue_picture,
)
from mrrp.dashboard.slideview import ViewGeometry, ViewState
from mrrp.dashboard.uploads import save_slide_upload
from mrrp.errors import InputError, MissingMppError
from mrrp.explain.heatmap import colorbar_image
from mrrp.features.slide import SlideAnalysis, pipeline_tile_scores
from mrrp.io.slide_files import SLIDE_UPLOAD_TYPES, list_local_slides, resolve_local_slide
from mrrp.io.slides import open_slide, slide_fingerprint
from mrrp.ui import NOTICE, md_code, md_escape

settings = open_page("Slide viewer")
state = st.session_state
state.setdefault("analyses", {})
st.caption(
    "Open an H&E whole-slide image, check the detected tissue and tile grid, compute tile "
    "features and view a per-tile heatmap."
)


@st.cache_data(show_spinner=False, max_entries=16)
def thumbnail_of(path: str, mpp: float | None, mtime: float) -> Thumbnail:
    return slide_thumbnail(Path(path), mpp)


# Deep-zoom view size in screen pixels; the image is scaled to the column width.
VIEW_W_PX, VIEW_H_PX = 1024, 640
DZ_KEYS = ("dz_zoom", "dz_x", "dz_y", "dz_overlay", "dz_score", "dz_alpha")


@st.cache_resource(show_spinner=False, max_entries=4)
def deep_zoom_view(path: str, mtime: float) -> DeepZoomView:
    """One DeepZoomView per slide file, shared by every session (reads are thread-safe, tiles cached)."""
    return DeepZoomView(open_slide(path))


# --- the view's state lives in the widgets' session keys -------------------------------------


def shown_view() -> ViewState:
    return ViewState(state["dz_zoom"], state["dz_x"], state["dz_y"])


def show(view: ViewState) -> None:
    state["dz_zoom"], state["dz_x"], state["dz_y"] = view.level, view.x_pct, view.y_pct


def move(rule: Callable[..., ViewState], *args: object) -> None:
    """Button callback (runs before the widgets): apply a slideview rule to the view shown."""
    show(rule(shown_view(), *args))


def start_view(slide_key: str, geometry: ViewGeometry) -> None:
    """Another slide starts from the whole-slide view; the same slide keeps where the user was."""
    if state.get("dz_slide") != slide_key:
        for k in DZ_KEYS:
            state.pop(k, None)
        state["dz_slide"] = slide_key
    start = slideview.start(geometry)
    kept = ViewState(state.get("dz_zoom", start.level), state.get("dz_x", start.x_pct), state.get("dz_y", start.y_pct))
    show(slideview.clamp(kept, geometry))


def zoom_controls(view: DeepZoomView, geometry: ViewGeometry, objective: float | None, mpp: float | None) -> None:
    if len(geometry.levels) < 2:
        st.caption("The whole slide fits in the view at full resolution.")
        return
    st.select_slider(
        "Zoom",
        options=list(geometry.levels),
        key="dz_zoom",
        format_func=lambda lv: zoom_label(lv, view, objective, mpp),
        help="Magnification of the view; the right end is the scan's full resolution.",
    )
    z1, z2 = st.columns(2)
    z1.button("Zoom out", key="dz_out", on_click=move, args=(slideview.zoom, geometry, -1), width="stretch")
    z2.button("Zoom in", key="dz_in", on_click=move, args=(slideview.zoom, geometry, 1), width="stretch")


def pan_controls(geometry: ViewGeometry) -> None:
    buttons = st.columns(4)
    for col, (arrow, direction) in zip(
        buttons, (("◀", "left"), ("▲", "up"), ("▼", "down"), ("▶", "right")), strict=True
    ):
        col.button(
            arrow,
            key=f"dz_{direction}",
            on_click=move,
            args=(slideview.pan, geometry, direction),
            help=f"Pan {direction} by half a view",
        )
    st.slider("Left ↔ right (% of the slide width)", 0.0, 100.0, step=0.5, key="dz_x")
    st.slider("Top ↕ bottom (% of the slide height)", 0.0, 100.0, step=0.5, key="dz_y")


def overlay_controls(overlays: list[TileOverlay], geometry: ViewGeometry) -> tuple[TileOverlay | None, float]:
    """The overlay chosen (None: off) and its opacity."""
    if not overlays:
        st.caption("Compute the tile features below (or review this patient) to overlay a heatmap.")
        return None, 0.0
    if not st.toggle("Heatmap overlay", value=False, key="dz_overlay"):
        return None, 0.0
    by_label = {o.label: o for o in overlays}
    chosen = by_label[st.selectbox("Overlay scores", list(by_label), key="dz_score")]
    alpha = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="dz_alpha")
    target = slideview.go_to_top_tile(geometry, chosen.coords_l0, chosen.tile_size_l0, chosen.scores)
    if target is not None:
        st.button("Go to the highest-scoring tile", key="dz_goto", on_click=show, args=(target,))
    return chosen, alpha


def draw_view(
    view: DeepZoomView,
    vp: Viewport,
    caption: str,
    chosen: TileOverlay | None,
    alpha: float,
    tissue: tuple[np.ndarray, float] | None,
) -> None:
    """The visible region, with the chosen overlay, its colour bar and the notice for a demo model's scores.

    Raises InputError (before drawing anything) when the slide cannot be read at this zoom.
    """
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
            display=chosen.display,
            label=chosen.label,
        )
        image = result.overlay
    st.image(image, caption=caption, width="stretch" if vp.width_px >= 256 else "content")
    if chosen is not None:
        st.image(colorbar_image(result.cmap, result.vmin, result.vmax, result.label), width=420)
        if chosen.from_bundled_model:
            st.warning(NOTICE, icon=":material/science:")


@st.fragment
def deep_zoom_panel(
    path: str,
    mtime: float,
    slide_key: str,
    objective: float | None,
    mpp: float | None,
    thumb: Thumbnail,
    overlays: list[TileOverlay],
    tissue: tuple[np.ndarray, float] | None,
) -> None:
    """Zoom, pan and overlay controls with the visible region; reruns on its own when a control moves."""
    try:
        view = deep_zoom_view(path, mtime)
    except InputError as exc:
        st.error(md_escape(exc))
        return
    geometry = ViewGeometry.of(view, VIEW_W_PX, VIEW_H_PX)
    start_view(slide_key, geometry)
    shown = shown_view()
    vp = view.viewport(shown.level, shown.x_pct / 100, shown.y_pct / 100, VIEW_W_PX, VIEW_H_PX)
    main, side = st.columns([3, 1])
    with side:
        zoom_controls(view, geometry, objective, mpp)
        pan_controls(geometry)
        chosen, alpha = overlay_controls(overlays, geometry)
        st.image(
            draw_viewport_box(thumb.image, thumb.downsample, vp), caption="The red box is the view.", width="stretch"
        )
    with main:
        size = f"{vp.size_l0[0] * mpp / 1000:.2f} × {vp.size_l0[1] * mpp / 1000:.2f} mm" if mpp else ""
        caption = (
            f"{zoom_label(shown.level, view, objective, mpp)} · {size} · "
            f"{len(view.tiles_for(vp))} deep-zoom tiles of {view.tile_size_px} px"
        )
        try:
            draw_view(view, vp, caption, chosen, alpha, tissue)
        except InputError as exc:
            # OpenSlide keeps a handle in error once a read failed; drop it so other zoom levels open afresh.
            deep_zoom_view.clear(path, mtime)
            st.error(md_escape(exc))


# --- choose a slide --------------------------------------------------------------------
source = st.radio(
    "Slide source", ["Upload a file", "Local slide folder", "Demo patient"], horizontal=True, key="slide_source"
)
slide_path: Path | None = None
try:
    if source == "Upload a file":
        uploads = st.file_uploader(
            "Slide file (or all files of a DICOM/MIRAX slide)",
            type=list(SLIDE_UPLOAD_TYPES),
            accept_multiple_files=True,
            key="slide_upload",
            help="Files larger than 2 GB: put them in the local slide folder instead.",
        )
        saved = save_slide_upload(uploads, settings.upload_dir)
        if saved.error:
            st.error(md_escape(saved.error))
        slide_path = saved.path
    elif source == "Demo patient":
        with st.spinner("Preparing the demo patients (first time only, about half a minute)…"):
            demos = demo_slides(settings.cache_dir)
        title = st.selectbox("Demo patient", list(demos), key="demo_pick")
        slide_path = demos[title]
    else:
        local = list_local_slides(settings.slide_dir)
        if not local:
            st.info(f"No slides found in the local slide folder {md_code(settings.slide_dir)} (set MRRP_SLIDE_DIR).")
        else:
            choice = st.selectbox(
                "Slide", local, format_func=lambda p: str(p.relative_to(settings.slide_dir)), key="slide_pick"
            )
            slide_path = resolve_local_slide(settings.slide_dir, choice)  # a link swapped in since listing
except InputError as exc:
    st.error(md_escape(exc))
except OSError:
    st.error("The slide could not be saved on this computer (disk full or not writable).")

if slide_path is None:
    st.stop()

mpp_key = f"mpp::{slide_path}"
user_mpp = state.get(mpp_key)

with stop_on_error():
    slide = open_slide(slide_path, mpp=user_mpp)

with slide:
    info = slide.info
    if info.mpp is None:
        st.warning(
            f"{md_escape(info.name)} does not record its resolution. Enter the microns per pixel of the scan "
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
        st.table({k: md_escape(v) for k, v in format_metadata(info)}, border="horizontal")  # cells are Markdown
        if user_mpp is not None and st.button("Change resolution", key=f"mpp_reset::{slide_path}"):
            state.pop(mpp_key, None)
            st.rerun()

    try:
        thumb = thumbnail_of(str(slide_path), user_mpp, slide_path.stat().st_mtime)
        fingerprint = slide_fingerprint(slide_path)
    except InputError as exc:
        st.error(md_escape(exc))
        st.stop()

    analysis_key = (fingerprint, info.mpp)
    analysis: SlideAnalysis | None = state["analyses"].get(analysis_key)

    with right:
        tab_thumb, tab_tissue, tab_grid = st.tabs(["Thumbnail", "Tissue mask", "Tile grid"])
        with tab_thumb:
            st.image(
                thumb.image,
                caption=f"{md_escape(info.name)} — 1 pixel = {thumb.downsample * info.mpp:.1f} µm",
                width="stretch",
            )
        if analysis is None:
            for tab in (tab_tissue, tab_grid):
                tab.info("Compute the tile features below to see the tissue mask and tile grid.")
        else:
            tab_tissue.image(
                tissue_picture(thumb.image, thumb.downsample, analysis),
                caption=f"Detected tissue: {analysis.tissue.area_mm2(info.mpp):.1f} mm² "
                f"({100 * analysis.tissue.tissue_fraction:.0f}% of the slide)",
                width="stretch",
            )
            grid = analysis.grid
            tab_grid.image(
                grid_picture(thumb.image, thumb.downsample, analysis),
                caption=f"{len(grid):,} tiles of {grid.tile_size_px} px at "
                f"{grid.target_mpp:g} µm/pixel ({grid.tile_size_px * grid.target_mpp:.0f} µm)",
                width="stretch",
            )

    # --- deep zoom -----------------------------------------------------------------------
    st.subheader("Zoom and pan")
    deep_zoom_panel(
        str(slide_path),
        slide_path.stat().st_mtime,
        f"{fingerprint}:{info.mpp}",
        info.objective_power,
        info.mpp,
        thumb,
        tile_overlays(fingerprint, analysis, prefer_case=getattr(state.get("review"), "case_id", None)),
        tissue_on_view(analysis),
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
                    encoder = tile_encoder()
                analysis = analyse(
                    slide, settings.cache_dir, fingerprint=fingerprint, progress=on_progress, encoder=encoder
                )
            except MissingMppError as exc:
                st.error(md_escape(exc))
                st.stop()
            except InputError as exc:
                bar.empty()
                st.error(md_escape(exc))
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
    c1, c2, c3 = st.columns(3)
    label = c1.selectbox("Score", list(pipeline_tile_scores(feats)), key="heatmap_score")
    alpha = c2.slider("Opacity", 0.0, 1.0, 0.4, 0.05, key="heatmap_alpha")
    blur = c3.slider("Smoothing (thumbnail pixels)", 0.0, 8.0, 0.0, 0.5, key="heatmap_blur")
    result = pipeline_heatmap(thumb.image, thumb.downsample, analysis, label, alpha=alpha, blur_sigma_px=blur)
    st.image(result.overlay, caption=f"{label}, as percentiles within this slide", width="stretch")
    st.image(colorbar_image(result.cmap, result.vmin, result.vmax, result.label), width=420)

    st.markdown("**Highest-scoring tiles** (full resolution)")
    top = pipeline_top_tiles(slide, analysis, label, k=6)
    cols = st.columns(max(len(top), 1))
    for col, t in zip(cols, top, strict=False):
        col.image(t.image, caption=f"#{t.rank}: {t.score:.3g} at ({t.x_l0:,}, {t.y_l0:,})", width="stretch")
