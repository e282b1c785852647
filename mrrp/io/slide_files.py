"""Which files are slides: the extensions offered for upload and slides in a local folder. (The file to
open among several uploaded together, a DICOM series or a MIRAX .mrxs with its data folder, is chosen
where uploads are saved: :func:`mrrp._uploads.choose_main_file`.)

File names only; nothing here opens a slide (that is :func:`mrrp.io.slides.open_slide`).
"""

from __future__ import annotations

import os
from pathlib import Path

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


def list_local_slides(folder: str | os.PathLike[str], max_depth: int = 2) -> list[Path]:
    """Slide files under ``folder`` (up to ``max_depth`` levels deep), sorted by name.

    A DICOM WSI folder is listed once (its first file), since OpenSlide opens the series from any file.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
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
            if ext not in SLIDE_EXTENSIONS:
                continue
            if ext == ".dcm":
                if p.parent in dicom_dirs:
                    continue
                dicom_dirs.add(p.parent)
            found.append(p)
    return sorted(found, key=lambda p: str(p.relative_to(root)).lower())
