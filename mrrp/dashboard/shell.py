"""Keep every page inside the app shell (navigation, sidebar, notice), even when opened by a deep link.

Streamlit treats an app that has a ``pages/`` folder as an old-style multipage app until its main script
has called ``st.navigation`` once in this server process. So the very first request of a freshly started
server, if it is a deep link such as ``/slide_viewer``, runs that page file on its own: no sidebar, no
model choice and no not-for-clinical-use notice. :func:`require_shell` detects that and reruns through
``app.py`` (Streamlit's documented ``st.navigation`` path) before the page draws anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mrrp.model.bundle import LoadedBundle
    from mrrp.settings import Settings

SHELL_KEY = "_mrrp_shell"  # set by app.py in every run, before the page runs


def mark_shell() -> None:
    """Called by app.py: this session's runs go through the shell."""
    import streamlit as st

    st.session_state[SHELL_KEY] = True


def require_shell() -> None:
    """Call first in every page (open_page does): rerun through app.py when Streamlit ran this page on its own."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    if not st.session_state.get(SHELL_KEY) and PagesManager.uses_pages_directory:
        # The flag is Streamlit's switch between page-folder and st.navigation apps; st.navigation sets it
        # to False on its first call. Setting it here and rerunning gives the same state one run earlier.
        PagesManager.uses_pages_directory = False
        st.rerun()


def open_page(title: str) -> Settings:
    """Start a page: inside the app shell before anything is drawn, then its title; returns the settings."""
    import streamlit as st

    from mrrp.settings import load_settings

    require_shell()  # deep links still get the sidebar and notice
    st.title(title)
    return load_settings()


def require_active_model() -> tuple[LoadedBundle, bool]:
    """(this session's model, whether it is the bundled one) for a page that needs a model.

    A bad bundle shows its sentence and stops the page; the bundled model, trained on synthetic data,
    gets the not-for-clinical-use notice here, so every model page shows it the same way.
    """
    import streamlit as st

    from mrrp.dashboard.models import active_model, is_bundled
    from mrrp.errors import InputError
    from mrrp.ui import NOTICE, md_escape

    try:
        bundle = active_model()
    except InputError as exc:
        st.error(md_escape(exc))
        st.stop()
    bundled = is_bundled(bundle.path)
    if bundled:
        st.warning(NOTICE, icon=":material/science:")
    return bundle, bundled


@contextmanager
def stop_on_error() -> Iterator[None]:
    """Run a step the rest of the page needs: if it fails, show why (never a traceback) and stop the page.

    The clinician's sentence for an input problem (shown literally: it embeds file names and values), the
    generic apology for anything else. Streamlit's own stop and rerun are BaseExceptions and pass through.
    """
    import streamlit as st

    from mrrp.errors import InputError
    from mrrp.ui import UNEXPECTED, md_escape

    try:
        yield
    except InputError as exc:
        st.error(md_escape(exc))
        st.stop()
    except Exception:
        st.error(UNEXPECTED)
        st.stop()
