"""Texts and small helpers shared by the pages (no Streamlit import here)."""

NOTICE = (
    "Research and demonstration software. The bundled models are trained on synthetic data "
    "and are not for clinical decisions."
)

UNEXPECTED = (
    "Something went wrong while processing this input. Your other inputs are kept; "
    "try again, or report the problem with the file name."
)
