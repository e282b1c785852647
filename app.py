"""mrrp dashboard entry point: navigation over pages/ and the sidebar (active model, version, notice). Only draws."""

from pathlib import Path

import streamlit as st

from mrrp import __version__
from mrrp.dashboard.models import (
    BUNDLED_MODEL_DIR,
    SESSION_KEY,
    available_models,
    is_bundled,
    load_trusted_model,
    model_error_message,
    model_version,
)
from mrrp.dashboard.shell import mark_shell
from mrrp.errors import InputError
from mrrp.resources import LOGO, bundled_path
from mrrp.ui import NOTICE, md_code, md_escape

st.set_page_config(page_title="mrrp", page_icon=str(bundled_path(LOGO)), layout="wide")
mark_shell()  # pages check it (mrrp.dashboard.shell.require_shell): deep links never skip this sidebar

PAGES = [
    ("pages/patient_review.py", "Patient review", ":material/person:"),
    ("pages/slide_viewer.py", "Slide viewer", ":material/biotech:"),
    ("pages/tumor_board.py", "Tumor board", ":material/groups:"),
    ("pages/cohort.py", "Cohort & performance", ":material/monitoring:"),
    ("pages/model_card.py", "Model card", ":material/description:"),
    ("pages/pcr.py", "pCR from MRI", ":material/radiology:"),
]
# Page paths are relative to this file (as st.Page and st.switch_page read them), not to the working
# directory: an installed copy runs from mrrp/_bundled/. A page file that is not installed (a trimmed
# deployment) is left out of the menu rather than stopping the whole app; the patient review is always there.
APP_DIR = Path(__file__).resolve().parent
pages = [
    st.Page(path, title=title, icon=icon, default=(i == 0))
    for i, (path, title, icon) in enumerate(PAGES)
    if i == 0 or (APP_DIR / path).is_file()
]

with st.sidebar:
    st.markdown(f"**mrrp** {__version__}")
    st.caption("Recurrence-risk review for HR+/HER2− early breast cancer")
    models = available_models()
    labels = list(models)
    current = st.session_state.get(SESSION_KEY, str(BUNDLED_MODEL_DIR))
    index = next((i for i, label in enumerate(labels) if str(models[label]) == current), 0)
    choice = st.selectbox(
        "Model",
        labels,
        index=index,
        key="model_choice",
        help="The bundled demo model, or a site's own bundle from the models folder (MRRP_MODELS_DIR).",
    )
    chosen = str(models[choice])
    try:
        bundle, provenance = load_trusted_model(chosen)
        st.session_state[SESSION_KEY] = chosen
        st.caption(f"Version {md_code(model_version(bundle))}")
        if provenance.trusted:
            st.caption(md_escape(provenance.describe()))
        else:  # loaded only because the site allows unsigned bundles (MRRP_ALLOW_UNSIGNED)
            st.warning(md_escape(provenance.describe()), icon=":material/gpp_maybe:")
    except InputError as exc:
        st.error(md_escape(model_error_message(exc, chosen)))
        st.session_state[SESSION_KEY] = str(BUNDLED_MODEL_DIR)
        chosen = str(BUNDLED_MODEL_DIR)
    if is_bundled(chosen):
        st.warning(NOTICE, icon=":material/science:")
    else:
        st.caption("Site model: check its model card for intended use and validation.")

st.navigation(pages).run()
