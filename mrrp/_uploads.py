"""Saving uploaded files: safe names, one content-addressed folder per upload, atomic writes.

Every file is kept: files are placed by their relative path (a directory upload's folders are kept), and
files that share a name but not their bytes are kept apart by content, never one written over another.
The same files uploaded twice land at the same paths, so everything keyed by path or content (the
feature cache, a reopened case) finds them again; two sessions uploading different files of the same
name never collide, because the folder is named by the content.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mrrp._fs import atomic_write_bytes, remove_stale_temp_files
from mrrp.errors import InputError

__all__ = [
    "UploadedFileData",
    "choose_main_file",
    "safe_filename",
    "save_content_addressed",
    "save_uploads",
    "shown_name",
    "upload_digest",
    "upload_relpath",
]

# When several files of one slide are uploaded together (DICOM series, MIRAX), which one to open.
_MAIN_FILE_PREFERENCE = (".mrxs", ".vms", ".vmu", ".svs", ".ndpi", ".scn", ".bif", ".svslide", ".tif", ".tiff", ".dcm")

# The private copies mrrp.case makes of uploaded images and reports to judge them (removed straight away;
# one of a killed session is swept with the stale temporary files).
PRIVATE_COPY_PREFIX = "mrrp-upload-"
_PRIVATE_COPY_NAME = re.compile(re.escape(PRIVATE_COPY_PREFIX))

_FOLDER_HEX_CHARS = 24  # 96 bits of the digest: no two different uploads share a folder in practice


@dataclass(frozen=True)
class UploadedFileData:
    """One uploaded file as the browser sent it: the user's file name and the bytes."""

    name: str
    data: bytes


# Characters that change how a name reads without being seen: bidi overrides, embeddings and isolates
# ("invoice\u202efdp.exe" shows as "invoiceexe.pdf"), zero-width characters and byte-order marks (Cf), line
# and paragraph separators (Zl, Zp) and lone surrogates of an undecodable name (Cs). Removed, not replaced:
# what is left is what the user saw. Control characters (Cc) become "_" in a saved name.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Cs"})


def shown_name(name: str) -> str:
    """``name`` as it may be shown to a person: NFC, without invisible formatting characters (bidi
    overrides, zero-width characters) and with control characters as "_", so what is displayed is what
    the characters are. Folders are kept; :func:`safe_filename` also drops them."""
    kept = []
    for ch in unicodedata.normalize("NFC", name):
        category = unicodedata.category(ch)
        if category not in _INVISIBLE_CATEGORIES:
            kept.append("_" if category == "Cc" else ch)
    return "".join(kept)


def safe_filename(name: str) -> str:
    """A file name that is safe on disk and on screen: no folders, no control or invisible formatting
    characters (see :func:`shown_name`); unicode kept."""
    base = shown_name(Path(name.replace("\\", "/")).name)
    base = re.sub(r"[/:*?\"<>|]", "_", base).strip(" .")
    return _shorten_to_bytes(base, _MAX_NAME_BYTES) or "slide"


_MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name (not characters): room for a ".part" suffix


def _shorten_to_bytes(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` UTF-8 bytes, keeping its extension and whole characters."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, dot, ext = name, "", ""
    room = limit - len((dot + ext).encode())
    cut = stem.encode()[:room].decode("utf-8", errors="ignore")
    return cut + dot + ext


_MAX_FOLDERS = 8  # folders kept from a directory upload's relative path (the deepest ones)


def upload_relpath(name: str) -> PurePosixPath:
    """Where an uploaded file goes inside its upload folder: the relative path a directory upload names
    (Streamlit gives ``"study/phase1/IM0001.dcm"``), every part made safe by :func:`safe_filename`, with
    ``.``, ``..``, empty parts and a leading ``/`` or drive dropped; a plain upload is just its safe name."""
    parts = name.replace("\\", "/").split("/")
    folders = [safe_filename(p) for p in parts[:-1] if p.strip(" .") and not re.fullmatch(r"[A-Za-z]:", p)]
    return PurePosixPath(*folders[-_MAX_FOLDERS:], safe_filename(parts[-1]))


def upload_digest(files: Iterable[UploadedFileData]) -> str:
    """Hex sha256 over (safe relative path, sha256 of bytes) of each file in name order: the folder's name.

    The order of upload does not matter (files sharing a name are ordered by content); a renamed or
    changed file gives another folder.
    """
    h = hashlib.sha256()
    for f, digest in sorted(((f, hashlib.sha256(f.data).digest()) for f in files), key=lambda t: (t[0].name, t[1])):
        h.update(str(upload_relpath(f.name)).encode())
        h.update(digest)
    return h.hexdigest()


def _placements(files: list[UploadedFileData]) -> list[PurePosixPath]:
    """Each file's path inside the upload folder, keeping every file: its relative path, unless another
    file with other bytes has the same one (two phase folders' ``IM0001.dcm`` uploaded as plain files, which
    reach us by base name only) or a folder needs that name; such a file goes one folder down, into a
    folder named by its content (``<relative folder>/<16 hex of sha256>/<name>``). Identical files share
    one path."""
    rels = [upload_relpath(f.name) for f in files]
    shas = [hashlib.sha256(f.data).hexdigest() for f in files]
    contents: dict[PurePosixPath, set[str]] = {}
    for rel, sha in zip(rels, shas, strict=True):
        contents.setdefault(rel, set()).add(sha)
    folders = {parent for rel in rels for parent in rel.parents}
    places = [
        rel if len(contents[rel]) == 1 and rel not in folders else rel.parent / sha[:16] / rel.name
        for rel, sha in zip(rels, shas, strict=True)
    ]
    owner: dict[PurePosixPath, str] = {}
    place_folders = {parent for place in places for parent in place.parents}
    for place, sha in zip(places, shas, strict=True):
        if owner.setdefault(place, sha) != sha or place in place_folders:
            raise InputError(
                f"The uploaded files' names clash ('{place.name}'); put the files in a zip file and upload that."
            )
    return places


def _targets(files: list[UploadedFileData], root: str | os.PathLike[str]) -> list[Path]:
    """Where each file goes: ``root/<digest>/<placement>``; refuses nothing uploaded and clashing names."""
    if not files:
        raise InputError("No file was uploaded.")
    folder = Path(root) / upload_digest(files)[:_FOLDER_HEX_CHARS]
    return [folder.joinpath(*place.parts) for place in _placements(files)]


def _write_all(files: list[UploadedFileData], targets: list[Path], root: Path) -> None:
    """Write every file or none: a failure half-way (a full disk) removes what this call wrote, so a
    refused upload leaves nothing in the upload folder. Stale temporary files and private copies of
    killed sessions are swept first."""
    todo = [
        (f, target)
        for f, target in zip(files, targets, strict=True)
        if not (target.is_file() and target.stat().st_size == len(f.data))  # the folder name pins the content
    ]
    if not todo:
        return  # the same upload again (every rerun of a page): nothing to write, nothing to sweep
    remove_stale_temp_files(root, extra=_PRIVATE_COPY_NAME)
    created: list[Path] = []
    try:
        for f, target in todo:
            created.extend(p for p in (target, *target.parents) if root in p.parents and not p.exists())
            atomic_write_bytes(target, f.data)  # creates the folders on the way
    except BaseException:
        for p in sorted(set(created), key=lambda p: len(p.parts), reverse=True):  # files before their folders
            with contextlib.suppress(OSError):
                if p.is_dir():
                    p.rmdir()
                else:
                    p.unlink()
        raise


def save_content_addressed(files: Iterable[UploadedFileData], root: str | os.PathLike[str]) -> list[Path]:
    """Write ``files`` into ``root/<digest>/``, every one of them, under their safe relative paths (see
    :func:`_placements` for files sharing a name); paths in the order given.

    A file already there with the right size is not written again (the folder name already pins its
    content). Raises InputError when nothing was uploaded; nothing is left behind when it raises.
    """
    files = list(files)
    targets = _targets(files, root)
    _write_all(files, targets, Path(root))
    return targets


def choose_main_file(paths: list[Path]) -> Path:
    """The file to open among several uploaded together (e.g. a .mrxs with its data folder).

    Raises InputError when they are several slides (two .svs files, say): analysing one of them and
    quietly ignoring the others would be a wrong result. Several DICOM files are one slide's series.
    """
    for ext in _MAIN_FILE_PREFERENCE:
        found = list(dict.fromkeys(p for p in paths if p.suffix.lower() == ext))
        if len(found) > 1 and ext != ".dcm":
            names = ", ".join(f"'{p.name}'" for p in found[:3]) + (" …" if len(found) > 3 else "")
            raise InputError(f"{len(found)} slides were uploaded together ({names}); upload one slide at a time.")
        if found:
            return found[0]
    return paths[0]


def save_uploads(files: Iterable[UploadedFileData], upload_dir: str | os.PathLike[str]) -> Path:
    """Save the files of one uploaded slide (one file, a DICOM series, a MIRAX set) and return the file
    to open among them; an upload refused (several slides, clashing names) writes nothing."""
    files = list(files)
    targets = _targets(files, upload_dir)
    main = choose_main_file(targets)
    _write_all(files, targets, Path(upload_dir))
    return main
