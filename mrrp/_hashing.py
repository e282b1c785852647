"""sha256 as lowercase hex, of bytes, text (UTF-8) and files.

Cache keys, bundle checksums and model versions are these hex digests; changing how any of them is
computed would invalidate every cache and every shipped bundle, so there is exactly one way here.
(A slide's fingerprint samples the file instead of reading it whole: see mrrp.io.slides.slide_fingerprint.)
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256_bytes", "sha256_file", "sha256_text"]

_BLOCK_BYTES = 1 << 22  # 4 MiB: large enough that Python's per-call overhead vanishes, small in memory


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in blocks so a multi-GB file is never held in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK_BYTES), b""):
            h.update(block)
    return h.hexdigest()
