"""Where the files that ship with mrrp are: the bundled models, the logo, the dashboard and its settings.

The product keeps them at the repository's top level (``app.py``, ``pages/``, ``assets/``,
``.streamlit/config.toml``, ``docs/model_report.json``). A wheel carries a copy of exactly that tree inside
the package, as ``mrrp/_bundled/`` (``setup.py`` copies it at build time), so an installed mrrp needs no
checkout. Both are found from the package through :mod:`importlib.resources` and have the same layout below
their root, so every caller asks for a repository-relative path and gets the right file either way:

- installed from a wheel (``pip install .``): ``<site-packages>/mrrp/_bundled/<path>``;
- a source checkout or an editable install (``make setup``): ``<repository>/<path>``.

Nothing here reads a file or imports anything heavy; the paths may not exist (a trimmed deployment), and
the caller that opens one reports that in its own words.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = [
    "APP_SCRIPT",
    "BUNDLED_DIGESTS",
    "BUNDLED_MODELS",
    "INSTALLED_SUBDIR",
    "LOGO",
    "MODEL_REPORT",
    "PAGES_DIR",
    "SHIPPED",
    "STREAMLIT_CONFIG",
    "bundled_model_dir",
    "bundled_model_name",
    "bundled_path",
    "bundled_root",
]

# Repository-relative paths of what a wheel carries (setup.py copies the same list).
APP_SCRIPT = "app.py"
PAGES_DIR = "pages"
LOGO = "assets/logo.svg"
STREAMLIT_CONFIG = ".streamlit/config.toml"
MODEL_REPORT = "docs/model_report.json"  # the bundled mrrp-demo's evaluation, shown on the performance page
BUNDLED_MODELS = ("mrrp-demo", "pcr-demo")
SHIPPED = (APP_SCRIPT, PAGES_DIR, LOGO, STREAMLIT_CONFIG, MODEL_REPORT, *(f"assets/models/{m}" for m in BUNDLED_MODELS))

# The bundled models' identities, pinned in code: sha256 of each bundle's checksums.json (which holds the
# sha256 of every other file). A bundled model whose files were changed and whose checksums.json was
# rewritten to match passes its integrity check but not this one, so it is refused (mrrp.model.bundle).
# Rebuilding a bundled model (``make model``) changes its digest: update it here in the same commit.
BUNDLED_DIGESTS: dict[str, str] = {
    "mrrp-demo": "903cd11ba2f295e4db671fc82bf0670b23a2ad840d3cc5a676e2ceb4db10b488",
    "pcr-demo": "389649648d20691825d991776a7076000e1ffa1d24f6a00b846ae02ebfb1ffea",
}

INSTALLED_SUBDIR = "_bundled"  # where a wheel puts the shipped tree, inside the package


def bundled_root() -> Path:
    """The folder that holds the shipped tree: the wheel's ``mrrp/_bundled``, else the source checkout.

    A checkout is recognised by its ``assets/models`` folder next to the package. When neither is there
    (a wheel built without its data) the wheel's folder is returned, so a missing file is reported at the
    place an installed copy should have it.
    """
    # mrrp is always installed unzipped (pip never zips), so the traversable is a real folder.
    package = Path(str(resources.files("mrrp")))
    installed = package / INSTALLED_SUBDIR
    if installed.is_dir():
        return installed
    checkout = package.parent
    if (checkout / "assets" / "models").is_dir():
        return checkout
    return installed


def bundled_path(relative: str) -> Path:
    """The shipped file or folder at this repository-relative path (e.g. ``"assets/logo.svg"``)."""
    return bundled_root() / relative


def bundled_model_dir(name: str) -> Path:
    """The folder of a bundled model (``"mrrp-demo"`` or ``"pcr-demo"``)."""
    if name not in BUNDLED_MODELS:
        raise ValueError(f"{name!r} is not a bundled model; bundled: {', '.join(BUNDLED_MODELS)}")
    return bundled_path(f"assets/models/{name}")


def bundled_model_name(path: str | os.PathLike[str]) -> str | None:
    """The bundled model that lives at ``path`` (``"mrrp-demo"`` / ``"pcr-demo"``), else None.

    By location, links resolved: whatever sits in the bundled model's folder is loaded as the bundled
    model and must match its pinned digest; a copy elsewhere is an ordinary (site) bundle.
    """
    where = Path(path).resolve()
    return next((name for name in BUNDLED_MODELS if bundled_model_dir(name).resolve() == where), None)
