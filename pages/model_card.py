"""Model card: what the active model is for, what it was trained on, how well it does, where it fails,
and exactly which files it is (encoder and weight hashes, bundle checksum)."""

from __future__ import annotations

import streamlit as st

from mrrp.dashboard.modelcard import model_card_markdown, model_card_view
from mrrp.dashboard.performance import find_evaluation
from mrrp.dashboard.shell import open_page, require_active_model
from mrrp.ui import NOTICE, md_code, md_escape

settings = open_page("Model card")
bundle, bundled = require_active_model()
evaluation, _ = find_evaluation(bundle, settings.cache_dir)
card = model_card_view(bundle, evaluation, NOTICE if bundled else None)

if card.notice and not bundled:
    st.info(card.notice)
st.markdown(f"### {md_escape(card.name)}")
st.markdown(
    f"Version {md_code(card.version)} · bundle format {card.bundle_format} · written by mrrp {card.mrrp_version}"
)

left, right = st.columns(2)
with left:
    st.subheader("Intended use")
    st.markdown(card.intended_use)
    st.markdown(f"**Not intended for:** {card.not_intended_for}")
    st.subheader("Training data")
    st.markdown(card.training_data)
    if card.training:
        st.table(dict(card.training), border="horizontal")
with right:
    st.subheader("Metrics")
    if card.metrics:
        st.table(dict(card.metrics), border="horizontal")
        st.caption(f"From {card.metrics_source}. The Cohort and performance page has every figure.")
    else:
        st.info("No evaluation of this model was found. Evaluate it on the Cohort and performance page.")
    st.subheader("Limitations")
    st.markdown("\n".join(f"- {x}" for x in card.limitations) or "None listed in the model card.")
    if card.missing_data:
        st.markdown(f"**Missing data:** {card.missing_data}")
    st.markdown(f"**Risk groups:** {card.risk_groups}")

st.subheader("Identity")
st.markdown("**Bundle checksum** (sha256 of the bundle's checksums.json; every file below is verified on load)")
st.code(card.checksum, language=None)
st.markdown("**Encoders**")
st.dataframe(card.encoders, hide_index=True, width="stretch")
st.markdown("**Files and weights**")
st.dataframe(card.weights, hide_index=True, width="stretch")
for key, value in card.extra.items():
    st.markdown(f"**{md_escape(key.replace('_', ' ').capitalize())}:** {md_escape(value)}")

st.download_button(
    "Download the model card (Markdown)",
    data=model_card_markdown(card).encode("utf-8"),
    file_name=f"model_card_{card.name}_{card.checksum[:12]}.md",
    mime="text/markdown",
    key="card_download",
)
