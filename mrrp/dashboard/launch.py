"""``mrrp dashboard``: the installed app under ``streamlit run``, as private as ``make run`` in the checkout.

Streamlit reads ``.streamlit/config.toml`` only from the working directory and the user's home, so an
installed copy started anywhere else would run on Streamlit's defaults: usage statistics sent, every network
interface, no XSRF protection. The project's config file ships with the package (mrrp.resources), and every
option in it is handed to ``streamlit run`` as a command-line flag, which outranks any config file. The
working directory is left alone, so relative ``MRRP_*`` folders mean what they mean for the rest of mrrp.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from mrrp.errors import InputError
from mrrp.resources import APP_SCRIPT, STREAMLIT_CONFIG, bundled_path

__all__ = ["dashboard_command", "run_dashboard", "streamlit_flags"]


def _flag_value(value: object) -> str:
    if isinstance(value, bool):  # TOML true/false; streamlit's flags read the same words
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"a Streamlit option of type {type(value).__name__} cannot be passed as a flag")


def streamlit_flags(config: Path | None = None) -> list[str]:
    """Every option of the project's Streamlit config (default: the shipped one) as ``--section.option value``."""
    data = tomllib.loads((config or bundled_path(STREAMLIT_CONFIG)).read_text(encoding="utf-8"))
    flags: list[str] = []
    for section, options in data.items():
        for name, value in options.items():
            flags += [f"--{section}.{name}", _flag_value(value)]
    return flags


def dashboard_command(*, address: str | None = None, port: int | None = None) -> list[str]:
    """The ``streamlit run`` command line for the shipped app; ``address``/``port`` replace the config's."""
    if port is not None and not 1 <= port <= 65535:
        raise InputError(f"--port {port} is not a port number (1–65535).")
    app = bundled_path(APP_SCRIPT)
    if not app.is_file():
        raise InputError(f"The dashboard is not installed with this copy of mrrp ({app} is missing); reinstall mrrp.")
    overrides: list[str] = []
    if address is not None:
        overrides += ["--server.address", address]
    if port is not None:
        overrides += ["--server.port", str(port)]
    # The same interpreter runs streamlit, so the app imports this very mrrp. Later flags win in click.
    return [sys.executable, "-m", "streamlit", "run", str(app), *streamlit_flags(), *overrides]


def run_dashboard(*, address: str | None = None, port: int | None = None) -> int:
    """Serve the dashboard until it is stopped (Ctrl-C); the exit code of ``streamlit run``."""
    process = subprocess.Popen(dashboard_command(address=address, port=port))
    try:
        return process.wait()
    except KeyboardInterrupt:  # the terminal sent Ctrl-C to streamlit too: let it shut down cleanly
        return process.wait()
