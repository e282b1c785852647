"""What the slide-viewer page needs beyond the pipeline: finding and saving slides, drawing
the tissue mask and tile grid on a thumbnail, and the per-tile scores a heatmap can show.

Pure functions of their inputs, so the page stays a description of the screen.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp.errors import InputError
from mrrp.features.store import SlideFeatures

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
# When several files are uploaded together (DICOM series, MIRAX), which one to open.
_MAIN_FILE_PREFERENCE = (".mrxs", ".vms", ".vmu", ".svs", ".ndpi", ".scn", ".bif", ".svslide", ".tif", ".tiff", ".dcm")


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


def demo_slides(cache_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """ "<id> — <title>" → slide path, for the demo patients that have a slide (generated on first use)."""
    from mrrp.io.manifest import read_manifest
    from mrrp.synth.demo import ensure_demo_cohort

    rows = read_manifest(ensure_demo_cohort(cache_dir), require_outcomes=False)
    return {f"{r.patient_id} — {r.extra.get('demo_title', '')}": r.slide_path for r in rows if r.slide_path}


def safe_filename(name: str) -> str:
    """A file name that is safe on disk: no folders, no control characters; unicode kept."""
    base = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    base = re.sub(r"[\x00-\x1f\x7f/:*?\"<>|]", "_", base).strip(" .")
    return base[:200] or "slide"


@dataclass(frozen=True)
class UploadedFileData:
    name: str
    data: bytes


def save_uploads(files: Iterable[UploadedFileData], upload_dir: str | os.PathLike[str]) -> Path:
    """Save uploaded files into one content-addressed folder and return the main file's path.

    Writes atomically (temporary name, then rename) so a half-written upload is never opened.
    The same upload saved twice lands at the same path, so the feature cache hits.
    """
    files = list(files)
    if not files:
        raise InputError("No file was uploaded.")
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(safe_filename(f.name).encode())
        h.update(hashlib.sha256(f.data).digest())
    folder = Path(upload_dir) / h.hexdigest()[:24]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in files:
        target = folder / safe_filename(f.name)
        if not target.exists() or target.stat().st_size != len(f.data):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(f.data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        paths.append(target)
    return choose_main_file(paths)


def choose_main_file(paths: list[Path]) -> Path:
    """The file to open among several uploaded together (e.g. a .mrxs with its data folder)."""
    for ext in _MAIN_FILE_PREFERENCE:
        for p in paths:
            if p.suffix.lower() == ext:
                return p
    return paths[0]


def overlay_mask(
    thumbnail: np.ndarray,
    mask_on_thumb: np.ndarray,
    colour: tuple[int, int, int] = (0, 170, 90),
    alpha: float = 0.35,
) -> np.ndarray:
    """Tint ``mask_on_thumb`` (H, W) bool in ``colour`` over ``thumbnail`` (H, W, 3) uint8, and outline it."""
    from scipy import ndimage as ndi

    out = thumbnail.astype(np.float32).copy()
    c = np.asarray(colour, np.float32)
    out[mask_on_thumb] = (1 - alpha) * out[mask_on_thumb] + alpha * c
    edge = mask_on_thumb & ~ndi.binary_erosion(mask_on_thumb)
    out[edge] = c
    return out.clip(0, 255).astype(np.uint8)


def draw_tile_grid(
    thumbnail: np.ndarray,
    thumb_downsample: float,
    coords_l0: np.ndarray,
    tile_size_l0: int,
    colour: tuple[int, int, int] = (20, 90, 160),
) -> np.ndarray:
    """Outline each tile (level-0 ``coords_l0`` (N, 2), side ``tile_size_l0``) on the thumbnail."""
    out = thumbnail.copy()
    h, w = out.shape[:2]
    c = np.asarray(colour, np.uint8)
    x0 = np.floor(coords_l0[:, 0] / thumb_downsample).astype(int)
    y0 = np.floor(coords_l0[:, 1] / thumb_downsample).astype(int)
    x1 = np.ceil((coords_l0[:, 0] + tile_size_l0) / thumb_downsample).astype(int) - 1
    y1 = np.ceil((coords_l0[:, 1] + tile_size_l0) / thumb_downsample).astype(int) - 1
    for a, b, e, f in zip(x0, y0, np.minimum(x1, w - 1), np.minimum(y1, h - 1), strict=True):
        if a >= w or b >= h:
            continue
        out[b, a : e + 1] = c
        out[f, a : e + 1] = c
        out[b : f + 1, a] = c
        out[b : f + 1, e] = c
    return out


def tile_scores(features: SlideFeatures) -> dict[str, np.ndarray]:
    """Per-tile scores the pipeline produces before any model: label → (N,) float.

    - tissue fraction: share of the tile covered by detected tissue;
    - feature norm: L2 norm of the encoder embedding (how strongly the ImageNet filters respond,
      high on dense cellular texture, low on fat and blank stroma).
    """
    return {
        "Tissue fraction": features.tissue_fraction.astype(np.float32),
        "Feature norm (encoder embedding L2)": np.linalg.norm(features.features, axis=1).astype(np.float32),
    }


def format_metadata(info) -> list[tuple[str, str]]:
    """(label, value) rows for a slide's metadata table, in clinician wording."""
    mpp = (
        f"{info.mpp:.4g} µm/pixel" + (" (entered by user)" if info.mpp_source == "user" else "")
        if info.mpp is not None
        else "not recorded"
    )
    rows = [
        ("File", info.name),
        ("Format", info.vendor),
        ("Size", f"{info.width_px:,} × {info.height_px:,} pixels"),
        ("Resolution", mpp),
        ("Objective", f"{info.objective_power:g}x" if info.objective_power else "not recorded"),
        ("Pyramid levels", str(info.level_count)),
        ("File size", f"{info.file_size_bytes / 1e6:,.1f} MB"),
    ]
    if info.width_mm is not None:
        rows.insert(3, ("Physical size", f"{info.width_mm:.1f} × {info.height_mm:.1f} mm"))
    return rows
