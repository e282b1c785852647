"""What the dashboard pages compute, importable without a Streamlit server.

The pages in ``pages/`` only gather inputs, call these modules and draw; everything that can be
tested without a browser lives here (intake, case history, charts, export, model choice).
"""
