"""Saving uploaded files: safe names, one content-addressed folder per upload, atomic writes.

The same files uploaded twice land at the same paths, so everything keyed by path or content (the
feature cache, a reopened case) finds them again; two sessions uploading different files of the same
name never collide, because the folder is named by the content.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mrrp._fs import atomic_write_bytes
from mrrp.errors import InputError

__all__ = [
    "UploadedFileData",
    "choose_main_file",
    "safe_filename",
    "save_content_addressed",
    "save_uploads",
    "upload_digest",
]

# When several files of one slide are uploaded together (DICOM series, MIRAX), which one to open.
_MAIN_FILE_PREFERENCE = (".mrxs", ".vms", ".vmu", ".svs", ".ndpi", ".scn", ".bif", ".svslide", ".tif", ".tiff", ".dcm")

_FOLDER_HEX_CHARS = 24  # 96 bits of the digest: no two different uploads share a folder in practice


@dataclass(frozen=True)
class UploadedFileData:
    """One uploaded file as the browser sent it: the user's file name and the bytes."""

    name: str
    data: bytes


def safe_filename(name: str) -> str:
    """A file name that is safe on disk: no folders, no control characters; unicode kept."""
    base = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    base = re.sub(r"[\x00-\x1f\x7f/:*?\"<>|]", "_", base).strip(" .")
    return base[:200] or "slide"


def upload_digest(files: Iterable[UploadedFileData]) -> str:
    """Hex sha256 over (safe name, sha256 of bytes) of each file in name order: the folder's name.

    The order of upload does not matter; a renamed or changed file gives another folder.
    """
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(safe_filename(f.name).encode())
        h.update(hashlib.sha256(f.data).digest())
    return h.hexdigest()


def save_content_addressed(files: Iterable[UploadedFileData], root: str | os.PathLike[str]) -> list[Path]:
    """Write ``files`` into ``root/<digest>/`` under their safe names; paths in the order given.

    A file already there with the right size is not written again (the folder name already pins its
    content). Raises InputError when nothing was uploaded.
    """
    files = list(files)
    if not files:
        raise InputError("No file was uploaded.")
    folder = Path(root) / upload_digest(files)[:_FOLDER_HEX_CHARS]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in files:
        target = folder / safe_filename(f.name)
        if not target.exists() or target.stat().st_size != len(f.data):
            atomic_write_bytes(target, f.data)
        paths.append(target)
    return paths


def choose_main_file(paths: list[Path]) -> Path:
    """The file to open among several uploaded together (e.g. a .mrxs with its data folder)."""
    for ext in _MAIN_FILE_PREFERENCE:
        for p in paths:
            if p.suffix.lower() == ext:
                return p
    return paths[0]


def save_uploads(files: Iterable[UploadedFileData], upload_dir: str | os.PathLike[str]) -> Path:
    """Save the files of one uploaded slide (one file, a DICOM series, a MIRAX set) and return the file
    to open among them."""
    return choose_main_file(save_content_addressed(files, upload_dir))
