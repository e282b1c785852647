"""Build a folder once, even when several processes ask for it at the same moment.

Two dashboard sessions (or a session and a test worker) may both find the demo patients missing: one
builds them under an exclusive file lock, the other waits on the lock and then finds them done. The
folder is built aside and swapped in whole (mrrp._fs.build_dir_atomically), so a reader never sees a
half-built folder, and a build that fails leaves nothing behind to be mistaken for a finished one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from mrrp._fs import build_dir_atomically

__all__ = ["build_once"]


def build_once(folder: str | os.PathLike[str], build: Callable[[Path], None], *, marker: str) -> Path:
    """``folder``, built by ``build(partial_folder)`` unless ``folder / marker`` already exists.

    ``marker`` is a file inside the folder whose presence means the folder is complete. The lock is ``.<folder name>.lock`` beside the folder (the folder itself is replaced whole,
    so it cannot hold the lock). Raises RuntimeError if ``build`` returns without writing ``marker``,
    since otherwise every later call would build again.
    """
    final = Path(folder)
    if (final / marker).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, also if this process dies
        if (final / marker).is_file():
            return final

        def build_and_check(partial: Path) -> None:
            build(partial)
            if not (partial / marker).is_file():
                raise RuntimeError(f"building '{final}' did not write its marker file '{marker}'")

        return build_dir_atomically(final, build_and_check)
