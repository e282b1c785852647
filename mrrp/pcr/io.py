"""Read breast DCE-MRI (DICOM series or NIfTI) and a tumour mask, check their geometry, resample to the working grid.

Accepted inputs (``read_mri``):
- a DICOM series as a folder or a zip: the pre-contrast and at least two post-contrast phases, either as
  one series with TemporalPositionIdentifier per phase or as one series per phase;
- NIfTI: one 4D file (phases along the 4th axis) or several 3D files, one per phase, in phase order
  (a folder or zip of 3D files is read in natural name order: ``phase_0``, ``phase_1``, ... ``phase_10``).

Everything is converted to nibabel's closest-canonical RAS+ orientation, so a DICOM series (LPS) and
a NIfTI file stored in any axis order describe the same voxels the same way. A mask is accepted only
when, after that conversion, it has the MRI's shape, voxel size, orientation and position.

DICOM headers are de-identified (``mrrp.io.ultrasound.deidentify``) the moment each file is parsed;
nothing here logs, and messages name files, never patients. Every failure a user can cause is an
:class:`MRIError` subclass with one sentence for a clinician. Units are in the names (``*_mm``).
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrrp.errors import InputError

# The working grid: a RAS-aligned box of 128 x 128 x 96 mm (one breast with its chest wall) centred on
# the volume, at 2 x 2 x 3 mm. Small enough for a 3D CNN on one CPU thread; tumours of 10 mm or more
# still span several voxels.
WORKING_SPACING_MM = (2.0, 2.0, 3.0)  # (x, y, z) = (R, A, S)
WORKING_SHAPE = (64, 64, 32)
MIN_PHASES = 3  # pre-contrast + at least two post-contrast phases

MAX_FILE_BYTES = 2 * 1024**3  # any single file
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3  # uncompressed, all members
MAX_ZIP_RATIO = 200  # compressed → uncompressed; far above what image data reaches (a zip bomb is ~1000:1)
MAX_VOXELS_PER_PHASE = 64_000_000  # 512 x 512 x 244
MAX_VOXELS_TOTAL = 256_000_000  # all phases: 1 GB as float32

MIN_PLAUSIBLE_VOXEL_MM = 0.1
MAX_PLAUSIBLE_VOXEL_MM = 20.0
GEOMETRY_ATOL_MM = 0.05  # voxel size / position differences below this are rounding, not a different grid
ORIENTATION_ATOL = 1e-3  # direction cosines

ACCEPTED = "a DICOM series (folder or zip) or NIfTI files (.nii, .nii.gz)"


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class MRIError(InputError):
    """An MRI input or its mask cannot be used."""


class MRINotFoundError(MRIError):
    """The path does not exist."""


class EmptyMRIFileError(MRIError):
    """A file has zero bytes."""


class UnsupportedMRIFormatError(MRIError):
    """Not DICOM, NIfTI or a zip of them (or an encoding this installation cannot decode)."""


class CorruptMRIError(MRIError):
    """The file looks like DICOM/NIfTI/zip but cannot be decoded (truncated or damaged)."""


class NotMRIError(MRIError):
    """A DICOM image of another modality (CT, mammography, ultrasound, ...)."""


class TooFewPhasesError(MRIError):
    """Fewer than the pre-contrast plus two post-contrast phases."""


class PhaseGeometryError(MRIError):
    """The phases do not share one grid, or a series' slices are missing, duplicated or unevenly spaced."""


class MRITooLargeError(MRIError):
    """A file, a zip (e.g. a zip bomb) or a volume is beyond the safe limits."""


class MaskError(MRIError):
    """The tumour mask cannot be used."""


class MaskMismatchError(MaskError):
    """The mask's shape, voxel size, orientation or position differs from the MRI's."""


class EmptyMaskError(MaskError):
    """The mask marks no voxel."""


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass
class MRIStudy:
    """One DCE examination in closest-canonical RAS+ voxel order."""

    phases: np.ndarray  # (P, I, J, K) float32, P >= MIN_PHASES, phase 0 = pre-contrast
    affine: np.ndarray  # (4, 4) voxel index → RAS+ millimetres
    source_format: str  # "dicom", "nifti-4d" or "nifti-3d"
    source_name: str  # file or folder name only, never a path or a patient identifier
    removed_identifiers: list[str] = field(default_factory=list)  # DICOM attribute names stripped, not values

    @property
    def n_phases(self) -> int:
        return int(self.phases.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.phases.shape[1:])  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))


@dataclass
class WorkingVolume:
    """One patient on the working grid, ready for the model."""

    channels: np.ndarray  # (3, X, Y, Z) float32: pre-contrast, early enhancement, late change (÷ pre-contrast scale)
    phases: np.ndarray  # (P, X, Y, Z) float32, every phase ÷ the same scale (for display)
    mask: np.ndarray | None  # (X, Y, Z) bool tumour mask on the working grid, or None
    scale: float  # robust pre-contrast intensity (99th percentile inside the body) used to normalise
    native_spacing_mm: tuple[float, float, float]
    native_shape: tuple[int, int, int]
    n_phases: int
    source_format: str
    affine: np.ndarray  # (4, 4) working voxel index → RAS+ mm (axis-aligned, centred on the native volume)


# --------------------------------------------------------------------------------------------------
# Sniffing and collecting files
# --------------------------------------------------------------------------------------------------


def _describe(p: Path) -> str:
    return f"'{p.name}'"


def _natural_key(name: str) -> list[object]:
    """'phase_10' after 'phase_2': numbers compared as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _sniff(p: Path) -> str | None:
    """'dicom', 'nifti', 'zip' or None, from the bytes (extensions are not trusted)."""
    with open(p, "rb") as fh:
        head = fh.read(352)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(p, "rb") as gz:
                head = gz.read(352)
        except (OSError, EOFError):
            return "gzip-damaged"
    if len(head) >= 348:
        for order in ("<", ">"):
            size = int(np.frombuffer(head[:4], dtype=f"{order}i4")[0])
            if size == 348 and head[344:347] in (b"n+1", b"ni1"):
                return "nifti"
            if size == 540 and head[4:7] in (b"n+2", b"ni2"):
                return "nifti"
    return None


_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\xd0\xcf\x11\xe0", "an Office document"),
)


def _unsupported(p: Path) -> UnsupportedMRIFormatError:
    with open(p, "rb") as fh:
        head = fh.read(8)
    what = next((desc for magic, desc in _OTHER_MAGIC if head.startswith(magic)), None)
    if what is not None:
        return UnsupportedMRIFormatError(f"{_describe(p)} is {what}, not an MRI; please provide {ACCEPTED}.")
    return UnsupportedMRIFormatError(f"{_describe(p)} is not an MRI file mrrp can read; please provide {ACCEPTED}.")


def _check_file(p: Path) -> None:
    if not p.exists():
        raise MRINotFoundError(f"The MRI file {_describe(p)} was not found.")
    size = p.stat().st_size
    if size == 0:
        raise EmptyMRIFileError(f"The file {_describe(p)} is empty (0 bytes); it may not have finished copying.")
    if size > MAX_FILE_BYTES:
        raise MRITooLargeError(
            f"The file {_describe(p)} is {size / 1024**3:.1f} GB, more than the {MAX_FILE_BYTES / 1024**3:.0f} GB limit "
            "for one MRI file."
        )


def _safe_extract(zip_path: Path, dest: Path) -> list[Path]:
    """Extract a zip member by member with limits that hold even when the zip's own header lies.

    Members are written under new names (``00001_<basename>``), so '../' or absolute names cannot
    escape ``dest``; the natural order of the original names is kept for phase ordering.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CorruptMRIError(f"The zip file {_describe(zip_path)} is damaged and cannot be opened.") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_ZIP_MEMBERS:
            raise MRITooLargeError(
                f"The zip file {_describe(zip_path)} holds {len(infos)} files, more than the limit of {MAX_ZIP_MEMBERS}."
            )
        declared = sum(i.file_size for i in infos)
        if declared > MAX_ZIP_TOTAL_BYTES:
            raise MRITooLargeError(
                f"The zip file {_describe(zip_path)} unpacks to {declared / 1024**3:.1f} GB, more than the "
                f"{MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GB limit."
            )
        for i in infos:
            if i.file_size > 1_000_000 and i.file_size > MAX_ZIP_RATIO * max(i.compress_size, 1):
                raise MRITooLargeError(
                    f"The zip file {_describe(zip_path)} is compressed {i.file_size // max(i.compress_size, 1)}:1, "
                    "which image data never reaches; it looks like a zip bomb and was not unpacked."
                )
        infos.sort(key=lambda i: _natural_key(i.filename))
        out: list[Path] = []
        written = 0
        for k, info in enumerate(infos):
            base = Path(info.filename.replace("\\", "/")).name
            if not base or base.startswith("."):
                continue  # macOS resource forks (__MACOSX/._x), hidden files
            target = dest / f"{k:05d}_{re.sub(r'[^A-Za-z0-9._-]', '_', base)[:100]}"
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    while block := src.read(1 << 20):
                        written += len(block)
                        if written > MAX_ZIP_TOTAL_BYTES:
                            raise MRITooLargeError(
                                f"The zip file {_describe(zip_path)} unpacks to more than the "
                                f"{MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GB limit."
                            )
                        dst.write(block)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise  # disk full or not writable: not the user's file
                raise CorruptMRIError(
                    f"The zip file {_describe(zip_path)} is damaged (a member cannot be unpacked); please create it again."
                ) from None
            out.append(target)
        return out


def _walk(folder: Path) -> list[Path]:
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"),
        key=lambda p: _natural_key(str(p.relative_to(folder))),
    )
    if len(files) > MAX_ZIP_MEMBERS:
        raise MRITooLargeError(
            f"The folder {_describe(folder)} holds {len(files)} files, more than the limit of {MAX_ZIP_MEMBERS}."
        )
    return files


@contextmanager
def _expanded(sources: Sequence[Path]) -> Iterator[list[Path]]:
    """Every file behind ``sources`` (files, folders, zips), in order; zips unpacked to a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="mrrp-mri-") as tmp:
        files: list[Path] = []
        for k, src in enumerate(sources):
            if not src.exists():
                raise MRINotFoundError(f"The MRI {_describe(src)} was not found.")
            if src.is_dir():
                found = _walk(src)
                if not found:
                    raise UnsupportedMRIFormatError(f"The folder {_describe(src)} is empty; please provide {ACCEPTED}.")
                files.extend(found)
                continue
            _check_file(src)
            if _sniff(src) == "zip":
                dest = Path(tmp) / f"zip{k}"
                dest.mkdir()
                found = _safe_extract(src, dest)
                if not found:
                    raise UnsupportedMRIFormatError(f"The zip file {_describe(src)} holds no files.")
                files.extend(found)
            else:
                files.append(src)
        yield files


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def read_mri(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> MRIStudy:
    """Read one DCE examination from a DICOM folder/zip, one 4D NIfTI, or several 3D NIfTI files (phase order).

    Raises an :class:`MRIError` subclass for anything a user can get wrong (see the module docstring).
    """
    paths = [Path(sources)] if isinstance(sources, (str, os.PathLike)) else [Path(s) for s in sources]
    if not paths:
        raise MRINotFoundError("No MRI was given.")
    name = paths[0].name if len(paths) == 1 else f"{paths[0].name} and {len(paths) - 1} more"
    with _expanded(paths) as files:
        kinds: dict[str, list[Path]] = {"dicom": [], "nifti": []}
        for f in files:
            _check_file(f)
            kind = _sniff(f)
            if kind == "gzip-damaged":
                raise CorruptMRIError(f"The compressed file {_describe(f)} is damaged and cannot be unpacked.")
            if kind in kinds:
                kinds[kind].append(f)
            elif kind == "zip":
                raise UnsupportedMRIFormatError(
                    f"{_describe(f)} is a zip archive found among the image files (or inside another zip); please "
                    "provide it on its own or unpack it."
                )
            elif len(files) == 1:
                raise _unsupported(f)
            # other files inside a folder or zip (reports, thumbnails, .txt) are ignored
        if kinds["dicom"] and kinds["nifti"]:
            raise UnsupportedMRIFormatError(
                f"{_describe(paths[0])} mixes DICOM and NIfTI files; please provide one examination in one format."
            )
        if kinds["dicom"]:
            study = _read_dicom_series(kinds["dicom"], name)
        elif kinds["nifti"]:
            study = _read_nifti_phases(kinds["nifti"], name)
        else:
            raise UnsupportedMRIFormatError(
                f"No DICOM or NIfTI image was found in {_describe(paths[0])}; please provide {ACCEPTED}."
            )
    return study


def _voxel_count_check(shape: Sequence[int], n_phases: int, what: str) -> None:
    per_phase = int(np.prod([int(s) for s in shape[:3]]))
    if per_phase > MAX_VOXELS_PER_PHASE or per_phase * n_phases > MAX_VOXELS_TOTAL:
        dims = " x ".join(str(int(s)) for s in shape[:3])
        raise MRITooLargeError(
            f"{what} is {dims} voxels x {n_phases} phases, beyond the safe limit of "
            f"{MAX_VOXELS_PER_PHASE / 1e6:g} million voxels per phase; please provide a cropped or downsampled series."
        )


def _spacing_check(affine: np.ndarray, what: str) -> None:
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    if (
        not np.all(np.isfinite(affine))
        or np.any(zooms < MIN_PLAUSIBLE_VOXEL_MM)
        or np.any(zooms > MAX_PLAUSIBLE_VOXEL_MM)
    ):
        raise PhaseGeometryError(
            f"{what} does not record a plausible voxel size ({', '.join(f'{z:.3g}' for z in zooms)} mm); "
            "it cannot be placed in space."
        )


def _canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(I, J, K[, P]) data and affine → closest-canonical RAS+ voxel order (axis permutations and flips only)."""
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    ornt = io_orientation(affine)
    out = apply_orientation(data, ornt)
    new_affine = affine @ inv_ornt_aff(ornt, data.shape[:3])
    return np.ascontiguousarray(out), new_affine


def _geometry_difference(shape_a, aff_a, shape_b, aff_b) -> str | None:
    """A clinician-readable description of how grid b differs from grid a, or None if they are the same grid."""
    import nibabel as nib

    if tuple(shape_a) != tuple(shape_b):
        return f"is {' x '.join(map(str, shape_b))} voxels instead of {' x '.join(map(str, shape_a))}"
    za, zb = np.linalg.norm(aff_a[:3, :3], axis=0), np.linalg.norm(aff_b[:3, :3], axis=0)
    if not np.allclose(za, zb, atol=GEOMETRY_ATOL_MM, rtol=1e-3):
        return (
            f"has voxels of {' x '.join(f'{z:.3g}' for z in zb)} mm instead of {' x '.join(f'{z:.3g}' for z in za)} mm"
        )
    if not np.allclose(aff_a[:3, :3] / za, aff_b[:3, :3] / zb, atol=ORIENTATION_ATOL):
        ca, cb = "".join(nib.aff2axcodes(aff_a)), "".join(nib.aff2axcodes(aff_b))
        return f"is oriented differently ({cb} instead of {ca})" if ca != cb else "is tilted differently"
    shift = float(np.linalg.norm(aff_a[:3, 3] - aff_b[:3, 3]))
    if shift > max(GEOMETRY_ATOL_MM, 0.01 * float(za.min())):
        return f"is shifted by {shift:.1f} mm"
    return None


def _read_nifti_file(f: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (I, J, K[, T]) float32, affine) with the voxel limits checked before any data is decoded."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img = nib.load(str(f))
        shape = img.shape
    except (ImageFileError, OSError, EOFError, ValueError) as exc:
        raise CorruptMRIError(f"The NIfTI file {_describe(f)} has a damaged header and cannot be read.") from exc
    if len(shape) == 5 and shape[3] == 1:
        shape = (*shape[:3], shape[4])  # (I, J, K, 1, T): the 5th axis is sometimes used for time
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise UnsupportedMRIFormatError(
            f"The NIfTI file {_describe(f)} has {len(shape)} dimensions; an MRI phase is 3D and a dynamic series 4D."
        )
    _voxel_count_check(shape, shape[3] if len(shape) == 4 else 1, f"The NIfTI file {_describe(f)}")
    affine = np.asarray(img.affine, dtype=np.float64)
    _spacing_check(affine, f"The NIfTI file {_describe(f)}")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except (OSError, EOFError, ValueError, Exception) as exc:  # zlib.error is not an OSError subclass
        raise CorruptMRIError(
            f"The NIfTI file {_describe(f)} is truncated or damaged (its image data cannot be decoded); please export it again."
        ) from exc
    return np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0), affine


def _too_few(n: int, where: str) -> TooFewPhasesError:
    found = "Only one contrast phase was" if n == 1 else f"Only {n} contrast phases were"
    return TooFewPhasesError(
        f"{found} found in {where}; pCR prediction needs the pre-contrast phase and at least two "
        f"post-contrast phases ({MIN_PHASES} in all)."
    )


def _read_nifti_phases(files: list[Path], name: str) -> MRIStudy:
    volumes = [_read_nifti_file(f) for f in files]
    four_d = [f for f, (d, _) in zip(files, volumes, strict=True) if d.ndim == 4 and d.shape[3] > 1]
    if four_d and len(files) > 1:
        raise UnsupportedMRIFormatError(
            f"{_describe(four_d[0])} is a 4D series but other NIfTI files were given with it; provide one 4D file or "
            "one 3D file per phase."
        )
    if four_d:
        data, affine = volumes[0]
        phases = np.moveaxis(data, 3, 0)  # (T, I, J, K)
        fmt = "nifti-4d"
    else:
        first_shape, first_aff = volumes[0][0].shape[:3], volumes[0][1]
        for k, (f, (d, aff)) in enumerate(zip(files, volumes, strict=True)):
            diff = _geometry_difference(first_shape, first_aff, d.shape[:3], aff)
            if diff is not None:
                raise PhaseGeometryError(
                    f"Phase {k + 1} ({_describe(f)}) does not match phase 1 ({_describe(files[0])}): it {diff}; all "
                    "phases must share one grid."
                )
        phases = np.stack([d.reshape(d.shape[:3]) for d, _ in volumes])
        affine = first_aff
        fmt = "nifti-3d"
    if phases.shape[0] < MIN_PHASES:
        raise _too_few(phases.shape[0], f"'{name}'")
    _voxel_count_check(phases.shape[1:], phases.shape[0], f"'{name}'")
    data, affine = _canonical(np.moveaxis(phases, 0, 3), affine)
    return MRIStudy(np.ascontiguousarray(np.moveaxis(data, 3, 0)), affine, fmt, name)


# --- DICOM -------------------------------------------------------------------------------------------

_NOT_MRI = {
    "CT": "a CT image",
    "MG": "a mammogram",
    "US": "an ultrasound image",
    "SM": "a whole-slide microscopy image",
    "CR": "an X-ray (CR) image",
    "DX": "an X-ray (DX) image",
    "PT": "a PET image",
    "NM": "a nuclear medicine image",
    "XA": "an X-ray angiography image",
    "RF": "a fluoroscopy image",
    "OT": "an 'other modality' image",
    "SC": "a secondary capture (screenshot)",
    "RTIMAGE": "a radiotherapy image",
}


def _float_list(value: Any, n: int) -> list[float] | None:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


@dataclass
class _Slice:
    path: Path
    ds: Any
    position: np.ndarray  # (3,) LPS mm
    row_cos: np.ndarray  # (3,) direction of increasing column index
    col_cos: np.ndarray  # (3,) direction of increasing row index
    spacing: tuple[float, float]  # (between rows, between columns) mm
    shape: tuple[int, int]  # (rows, columns)
    removed: list[str]  # identifying attribute names stripped on read (never their values)


def _read_dicom_slice(f: Path) -> _Slice | None:
    """One parsed, de-identified slice; None for non-image objects that may sit beside a series (SR, KO, PR)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from mrrp.io.ultrasound import deidentify

    try:
        ds = pydicom.dcmread(f)
        removed = deidentify(ds)  # before anything else reads the dataset
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptMRIError(f"The DICOM file {_describe(f)} is truncated or damaged and cannot be read.") from exc
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if "PixelData" not in ds:
        sop = ds.get("SOPClassUID")
        if sop is not None and "Image Storage" in str(getattr(sop, "name", "")):
            raise CorruptMRIError(f"The DICOM file {_describe(f)} is truncated (it ends before its image data).")
        return None
    if modality != "MR":
        what = _NOT_MRI.get(modality, f"a '{modality or 'unknown'}' image")
        raise NotMRIError(
            f"The DICOM file {_describe(f)} is {what} (modality {modality or 'not stated'}), not an MRI; "
            "please provide the breast DCE-MRI series."
        )
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise UnsupportedMRIFormatError(
            f"The DICOM file {_describe(f)} is an enhanced multi-frame MR object, which mrrp does not read yet; "
            "please export the series as classic single-frame images or as NIfTI."
        )
    iop = _float_list(ds.get("ImageOrientationPatient"), 6)
    ipp = _float_list(ds.get("ImagePositionPatient"), 3)
    spacing = _float_list(ds.get("PixelSpacing"), 2)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if iop is None or ipp is None or spacing is None or rows <= 0 or cols <= 0:
        raise PhaseGeometryError(
            f"The DICOM file {_describe(f)} does not record where its image lies (position, orientation or pixel "
            "spacing), so the slices cannot be assembled into a volume."
        )
    return _Slice(
        f, ds, np.array(ipp), np.array(iop[:3]), np.array(iop[3:]), (spacing[0], spacing[1]), (rows, cols), removed
    )


def _phase_key(ds: Any) -> tuple[float, float, float]:
    """Order of a phase: temporal position, trigger time, series number (times of day are removed on de-identification)."""

    def num(name: str) -> float:
        try:
            return float(ds.get(name) or 0)
        except (TypeError, ValueError):
            return 0.0

    return num("TemporalPositionIdentifier"), num("TriggerTime"), num("SeriesNumber")


def _assemble(slices: list[_Slice], label: str) -> tuple[np.ndarray, np.ndarray]:
    """One phase's slices → (I=columns, J=rows, K=slices) float32 volume and its RAS+ affine.

    Hand-written because nibabel's DICOM wrappers stop at one series; the geometry is DICOM PS3.3
    C.7.6.2.1.1: voxel (i, j, k) lies at IPP_0 + i·Δcol·row_cos + j·Δrow·col_cos + k·Δslice·normal (LPS).
    """
    from pydicom.pixels import apply_modality_lut

    first = slices[0]
    for s in slices[1:]:
        if (
            s.shape != first.shape
            or not np.allclose(s.row_cos, first.row_cos, atol=ORIENTATION_ATOL)
            or not np.allclose(s.col_cos, first.col_cos, atol=ORIENTATION_ATOL)
            or not np.allclose(s.spacing, first.spacing, atol=1e-3)
        ):
            raise PhaseGeometryError(
                f"The images of {label} differ in size, orientation or pixel spacing; it is not one volume."
            )
    normal = np.cross(first.row_cos, first.col_cos)
    pos = np.array([float(s.position @ normal) for s in slices])
    order = np.argsort(pos, kind="stable")
    slices = [slices[i] for i in order]
    pos = pos[order]
    if len(slices) < 2:
        raise PhaseGeometryError(f"{label.capitalize()} has a single slice; a volume needs several.")
    gaps = np.diff(pos)
    if np.any(gaps < 1e-3):
        raise PhaseGeometryError(
            f"{label.capitalize()} has two images at the same slice position; several phases may share one series "
            "without a TemporalPositionIdentifier."
        )
    step = float(np.median(gaps))
    if np.any(np.abs(gaps - step) > max(GEOMETRY_ATOL_MM, 0.02 * step)):
        raise PhaseGeometryError(
            f"{label.capitalize()} has missing or unevenly spaced slices (every {step:.2f} mm expected)."
        )
    _voxel_count_check((first.shape[1], first.shape[0], len(slices)), 1, label.capitalize())
    try:
        planes = [apply_modality_lut(s.ds.pixel_array, s.ds).astype(np.float32) for s in slices]
    except (NotImplementedError, RuntimeError) as exc:
        syntax = getattr(getattr(first.ds, "file_meta", None), "TransferSyntaxUID", None)
        raise UnsupportedMRIFormatError(
            f"The DICOM files are compressed as '{getattr(syntax, 'name', 'an unknown compression')}', which this "
            "installation cannot decode; please export them uncompressed or as NIfTI."
        ) from exc
    except (ValueError, EOFError, OSError, KeyError, AttributeError, TypeError) as exc:
        raise CorruptMRIError(f"A DICOM file of {label} has damaged image data and cannot be decoded.") from exc
    volume = np.stack([p.T for p in planes], axis=2)  # (columns, rows, slices)
    d_row, d_col = first.spacing
    lps = np.eye(4)
    lps[:3, 0] = first.row_cos * d_col
    lps[:3, 1] = first.col_cos * d_row
    lps[:3, 2] = normal * step
    lps[:3, 3] = slices[0].position
    return volume, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS → RAS


def _read_dicom_series(files: list[Path], name: str) -> MRIStudy:
    slices = [s for f in files if (s := _read_dicom_slice(f)) is not None]
    if not slices:
        raise UnsupportedMRIFormatError(f"The DICOM files in '{name}' contain no images.")
    _voxel_count_check((slices[0].shape[0], slices[0].shape[1], len(slices)), 1, f"'{name}'")
    groups: dict[tuple[str, float], list[_Slice]] = {}
    for s in slices:
        ds = s.ds
        temporal = ds.get("TemporalPositionIdentifier")
        if temporal is None:
            temporal = ds.get("TriggerTime")
        try:
            t = float(temporal) if temporal not in (None, "") else 0.0
        except (TypeError, ValueError):
            t = 0.0
        groups.setdefault((str(ds.get("SeriesInstanceUID", "")), t), []).append(s)
    ordered = sorted(groups.values(), key=lambda g: _phase_key(g[0].ds))
    if len(ordered) < MIN_PHASES:
        raise _too_few(len(ordered), f"'{name}'")
    volumes = [_assemble(g, f"phase {k + 1}") for k, g in enumerate(ordered)]
    shape0, aff0 = volumes[0][0].shape, volumes[0][1]
    for k, (vol, aff) in enumerate(volumes[1:], start=2):
        diff = _geometry_difference(shape0, aff0, vol.shape, aff)
        if diff is not None:
            raise PhaseGeometryError(
                f"In '{name}', phase {k} does not match phase 1: it {diff}. Provide only the DCE phases of one "
                "examination."
            )
    _voxel_count_check(shape0, len(volumes), f"'{name}'")
    data, affine = _canonical(np.stack([v for v, _ in volumes], axis=3), aff0)
    removed = sorted({name for s in slices for name in s.removed})
    return MRIStudy(np.ascontiguousarray(np.moveaxis(data, 3, 0)), affine, "dicom", name, removed)


# --- mask ----------------------------------------------------------------------------------------------


def read_mask(path: str | os.PathLike[str], study: MRIStudy) -> np.ndarray:
    """A tumour mask (NIfTI, non-zero = tumour) on ``study``'s grid → (I, J, K) bool in canonical order."""
    p = Path(path)
    _check_file(p)
    kind = _sniff(p)
    if kind == "gzip-damaged":
        raise CorruptMRIError(f"The compressed mask {_describe(p)} is damaged and cannot be unpacked.")
    if kind != "nifti":
        raise UnsupportedMRIFormatError(f"The tumour mask {_describe(p)} must be a NIfTI file (.nii or .nii.gz).")
    data, affine = _read_nifti_file(p)
    if data.ndim == 4:
        if data.shape[3] != 1:
            raise MaskError(f"The tumour mask {_describe(p)} has {data.shape[3]} volumes; a mask is one 3D volume.")
        data = data[..., 0]
    data, affine = _canonical(data, affine)
    diff = _geometry_difference(study.shape, study.affine, data.shape, affine)
    if diff is not None:
        raise MaskMismatchError(
            f"The tumour mask {_describe(p)} does not match the MRI: it {diff}. Draw it on the MRI's own grid "
            "(same shape, voxel size, orientation and position)."
        )
    mask = data > 0.5
    if not mask.any():
        raise EmptyMaskError(
            f"The tumour mask {_describe(p)} marks no voxel; leave the mask out rather than send an empty one."
        )
    return mask


# --------------------------------------------------------------------------------------------------
# Working grid
# --------------------------------------------------------------------------------------------------


def _to_working_matrix(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset mapping working-grid indices to native voxel indices (for ndimage.affine_transform)."""
    centre = affine @ np.array([*((np.array(shape[:3]) - 1) / 2.0), 1.0])
    ws = np.diag(WORKING_SPACING_MM)
    w_centre = (np.array(WORKING_SHAPE) - 1) / 2.0
    inv = np.linalg.inv(affine)
    matrix = inv[:3, :3] @ ws
    offset = inv[:3, :3] @ (centre[:3] - ws @ w_centre) + inv[:3, 3]
    return matrix, offset


def _antialias_sigma(matrix: np.ndarray) -> np.ndarray:
    """Gaussian sigma (native voxels) per native axis before downsampling: how many native voxels one working step spans."""
    step = np.abs(matrix).max(axis=1)  # native voxels per working voxel, per native axis
    # Going from 1-voxel to step-voxel resolution: the Gaussian whose FWHM adds up to the new voxel size.
    return 0.5 * np.sqrt(np.clip(step**2 - 1.0, 0.0, None))


def to_working(study: MRIStudy, mask: np.ndarray | None = None, *, fast_path: bool = True) -> WorkingVolume:
    """Resample every phase (linear, anti-aliased) and the mask (linear, ≥ 0.5) to the working grid; normalise.

    ``fast_path=False`` always uses the general (oblique) resampler; kept for the benchmark's baseline.
    """
    from scipy import ndimage

    matrix, offset = _to_working_matrix(study.affine, study.shape)
    centre = study.affine @ np.array([*((np.array(study.shape) - 1) / 2.0), 1.0])
    w_affine = np.diag([*WORKING_SPACING_MM, 1.0])
    w_affine[:3, 3] = centre[:3] - np.array(WORKING_SPACING_MM) * (np.array(WORKING_SHAPE) - 1) / 2.0
    sigma = _antialias_sigma(matrix)
    if fast_path and np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-6):
        matrix = np.diag(matrix).copy()  # axis-aligned: scipy's separable zoom-and-shift path is ~5x faster
    phases = []
    for vol in study.phases:
        src = ndimage.gaussian_filter(vol, sigma) if np.any(sigma > 0) else vol
        phases.append(
            ndimage.affine_transform(
                src, matrix, offset, output_shape=WORKING_SHAPE, order=1, mode="constant", cval=0.0
            )
        )
    work = np.stack(phases).astype(np.float32)  # (P, X, Y, Z)
    pre = work[0]
    body = pre > 0.1 * float(pre.max()) if pre.max() > 0 else np.ones_like(pre, bool)
    scale = float(np.percentile(pre[body], 99)) if body.any() else 1.0
    scale = scale if scale > 0 else 1.0
    work /= scale
    channels = np.stack([work[0], work[1] - work[0], work[-1] - work[1]]).clip(-4.0, 4.0).astype(np.float32)
    wmask = None
    if mask is not None:
        m = ndimage.affine_transform(mask.astype(np.float32), matrix, offset, output_shape=WORKING_SHAPE, order=1)
        wmask = m >= 0.5
        if not wmask.any():  # a tiny lesion can vanish at 2 mm: keep its most-covered voxel
            wmask = m >= m.max() * 0.999 if m.max() > 0 else wmask
    return WorkingVolume(
        channels=channels,
        phases=work,
        mask=wmask,
        scale=scale,
        native_spacing_mm=study.spacing_mm,
        native_shape=study.shape,
        n_phases=study.n_phases,
        source_format=study.source_format,
        affine=w_affine,
    )
