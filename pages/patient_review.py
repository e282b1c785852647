"""Patient review: gather one patient's inputs, run the model, show the risk and why. Only draws;
every computation is in mrrp.dashboard (intake, review, charts, export, history)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from mrrp.dashboard import charts
from mrrp.dashboard.export import png_bytes, prediction_json
from mrrp.dashboard.history import CaseHistory, HistoryError
from mrrp.dashboard.intake import INPUTS, CaseInputs, demo_inputs, demo_titles
from mrrp.dashboard.models import active_model_path, load_encoders, model_version
from mrrp.dashboard.reference import group_description
from mrrp.dashboard.review import (
    TILE_SCORE_KINDS,
    AnalysisFailure,
    Review,
    ReviewSlide,
    analyse,
    drawn_heatmap,
    export_stem,
    find_slide,
    heatmap_overlay,
    model_label,
    model_mismatch,
    review_from_record,
    review_pdf,
    review_slide,
    slide_search_folders,
    status_chips,
    top_tiles,
    what_if_rows,
    what_if_summary,
)
from mrrp.dashboard.shell import open_page, require_active_model
from mrrp.dashboard.slideanalysis import slide_thumbnail
from mrrp.dashboard.uploads import SavedSlide, review_inputs, save_slide_upload
from mrrp.errors import InputError
from mrrp.explain.heatmap import colorbar_image
from mrrp.io.slide_files import SLIDE_UPLOAD_TYPES, list_local_slides
from mrrp.schema import CLINICAL_FIELDS
from mrrp.ui import UNEXPECTED, md_code, md_escape
from mrrp.vocabulary import HEADLINE_HORIZON_MONTHS, MODALITY_INPUTS, RISK_GROUP_STREAMLIT_COLOURS

settings = open_page("Patient review")
state = st.session_state
st.caption(
    "Recurrence risk of one patient with HR+/HER2− early breast cancer from whatever of her routine data "
    "exists: H&E slide, ultrasound images and report, pathology report, clinical record."
)

bundle, bundled = require_active_model()


@st.cache_data(show_spinner=False, max_entries=32)
def cached_thumbnail(path: str, mpp: float | None, mtime: float):
    return slide_thumbnail(Path(path), mpp)


@st.cache_data(show_spinner=False, max_entries=64, ttl=600)
def cached_find_slide(fingerprint: str, folders: tuple[str, ...]) -> str | None:
    found = find_slide(fingerprint, [Path(f) for f in folders])
    return None if found is None else str(found)


def clear_result() -> None:
    """Forget the shown patient (result, exports, the last failure) before another analysis starts, so a
    failing one never shows under the previous patient's result."""
    for key in ("review", "review_title", "analysis_failure", "pdf_cache", "heatmap_png"):
        state.pop(key, None)


def run_review(inputs: CaseInputs, title: str) -> None:
    """Intake → prediction → explanation, with progress; the result (or why there is none) goes to this
    session's state."""
    clear_result()
    with st.status("Analysing the patient…", expanded=True) as status:
        bar = st.progress(0.0, text="Loading the encoders…")
        try:
            load_encoders()  # once per server process; the intake below uses the same instances
        except Exception:  # noqa: BLE001 - never a traceback on screen
            outcome = AnalysisFailure(UNEXPECTED)
        else:
            outcome = analyse(
                bundle,
                inputs,
                cache_dir=settings.cache_dir,
                upload_dir=settings.upload_dir,
                progress=lambda f, t: bar.progress(f, text=md_escape(t)),
            )
        if isinstance(outcome, AnalysisFailure):
            # the reason is drawn in view under the inputs (show_failure), not inside this box
            status.update(label="The analysis could not be completed: the reason is shown below", state="error")
            state["analysis_failure"] = outcome
            return
        status.update(label="Analysis complete", state="complete", expanded=False)
    review = outcome
    try:
        review.case_id = CaseHistory().record(
            review.prediction, review.input_hashes, explanation=review.explanation.to_dict()
        )
    except HistoryError as exc:
        state["history_error"] = str(exc)
    state["review"] = review
    state["review_title"] = title


def show_failure(failure: AnalysisFailure) -> None:
    """Why the last analysis gave no result, in view (never inside a collapsed box): the message, then each
    input's chip with an invalid one's reason on it."""
    st.error(md_escape(failure.message))
    if failure.statuses:
        st.markdown(status_chips(failure.statuses, reasons=True))


# --- demo patients -----------------------------------------------------------------------------
st.subheader("Demo patients")
demos = demo_titles()
cols = st.columns(len(demos))
for col, (pid, title) in zip(cols, demos, strict=True):
    if col.button(pid, key=f"demo_{pid}", help=title, width="stretch"):
        try:
            with st.spinner("Preparing the demo patients (first time only, about 20 seconds)…"):
                inputs = demo_inputs(settings.cache_dir, pid)
        except InputError as exc:  # shown under the inputs like any failed analysis, the old result gone
            clear_result()
            state["analysis_failure"] = AnalysisFailure(str(exc))
        else:
            run_review(inputs, f"{pid} — {title}")
    col.caption(title)

# --- a case opened from the history (here or from another page) -------------------------------
open_id = state.pop("open_case_id", None)
if open_id:
    try:
        record = CaseHistory().get(open_id)
        if record is None:
            st.error(f"Case {md_escape(open_id)} is not in the case history.")
        else:
            state["review"] = review_from_record(bundle, record)
            state["review_title"] = f"Case {record.case_id} from the history ({record.created_at[:16]} UTC)"
            state.pop("pdf_cache", None)
            state.pop("analysis_failure", None)
    except InputError as exc:
        st.error(md_escape(exc))

# --- inputs ------------------------------------------------------------------------------------
with st.expander("Enter a patient's data", expanded="review" not in state or "analysis_failure" in state):
    tabs = st.tabs(["H&E slide", "Ultrasound images", "Ultrasound report", "Pathology report", "Clinical record"])
    slide: SavedSlide | Path | None = None
    with tabs[0]:
        source = st.radio(
            "Slide source", ["Upload a file", "Local slide folder"], horizontal=True, key="rv_slide_source"
        )
        if source == "Upload a file":
            limit_mb = int(st.get_option("server.maxUploadSize"))
            uploads = st.file_uploader(
                "Slide file (or all files of a DICOM/MIRAX slide)",
                type=list(SLIDE_UPLOAD_TYPES),
                accept_multiple_files=True,
                key="rv_slide_upload",
                help=f"Up to {limit_mb:,} MB; larger slides go in the local slide folder ({md_escape(settings.slide_dir)}).",
            )
            slide = save_slide_upload(uploads, settings.upload_dir)
        else:
            local = list_local_slides(settings.slide_dir)
            if not local:
                st.info(f"No slides in the local slide folder {md_code(settings.slide_dir)} (set MRRP_SLIDE_DIR).")
            else:
                slide = st.selectbox(
                    "Slide",
                    [None, *local],
                    key="rv_slide_pick",
                    format_func=lambda p: "none" if p is None else str(Path(p).relative_to(settings.slide_dir)),
                )
        slide_mpp = st.number_input(
            "Resolution (µm/pixel), only if the slide does not record it",
            min_value=0.05,
            max_value=20.0,
            value=None,
            step=0.01,
            format="%.3f",
            key="rv_slide_mpp",
        )
    with tabs[1]:
        us_files = st.file_uploader(
            "Ultrasound images (PNG, JPEG or DICOM; identifiers are removed on reading)",
            type=["png", "jpg", "jpeg", "dcm", "dicom"],
            accept_multiple_files=True,
            key="rv_us_upload",
        )
    with tabs[2]:
        us_report_file = st.file_uploader(
            "Ultrasound report (text file)", type=["txt", "text", "md"], key="rv_us_report_file"
        )
        us_report_text = st.text_area("…or paste the ultrasound report", key="rv_us_report_text", height=140)
    with tabs[3]:
        path_report_file = st.file_uploader(
            "Pathology report (text file)", type=["txt", "text", "md"], key="rv_path_report_file"
        )
        path_report_text = st.text_area("…or paste the pathology report", key="rv_path_report_text", height=140)
    with tabs[4]:
        clinical_file = st.file_uploader(
            "One patient's record as CSV (header + one row) or JSON",
            type=["csv", "json"],
            key="rv_clinical_file",
            help="Columns named as in the manifest (docs/manifest.md), e.g. age_years, ki67_percent.",
        )
        st.caption("…or fill in the form (leave a field empty or 'unknown' when it is not known).")
        form: dict[str, object] = {}
        form_cols = st.columns(3)
        for i, f in enumerate(CLINICAL_FIELDS):
            col = form_cols[i % 3]
            if f.kind == "numeric":
                unit = f" ({f.unit})" if f.unit else ""
                form[f.name] = col.number_input(
                    f"{f.label}{unit}",
                    min_value=float(f.minimum),
                    max_value=float(f.maximum),
                    value=None,
                    step=1.0 if f.integer else 0.5,
                    format="%.0f" if f.integer else "%.1f",
                    key=f"rv_clin_{f.name}",
                    help=f"{f.minimum:g}–{f.maximum:g}{unit}; empty = unknown",
                )
            else:
                choice = col.selectbox(f.label, ["unknown", *f.categories], key=f"rv_clin_{f.name}")
                form[f.name] = None if choice == "unknown" else choice
    if st.button("Analyse", type="primary", key="rv_analyse"):
        inputs = review_inputs(
            slide=slide,
            slide_mpp=slide_mpp,
            us_images=us_files,
            us_report_file=us_report_file,
            us_report_text=us_report_text,
            path_report_file=path_report_file,
            path_report_text=path_report_text,
            clinical_form=form,
            clinical_file=clinical_file,
        )
        run_review(inputs, "Entered patient")

if "analysis_failure" in state:
    show_failure(state["analysis_failure"])

review = state.get("review")
mismatch = model_mismatch(review, model_version(bundle)) if review is not None else None
if mismatch is not None and mismatch.keep:
    st.warning(md_escape(mismatch.message))
elif mismatch is not None:  # a live result of the previously chosen model: recompute, never mix models
    st.info(md_escape(mismatch.message))
    state.pop("review")
    review = None
if review is None:
    st.info("Pick a demo patient, or enter a patient's data and press Analyse.")
    st.stop()

# --- results -------------------------------------------------------------------------------------
pred = review.prediction
st.divider()
st.header(md_escape(state.get("review_title", "Result")))
if state.get("history_error"):
    st.warning(md_escape(state.pop("history_error")))

st.markdown(status_chips(review.statuses, reasons=False))
for key, label, _ in INPUTS:
    s = review.statuses[key]
    if s.state == "invalid":
        st.error(f"{label} — {md_escape(s.text)}")
    for note in s.notes:
        st.warning(f"{label}: {md_escape(note)}")

if review.compensated:
    named = ", ".join(MODALITY_INPUTS[m] for m in review.compensated)
    st.warning(
        f"**Compensated:** {named}. The model filled in for what is missing with its learned compensation. "
        f"{review.pattern.sentence()}",
        icon=":material/healing:",
    )
else:
    st.info(f"Every input was available. {review.pattern.sentence()}", icon=":material/verified:")

group = pred.risk_group
lo, hi = pred.log_risk_interval
c1, c2, c3, c4 = st.columns([1.3, 1, 1, 1])
with c1:
    colour = RISK_GROUP_STREAMLIT_COLOURS[group]
    st.markdown(f"### :{colour}[{group.capitalize()} risk]")
    st.caption(
        f"Higher than {charts.percent_text(pred.percentile)} of the reference cohort · "
        f"log-risk {pred.log_risk:+.2f} "
        f"(95% {lo:+.2f} to {hi:+.2f})"
    )
for col, h in zip((c2, c3, c4), pred.horizons, strict=True):
    col.metric(
        f"{h.years}-year recurrence",
        f"{100 * h.probability:.1f}%",
        help="Probability of recurrence by then, with the ensemble's 95% interval",
    )
    col.caption(f"95% interval {100 * h.lower:.1f}–{100 * h.upper:.1f}%")
st.plotly_chart(
    charts.risk_position_figure(bundle.reference_risk, bundle.cutoffs.low_upper, bundle.cutoffs.high_lower, pred),
    key="risk_position",
)
st.caption(group_description(bundle))

tab_surv, tab_contrib, tab_slide, tab_clin, tab_us, tab_reports, tab_export = st.tabs(
    [
        "Survival",
        "Contributions & what if",
        "Slide heatmap",
        "Clinical fields",
        "Ultrasound",
        "Reports",
        "Export & history",
    ]
)

with tab_surv:
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.survival_figure(pred, review.reference), key="survival")
        st.caption(f"Shaded: 95% band of the patient's curve. Behind it: {review.reference.description}")
        st.table(charts.recurrence_rows(pred))
    with right:
        st.plotly_chart(charts.icon_array_figure(pred.at(HEADLINE_HORIZON_MONTHS).probability), key="icons")

with tab_contrib:
    e = review.explanation
    st.plotly_chart(charts.contributions_figure(e), key="contributions")
    st.caption(
        f"Shapley values sum to the patient's log-risk minus the reference patient's ({e.reference_log_risk:+.2f}, "
        "nothing known). Attention share: how much the fusion layer looked at each input."
        + (
            f" {100 * e.attention_to_compensation:.0f}% of the attention went to compensation tokens."
            if e.attention_to_compensation
            else ""
        )
    )

    @st.fragment
    def what_if_panel() -> None:
        st.markdown("**What if an input were missing?**")
        present = [m for m in MODALITY_INPUTS if review.explanation.present.get(m)]
        toggles = st.columns(max(len(present), 1))
        drop = [
            m
            for col, m in zip(toggles, present, strict=False)
            if col.toggle(f"Leave out {MODALITY_INPUTS[m]}", key=f"whatif_{m}")
        ]
        if not drop:
            if review.intake is not None:
                rows = what_if_rows(bundle, review.intake.case, review.prediction)
                if len(rows) > 1:
                    st.plotly_chart(charts.what_if_figure(rows), key="whatif_all")
            return
        w = what_if_summary(bundle, review, drop)
        if not w.available:
            st.info(w.reason)
            return
        delta = 100 * (w.result.recurrence - pred.at(HEADLINE_HORIZON_MONTHS).probability)
        was = None if w.result.risk_group == group else f"was {group}"
        a, b = st.columns(2)
        a.metric("Risk group", w.result.risk_group, delta=was, delta_color="off")
        b.metric(
            "5-year recurrence",
            f"{100 * w.result.recurrence:.1f}%",
            delta=f"{delta:+.1f} points",
            delta_color="inverse",
        )

    what_if_panel()


@st.fragment
def heatmap_panel(review: Review, slide: ReviewSlide) -> None:
    """Tile scores over the slide and the top tiles at full resolution; reruns on its own."""
    e = review.explanation
    a, b = st.columns(2)
    kind_label = a.selectbox("Tile score", list(TILE_SCORE_KINDS), key="hm_kind")
    alpha = b.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="hm_alpha")
    kind = TILE_SCORE_KINDS[kind_label]
    thumb = cached_thumbnail(str(slide.path), slide.mpp, slide.path.stat().st_mtime)
    result = heatmap_overlay(thumb, e, kind, alpha, slide.tissue_mask, slide.mask_downsample)
    state["heatmap_png"] = (review.token, png_bytes(result.overlay))
    left, right = st.columns([3, 2])
    left.image(result.overlay, caption=f"{result.label}; {len(e.tiles.attention):,} tiles", width="stretch")
    left.image(colorbar_image(result.cmap, result.vmin, result.vmax, result.label), width=420)
    right.markdown("**Top tiles**" + (" (pushed the risk up most)" if kind == "ig" else " (most attention)"))
    tiles = top_tiles(slide.path, slide.mpp, e, kind, k=6)
    grid = right.columns(3)
    for i, t in enumerate(tiles):
        grid[i % 3].image(t.image, caption=f"#{t.rank}: {t.score:+.3g}", width="stretch")


with tab_slide:
    folders = slide_search_folders(settings.cache_dir, settings.slide_dir)
    shown_slide = review_slide(review, folders, find=cached_find_slide)
    if shown_slide is None:
        st.info("No slide for this patient, so there is no slide heatmap.")
    elif shown_slide.path is None:
        st.info("The slide file of this case is not on this computer any more; the heatmap needs it.")
    else:
        heatmap_panel(review, shown_slide)

with tab_clin:
    e = review.explanation
    if not review.explanation.present.get("clinical"):
        st.info("No clinical record: nothing to attribute.")
    else:
        record = review.intake.clinical_record if review.intake is not None else None
        st.plotly_chart(charts.clinical_figure(e.clinical, record), key="clinical")
        st.caption(f"Integrated Gradients per field, from {e.clinical_baseline}. Unknown fields get 0.")

with tab_us:
    e = review.explanation
    if review.intake is None or not review.intake.us_images:
        st.info("No ultrasound images for this case (or a case from the history, which keeps no images).")
    elif not e.us_overlays:
        st.info(e.methods.get("us_overlays", "No ultrasound overlay was computed for this model."))
    else:
        alpha_us = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="us_alpha")
        cols = st.columns(min(len(e.us_overlays), 3))
        for i, (img, heat) in enumerate(zip(review.intake.us_images, e.us_overlays, strict=True)):
            cols[i % len(cols)].image(
                charts.ultrasound_overlay(img, heat, alpha_us),
                caption=f"{md_escape(review.intake.us_names[i])} — Grad-CAM",
                width="stretch",
            )

with tab_reports:
    e = review.explanation
    shown = False
    for title, items in (("Ultrasound report", e.us_report), ("Pathology report", e.path_report)):
        body = charts.highlighted_sentences_html(items)
        if body:
            shown = True
            st.markdown(f"**{title}** — red sentences pushed the risk up, blue ones down (hover for the value).")
            st.html(body)
    if shown and e.methods.get("reports_limit"):  # a very long report: which sentences were explained
        st.caption(md_escape(e.methods["reports_limit"].capitalize() + "."))
    if not shown:
        st.info("No report text for this case (or a case from the history saved without text).")

with tab_export:
    version = pred.model_version
    st.caption(
        f"Model version {md_code(version)}"
        + (f" · case {md_code(review.case_id)} in the history" if review.case_id else "")
    )
    label = model_label(bundled, active_model_path())
    stem = export_stem(review)
    quote = st.checkbox(
        "Quote report sentences in the PDF",
        key="pdf_quote_sentences",
        help="Off by default: report text can name the patient, so the PDF gives each sentence's place and effect only.",
    )
    a, b = st.columns(2)
    a.download_button(
        "Download PDF report",
        # a callable: the PDF is assembled only when the button is clicked (off the script thread)
        data=partial(
            review_pdf,
            review,
            model_label=label,
            cutoff_text=group_description(bundle),
            heatmap_png=drawn_heatmap(review, state.get("heatmap_png")),
            quote_report_sentences=quote,
        ),
        file_name=f"{stem}.pdf",
        mime="application/pdf",
        key="dl_pdf",
        icon=":material/picture_as_pdf:",
        on_click="ignore",
    )
    b.download_button(
        "Download prediction (JSON)",
        data=prediction_json(review, model_label=label),
        file_name=f"{stem}.json",
        mime="application/json",
        key="dl_json",
        icon=":material/data_object:",
        on_click="ignore",
    )

    st.markdown("**Case history**")
    if review.intake is not None and review.case_id:
        if st.checkbox(
            "Also store this case's images, report text and clinical record in the history",
            key=f"store_inputs_{review.case_id}",
            help="Off by default: the history keeps only a pseudonymous id, input hashes, the "
            "prediction and the model version.",
        ):
            try:
                CaseHistory().record(
                    review.prediction,
                    review.input_hashes,
                    inputs=review.intake.stored_inputs(),
                    explanation=review.explanation.to_dict(),
                    store_inputs=True,
                )
                st.caption("Stored with its inputs.")
            except HistoryError as exc:
                st.warning(md_escape(exc))
    try:
        listing = CaseHistory().listing(limit=15)
        past = listing.cases
        if listing.notice:  # rows that cannot be read, a read-only file: said, never hiding the rest
            st.warning(md_escape(listing.notice))
    except HistoryError as exc:
        past = []
        st.warning(md_escape(exc))
    for rec in past:
        c_a, c_b = st.columns([5, 1])
        c_a.markdown(md_escape(rec.label))
        if c_b.button("Open", key=f"open_{rec.case_id}"):
            state["open_case_id"] = rec.case_id
            st.rerun()
