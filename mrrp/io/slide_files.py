"""Which files are slides: the extensions offered for upload and slides in a local folder. (The file to
open among several uploaded together, a DICOM series or a MIRAX .mrxs with its data folder, is chosen
where uploads are saved: :func:`mrrp._uploads.choose_main_file`.)

File names only; nothing here opens a slide (that is :func:`mrrp.io.slides.open_slide`). Links are resolved, and a
local slide that leads outside its folder is neither listed nor opened.
"""

from __future__ import annotations

import os
from pathlib import Path

from mrrp.errors import SlideError, SlideNotFoundError

# Main files of the formats OpenSlide reads, plus plain images. Companion files of
# multi-file formats (MIRAX .dat, VMS .jpg) are not listed on their own.
SLIDE_EXTENSIONS = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".vms",
    ".vmu",
    ".scn",
    ".mrxs",
    ".svslide",
    ".bif",
    ".dcm",
    ".png",
    ".jpg",
    ".jpeg",
)
# What an upload widget accepts (no dots): the main files plus the MIRAX/VMS companions uploaded with them.
SLIDE_UPLOAD_TYPES: tuple[str, ...] = tuple(e.lstrip(".") for e in SLIDE_EXTENSIONS) + ("dat", "ini", "xml")


class SlideOutsideFolderError(SlideError):
    """A local slide is a link to a file outside the local slide folder (e.g. ``x.svs -> /etc/passwd``)."""


def _inside(path: Path, root_resolved: Path) -> bool:
    """Whether ``path``, every link resolved, is a file inside ``root_resolved``."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link or a loop
        return False
    return target.is_file() and target.is_relative_to(root_resolved)


def resolve_local_slide(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` (relative to ``folder``, or absolute) when it is a slide file inside ``folder`` once every link
    is resolved; a link that leads out of the folder is refused (SlideOutsideFolderError), a missing file too.

    The path itself is returned (not its target), so names shown to the user stay the ones in the folder.
    """
    root = Path(folder)
    candidate = Path(path) if Path(path).is_absolute() else root / path
    if not candidate.exists() and not candidate.is_symlink():
        raise SlideNotFoundError(f"The slide '{candidate.name}' is not in the local slide folder.")
    if not _inside(candidate, root.resolve()):
        raise SlideOutsideFolderError(
            f"The slide '{candidate.name}' points to a file outside the local slide folder, so it was not opened."
        )
    return candidate


def list_local_slides(folder: str | os.PathLike[str], max_depth: int = 2) -> list[Path]:
    """Slide files under ``folder`` (up to ``max_depth`` levels deep), sorted by name.

    A DICOM WSI folder is listed once (its first file), since OpenSlide opens the series from any file.
    A file that is a link to somewhere outside ``folder`` (or a dangling link) is not listed: the folder's
    owner decides what can be opened, not a link inside it. Linked folders are not walked into.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    root_resolved = root.resolve()
    found: list[Path] = []
    dicom_dirs: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= max_depth:
            dirnames[:] = []
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            ext = p.suffix.lower()
            if ext not in SLIDE_EXTENSIONS or not _inside(p, root_resolved):
                continue
            if ext == ".dcm":
                if p.parent in dicom_dirs:
                    continue
                dicom_dirs.add(p.parent)
            found.append(p)
    return sorted(found, key=lambda p: str(p.relative_to(root)).lower())
