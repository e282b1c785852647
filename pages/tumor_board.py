"""Tumor board: reviewed cases side by side in type large enough for a projector, each one click away
from its full review."""

from __future__ import annotations

import streamlit as st

from mrrp.dashboard.history import CaseHistory, HistoryError, history_path
from mrrp.dashboard.models import active_model_path, is_bundled
from mrrp.dashboard.shell import require_shell
from mrrp.dashboard.tumorboard import case_card, survival_figure
from mrrp.ui import NOTICE, html_escape, md_escape
from mrrp.vocabulary import RISK_GROUP_COLOURS

MAX_CASES = 6
REVIEW_PAGE = "pages/patient_review.py"

require_shell()  # before anything is drawn: deep links still get the sidebar and notice

# Projector type: the numbers a room reads from the back are 2–3x body text; labels stay quiet.

st.markdown(
    """
<style>
.mrrp-board { font-size: 1.35rem; line-height: 1.35; border: 1px solid #d9d9d9; border-radius: 10px;
  padding: 1rem 1.2rem; margin-bottom: 0.6rem; }
.mrrp-board .who { font-size: 1.6rem; font-weight: 600; }
.mrrp-board .when { font-size: 1rem; color: #666; }
.mrrp-board .group { font-size: 2.6rem; font-weight: 700; margin: 0.3rem 0; }
.mrrp-board .label { font-size: 0.95rem; color: #555; text-transform: uppercase; letter-spacing: 0.04em;
  margin-top: 0.6rem; }
.mrrp-board .big { font-size: 2.1rem; font-weight: 600; }
.mrrp-board .small { font-size: 1.05rem; color: #444; }
</style>
""",
    unsafe_allow_html=True,
)

st.title("Tumor board")
try:
    listing = CaseHistory(history_path()).listing(limit=50)
except HistoryError as exc:
    st.error(md_escape(exc))
    st.stop()
cases = listing.cases
if listing.notice:  # rows that cannot be read, a read-only file: said, every other case still shown
    st.warning(md_escape(listing.notice))

if is_bundled(active_model_path()) or any(case_card(c).from_bundled_model for c in cases):
    st.warning(NOTICE, icon=":material/science:")

if not cases:
    st.info(
        "No reviewed cases yet. Review a patient on the **Patient review** page (in the sidebar): every "
        "reviewed case is saved to the case history and can be shown here side by side."
    )
    st.stop()

by_id = {c.case_id: c for c in cases}
chosen = st.multiselect(
    "Cases to show",
    list(by_id),
    default=list(by_id)[:3],
    format_func=lambda cid: by_id[cid].label,
    max_selections=MAX_CASES,
    key="board_cases",
    help="The latest three cases are shown first; pick up to six.",
)
if not chosen:
    st.info("Choose one or more cases above.")
    st.stop()

records = [by_id[cid] for cid in chosen]
for column, record in zip(st.columns(len(records)), records, strict=True):
    card = case_card(record)
    colour = RISK_GROUP_COLOURS.get(card.risk_group, "#333")
    top = (
        f'<div class="label">Largest contribution</div><div class="small">{html_escape(card.top_contribution)}</div>'
        if card.top_contribution
        else ""
    )
    with column:
        st.markdown(
            f"""
<div class="mrrp-board">
  <div class="who">{html_escape(card.title)}</div>
  <div class="when">{html_escape(card.created)}</div>
  <div class="group" style="color:{colour}">{html_escape(card.risk_group.capitalize())} risk</div>
  <div class="small">{html_escape(card.percentile)}</div>
  <div class="label">{html_escape(card.recurrence_title)}</div>
  <div class="big">{html_escape(card.recurrence)}</div>
  <div class="small">{html_escape(card.recurrence_other)}</div>
  <div class="label">Data</div>
  <div class="small">{html_escape(card.compensated)}</div>
  {top}
  <div class="label">Model</div>
  <div class="small"><code>{html_escape(card.model_version)}</code></div>
</div>
""",
            unsafe_allow_html=True,
        )
        if st.button("Open full review", key=f"open::{card.case_id}", type="primary", width="stretch"):
            st.session_state["open_case_id"] = card.case_id
            st.switch_page(REVIEW_PAGE)

st.subheader("Recurrence-free survival")
st.plotly_chart(survival_figure(records), width="stretch", key="board_curves")
st.caption("Lines: each case's estimate; shaded: its uncertainty band across the ensemble's fold models.")
