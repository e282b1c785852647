"""Which model bundle the dashboard uses: the bundled demo model or a site's own bundles.

A site drops bundle folders (written by ``mrrp train``) into its models folder (env
``MRRP_MODELS_DIR``, default ``./models``); every folder there that looks like a bundle is offered in
the sidebar. Loading verifies the bundle (:func:`mrrp.model.bundle.open_bundle`: listed files only, each
inside the folder and not a link, every checksum, the bundled model against its pinned digest) and happens
once per process
(``st.cache_resource``): the fold models are read-only after loading, so every session can share them.
The *choice* of model is per session (``st.session_state["model_path"]``), never a module global.
"""

from __future__ import annotations

import os
from pathlib import Path

from mrrp.errors import InputError
from mrrp.model.bundle import BUNDLE_FORMAT, LoadedBundle, load_bundle, recover_bundle
from mrrp.model.signing import Provenance, require_trusted
from mrrp.resources import BUNDLED_DIGESTS, bundled_model_dir
from mrrp.settings import load_settings

BUNDLED_MODEL_DIR = bundled_model_dir("mrrp-demo")  # inside the installed package, or the checkout's assets/
BUNDLED_LABEL = "mrrp-demo (bundled)"
SESSION_KEY = "model_path"


def models_dir() -> Path:
    """The site models folder: ``$MRRP_MODELS_DIR``, else ``./models`` (mrrp.settings)."""
    return load_settings().models_dir


def _looks_like_bundle(folder: Path) -> bool:
    """Cheap check (no checksum pass) used for listing; full verification happens on load."""
    if not (folder / "checksums.json").is_file() or not (folder / "config.json").is_file():
        return False
    try:
        import json

        return json.loads((folder / "config.json").read_text()).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError):
        return False


def available_models(models_dir_: Path | None = None) -> dict[str, Path]:
    """Label → bundle folder: the bundled model first, then every bundle under the site models folder.

    Folders named ``*.partial`` / ``*.previous`` (a bundle being written or replaced) are skipped.
    """
    out: dict[str, Path] = {BUNDLED_LABEL: BUNDLED_MODEL_DIR}
    root = models_dir_ if models_dir_ is not None else models_dir()
    if root.is_dir():
        for backup in root.glob("*.previous"):  # a replacement killed mid-swap: list the bundle it kept
            recover_bundle(backup.with_name(backup.name.removesuffix(".previous")))
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name.endswith((".partial", ".previous")) or folder.name.startswith("."):
                continue
            if folder.resolve() == BUNDLED_MODEL_DIR.resolve() or not _looks_like_bundle(folder):
                continue
            out[f"{folder.name} (site model)"] = folder
    return out


def is_bundled(path: str | os.PathLike[str]) -> bool:
    """True for the bundled demo model (or a byte-identical copy of it), which is trained on synthetic data
    and carries the notice: its checksum is the one pinned in the package (mrrp.resources.BUNDLED_DIGESTS),
    never merely its location or name."""
    from mrrp.model.bundle import bundle_checksum

    try:
        return bundle_checksum(path) == BUNDLED_DIGESTS["mrrp-demo"]
    except OSError:
        return False


def model_error_message(error: InputError, chosen: str | os.PathLike[str]) -> str:
    """The sidebar's sentence for a model that cannot be loaded, saying what is used instead."""
    if Path(chosen) == BUNDLED_MODEL_DIR:
        return f"{error} No model can be used until this is fixed."
    return f"{error} Using the bundled model instead."


def model_version(bundle: LoadedBundle) -> str:
    """``name@checksum[:12]``, the same string a Prediction carries."""
    return f"{bundle.config.get('name', bundle.path.name)}@{bundle.checksum[:12]}"


def _load_uncached(path: str) -> LoadedBundle:
    from mrrp._threads import torch_threads

    with torch_threads(1):
        return load_bundle(path)


try:  # Streamlit is optional: the package is usable from the CLI and tests without it.
    import streamlit as st

    @st.cache_resource(show_spinner="Loading the model…", max_entries=4)
    def load_model(path: str) -> LoadedBundle:
        """The bundle at ``path``, loaded and verified once per process and shared read-only by every session."""
        return _load_uncached(path)

except ImportError:  # pragma: no cover - streamlit is in requirements.txt
    import functools

    @functools.lru_cache(maxsize=4)
    def load_model(path: str) -> LoadedBundle:
        return _load_uncached(path)


def _load_encoders_uncached() -> tuple:
    from mrrp.features.encoders import get_encoder
    from mrrp.features.text import get_sentence_encoder

    return get_encoder(), get_sentence_encoder()


try:
    import streamlit as st

    @st.cache_resource(show_spinner="Loading the image and text encoders…")
    def load_encoders() -> tuple:
        """(tile/ultrasound image encoder, sentence encoder), loaded once per process and shared by every session."""
        return _load_encoders_uncached()

except ImportError:  # pragma: no cover
    load_encoders = _load_encoders_uncached


def active_model_path() -> Path:
    """The bundle this session chose in the sidebar (default: the bundled model)."""
    import streamlit as st

    chosen = st.session_state.get(SESSION_KEY)
    return Path(chosen) if chosen else BUNDLED_MODEL_DIR


def load_trusted_model(path: str) -> tuple[LoadedBundle, Provenance]:
    """The bundle at ``path`` (loaded once per process) and who vouches for it, checked on every call so a
    change to the site's trusted keys or MRRP_ALLOW_UNSIGNED applies at once. Raises BundleError (an
    InputError) for a bad bundle, UntrustedBundleError for one nobody here vouches for (unless allowed)."""
    bundle = load_model(path)
    return bundle, require_trusted(bundle.path, bundle.checksum)


def active_model() -> LoadedBundle:
    """The LoadedBundle of this session's chosen model. Raises BundleError (an InputError) for a bad or
    untrusted bundle."""
    return load_trusted_model(str(active_model_path()))[0]
