"""Every ``MRRP_*`` environment variable, read in one place.

A site configures a deployment without editing code:

| variable | what | default |
|---|---|---|
| ``MRRP_SLIDE_DIR`` | the local slide folder the dashboard lists (multi-GB slides that should not be uploaded) | ``./slides`` |
| ``MRRP_CACHE_DIR`` | feature cache, saved uploads, demo patients | ``$XDG_CACHE_HOME/mrrp``, else ``~/.cache/mrrp`` |
| ``MRRP_HISTORY_DB`` | the dashboard's case history (SQLite) | ``<cache dir>/history.sqlite`` |
| ``MRRP_MODELS_DIR`` | a site's own model bundles, offered beside the bundled model | ``./models`` |
| ``MRRP_TORCH_THREADS`` | torch threads for encoding a patient's slide and images in the dashboard | all cores but one |
| ``MRRP_ENCODER_PRECISION`` | tile encoder precision: ``auto``, ``fp32`` or ``bf16`` | ``auto`` (bf16 only on CPUs with native bf16) |
| ``MRRP_TRUSTED_KEYS`` | a file of the public keys whose signatures on site bundles are trusted, one ``<name> <key>`` a line (``mrrp keygen`` writes them) | none |
| ``MRRP_ALLOW_UNSIGNED`` | any non-empty value: a site bundle that is unsigned or signed by an untrusted key loads, with a warning | off (refused) |
| ``MRRP_DEBUG`` | any non-empty value: the CLI shows the traceback of an unexpected error | off |

:func:`load_settings` reads the environment each time it is called, never at import, so a test (or a
long-running app whose environment changes) sees the current values. Relative folders are relative to
the working directory.

Not settings, and so not here: the ``HF_HUB_OFFLINE``-style variables that mrrp.features.text sets (the
Hugging Face libraries' own switches, forced on so nothing reaches the network) and ``BROWSER_PATH``, which
mrrp.dashboard.export sets for kaleido when it finds a Chromium. mrrp writes them for a library to read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "default_cache_dir", "load_settings"]


@dataclass(frozen=True)
class Settings:
    slide_dir: Path
    cache_dir: Path
    history_db: Path
    models_dir: Path
    torch_threads: int | None  # None: not set (or not a positive whole number), the caller's default applies
    encoder_precision: str
    debug: bool
    trusted_keys: Path | None = None  # MRRP_TRUSTED_KEYS (mrrp.model.signing reads it)
    allow_unsigned: bool = False

    @property
    def upload_dir(self) -> Path:
        """Where uploaded files are saved (content-addressed, inside the cache: safe to delete)."""
        return self.cache_dir / "uploads"


def _cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("MRRP_CACHE_DIR"):
        return Path(env["MRRP_CACHE_DIR"])
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mrrp"


def _positive_int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``env`` (default: the process environment, read now)."""
    env = os.environ if env is None else env
    cache_dir = _cache_dir(env)
    history = env.get("MRRP_HISTORY_DB")
    return Settings(
        slide_dir=Path(env.get("MRRP_SLIDE_DIR", "slides")).expanduser(),
        cache_dir=cache_dir,
        history_db=Path(history).expanduser() if history else cache_dir / "history.sqlite",
        models_dir=Path(env.get("MRRP_MODELS_DIR", "models")).expanduser(),
        torch_threads=_positive_int(env.get("MRRP_TORCH_THREADS")),
        encoder_precision=env.get("MRRP_ENCODER_PRECISION", "auto"),
        debug=bool(env.get("MRRP_DEBUG")),
        trusted_keys=Path(env["MRRP_TRUSTED_KEYS"]).expanduser() if env.get("MRRP_TRUSTED_KEYS") else None,
        allow_unsigned=bool(env.get("MRRP_ALLOW_UNSIGNED")),
    )


def default_cache_dir() -> Path:
    """``$MRRP_CACHE_DIR``, else ``$XDG_CACHE_HOME/mrrp``, else ``~/.cache/mrrp``."""
    return load_settings().cache_dir
