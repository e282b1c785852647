"""Where things live on this machine. Read from environment variables so a site can
configure a deployment without editing code:

- ``MRRP_SLIDE_DIR``: the local slide folder the dashboard lists (for multi-GB slides that
  should not be uploaded). Default ``./slides`` relative to the working directory.
- ``MRRP_CACHE_DIR``: feature cache and saved uploads. Default ``~/.cache/mrrp``.
- ``MRRP_HISTORY_DB``: the dashboard's case history (SQLite). Default ``<MRRP_CACHE_DIR>/history.sqlite``.
- ``MRRP_MODELS_DIR``: a site's own model bundles, offered beside the bundled model. Default ``./models``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mrrp.features.store import default_cache_dir


@dataclass(frozen=True)
class Settings:
    slide_dir: Path
    cache_dir: Path

    @property
    def upload_dir(self) -> Path:
        return self.cache_dir / "uploads"

    @property
    def history_db(self) -> Path:
        from mrrp.dashboard.history import history_path

        return history_path()

    @property
    def models_dir(self) -> Path:
        from mrrp.dashboard.models import models_dir

        return models_dir()


def load_settings() -> Settings:
    return Settings(
        slide_dir=Path(os.environ.get("MRRP_SLIDE_DIR", "slides")).expanduser(),
        cache_dir=default_cache_dir(),
    )
