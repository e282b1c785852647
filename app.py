"""mrrp dashboard entry point: navigation over pages/ and the sidebar. Only draws."""

import streamlit as st

from mrrp import __version__
from mrrp.ui import NOTICE

st.set_page_config(page_title="mrrp", page_icon="assets/logo.svg", layout="wide")

pages = [
    st.Page("pages/slide_viewer.py", title="Slide viewer", icon=":material/biotech:", default=True),
]

with st.sidebar:
    st.markdown(f"**mrrp** {__version__}")
    st.caption("Recurrence-risk review for HR+/HER2− early breast cancer")
    st.warning(NOTICE, icon=":material/science:")

st.navigation(pages).run()
