"""pCR prediction: breast DCE-MRI (+ optional tumour mask and clinical variables) → probability, stages, attention."""

from __future__ import annotations

import json

import streamlit as st

from mrrp.dashboard.shell import open_page, stop_on_error
from mrrp.errors import InputError
from mrrp.pcr.clinical import PCR_CLINICAL_FIELDS, read_clinical_json
from mrrp.pcr.demo import ensure_pcr_demos
from mrrp.pcr.page import (
    MASK_UPLOAD_TYPES,
    MRI_UPLOAD_TYPES,
    UNKNOWN,
    form_options,
    form_values_from_record,
    record_from_form,
    save_uploads,
)
from mrrp.pcr.predict import DEFAULT_MODEL_DIR, PCRPrediction, predict_files
from mrrp.pcr.render import axial, axial_mip, best_slice, colour_bar, display_window, overlay
from mrrp.ui import NOTICE, md_escape

settings = open_page("pCR prediction from breast MRI")
state = st.session_state
st.caption(
    "Before neoadjuvant therapy: how likely is pathological complete response? Upload the pre-treatment DCE-MRI "
    "(pre-contrast and at least two post-contrast phases), optionally the tumour mask and the clinical variables."
)
st.warning(NOTICE, icon=":material/science:")


@st.cache_resource(show_spinner=False)
def pcr_bundle(path: str):
    from mrrp.pcr.bundle import load_pcr_bundle

    return load_pcr_bundle(path)


@st.cache_data(show_spinner=False, max_entries=8)
def predict_cached(mri: tuple[str, ...], mask: str | None, clinical_json: str, model: str) -> PCRPrediction:
    clinical = json.loads(clinical_json)
    return predict_files(pcr_bundle(model), list(mri), mask=mask, clinical=clinical)


try:
    bundle = pcr_bundle(str(DEFAULT_MODEL_DIR))
except InputError as exc:
    st.error(f"{md_escape(exc)} Build it with `python -m mrrp.pcr.build`.")
    st.stop()

# --- the MRI ------------------------------------------------------------------------------------------
mri_paths: list = []
mask_path = None
source = st.radio("MRI source", ["Upload", "Demo MRI patient"], horizontal=True, key="pcr_source")
if source == "Demo MRI patient":
    with st.spinner("Preparing the demo MRI patients (first time only, a few seconds)…"):
        demos = ensure_pcr_demos(settings.cache_dir)
    title = st.selectbox("Demo patient", list(demos), key="pcr_demo_pick")
    if st.button("Use this demo MRI patient", key="pcr_demo_load"):
        state["pcr_demo"] = title
        for name, value in form_values_from_record(read_clinical_json(demos[title].clinical)).items():
            state[f"pcr_clin_{name}"] = value
    chosen = state.get("pcr_demo")
    if chosen in demos:
        use_mask = st.checkbox("Use the demo's tumour mask", value=True, key="pcr_demo_mask")
        mri_paths, mask_path = [demos[chosen].mri], demos[chosen].mask if use_mask else None
        st.caption(
            f"Demo: {chosen} — a zip of a DICOM series (identifiers stripped on reading)"
            + (" and a tumour mask." if use_mask else "; no mask, so the attention is the model's own.")
        )
else:
    col_mri, col_mask = st.columns(2)
    mri_files = col_mri.file_uploader(
        "MRI: a zip of the DICOM series, its .dcm files, one 4D NIfTI or one 3D NIfTI per phase",
        type=MRI_UPLOAD_TYPES,
        accept_multiple_files=True,
        key="pcr_mri_upload",
        help="3D NIfTI phases are read in name order (phase_0, phase_1, …): pre-contrast first.",
    )
    mask_file = col_mask.file_uploader(
        "Tumour mask (optional): NIfTI on the MRI's grid", type=MASK_UPLOAD_TYPES, key="pcr_mask_upload"
    )
    try:
        if mri_files:
            mri_paths = save_uploads([(f.name, f.getvalue()) for f in mri_files], settings.upload_dir)
        if mask_file is not None:
            mask_path = save_uploads([(mask_file.name, mask_file.getvalue())], settings.upload_dir)[0]
    except InputError as exc:
        st.error(md_escape(exc))
    except OSError:
        st.error("The upload could not be saved on this computer (disk full or not writable).")

# --- clinical variables -------------------------------------------------------------------------------
with st.expander("Clinical variables (leave 'unknown' where not known)", expanded=True):
    cols = st.columns(5)
    form: dict[str, object] = {}
    for i, f in enumerate(PCR_CLINICAL_FIELDS):
        col, key = cols[i % 5], f"pcr_clin_{f.name}"
        # Defaults live in session state (not in the widget call) so a demo patient can fill the form.
        if f.kind == "numeric" and not f.integer:
            state.setdefault(key, None)
            form[f.name] = col.number_input(
                f"{f.label} ({f.unit})",
                min_value=float(f.minimum),
                max_value=float(f.maximum),
                step=1.0,
                key=key,
                placeholder=UNKNOWN,
                help=f"{f.minimum:g}–{f.maximum:g} {f.unit}; empty = unknown",
            )
        else:
            state.setdefault(key, UNKNOWN)
            form[f.name] = col.selectbox(f.label, form_options(f.name), key=key)
try:
    clinical = record_from_form(form)
except InputError as exc:
    st.error(md_escape(exc))
    st.stop()

if not mri_paths:
    st.info("Upload an MRI or pick a demo MRI patient to see the prediction.")
    st.stop()

# --- prediction -----------------------------------------------------------------------------------------
with stop_on_error(), st.spinner("Reading the MRI and predicting…"):
    pred = predict_cached(
        tuple(str(p) for p in mri_paths),
        None if mask_path is None else str(mask_path),
        json.dumps(clinical, sort_keys=True),
        str(DEFAULT_MODEL_DIR),
    )

lo, hi = pred.interval
left, right = st.columns([1, 2])
with left:
    st.metric("pCR probability", f"{100 * pred.probability:.0f}%", help=bundle.config["interval_method"])
    st.write(f"Interval {100 * lo:.0f}–{100 * hi:.0f}%.")
    side = "above" if pred.above_threshold else "below"
    st.write(
        f"**{side.capitalize()}** the operating threshold of {100 * pred.threshold:.0f}% "
        f"({bundle.config['threshold_rule']})."
    )
with right:
    st.subheader("Stage by stage")
    short = {"image_only": "Image only", "guided": "Guided", "with_clinical": "With clinical"}
    for col, stage in zip(st.columns(len(pred.stages)), pred.stages, strict=True):
        col.metric(short[stage.key], f"{100 * stage.probability:.0f}%", help=stage.label)
    st.caption("Image only → guided attention → with clinical variables; the last is the reported probability.")

for note in pred.notes:
    (st.warning if "No tumour mask" in note else st.info)(md_escape(note))

# --- attention -----------------------------------------------------------------------------------------
st.subheader("Where the model looked")
post, sub = pred.post_contrast, pred.background  # first post-contrast phase; early subtraction (for the MIP)
window = display_window(post)
top = float(pred.attention.max())
n_slices = pred.attention.shape[2]
k = st.slider(
    "Axial slice (inferior → superior)", 1, n_slices, best_slice(pred.attention, pred.mask) + 1, key="pcr_slice"
)
col_slice, col_mip = st.columns(2)
mask2d = axial(pred.mask, k - 1) if pred.mask is not None else None
col_slice.image(
    overlay(axial(post, k - 1), axial(pred.attention, k - 1), window=window, attention_max=top, mask=mask2d),
    caption=f"Slice {k} of {n_slices}: first post-contrast phase with attention"
    + ("; tumour mask in green" if mask2d is not None else ""),
    width="stretch",
)
mip_mask = pred.mask.any(axis=2).T[::-1, ::-1] if pred.mask is not None else None
col_mip.image(
    overlay(
        axial_mip(sub),
        axial_mip(pred.attention),
        window=display_window(sub.max(axis=2)),
        attention_max=top,
        mask=mip_mask,
    ),
    caption="Maximum-intensity projection (all slices) of the early subtraction and of the attention",
    width="stretch",
)
st.image(colour_bar(), caption="attention: low → high (not drawn below 10% of the maximum)", width=256)
st.caption(
    f"Patient's right is on the left of the image (radiological view). Input: {pred.source_format}, "
    f"{pred.n_phases} phases, native voxels {' x '.join(f'{v:.2g}' for v in pred.native_spacing_mm)} mm."
)
st.download_button(
    "Download the prediction (JSON)",
    json.dumps(pred.to_dict(), indent=2),
    file_name="pcr_prediction.json",
    mime="application/json",
    key="pcr_download",
)
