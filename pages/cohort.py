"""Cohort and performance: the active model's validated performance (by site, risk group and missing
pattern) and batch scoring of a manifest CSV with a downloadable result table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from mrrp.dashboard.batch import save_uploaded_manifest, score_manifest, summary_counts
from mrrp.dashboard.models import model_version
from mrrp.dashboard.performance import (
    SPLIT_LABELS,
    calibration_figure,
    cindex_text,
    evaluate_on_manifest,
    find_evaluation,
    km_figure,
    missing_pattern_figure,
    missing_pattern_table,
    site_table,
    td_auc_figure,
)
from mrrp.dashboard.shell import open_page, require_active_model
from mrrp.errors import InputError
from mrrp.ui import NOTICE, UNEXPECTED, md_code, md_escape

settings = open_page("Cohort and performance")
state = st.session_state
bundle, bundled = require_active_model()
version = model_version(bundle)
st.caption(f"Active model {md_code(version)}")

tab_perf, tab_batch = st.tabs(["Validated performance", "Batch scoring"])

# --- validated performance ----------------------------------------------------------------------
with tab_perf:
    evaluation, reason = find_evaluation(bundle, settings.cache_dir)
    if reason:
        st.warning(md_escape(reason))
    if evaluation is None:
        st.info(
            "No evaluation of this model was found. Evaluate it on a manifest below: the manifest needs the "
            "training rows (split 'train') and at least 10 patients in 'test' and/or 'external', with outcomes."
        )
    else:
        cols = st.columns(len(evaluation.splits))
        for col, (split, r) in zip(cols, evaluation.splits.items(), strict=True):
            col.metric(f"C-index, {SPLIT_LABELS[split].lower()}", f"{r['harrell_c']:.3f}")
            col.caption(
                f"Harrell's C {cindex_text(evaluation, split)} (95% bootstrap CI) on {r['n']} patients "
                f"with {r['events']} recurrences."
            )
        if evaluation.oracle_cindex:
            parts = ", ".join(f"{v:.3f} ({SPLIT_LABELS[s].lower()})" for s, v in evaluation.oracle_cindex.items())
            st.caption(
                f"The cohort is synthetic, so the best achievable C-index is known: the true hazard reaches {parts}."
            )
        st.caption(f"Source: {md_escape(evaluation.source)}")
        st.subheader("By site")
        st.dataframe(site_table(evaluation), hide_index=True, width="stretch", key="perf_sites")
        left, right = st.columns(2)
        left.plotly_chart(td_auc_figure(evaluation), width="stretch", key="perf_auc")
        right.plotly_chart(calibration_figure(evaluation), width="stretch", key="perf_calibration")
        st.subheader("Kaplan–Meier by risk group")
        km_cols = st.columns(len(evaluation.splits))
        for col, split in zip(km_cols, evaluation.splits, strict=True):
            col.plotly_chart(km_figure(evaluation, split), width="stretch", key=f"perf_km_{split}")
        st.subheader("By missing pattern")
        st.caption(
            "Each modality hidden from every patient in turn; the model compensates with its learned tokens. "
            "This is the C-index a prediction with that input missing carries."
        )
        left, right = st.columns(2)
        left.plotly_chart(missing_pattern_figure(evaluation), width="stretch", key="perf_missing")
        right.dataframe(missing_pattern_table(evaluation), hide_index=True, width="stretch", key="perf_missing_table")

    with st.expander("Evaluate this model on a manifest", expanded=evaluation is None):
        eval_path = st.text_input(
            "Manifest CSV on this computer", key="eval_manifest", placeholder="/data/cohort/manifest.csv"
        )
        n_boot = st.number_input("Bootstrap samples for the intervals", 0, 2000, 200, 50, key="eval_boot")
        if st.button("Evaluate", key="eval_run", disabled=not eval_path.strip()):
            bar = st.progress(0.0, text="Reading the patients…")

            def on_eval_progress(done: int, total: int) -> None:
                bar.progress(done / max(total, 1), text=f"Reading and encoding patients: {done} of {total}")

            try:
                evaluate_on_manifest(
                    bundle,
                    Path(eval_path.strip()).expanduser(),
                    settings.cache_dir,
                    n_boot=int(n_boot),
                    progress=on_eval_progress,
                )
            except InputError as exc:
                bar.empty()
                st.error(md_escape(exc))
            except Exception:
                bar.empty()
                st.error(UNEXPECTED)
            else:
                st.rerun()


# --- batch scoring ------------------------------------------------------------------------------
def _manifest_from_inputs() -> Path | None:
    """The manifest the user chose, saved on disk when uploaded; None until one is given."""
    source = st.radio(
        "Manifest", ["Path on this computer", "Upload a CSV", "Demo patients"], horizontal=True, key="batch_source"
    )
    if source == "Path on this computer":
        text = st.text_input("Manifest CSV", key="batch_path", placeholder="/data/cohort/manifest.csv")
        return Path(text.strip()).expanduser() if text.strip() else None
    if source == "Upload a CSV":
        upload = st.file_uploader("Manifest CSV", type=["csv"], key="batch_upload")
        base = st.text_input(
            "Folder the manifest's relative paths start from",
            value=str(settings.slide_dir),
            key="batch_base",
            help="Paths in a manifest are relative to its own folder, which an uploaded file does not have.",
        )
        if upload is None:
            return None
        return save_uploaded_manifest(upload.getvalue(), upload.name, base, settings.upload_dir)
    from mrrp.synth.demo import ensure_demo_cohort

    with st.spinner("Preparing the demo patients (first time only)…"):
        return ensure_demo_cohort(settings.cache_dir)


with tab_batch:
    st.markdown(
        "Score every patient of a cohort manifest (docs/manifest.md; outcome columns may be empty) with the "
        "active model. Features are cached, so scoring the same patients again is fast."
    )
    manifest: Path | None = None
    try:
        manifest = _manifest_from_inputs()
    except InputError as exc:
        st.error(md_escape(exc))
    except OSError:
        st.error("The manifest could not be saved on this computer (disk full or not writable).")
    if st.button("Score the manifest", key="batch_run", type="primary", disabled=manifest is None):
        bar = st.progress(0.0, text="Checking the manifest…")

        def on_progress(done: int, total: int, what: str) -> None:
            bar.progress(done / max(total, 1), text=md_escape(what))

        try:
            result = score_manifest(
                bundle,
                manifest,
                cache_dir=settings.cache_dir,
                notice=NOTICE if bundled else None,
                progress=on_progress,
            )
            state["batch_result"] = (bundle.checksum, str(manifest), result)
            bar.empty()
        except InputError as exc:
            bar.empty()
            state.pop("batch_result", None)
            st.error(md_escape(exc))
        except Exception:
            bar.empty()
            state.pop("batch_result", None)
            st.error(UNEXPECTED)

    stored = state.get("batch_result")
    if stored is not None and stored[0] == bundle.checksum:
        _, name, result = stored
        counts = summary_counts(result.rows)
        st.success(
            f"{len(result.rows)} patients scored from {md_escape(Path(name).name)}: {counts['low']} low, "
            f"{counts['intermediate']} intermediate, {counts['high']} high risk."
        )
        st.dataframe(result.rows, hide_index=True, width="stretch", key="batch_table")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        st.download_button(
            "Download the results (CSV)",
            data=result.to_csv(),
            file_name=f"mrrp_scores_{Path(name).stem}_{stamp}.csv",
            mime="text/csv",
            key="batch_download",
            type="primary",
        )
        if bundled:
            st.caption("The downloaded table carries the notice in its last column.")
